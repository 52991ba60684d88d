"""Clients in a customer's account, the retry/timeout config, errors we can explain, and the
botocore event hook that audits every AWS call.

Clients are made here, lazily, after the worker has forked, from the process's one boto3 session:
one set of credentials and one client per service per run, reused across that run's steps in a
worker process.
"""

import contextvars
import functools
import os
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from django.conf import settings

from provisioning.audit.chain import CallLog, audit_write, redact
from provisioning.errors import AwsError, ConnectionSettingsError, OnrampError
from provisioning.kinds import REGISTRY
from provisioning.models import Customer, Run
from provisioning.plan import RUN_SESSION_NAME
from provisioning.registry import (
    APPROVER_TAG,
    MANAGED_BY_WORDS,
    ONRAMP_PATH,
    ROLE_TEMPLATE_VERSION,
    ApiCall,
    assume_role_call,
    role_allows_session_tags,
    session_tag_value,
    source_identity_for,
)
from provisioning.spec import Spec, spec_from_json
from provisioning.vocabulary import Access

# A role's session is renewed when less than this is left (botocore's own advisory window, which RoleSession keeps),
# so no call of a step starts with a session about to expire; a retry hours later renews it before its first call.
RENEW_BEFORE_SECONDS = 15 * 60
_EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "ServiceFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ConcurrentModification",
        "ConcurrentModificationException",
        "OperationAborted",
    }
)
_EXPLAINED = {
    "UnauthorizedOperation": "Onramp's identity in the customer's account is not allowed to do this.",
    "InvalidClientTokenId": "The access key Onramp uses for this customer is not valid. Replace it in the admin.",
    "SignatureDoesNotMatch": "The secret key Onramp uses for this customer is wrong. Replace it in the admin.",
    "LimitExceeded": "The account reached an IAM limit for this (for access keys: two per user). "
    "Remove an unused one and retry.",
    "EntityTemporarilyUnmodifiable": "AWS is still settling this IAM entity. Retry in a minute.",
    "MalformedPolicyDocument": "AWS refused the policy document as malformed.",
    "NoSuchBucket": "The bucket is not in the customer's account: it was deleted outside Onramp, or AWS had not "
    "finished creating it. Retry the failed steps in a minute; if it is still missing, start the onboarding "
    "again (a new run creates the bucket).",
    "PasswordPolicyViolation": "The account's password policy refused the console password Onramp generated "
    "(24 characters with upper- and lower-case letters, digits and symbols): it asks for more, such as a "
    "longer minimum length, or refuses a password used before. Relax it in IAM (Account settings, Password "
    "policy), then retry the failed steps.",
}
# A session Onramp renews by itself (RoleSession); said only if AWS still refuses the renewed one.
_EXPIRED = (
    "AWS says Onramp's session in the customer's account expired, even after Onramp renewed it. Check the "
    "portal machine's clock (AWS refuses requests more than 5 minutes off), then retry the failed steps."
)
_UNRECOGNIZED_KEY = frozenset({"InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure"})
# Regions an account must enable before anything works there (AWS Account Management, "opt-in Regions").
OPT_IN_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)
# AWS's AccessDenied names the action: "User: arn:… is not authorized to perform: iam:CreateUser on resource: …"
_DENIED_ACTION = re.compile(r"not authorized to perform:? ([a-z0-9-]+:[A-Za-z0-9*]+)")
_DENIED_CALLER = re.compile(r"User: (\S+) is not authorized")
# AWS's message names the resource it checked ("… on resource: arn:aws:iam::…:user/bob because …"); it never says
# whether a condition failed, only the kind of deny.
_DENIED_RESOURCE = re.compile(r" on resource: (.+?)(?: because | with an explicit deny|$)")
# The actions that Onramp's own identity calls, on the customer's role (its trust policy allows them too).
PORTAL_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "") or ""


# What a boto3 call raises when AWS gave no usable answer (ClientError is AWS's own refusal).
NO_ANSWER_ERRORS = (BotoCoreError, ResponseParserError)


