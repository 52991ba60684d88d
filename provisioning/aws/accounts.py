"""Clients in a customer's account: the process's one boto3 session, a role's self-renewing session, the
retry/timeout config, and the account a run, a spec or the portal works in.

Clients are made here, lazily, after the worker has forked, from the process's one boto3 session:
one set of credentials and one client per service per run, reused across that run's steps in a
worker process."""

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import wait
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials
from django.conf import settings

from provisioning.aws.calls import audit_hook_install, aws_beside
from provisioning.aws.errors import EXPIRED_CODES, error_translate
from provisioning.errors import ConnectionSettingsError, OnrampError
from provisioning.kinds import REGISTRY
from provisioning.models import Customer, Run
from provisioning.plan import RUN_SESSION_NAME
from provisioning.registry import (
    APPROVER_TAG,
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


def client_config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": settings.AWS_MAX_ATTEMPTS},
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        max_pool_connections=16,
        user_agent_appid="onramp",
    )


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
    audit_hook_install(client)
    return client


def operator_client(service: str, *, region: str, profile: str = "") -> Any:
    """An audited client with an operator's own credentials (a named profile, else the standard chain), for
    the agency's jobs that Onramp's identity may not do (publishing the role's template)."""
    session = boto3.Session(profile_name=profile or None)
    client = session.client(service, region_name=region, endpoint_url=settings.AWS_ENDPOINT_URL, config=client_config())
    audit_hook_install(client)
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
    if parsed.get("Error", {}).get("Code") in EXPIRED_CODES and not context.get("onramp_renewed"):
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