def _denied(aws_message: str, operation: str) -> str:
    """Which action AWS refused, quoted from its message, and whose policy lacks it."""
    found = _DENIED_ACTION.search(aws_message)
    action = found.group(1) if found else ""
    caller = _DENIED_CALLER.search(aws_message)
    if operation == "AssumeRole" and caller and ":assumed-role/" in caller.group(1):
        # AWS keeps the first source identity through role chaining and refuses another (IAM User Guide, "Monitor
        # and control actions taken with assumed roles"); its AccessDenied does not say that is why.
        return (
            f"AWS refused sts:AssumeRole on the customer's role to Onramp's own identity, which is itself a role "
            f"session ({caller.group(1)}). A role session assumed with a source identity keeps it through role "
            "chaining and AWS refuses to change it, so Onramp cannot name the person who started this in the "
            "customer's CloudTrail: run Onramp with an identity that carries no source identity (its own role or "
            "IAM user, not a session someone assumed with --source-identity). If it carries none, the role's trust "
            "policy or Onramp's own policy refused it: deploy the CloudFormation template from the customer's "
            "admin page again."
        )
    if operation == "AssumeRole" or action in PORTAL_ACTIONS:
        return (
            f"AWS refused {action or 'sts:AssumeRole'} on the customer's role. Either Onramp's own identity lacks it "
            '(its policy is on the customer\'s admin page and in docs/deploying.md, "Going to real AWS"), or the '
            "role's trust policy does not allow it for Onramp's account with this external id: deploy the "
            "CloudFormation template from the customer's admin page again."
        )
    if not action:
        return (
            "Onramp's identity in the customer's account is not allowed to do this. Check the role's permissions "
            "(the CloudFormation template on the customer's admin page has them all)."
        )
    if caller and ":user/" in caller.group(1):
        return (
            "Onramp's identity in the customer's account is not allowed to do this: the IAM user whose keys Onramp "
            f"uses lacks {action}. Give it the policy of the CloudFormation template on the customer's admin page, "
            "which grants every action Onramp calls."
        )
    resource = _DENIED_RESOURCE.search(aws_message)
    return _role_denied(action, resource.group(1).strip() if resource else "")


def _condition_words(condition: tuple) -> str:
    words = []
    for operator, key, values in condition:
        if key.startswith("aws:ResourceTag/"):
            words.append(f"the resource is tagged {key.removeprefix('aws:ResourceTag/')}={' or '.join(values)}")
        else:
            words.append(f"{key} is {' or '.join(values)} ({operator})")
    return " and ".join(words)


def _role_denied(action: str, resource: str) -> str:
    """The customer's role was refused `action`: from the template this Onramp deploys (the preflight refuses an
    older one), whether the role lacks the action or one of its conditions refused it."""
    on = f" on {resource}" if resource else ""
    grants = REGISTRY.grants(action)
    template = f"Onramp's template (version {ROLE_TEMPLATE_VERSION})"
    if not grants:
        return (
            f"Onramp's identity in the customer's account is not allowed to do this: the customer's role lacks "
            f"{action}, and {template} does not grant it either. This is a defect of Onramp: report it with this "
            "sentence."
        )
    if any(not condition and where == "*" for condition, where in grants):
        return (
            f"Onramp's identity in the customer's account is not allowed to do this: the customer's role lacks "
            f"{action}{on}, which {template} grants without a condition. The role was changed by hand, or something "
            "beyond it refused (a service control policy, a permissions boundary, an explicit deny): update it with "
            "the CloudFormation template on the customer's admin page (Update stack), and check those."
        )
    limits = "; or ".join(
        " and ".join(filter(None, [_condition_words(condition), f"it is {where}" if where != "*" else ""]))
        for condition, where in grants
    )
    if any(where != "*" for condition, where in grants):
        # Users and groups: the role reaches only its own path (provisioning.registry ONRAMP_PATH).
        why = (
            f"Onramp acts only on the IAM users and groups in its path {ONRAMP_PATH}, those it made and those the "
            "customer moved there to hand them over: this one is outside it."
        )
    else:
        why = (
            f"Onramp acts only on what it tagged {MANAGED_BY_WORDS} when it made or adopted it: the resource was "
            "made by hand or its tag was removed."
        )
    return (
        f"Onramp's identity in the customer's account is not allowed to do this: a condition of the customer's role "
        f"refused {action}{on}. {template} allows it only when {limits}. {why}"
    )


def _explain(exc: ClientError, code: str, aws_message: str) -> str | None:
    operation = getattr(exc, "operation_name", "") or ""
    region = exc.response.get("ResponseMetadata", {}).get("OnrampRegion", "")
    if code in ("AccessDenied", "AccessDeniedException"):
        return _denied(aws_message, operation)
    if code in _EXPIRED_CODES:
        return _EXPIRED
    if (code in _UNRECOGNIZED_KEY or code == "RegionDisabledException") and region in OPT_IN_REGIONS:
        return (
            f"AWS does not accept Onramp's credentials in {region}, an opt-in region: it works only once enabled "
            "in the customer's account (Account, AWS Regions) and, for a role, in Onramp's own account too. "
            "Enable it, or choose another region."
        )
    if code == "RegionDisabledException":
        # STS answers it for "the account that is being asked to generate credentials" (STS API reference):
        # for AssumeRole, the role's, the customer's.
        return (
            f"AWS STS is not activated in {region or 'this region'} for the customer's account, so AWS will not "
            "give Onramp a session there. The account's administrator activates it in the IAM console (Account "
            "settings, Security Token Service (STS), Endpoints), or choose another region; then retry."
        )
    if code in _UNRECOGNIZED_KEY and operation == "AssumeRole":
        return "Onramp's own AWS identity is not valid (its access key is unknown or deleted). Fix its credentials."
    return _EXPLAINED.get(code)


def error_translate(exc: Exception, *, doing: str = "") -> OnrampError:
    """Turn a botocore exception into an AwsError: explained, and marked retryable when it may pass."""
    prefix = f"{doing}: " if doing else ""
    if isinstance(exc, OnrampError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        aws_message = redact(exc.response.get("Error", {}).get("Message", "") or "")
        retryable = code in _RETRYABLE_CODES or status >= 500
        explained = _explain(exc, code, aws_message)
        if retryable and not explained:
            explained = "AWS is throttling or failing for now; Onramp retried with backoff and will again."
        text = explained or aws_message or "AWS refused the request."
        if explained and aws_message:
            text = f"{explained} (AWS said: {aws_message})"
        return AwsError(prefix + text, code=code or str(status), retryable=retryable)
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return AwsError(
            prefix + "Cannot reach AWS. Check the network, then retry the failed steps.",
            code="CannotReachAWS",
            retryable=True,
        )
    if isinstance(exc, ResponseParserError):
        # An answer that is not AWS's XML or JSON, e.g. a web server's own 500 page (seen from the
        # sandbox under load). botocore does not retry it; a step does, within its bounded attempts.
        return AwsError(prefix + "Onramp could not read AWS's answer.", code="UnreadableResponse", retryable=True)
    if isinstance(exc, NoCredentialsError):
        return AwsError(prefix + "Onramp has no AWS credentials of its own configured.", code="NoCredentials")
    if isinstance(exc, BotoCoreError):
        return AwsError(
            prefix + f"The AWS client failed: {type(exc).__name__}.", code=type(exc).__name__, retryable=True
        )
    return OnrampError(prefix + f"Unexpected error: {type(exc).__name__}.", code=type(exc).__name__)


def client_config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": settings.AWS_MAX_ATTEMPTS},
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        max_pool_connections=16,
        user_agent_appid="onramp",
    )


# --- The audit hook -------------------------------------------------------------------


current_call_log: contextvars.ContextVar[CallLog | None] = contextvars.ContextVar("onramp_call_log", default=None)
_TARGET_PARAMS = (
    "UserName",
    "GroupName",
    "PolicyArn",
    "PolicyName",
    "Bucket",
    "repositoryName",
    "AccountAlias",
    "RoleArn",
)


# AWS's answers that Onramp's steps expect and act on: "it exists" to a create (the step then reads it and
# adopts it), "there is none" to a read (nothing to compare, or a missing configuration to put). Each kind declares
# its own (StepKind.absent, StepKind.exists); the plan's checks add HeadBucket's.
EXISTS_CODES = REGISTRY.exists_codes()
ABSENT_CODES = REGISTRY.absent_codes() | {
    "404",  # a HEAD answer has no body: HeadBucket's "no such bucket" (the plan's bucket-name check) is its status
}
_READ_PREFIXES = ("Get", "List", "Describe", "Head")


def call_outcome(operation: str, code: str) -> str:
    """An audited call's outcome: ok, an expected answer (neutral), or an error."""
    if not code:
        return "ok"
    if (operation.startswith("Create") and code in EXISTS_CODES) or (
        operation.startswith(_READ_PREFIXES) and code in ABSENT_CODES
    ):
        return "expected"
    return "error"


def _on_params(params, model, context, **kwargs):
    context["onramp_started"] = time.perf_counter()
    context["onramp_params"] = params


def _record(context, model, status: int, request_id: str, code: str, message: str = "") -> None:
    log = current_call_log.get()
    if log is None:
        return
    params = context.get("onramp_params") or {}
    started = context.get("onramp_started")
    service = model.service_model.service_name
    target = next((str(params[name]) for name in _TARGET_PARAMS if params.get(name)), "")
    details = {
        "service": service,
        "operation": model.name,
        "region": context.get("client_region") or "",
        "params": redact(params),
        "http_status": status,
        "request_id": request_id,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
    }
    if message:
        details["error_message"] = redact(message)
    log.record(
        action=f"aws.{service}.{model.name}",
        outcome=call_outcome(model.name, code),
        error_code=code,
        target=target,
        details=details,
    )


def _on_after_call(http_response, parsed, model, context, **kwargs):
    meta = parsed.get("ResponseMetadata", {}) if isinstance(parsed, dict) else {}
    error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
    status = getattr(http_response, "status_code", 0) or meta.get("HTTPStatusCode", 0)
    code = (error.get("Code") or str(status)) if status >= 300 else ""
    if code and isinstance(parsed, dict):
        # The ClientError raised next carries this dict: error_translate reads the region from it (opt-in regions).
        parsed.setdefault("ResponseMetadata", {})["OnrampRegion"] = context.get("client_region") or ""
    _record(context, model, status, meta.get("RequestId", ""), code, error.get("Message", "") if code else "")


def _on_after_call_error(exception, context, **kwargs):
    model = context.get("onramp_model")
    if model is not None:
        message = str(exception)
        if isinstance(exception, ResponseParserError):
            # botocore quotes the whole unreadable body: a response that may hold credentials, perhaps
            # cut mid-secret where redaction cannot see it, and of no use to a reader of the log.
            message = "The response could not be read; its body is not recorded."
        _record(context, model, 0, "", type(exception).__name__, message)


def _on_before_call(model, context, **kwargs):
    context["onramp_model"] = model  # after-call-error is not given the model


@contextmanager
def aws_work(
    *,
    actor_label: str,
    actor_id: int | None = None,
    customer_id: int | None = None,
    run_id: UUID | str | None = None,
    step_key: str = "",
    write: bool = True,
) -> Iterator[CallLog]:
    """Audited AWS work: every boto3 call made inside (by any client of ours) is buffered on the
    yielded log, with whatever the work records there itself (`log.record(...)`). On the way out the
    log is written (write=True), even when the work raised; with write=False the caller drains it
    into its own transaction (a step's calls are written with its outcome)."""
    log = CallLog(actor_label=actor_label, actor_id=actor_id, customer_id=customer_id, run_id=run_id, step_key=step_key)
    token = current_call_log.set(log)
    try:
        yield log
    finally:
        current_call_log.reset(token)
        if write:
            audit_write(log.drain())


# The pools of AWS work beside the caller's thread, by name: (the process that made it, the pool). Made on first use
# in each process (after a worker forks).
_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}
_POOL_SIZES = {"onramp-aws": 4, "onramp-checks": 16}


def _pool_submit(name: str, work: Callable[[], object]) -> Future:
    with _session_lock:
        made = _pools.get(name)
        if made is None or made[0] != os.getpid():
            made = _pools[name] = (os.getpid(), ThreadPoolExecutor(_POOL_SIZES[name], thread_name_prefix=name))
    return made[1].submit(contextvars.copy_context().run, work)


def aws_beside(work: Callable[[], object]) -> Future:
    """Start AWS work in a thread beside this one, for a call that does not wait on the caller's: it runs in
    the caller's context, so its calls are audited on the same log (current_call_log). Wait for it before
    that log is drained."""
    return _pool_submit("onramp-aws", work)


def aws_checking(work: Callable[[], object]) -> Future:
    """aws_beside on a pool of its own, for the plan's checks (provisioning/checks.py), which the run's preflight
    starts beside the stale-plan read whose waves fill aws_beside's pool: neither waits for the other's threads.
    Only work that waits on AWS alone goes here, never on a pool's future (so no task of it can hold a thread
    while it waits for one)."""
    return _pool_submit("onramp-checks", work)


def _install_audit_hook(client) -> None:
    events = client.meta.events
    events.register("before-parameter-build.*.*", _on_params, unique_id="onramp-audit-params")
    events.register("before-call.*.*", _on_before_call, unique_id="onramp-audit-model")
    events.register("after-call.*.*", _on_after_call, unique_id="onramp-audit-after")
    events.register("after-call-error.*.*", _on_after_call_error, unique_id="onramp-audit-error")


# --- Sessions -------------------------------------------------------------------------


# This process's one boto3 session: the parsed service models, the event handlers, the config.
# It holds no run's credentials: stored keys are given to each client, and a role's account has a botocore session
# of its own that shares these models and handlers (account_session_create), so a run costs clients only, not a
# parse of the models (a fresh session's, ~250 ms of CPU).
_session: boto3.Session | None = None
_core: botocore.session.Session | None = None  # _session's botocore session
# botocore sessions are not thread-safe, and a role account's shares the process's loader: clients are made under
# this lock (the clients themselves are thread-safe).
_session_lock = threading.Lock()


def process_session() -> boto3.Session:
    """This process's boto3 session, made on first use (after the worker has forked)."""
    global _session, _core
    with _session_lock:
        if _session is None:
            _core = botocore.session.Session()
            _session = boto3.Session(botocore_session=_core)
        return _session


class _Held(CredentialProvider):
    """A credential provider that hands out credentials Onramp holds: a role's session, which renews itself."""

    METHOD = CANONICAL_NAME = "onramp-role-session"

    def __init__(self, credentials):
        super().__init__()
        self._credentials = credentials

    def load(self):
        return self._credentials


def account_session_create(credentials: "RoleSession") -> botocore.session.Session:
    """A botocore session for one role's account: its credential resolver hands out `credentials` (a RoleSession),
    and it shares the process session's loaded service models and event handlers (the audit hook's counterpart),
    so a worker loads the models once (aws_models_load) and an account costs no parse."""
    process_session()
    core = _core
    assert core is not None  # made by process_session()
    with _session_lock:
        session = botocore.session.Session(
            event_hooks=core.get_component("event_emitter"), include_builtin_handlers=False
        )
        session.register_component("data_loader", core.get_component("data_loader"))
        session.register_component("credential_provider", CredentialResolver(providers=[_Held(credentials)]))
        session.user_agent_name, session.user_agent_version = core.user_agent_name, core.user_agent_version
    return session


# The keys of a client made only to load its service's model (aws_models_load): nothing AWS accepts.
UNUSABLE_KEYS = {"aws_access_key_id": "-", "aws_secret_access_key": "-"}


def aws_models_load() -> None:
    """Load botocore's models of the services Onramp's steps call, in this process, before any run needs them
    (the first client of a service otherwise pays ~100 ms). Makes clients, sends nothing."""
    for service in REGISTRY.services():
        client_create(service, region="us-east-1", credentials=UNUSABLE_KEYS)


def client_create(
    service: str, *, region: str, credentials: dict | None = None, session: botocore.session.Session | None = None
) -> Any:
    """An audited client for `service`: from a role account's botocore session (`session`, signing with its role's
    session), or with these credentials (the standard chain's when empty)."""
    boto = process_session()
    with _session_lock:
        if session is not None:
            client = session.create_client(
                service, region_name=region, endpoint_url=settings.AWS_ENDPOINT_URL, config=client_config()
            )
        else:
            client = boto.client(
                service,
                region_name=region,
                endpoint_url=settings.AWS_ENDPOINT_URL,
                config=client_config(),
                **(credentials or {}),
            )
    _install_audit_hook(client)
    return client


def operator_client(service: str, *, region: str, profile: str = "") -> Any:
    """An audited client with an operator's own credentials (a named profile, else the standard chain), for
    the agency's jobs that Onramp's identity may not do (publishing the role's template)."""
    session = boto3.Session(profile_name=profile or None)
    client = session.client(service, region_name=region, endpoint_url=settings.AWS_ENDPOINT_URL, config=client_config())
    _install_audit_hook(client)
    return client


class RoleSession(DeferredRefreshableCredentials):
    """A role's temporary credentials that renew themselves by assuming the role again, with the same request: the
    first use assumes it (so clients can be made from it while AWS answers, account_connect), botocore renews it
    when less than RENEW_BEFORE_SECONDS are left, and Onramp at once when AWS answers that the token expired
    (expire(), from the clients' retry hook), so no step ever sees an expired session."""

    def __init__(self, *, assume: Callable[[], dict]):
        self._assume = assume
        self._expired = False
        super().__init__(refresh_using=self._renew, method="assume-role")

    def __repr__(self) -> str:  # never the keys
        return "<RoleSession>"

    def _renew(self) -> dict:
        metadata = self._assume()
        self._expired = False
        return metadata

    def expire(self) -> None:
        """AWS said the session expired (early: revoked, or a clock that disagrees): renew before the next call."""
        self._expired = True

    def refresh_needed(self, refresh_in=None) -> bool:
        return self._expired or super().refresh_needed(refresh_in)


def _on_needs_retry(response=None, request_dict=None, session: RoleSession | None = None, **kwargs):
    """botocore's retry hook: an answer of ExpiredToken(Exception) renews the session and retries the call once,
    at once (botocore signs each attempt again, with the renewed keys)."""
    if not response or session is None:
        return None
    parsed = response[1] if isinstance(response[1], dict) else {}
    context = request_dict.get("context", {}) if request_dict else {}
    if parsed.get("Error", {}).get("Code") in _EXPIRED_CODES and not context.get("onramp_renewed"):
        context["onramp_renewed"] = True
        session.expire()
        return 0
    return None


def _renew_on_expired(client, session: RoleSession) -> None:
    """A client of a role's account (made from its account session, so signing with `session`) renews the session
    and retries once when AWS answers that the token expired."""
    retry_event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(
        retry_event, functools.partial(_on_needs_retry, session=session), unique_id="onramp-renew-session"
    )


class AwsAccount:
    """One set of credentials in one account, and its clients (one per service and region). A role's
    session (`session`) renews itself; stored keys and Onramp's own chain do not expire."""

    def __init__(
        self,
        credentials: dict,
        *,
        region: str,
        account_id: str,
        access: str,
        session: RoleSession | None = None,
        botocore_session=None,
        session_tags: dict[str, str] | None = None,
    ):
        self._credentials = credentials
        self.session = session
        self.session_tags = dict(session_tags or {})  # what the role's session was assumed with (an approver)
        self.untagged_because = ""  # why tags asked for are not on the session (account_for_run), or ""
        self._botocore = botocore_session  # a role's: its clients sign with `session` (account_session_create)
        self.region = region
        self.account_id = account_id
        self.access = access  # Access.ROLE or Access.KEYS (or "portal", Onramp's own), for the preflight summary
        self._clients: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the credentials
        return f"<AwsAccount {self.account_id} {self.region} via {self.access}>"

    def send(self, call: ApiCall, **generated) -> dict:
        """Send a declared call (a kind's ApiCall) exactly as declared, plus the values Onramp
        generates at send time."""
        return getattr(self.client(call.service), call.method)(**{**call.params, **generated})

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        with self._lock:
            if key not in self._clients:
                client = client_create(service, region=key[1], credentials=self._credentials, session=self._botocore)
                if self.session is not None:
                    _renew_on_expired(client, self.session)
                self._clients[key] = client
            return self._clients[key]

    def clients_adopt(self, clients: dict[str, object]) -> None:
        """Take clients made from this role account's botocore session while AWS answered its AssumeRole
        (account_connect): they sign with the role's session already."""
        if self.session is None:
            raise ValueError("Only a role's account adopts clients made before its session.")
        with self._lock:
            for service, client in clients.items():
                if (service, self.region) not in self._clients:
                    _renew_on_expired(client, self.session)
                    self._clients[(service, self.region)] = client

    def clients_open(self, services: Iterable[str]) -> None:
        """Make the clients of these services that are not made yet, in the account's region (the preflight
        makes the run's while its own calls wait on AWS, so the steps after it find them made)."""
        for service in services:
            self.client(service)


_portal_accounts: dict[tuple[str | None, str], AwsAccount] = {}
_portal_lock = threading.Lock()


def portal_account(region: str) -> AwsAccount:
    """Onramp's own identity, one per process and region (botocore refreshes chain credentials)."""
    key = (settings.AWS_ENDPOINT_URL, region)
    with _portal_lock:
        if key not in _portal_accounts:
            # No keys given: boto3's standard credential chain (AWS_* variables, a profile, a role on the machine…),
            # on the sandbox as on AWS; `make run` puts the sandbox's keys in its environment.
            _portal_accounts[key] = AwsAccount(
                {}, region=region, account_id=settings.PORTAL_AWS_ACCOUNT_ID, access="portal"
            )
        return _portal_accounts[key]


def role_session_open(*, region: str, request: dict) -> RoleSession:
    """The customer's role, assumed as Onramp's own identity on first use; the session renews itself with the same
    request."""
    portal = portal_account(region)

    def assume() -> dict:
        try:
            creds = portal.client("sts").assume_role(**request)["Credentials"]
        except Exception as exc:
            raise error_translate(exc, doing="Assuming the customer's role") from None
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    return RoleSession(assume=assume)


def _keys_account(customer: Customer, *, region: str) -> AwsAccount:
    """The customer's account reached with their stored IAM user keys."""
    from provisioning.vault import decrypt  # the vault imports audit, which this module also uses

    if not customer.has_stored_keys:
        raise ConnectionSettingsError(
            "This customer has no stored access keys. Set them in the admin.", code="NoCustomerKeys"
        )
    keys = {
        "aws_access_key_id": customer.access_key_id,
        "aws_secret_access_key": decrypt(customer.secret_access_key_ciphertext),
    }
    return AwsAccount(keys, region=region, account_id=customer.aws_account_id, access=Access.KEYS)


def account_connect(
    *,
    customer: Customer,
    region: str,
    access: str | None = None,
    role_arn: str = "",
    external_id: str = "",
    session_name: str,
    source_identity: str,
    services: Iterable[str] = (),
    session_tags: dict[str, str] | None = None,
) -> AwsAccount:
    """Open a session in the customer's account: assume their role with its external id, named for
    the run or check (`session_name`) and the person (`source_identity`) in their CloudTrail, or use
    their stored IAM user keys. The role and external id default to the customer's record. `services`: for
    a role, the clients to make while AWS answers the AssumeRole (they are made before the session, and sign
    with it once it exists). `session_tags`: the role's session carries them (AssumeRole's Tags; stored keys
    have no session to tag)."""
    access = access or customer.access
    role_arn = role_arn or customer.role_arn
    external_id = external_id or customer.external_id
    if access == Access.KEYS:
        return _keys_account(customer, region=region)
    if not role_arn:
        raise ConnectionSettingsError(
            "This customer has no role ARN. Set it in the admin or in the form.", code="NoRoleArn"
        )
    call = assume_role_call(
        role_arn=role_arn,
        external_id=external_id,
        session_name=session_name[:64],
        source_identity=source_identity_for(source_identity),
        tags=session_tags,
    )
    services = list(services)
    session = role_session_open(region=region, request=call.params)  # nothing sent yet
    core = account_session_create(session)
    made = aws_beside(lambda: {s: client_create(s, region=region, session=core) for s in services})
    try:
        session.get_frozen_credentials()  # the AssumeRole, while the clients are made beside it
    except Exception:
        wait([made])  # the role was refused: the clients are dropped, once made (no work outlives the connect)
        raise
    account = AwsAccount(
        {},
        region=region,
        account_id=customer.aws_account_id,
        access=Access.ROLE,
        session=session,
        botocore_session=core,
        session_tags=session_tags,
    )
    account.clients_adopt(made.result())
    return account


class _RunAccounts:
    """The per-process cache of open accounts, by run and the session tags asked for, so a run's steps share its
    credentials and clients, and a session is never reused for other tags (another approver, or none)."""

    def __init__(self, size: int = 64):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(run_id, tags: dict[str, str] | None) -> tuple:
        return (str(run_id), tuple(sorted((tags or {}).items())))

    def get(self, run_id, tags: dict[str, str] | None = None):
        key = self._key(run_id, tags)
        with self._lock:
            account = self._items.get(key)
            if account is not None:
                self._items.move_to_end(key)
            return account

    def put(self, run_id, account: AwsAccount, tags: dict[str, str] | None = None) -> AwsAccount:
        with self._lock:
            self._items[self._key(run_id, tags)] = account
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return account

    def forget(self, run_id) -> None:
        with self._lock:
            for key in [key for key in self._items if key[0] == str(run_id)]:
                del self._items[key]


run_accounts = _RunAccounts()


def account_for_spec(
    *,
    customer: Customer,
    spec: Spec,
    session_name: str,
    source_identity: str,
    services: Iterable[str] = (),
    session_tags: dict[str, str] | None = None,
) -> AwsAccount:
    """Open the customer's account the way a run's spec says: its region, its role and external id."""
    return account_connect(
        customer=customer,
        region=spec.region,
        access=spec.access,
        role_arn=spec.role_arn,
        external_id=spec.external_id,
        session_name=session_name,
        source_identity=source_identity,
        services=services,
        session_tags=session_tags,
    )


def run_session_tags(run: Run, spec: Spec) -> tuple[dict[str, str], str]:
    """The session tags of a run's AssumeRole (its approver, when it has one) and, when an approver cannot be
    carried, why: stored keys have no session, and a role older than version 4 does not allow sts:TagSession
    (a role whose version Onramp has not read yet is tried with the tag: account_for_run)."""
    approver = run.approved_by if run.approved_by_id is not None else None
    if approver is None:
        return {}, ""
    if not spec.uses_role:
        return {}, "Onramp reaches this customer with stored access keys, which have no role session to tag."
    version = run.customer.role_version
    if role_allows_session_tags(version) is False:
        return {}, (
            f"The customer's role is at version {version} of Onramp's template, older than 4: its trust policy "
            "does not allow sts:TagSession. Update the customer's stack to name approvers in their CloudTrail."
        )
    return {APPROVER_TAG: session_tag_value(approver.get_username())}, ""


def _tag_refused(exc: OnrampError) -> bool:
    return exc.code in ("AccessDenied", "AccessDeniedException") and "sts:TagSession" in str(exc)


def account_for_run(run: Run, spec: Spec | None = None) -> AwsAccount:
    """The open account of a run in this process, connecting on first use: assumed with the run's approver as a
    session tag where the role allows it (run_session_tags), else without, saying why (AwsAccount.untagged_because).
    A role that refuses sts:TagSession (a version Onramp had not read, or Onramp's own policy without it) is
    assumed again without the tag."""
    spec = spec or spec_from_json(run.spec)
    tags, because = run_session_tags(run, spec)
    account = run_accounts.get(run.pk, tags)
    if account is not None:
        return account

    def connect(session_tags: dict[str, str]) -> AwsAccount:
        return account_for_spec(
            customer=run.customer,
            spec=spec,
            session_name=RUN_SESSION_NAME.format(run_id=run.pk),
            source_identity=run.started_by.get_username(),
            services=REGISTRY.services(),  # every step's, made while the role is assumed
            session_tags=session_tags,
        )

    try:
        account = connect(tags)
    except OnrampError as exc:
        if not tags or not _tag_refused(exc):
            raise
        account = connect({})
        because = f"AWS refused the session tag: {exc}"
    account.untagged_because = because
    return run_accounts.put(run.pk, account, tags)


# --- AWS's eventual consistency ---------------------------------------------------------------

# What AWS answers for a while right after something was created (IAM and S3 are eventually
# consistent): the entity or bucket is not visible yet to the next call, or is still settling.
SETTLING_CODES = frozenset({"NoSuchEntity", "NoSuchBucket", "EntityTemporarilyUnmodifiable"})
# What AWS answers for a moment about something that exists but was just changed (a login profile right after
# CreateLoginProfile): only ever temporary, so waited out wherever it comes, without waiting on a missing one.
UNMODIFIABLE_CODES = frozenset({"EntityTemporarilyUnmodifiable"})


def settle(call: Callable[[], dict], *, wait: float | None = None, codes: frozenset[str] = SETTLING_CODES) -> dict:
    """Make a call that depends on something created moments ago, retrying AWS's "not there yet" answers
    (`codes`) with backoff for at most `wait` seconds (AWS_SETTLE_SECONDS). Only for what was just created: a
    genuinely missing entity still fails, once the wait is over, with AWS's own answer."""
    deadline = time.monotonic() + (settings.AWS_SETTLE_SECONDS if wait is None else wait)
    delay = 0.2
    while True:
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) not in codes or time.monotonic() + delay > deadline:
                raise
        time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 (jitter, not a secret)
        delay = min(delay * 2, 2.0)
