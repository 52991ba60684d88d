"""The strict sandbox: moto's server with its IAM authorization on, moto's own mistakes corrected, and a
layer that refuses what AWS refuses where moto is lenient. Sandbox code only (never imported by the portal);
nothing here imports Django.

    python -m sandbox.strict --port 5000        (sandbox/controller.py starts it: Sandbox(strict=True))

Where the layer lives. It is a WSGI middleware around moto's application, in moto's own server process,
not the loopback proxy (sandbox/proxy.py SandboxProxy): its rules need moto's state — the caller behind an
access key, the role's trust policy, the caller's identity policies evaluated by moto's own evaluator, the
account's password policy, other accounts' aliases, when a session was issued — and here it reads them
from moto's backends directly, where a proxy would have to ask for them over HTTP with an identity that
itself needs permissions, and guess at the rest. The proxy stays what it is: latency and faults between
a client and a sandbox.

How accounts are set up. moto checks every request against the caller's policies once more requests
than INITIAL_NO_AUTH_ACTION_COUNT have been served, one counter per server. The strict sandbox sets that
budget to 0 on every reset: no request over HTTP is ever unchecked, and no call of a test's worker can
slip into an unauthenticated budget. The harness's own hand is made in this process through the control
API (/sandbox-api/, like moto's /moto-api/), never through AWS's API:
- the set-up identity: IAM user `sandbox-setup` in account 000000000000, an administrator, with fixed
  keys (SETUP_KEY_ID / SETUP_SECRET), made again on every reset;
- in each account a test touches, the role `SandboxAdmin` (an administrator, trusted by the set-up
  account), made on first request (POST /sandbox-api/accounts/<id>). The set-up identity assumes it to
  read an account back (tests/awsread.py) and to act as the customer's own administrator, e.g. to deploy
  Onramp's CloudFormation template through the CloudFormation API;
- identities for the code under test (POST /sandbox-api/users): an IAM user with one inline policy and
  keys the caller chooses (the portal's identity keeps the same keys across resets, so a worker's
  credential chain stays valid).
The set-up user and SandboxAdmin sessions are authenticated and authorized like any caller, but the
layer's rules (trust, consistency, expiry, names…) do not apply to them: they see the world as it is.

Each rule is a switch of `Strictness` (POST /sandbox-api/config), tested on its own in
tests/test_sandbox.py; docs/testing.md "What AWS enforces that the sandbox did not" says what each reproduces.
"""

import argparse
import copyreg
import gc
import hashlib
import io
import json
import pickle
import re
import threading
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qs

from sandbox import clock, iam_eval, refusals, s3_rules, sts_rules
from sandbox.iam_eval import ConditionNotEvaluated

SETUP_ACCOUNT = "000000000000"
SETUP_USER = "sandbox-setup"
SETUP_KEY_ID = "AKIASANDBOXSETUP0001"
SETUP_SECRET = "sandbox-setup-secret-not-a-real-secret00"  # noqa: S105 (a sandbox-only fixed key)
ADMIN_ROLE = "SandboxAdmin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class Strictness:
    """What the sandbox enforces beyond moto. All off is moto as it is (the lenient mode)."""

    # moto's IAM authorization: every call checked against the caller's identity policies.
    authorization: bool = False
    # IAM's own decision before moto's (sandbox/iam_eval.py): resource ARNs, condition keys, operators, denies.
    iam_decision: bool = False
    # moto 5.2.5's mistakes, corrected (each named in docs/testing.md and tested in tests/test_sandbox.py).
    cfn_inline_policy: bool = False  # a CloudFormation-made role's inline policy: moto's evaluator fails on it
    cfn_role_update: bool = False  # a stack update changes its role's trust policy, inline policies and tags
    s3_action_names: bool = False  # ?publicAccessBlock / ?ownershipControls authorised as their own actions
    root_principal: bool = False  # arn:aws:iam::ACCOUNT:root in a trust policy stands for the account
    path_update: bool = False  # UpdateUser/UpdateGroup NewPath: a user keeps its tags, a group moves
    # Where moto is more lenient than AWS.
    trust: bool = False  # AssumeRole: the role exists; its trust policy's principal, conditions, SetSourceIdentity,
    # TagSession
    dependent_actions: bool = False  # creating with tags needs the Tag action; ObjectOwnership needs its own
    consistency_window: float = 0.0  # seconds after a create during which dependent calls do not see it
    session_max_age: float = 0.0  # seconds after which an assumed-role session answers ExpiredToken
    password_policy: bool = False  # the account's password policy (or AWS's default) on a login profile
    names: bool = False  # request values against botocore's patterns and lengths, ASCII, whole value
    alias_global: bool = False  # an account alias another account has: EntityAlreadyExists
    reset_required_on_create: bool = False  # CreateLoginProfile honours PasswordResetRequired
    delete_conflicts: bool = False  # DeleteUser/DeleteGroup/DeletePolicy refused while anything still hangs on them
    # AWS's other refusals (sandbox/refusals.py).
    inactive_keys: bool = False  # an Inactive access key cannot sign a request
    foreign_bucket: bool = False  # HeadBucket on another account's bucket: 403
    bucket_taken_at_create: str = ""  # names another account takes as the first CreateBucket for them arrives
    policy_quotas: bool = False  # AttachedPoliciesPerUserQuota (10), managed-policy size (6,144)
    opt_in_regions: bool = False  # an opt-in Region not in enabled_regions refuses the account's credentials
    enabled_regions: str = ""  # the opt-in Regions every account has enabled, comma-separated
    list_buckets_page: int = 0  # ListBuckets answers this many buckets at most, with a ContinuationToken
    template_url: bool = False  # CloudFormation reads a TemplateURL with the caller's own access
    login_profile_window: float = 0.0  # seconds after CreateLoginProfile: EntityTemporarilyUnmodifiable (assumed)
    new_key_window: float = 0.0  # seconds after CreateAccessKey during which the new key is refused (assumed)
    tag_window: float = 0.0  # seconds after TagUser/TagRole (or Untag) during which IAM's decision sees the old tags
    delete_conflict_window: float = 0.0  # seconds after the last removal of what hangs on it: DeleteConflict (assumed)
    lifecycle_window: float = 0.0  # seconds after PutLifecyclePolicy: GetLifecyclePolicy answers the previous one
    # S3's refusals when a bucket is emptied (sandbox/s3_rules.py).
    mfa_delete: bool = False  # a bucket with MFA Delete refuses deleting versions without x-amz-mfa
    bucket_acl_ownership: bool = False  # BucketOwnerEnforced refused while the bucket's ACL grants others
    # STS (sandbox/sts_rules.py).
    source_identity_chain: bool = False  # a session's source identity cannot be changed by a chained AssumeRole

    @classmethod
    def of(cls, data: dict) -> "Strictness":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown strictness switches: {sorted(unknown)}")
        return cls(**data)


# --- Requests and callers -------------------------------------------------------------------------


@dataclass
class Call:
    """One AWS request as the layer sees it."""

    service: str  # the signing name: iam, sts, s3, ecr, cloudformation…
    region: str
    operation: str  # IAM/STS: Action; JSON APIs: the target's operation; S3: CreateBucket or "<METHOD> bucket"
    params: dict  # Query APIs: form fields (first values); JSON APIs: the body's top level
    bucket: str  # S3: the bucket named in the path
    headers: dict  # lower-case names
    access_key_id: str
    method: str = "GET"
    path: str = "/"
    query: str = ""
    body: bytes = b""

    @property
    def protocol(self) -> str:
        return {"s3": "rest-xml", "ecr": "json"}.get(self.service, "query")


def _read_body(environ: dict) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    return body


def call_parse(environ: dict, body: bytes) -> Call | None:
    """The request's service, operation and parameters; None when it is not a signed AWS request."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    headers["content-type"] = environ.get("CONTENT_TYPE", "")
    found = re.search(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/", headers.get("authorization", ""))
    if not found:
        return None
    access_key_id, region, service = found.groups()
    params: dict = {}
    bucket = ""
    target = headers.get("x-amz-target", "")
    if service == "s3":
        bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        query = environ.get("QUERY_STRING", "")
        method = environ.get("REQUEST_METHOD", "GET")
        plain_put = method == "PUT" and bucket and environ.get("PATH_INFO", "").strip("/") == bucket and not query
        operation = "CreateBucket" if plain_put else f"{method} bucket"
    elif target:
        operation = target.rsplit(".", 1)[-1]
        params = json.loads(body or b"{}")
    else:
        params = {name: values[0] for name, values in parse_qs(body.decode(errors="replace")).items()}
        operation = params.get("Action", "")
    return Call(
        service,
        region,
        operation,
        params,
        bucket,
        headers,
        access_key_id,
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("PATH_INFO", "/"),
        environ.get("QUERY_STRING", ""),
        body,
    )


@dataclass(frozen=True)
class Caller:
    """Who signed a request, from moto's own records of access keys and role sessions."""

    account: str
    arn: str  # what a policy's Principal names: the user, or the role of a session
    session_arn: str  # a session's own ARN (arn:aws:sts::…:assumed-role/ROLE/SESSION); the user's ARN otherwise
    issued: datetime | None  # when a role session's keys were made; None for a user's keys

    @property
    def harness(self) -> bool:
        return self.account == SETUP_ACCOUNT or self.arn.endswith(f":role/{ADMIN_ROLE}")


def caller_find(access_key_id: str) -> Caller | None:
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_id in list(iam_backends.keys()):
        key = iam_backends[account_id]["aws"].access_keys.get(access_key_id)
        if key is None:
            continue
        if key.user_name:
            arn = f"arn:aws:iam::{account_id}:user/{key.user_name}"
            return Caller(account_id, arn, arn, None)
        for session in list(sts_backends[account_id]["aws"].assumed_roles):
            if session.access_key_id == access_key_id:
                role_arn = f"arn:aws:iam::{account_id}:role/{session.role_arn.split('/')[-1]}"
                return Caller(account_id, role_arn, session.arn, key.create_date)
    return None


def identity_allows(call: Call, caller: Caller, action: str, resource: str) -> bool:
    """Whether the caller's own policies allow `action` on `resource`, by moto's evaluator."""
    from moto.iam.access_control import (
        AssumedRoleAccessKey,
        IAMPolicy,
        IAMUserAccessKey,
        PermissionResult,
    )

    key: IAMUserAccessKey | AssumedRoleAccessKey
    if caller.issued is None:  # a user's keys
        key = IAMUserAccessKey(account_id=caller.account, partition="aws", access_key_id=call.access_key_id, headers={})
    else:
        token = {"X-Amz-Security-Token": call.headers.get("x-amz-security-token", "")}
        key = AssumedRoleAccessKey(
            account_id=caller.account, partition="aws", access_key_id=call.access_key_id, headers=token
        )
    results = [IAMPolicy(policy).is_action_permitted(action, resource) for policy in key.collect_policies()]
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


# --- Answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    status: int = 400

    def body(self, call: Call) -> tuple[str, bytes]:
        request_id = str(uuid.uuid4())
        message = _xml_escape(self.message)
        if call.protocol == "json":
            return "application/x-amz-json-1.1", json.dumps({"__type": self.code, "message": self.message}).encode()
        if call.protocol == "rest-xml":
            bucket = f"<BucketName>{_xml_escape(call.bucket)}</BucketName>" if call.bucket else ""
            text = (
                f"<Error><Code>{self.code}</Code><Message>{message}</Message>{bucket}"
                f"<RequestId>{request_id}</RequestId></Error>"
            )
            return "application/xml", f'<?xml version="1.0" encoding="UTF-8"?>\n{text}'.encode()
        text = (
            f'<ErrorResponse xmlns="https://{call.service}.amazonaws.com/doc/"><Error><Type>Sender</Type>'
            f"<Code>{self.code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
        return "text/xml", text.encode()

    def respond(self, call: Call, start_response):
        content_type, body = self.body(call)
        reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}.get(self.status, "Error")
        start_response(f"{self.status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def access_denied(
    call: Call, caller: Caller, action: str, resource: str, why: str | None = "no identity-based policy allows"
) -> Refusal:
    """AccessDenied worded as AWS words it, naming the action (what Onramp quotes back to people)."""
    return Refusal(
        "AccessDeniedException" if call.protocol == "json" else "AccessDenied",
        f"User: {caller.session_arn} is not authorized to perform: {action} on resource: {resource}"
        + (f" because {why} the {action} action" if why else ""),
        403,
    )


# --- Trust policies (AssumeRole) ---------------------------------------------------------------------


def condition_holds(condition: dict, context: dict) -> bool:
    """A statement's Condition against the request's context (key -> value, None when absent), by IAM's rules:
    one evaluator for trust and identity policies (sandbox/iam_eval.py)."""
    return iam_eval.condition_holds(condition, {key: [str(v)] for key, v in context.items() if v is not None})


def principal_match(principal, caller: Caller) -> str | None:
    """ "specific" when the Principal names this user or role (or session), "account" when it names the caller's
    account (ACCOUNT, arn:aws:iam::ACCOUNT:root) or everyone, None otherwise."""
    if principal == "*":
        return "account"
    names = principal.get("AWS", []) if isinstance(principal, dict) else []
    names = [names] if isinstance(names, str) else names
    if caller.arn in names or caller.session_arn in names:
        return "specific"
    if "*" in names or caller.account in names or f"arn:aws:iam::{caller.account}:root" in names:
        return "account"
    return None


def _action_match(statement: dict, action: str) -> bool:
    listed = statement.get("Action", [])
    listed = [listed] if isinstance(listed, str) else listed
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in listed)


def trust_decision(document: dict, *, action: str, caller: Caller, context: dict) -> str | None:
    """How a trust policy lets the caller do `action`: "specific" (names the caller: enough on its own in the
    same account), "account" (names the account: the caller's own policy must allow it too), or None."""
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    allowed = None
    for statement in statements:
        if not _action_match(statement, action):
            continue
        how = principal_match(statement.get("Principal", {}), caller)
        if how is None or not condition_holds(statement.get("Condition", {}), context):
            continue
        if statement.get("Effect") == "Deny":
            return None
        allowed = "specific" if "specific" in (how, allowed) else how
    return allowed


def role_find(role_arn: str):
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) != 6 or not parts[4].isdigit():
        return None
    try:
        return iam_backends[parts[4]]["aws"].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException
        return None


def check_trust(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """AssumeRole as AWS decides it: the role must exist; its trust policy must allow each action the request
    needs (sts:AssumeRole; sts:SetSourceIdentity with a SourceIdentity; sts:TagSession with tags) for this
    principal under its conditions (sts:ExternalId…); and across accounts, or when the trust policy names only
    the account, the caller's own policy must allow each action too."""
    if not (call.service == "sts" and call.operation == "AssumeRole"):
        return None
    role_arn = call.params.get("RoleArn", "")
    role = role_find(role_arn)
    if role is None:
        return access_denied(call, caller, "sts:AssumeRole", role_arn, why=None)
    actions = ["sts:AssumeRole"]
    if call.params.get("SourceIdentity"):
        actions.append("sts:SetSourceIdentity")
    if any(name.startswith("Tags.member.") for name in call.params):
        actions.append("sts:TagSession")
    context = {
        "sts:ExternalId": call.params.get("ExternalId"),
        "sts:SourceIdentity": call.params.get("SourceIdentity"),
        "sts:RoleSessionName": call.params.get("RoleSessionName"),
        "aws:PrincipalAccount": caller.account,
        "aws:PrincipalArn": caller.arn,
    }
    document = json.loads(role.assume_role_policy_document)
    for action in actions:
        try:
            how = trust_decision(document, action=action, caller=caller, context=context)
        except ConditionNotEvaluated as exc:
            return access_denied(call, caller, action, role_arn, why=f"the strict sandbox cannot evaluate {exc} for")
        if how is None:
            return access_denied(call, caller, action, role_arn, why=None)
        across = role_arn.split(":")[4] != caller.account
        if (across or how == "account") and not identity_allows(call, caller, action, role_arn):
            return access_denied(call, caller, action, role_arn)
    return None


# --- The other rules -----------------------------------------------------------------------------------


def check_session(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """A role session older than the configured age answers ExpiredToken, as AWS does past its expiry."""
    age = layer.config.session_max_age
    if not age or caller.issued is None:
        return None
    issued = caller.issued if caller.issued.tzinfo else caller.issued.replace(tzinfo=UTC)
    if clock.age(issued) <= age:  # the sandbox's clock, which a test may have advanced
        return None
    if call.protocol == "json":
        return Refusal("ExpiredTokenException", "The security token included in the request is expired", 400)
    if call.protocol == "rest-xml":
        return Refusal("ExpiredToken", "The provided token has expired.", 400)
    return Refusal("ExpiredToken", "The security token included in the request is expired", 403)


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def _input_members(service: str, operation: str) -> dict:
    """The operation's top-level input members, from botocore's own service model."""
    import botocore.session
    from botocore.exceptions import UnknownServiceError
    from botocore.model import OperationNotFoundError

    with _MODELS_LOCK:
        if service not in _MODELS:
            try:
                _MODELS[service] = botocore.session.get_session().get_service_model(service)
            except UnknownServiceError:
                _MODELS[service] = None
        model = _MODELS[service]
    try:
        shape = model.operation_model(operation).input_shape if model else None
    except OperationNotFoundError:
        return {}
    return shape.members if shape is not None else {}


def value_problem(value: str, metadata: dict) -> str:
    """What AWS says of a value its model refuses: too short, too long, or not matching the pattern (ASCII \\w,
    the whole value)."""
    if "min" in metadata and len(value) < metadata["min"]:
        return f"Member must have length greater than or equal to {metadata['min']}"
    if "max" in metadata and len(value) > metadata["max"]:
        return f"Member must have length less than or equal to {metadata['max']}"
    pattern = metadata.get("pattern")
    if pattern:
        try:
            ok = re.fullmatch(pattern, value, re.ASCII) is not None
        except re.error:  # a Java-only construct: botocore's clients do not apply it either
            ok = True
        if not ok:
            return f"Member must satisfy regular expression pattern: {pattern}"
    return ""


def check_names(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """Every top-level string parameter against its shape in botocore's model (AWS validates them; moto and
    botocore's client only check lengths)."""
    if call.protocol == "rest-xml":
        return None
    for name, member in _input_members(call.service, call.operation).items():
        value = call.params.get(name)
        if member.type_name != "string" or not isinstance(value, str):
            continue
        problem = value_problem(value, member.metadata)
        if problem:
            shown = "" if member.metadata.get("sensitive") else f" '{value}'"
            code = "InvalidParameterException" if call.protocol == "json" else "ValidationError"
            where = name[0].lower() + name[1:]
            return Refusal(
                code, f"1 validation error detected: Value{shown} at '{where}' failed to satisfy constraint: {problem}"
            )
    return None


_TAGGED_CREATES = {
    # An IAM entity's ARN holds its path: the tagging is authorized on the ARN the create makes.
    ("iam", "CreateUser"): ("iam:TagUser", "user{Path}{UserName}"),
    ("iam", "CreateRole"): ("iam:TagRole", "role{Path}{RoleName}"),
    ("iam", "CreatePolicy"): ("iam:TagPolicy", "policy{Path}{PolicyName}"),
    ("ecr", "CreateRepository"): ("ecr:TagResource", "repository/{repositoryName}"),
}


def _needed_too(call: Call, caller: Caller) -> list[tuple[str, str]]:
    """(action, resource) that AWS also authorizes for this request, beyond the operation's own action."""
    tagged = _TAGGED_CREATES.get((call.service, call.operation))
    if tagged is not None and (call.params.get("tags") or "Tags.member.1.Key" in call.params):
        action, path = tagged
        prefix = (
            f"arn:aws:iam::{caller.account}:"
            if call.service == "iam"
            else f"arn:aws:ecr:{call.region}:{caller.account}:"
        )
        return [(action, prefix + path.format_map({"Path": "/", **call.params}))]
    needed = []
    if call.operation == "CreateBucket":
        bucket = f"arn:aws:s3:::{call.bucket}"
        if "x-amz-object-ownership" in call.headers:
            needed.append(("s3:PutBucketOwnershipControls", bucket))
        acl = call.headers.get("x-amz-acl", "private")
        if acl != "private" or any(name.startswith("x-amz-grant-") for name in call.headers):
            needed.append(("s3:PutBucketAcl", bucket))
    return needed


def check_dependent_actions(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """Creating with tags is also authorized as tagging; CreateBucket with x-amz-object-ownership as
    s3:PutBucketOwnershipControls, with an ACL other than private as s3:PutBucketAcl (AWS's API reference)."""
    for action, resource in _needed_too(call, caller):
        if not identity_allows(call, caller, action, resource):
            return access_denied(call, caller, action, resource)
    return None


# An IAM call that names an entity (kind, parameter), and the entity a create makes.
_DEPENDENTS = {
    "AddUserToGroup": (("user", "UserName"), ("group", "GroupName")),
    "AttachUserPolicy": (("user", "UserName"), ("policy", "PolicyArn")),
    "AttachGroupPolicy": (("group", "GroupName"), ("policy", "PolicyArn")),
    "CreateLoginProfile": (("user", "UserName"),),
}
_NOT_FOUND = {
    "user": "The user with name {} cannot be found.",
    "group": "The group with name {} cannot be found.",
    "policy": "Policy {} does not exist or is not attachable.",
}


def created_entity(call: Call, caller: Caller) -> tuple | None:
    """What a successful create made, as the key the consistency window remembers it by."""
    if call.service == "s3":
        return ("s3", "bucket", call.bucket) if call.operation == "CreateBucket" else None
    if call.service != "iam":
        return None
    if call.operation == "CreateUser":
        return (caller.account, "user", call.params.get("UserName", ""))
    if call.operation == "CreateGroup":
        return (caller.account, "group", call.params.get("GroupName", ""))
    if call.operation == "CreatePolicy":
        path = call.params.get("Path", "/")
        return (
            caller.account,
            "policy",
            f"arn:aws:iam::{caller.account}:policy{path}{call.params.get('PolicyName', '')}",
        )
    return None


def check_consistency(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """For a while after a create, calls that name the new user, group or policy answer NoSuchEntity, and calls
    on a new bucket NoSuchBucket: AWS's eventual consistency, here a fixed window."""
    window = layer.config.consistency_window
    if not window:
        return None
    bucket_call = call.service == "s3" and call.bucket and call.operation != "CreateBucket"
    if bucket_call and layer.created_within(("s3", "bucket", call.bucket), window):
        return Refusal("NoSuchBucket", "The specified bucket does not exist", 404)
    if call.service == "iam":
        for kind, param in _DEPENDENTS.get(call.operation, ()):
            name = call.params.get(param, "")
            if layer.created_within((caller.account, kind, name), window):
                return Refusal("NoSuchEntity", _NOT_FOUND[kind].format(name), 404)
    return None


def check_alias(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """Account aliases are global: one another account has is refused (moto keeps them per account)."""
    from moto.iam.models import iam_backends

    if not (call.service == "iam" and call.operation == "CreateAccountAlias"):
        return None
    alias = call.params.get("AccountAlias", "")
    for account_id in list(iam_backends.keys()):
        if account_id != caller.account and alias in iam_backends[account_id]["aws"].account_aliases:
            return Refusal("EntityAlreadyExists", f"The account alias {alias} already exists.", 409)
    return None


_SYMBOLS = set("!@#$%^&*()_+-=[]{}|'")


def password_problem(password: str, policy) -> str:
    """Why the account's password policy (AWS's default when it has none) refuses a password; "" if it does not."""
    kinds = {
        "uppercase letter": any("A" <= ch <= "Z" for ch in password),
        "lowercase letter": any("a" <= ch <= "z" for ch in password),
        "number": any(ch.isdigit() for ch in password),
        "symbol": any(ch in _SYMBOLS for ch in password),
    }
    if policy is None:
        if len(password) < 8 or sum(kinds.values()) < 3:
            return (
                "Password does not conform to the account password policy: at least 8 characters and three of "
                "uppercase letters, lowercase letters, numbers and symbols."
            )
        return ""
    if len(password) < policy.minimum_password_length:
        return f"Password should have a minimum length of {policy.minimum_password_length}"
    required = {
        "uppercase letter": policy.require_uppercase_characters,
        "lowercase letter": policy.require_lowercase_characters,
        "number": policy.require_numbers,
        "symbol": policy.require_symbols,
    }
    for kind, needed in required.items():
        if needed and not kinds[kind]:
            return f"Password should have at least one {kind}"
    return ""


def check_password(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """The account's password policy on CreateLoginProfile and UpdateLoginProfile (moto applies none),
    including its PasswordReusePrevention."""
    from moto.iam.models import iam_backends

    password = call.params.get("Password")
    if call.service != "iam" or call.operation not in ("CreateLoginProfile", "UpdateLoginProfile") or not password:
        return None
    policy = iam_backends[caller.account]["aws"].account_password_policy
    problem = password_problem(password, policy)
    if not problem and policy is not None and policy.password_reuse_prevention:
        used = layer.passwords_used(caller.account, call.params.get("UserName", ""))
        if _digest(password) in used[-policy.password_reuse_prevention :]:
            problem = "Password was used recently; the account's password policy prevents reusing it"
    return Refusal("PasswordPolicyViolation", problem, 400) if problem else None


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _user_conflict(backend, user) -> str:
    """What still hangs on a user that AWS's DeleteUser refuses to delete it with, in the order its API reference
    lists what to remove first ("" when nothing). Service-specific credentials are never there: the sandbox
    has no API to make one (answer_missing)."""
    groups = [group.name for group in backend.groups.values() if user in group.users]
    for present, what in (
        (user.password is not None, "delete login profile"),
        (user.access_keys, "delete access keys"),
        (user.signing_certificates, "delete signing certificates"),
        (user.ssh_public_keys, "delete SSH public keys"),
        (user.mfa_devices, "delete MFA devices"),
        (user.policies, "delete policies"),
        (user.managed_policies, "detach all policies"),
        (groups, "remove user from all groups"),
    ):
        if present:
            return f"Cannot delete entity, must {what} first."
    return ""


def check_delete_conflict(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """DeleteConflict (409) as AWS's API reference describes it: DeleteUser while the user has a login profile,
    access keys, signing certificates, SSH public keys, MFA devices, inline or attached policies or group
    memberships (moto 5.2.5 checks only the policies); DeleteGroup while it has members or policies;
    DeletePolicy while attached or with versions besides the default. Only for a caller AWS would let make the
    call: an unauthorised one gets moto's AccessDenied first, as on AWS."""
    from moto.iam.models import iam_backends

    if call.service != "iam" or call.operation not in ("DeleteUser", "DeleteGroup", "DeletePolicy"):
        return None
    backend = iam_backends[caller.account]["aws"]
    entity: Any
    if call.operation == "DeleteUser":
        name = call.params.get("UserName", "")
        entity, resource = backend.users.get(name), f"arn:aws:iam::{caller.account}:user/{name}"
        problem = _user_conflict(backend, entity) if entity is not None else ""
    elif call.operation == "DeleteGroup":
        name = call.params.get("GroupName", "")
        entity, resource = backend.groups.get(name), f"arn:aws:iam::{caller.account}:group/{name}"
        problem = ""
        if entity is not None and entity.users:
            problem = "Cannot delete entity, must remove users from group first."
        elif entity is not None and entity.policies:
            problem = "Cannot delete entity, must delete policies first."
        elif entity is not None and entity.managed_policies:
            problem = "Cannot delete entity, must detach all policies first."
    else:
        resource = call.params.get("PolicyArn", "")
        entity = backend.managed_policies.get(resource)
        problem = ""
        if entity is not None and entity.attachment_count:
            problem = "Cannot delete a policy attached to entities."
        elif entity is not None and len(entity.versions) > 1:
            problem = "Cannot delete a policy with non-default versions. Delete its other versions first."
    if not problem:
        return None  # nothing in the way, or no such entity: moto answers (NoSuchEntity)
    # An unauthorised caller gets AccessDenied first, as on AWS: IAM's decision (iam_decision, checked before this)
    # has refused it already; without it, moto's evaluator says whether moto's own check will.
    if (
        layer.config.authorization
        and not layer.config.iam_decision
        and not identity_allows(call, caller, f"iam:{call.operation}", resource)
    ):
        return None
    return Refusal("DeleteConflict", problem, 409)


def check_iam_decision(layer: "StrictLayer", call: Call, caller: Caller) -> Refusal | None:
    """The caller's identity policies as IAM decides them (sandbox/iam_eval.py)."""
    return iam_eval.check_iam_decision(layer, call, caller)


# In the order AWS answers: authentication, validation, authorization, then the call itself.
CHECKS = (
    *refusals.AUTHENTICATION,
    ("session_max_age", check_session),
    ("names", check_names),
    ("trust", check_trust),
    ("iam_decision", check_iam_decision),
    ("dependent_actions", check_dependent_actions),
    ("consistency_window", check_consistency),
    ("alias_global", check_alias),
    ("password_policy", check_password),
    ("delete_conflicts", check_delete_conflict),
    *refusals.CHECKS,
    *s3_rules.CHECKS,
    *sts_rules.CHECKS,
)


# --- moto's mistakes, corrected in this process -------------------------------------------------------

# The IAM actions that authorise S3's bucket sub-resources moto's action map misses: it looks for a query key
# "public_access_block" (the real one is publicAccessBlock) and has no ownershipControls at all, so these
# calls are authorised as s3:ListBucket (GET) and s3:CreateBucket (PUT). Deleting either is authorised by
# its Put action, as AWS documents.
_S3_ACTIONS = {
    "GET": {"publicAccessBlock": "GetBucketPublicAccessBlock", "ownershipControls": "GetBucketOwnershipControls"},
    "PUT": {"publicAccessBlock": "PutBucketPublicAccessBlock", "ownershipControls": "PutBucketOwnershipControls"},
    "DELETE": {"publicAccessBlock": "PutBucketPublicAccessBlock", "ownershipControls": "PutBucketOwnershipControls"},
}


def s3_action_map_set(on: bool) -> None:
    from moto.s3.responses import ACTION_MAP

    for method, actions in _S3_ACTIONS.items():
        for query_key, action in actions.items():
            if on:
                ACTION_MAP["BUCKET"][method][query_key] = action
            else:
                ACTION_MAP["BUCKET"][method].pop(query_key, None)


def authorization_set(on: bool) -> None:
    """moto's counter: 0 unchecked requests (every one checked) or all of them."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if on else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def speed_install() -> None:
    """Not a rule, a cost: moto finds the account behind an access key by creating the IAM backend of every
    partition (aws-cn, aws-us-gov… six) of every account it has seen, and each loads the ~1,300 AWS managed
    policies (about 0.2 s here), so a test touching three accounts paid seconds per reset. AWS's own managed
    policies are loaded in the aws partition only, the one Onramp and the tests use. And parsed once per account:
    an account's backend is built again after every reset and whenever a restored snapshot did not hold it, and
    reading back the first build's objects (pickled) takes a tenth of parsing them again (8 ms against 70 ms)."""
    from moto.iam.models import IAMBackend

    load = IAMBackend._init_aws_policies
    parsed: dict[str, bytes] = {}  # account id -> its managed policies as first built, pickled

    def aws_partition_only(self):
        if self.region_name != "aws":
            return []
        kept = parsed.get(self.account_id)
        if kept is not None:
            return pickle.loads(kept)  # noqa: S301 (our own bytes, never from outside)
        policies = load(self)
        parsed[self.account_id] = pickle.dumps(policies, protocol=pickle.HIGHEST_PROTOCOL)
        return policies

    IAMBackend._init_aws_policies = aws_partition_only


def corrections_install(layer: "StrictLayer") -> None:
    """Wrap six of moto's functions, each correction acting only while its switch is on."""
    _role_corrections_install(layer)
    _principal_corrections_install(layer)
    _path_corrections_install(layer)
    # With IAM's decision made by the layer (Strictness.iam_decision), moto's own permission check defers to it.
    iam_eval.moto_gate_install(layer)


def _role_corrections_install(layer: "StrictLayer") -> None:
    """A role made or updated by CloudFormation (corrections 1 and 4)."""
    from moto.iam.models import Role, iam_backends
    from moto.utilities.utils import get_partition

    # 1. CloudFormation gives Role.put_policy the template's dict; moto's evaluator then reads it as a
    #    managed-policy record and fails (KeyError 'policy_document'), and GetRolePolicy shows its repr.
    put_policy = Role.put_policy

    def role_put_policy(self, policy_name, policy_json):
        if layer.config.cfn_inline_policy and not isinstance(policy_json, str):
            policy_json = json.dumps(policy_json)
        return put_policy(self, policy_name, policy_json)

    Role.put_policy = role_put_policy

    # 4. A stack update that changes an AWS::IAM::Role's AssumeRolePolicyDocument, Policies or Tags updates the
    #    role in place (CloudFormation's AWS::IAM::Role reference: "Update requires: No interruption" for each);
    #    moto's update keeps only the description, so a customer's updated stack kept its old role.
    role_update = Role.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]  # a classmethod

    def role_updated(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        role = role_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        if not layer.config.cfn_role_update:
            return role
        backend = iam_backends[account_id][get_partition(region_name)]
        properties = cloudformation_json["Properties"]
        name = properties.get("RoleName", original_resource.name)
        trust = properties.get("AssumeRolePolicyDocument")
        if trust is not None:
            backend.update_assume_role_policy(name, trust if isinstance(trust, str) else json.dumps(trust))
        role = backend.get_role(name)
        wanted = {policy["PolicyName"]: policy["PolicyDocument"] for policy in properties.get("Policies", [])}
        for policy_name in [policy_name for policy_name in role.policies if policy_name not in wanted]:
            backend.delete_role_policy(name, policy_name)
        for policy_name, document in wanted.items():
            role.put_policy(policy_name, document)
        backend.untag_role(name, [tag["Key"] for tag in role.tags])
        backend.tag_role(name, properties.get("Tags", []))
        return backend.get_role(name)

    Role.update_from_cloudformation_json = classmethod(role_updated)  # type: ignore[assignment]


def _principal_corrections_install(layer: "StrictLayer") -> None:
    """Who a policy's principal names, and what S3's AccessDenied says (corrections 2 and 3)."""
    from moto.iam import access_control
    from moto.s3.exceptions import S3AccessDeniedError

    # 2. moto compares a trust policy's principals to the caller's ARN literally: a principal of
    #    arn:aws:iam::ACCOUNT:root (or ACCOUNT) must stand for every principal of that account.
    check_principal = access_control.IAMPolicyStatement._check_principal

    def principal_checked(self, principal):
        if check_principal(self, principal):
            return True
        if not layer.config.root_principal or principal.count(":") < 5:
            return False
        account = principal.split(":")[4]
        named = (self._statement.get("Principal") or {}).get("AWS", [])
        named = [named] if isinstance(named, str) else named
        return account in named or f"arn:aws:iam::{account}:root" in named

    access_control.IAMPolicyStatement._check_principal = principal_checked

    # 3. With the action map corrected (s3_action_map_set), S3's AccessDenied names the action and the
    #    resource as AWS's does today, instead of a bare "Access Denied".
    s3_check = access_control.S3IAMRequest.check_action_permitted

    def s3_check_named(self, resource):
        try:
            return s3_check(self, resource)
        except S3AccessDeniedError as error:
            if layer.config.s3_action_names:
                error.message = (
                    f"User: {self._access_key.arn} is not authorized to perform: {self._action} "
                    f'on resource: "{resource}" because no identity-based policy allows the {self._action} action'
                )
            raise

    access_control.S3IAMRequest.check_action_permitted = s3_check_named


def _path_corrections_install(layer: "StrictLayer") -> None:
    """A user or group moved to another IAM path (corrections 5 and 6)."""
    from moto.iam.models import IAMBackend

    # 5. UpdateUser with NewPath: a user's tags are the user's (IAM API reference, UpdateUser changes its name
    #    or path, nothing else); moto keeps them by ARN, which holds the path, so a moved user lost them.
    user_update = IAMBackend.update_user

    def user_updated(self, user_name, new_path=None, new_user_name=None):
        user = self.users.get(user_name)
        before = user.arn if user is not None else None
        tags = self.tagger.list_tags_for_resource(before)["Tags"] if before else []
        user_update(self, user_name, new_path, new_user_name)
        if layer.config.path_update and before and user.arn != before:
            self.tagger.delete_all_tags_for_resource(before)
            self.tagger.tag_resource(user.arn, tags)

    IAMBackend.update_user = user_updated

    # 6. UpdateGroup with NewPath alone moves the group (IAM API reference, UpdateGroup); moto changes the
    #    path only together with a new name, and otherwise answers success and changes nothing.
    group_update = IAMBackend.update_group

    def group_updated(self, group_name, new_group_name, new_path):
        group_update(self, group_name, new_group_name, new_path)
        if layer.config.path_update and new_path and not new_group_name and group_name in self.groups:
            self.groups[group_name].path = new_path

    IAMBackend.update_group = group_updated


# --- The layer and its control API ----------------------------------------------------------------------


def user_make(*, account_id: str, user_name: str, policy_document: dict, access_key_id: str, secret_access_key: str,
              policy_name: str = "access") -> dict:  # fmt: skip
    """An IAM user with one inline policy and the given keys, made in moto's backend directly."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    backend.create_user(region_name="us-east-1", user_name=user_name)
    backend.put_user_policy(user_name, policy_name, json.dumps(policy_document))
    key = backend.create_access_key(user_name)
    backend.access_keys.pop(key.access_key_id)
    key.access_key_id, key.secret_access_key = access_key_id, secret_access_key
    backend.access_keys[access_key_id] = key
    return {"arn": f"arn:aws:iam::{account_id}:user/{user_name}"}


def admin_role_ensure(account_id: str) -> dict:
    """The harness's administrator role in an account, trusted by the set-up account."""
    from moto.iam.models import iam_backends

    if not re.fullmatch(r"\d{12}", account_id):
        raise ValueError(f"not an account id: {account_id}")
    backend = iam_backends[account_id]["aws"]
    arn = f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE}"
    if not any(role.name == ADMIN_ROLE for role in backend.roles.values()):
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{SETUP_ACCOUNT}:root"},
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                }
            ],
        }
        backend.create_role(
            role_name=ADMIN_ROLE,
            assume_role_policy_document=json.dumps(trust),
            path="/",
            permissions_boundary=None,
            description="The test harness's administrator",
            tags=[],
            max_session_duration="43200",
        )
        backend.put_role_policy(ADMIN_ROLE, "administrator", json.dumps(ADMIN_POLICY))
    return {"role_arn": arn}


def _served(app, environ) -> tuple[str, list, list[bytes]]:
    answer: dict = {}

    def start(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, headers
        return lambda data: None

    result = app(environ, start)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], [body]


# --- What moto does not implement, answered as AWS does --------------------------------------------------
# Removing an IAM user the way AWS requires lists its service-specific credentials (CodeCommit, Keyspaces…).
# moto 5.2.5 has no such API: it answers an HTML 500 page. A user made in the sandbox never has any, so the
# answer AWS gives for such a user is an empty list (NoSuchEntity for a user that does not exist).


def _iam_answer(call: Call, result: str) -> tuple[str, bytes]:
    request_id = str(uuid.uuid4())
    text = (
        f'<{call.operation}Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<{call.operation}Result>{result}</{call.operation}Result>"
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{call.operation}Response>"
    )
    return "text/xml", text.encode()


def answer_missing(layer: "StrictLayer", call: Call, caller: Caller, start_response):
    """Answer an IAM call moto lacks (None: moto has it). Authorised as moto authorises every call."""
    if call.service != "iam" or call.operation not in (
        "ListServiceSpecificCredentials",
        "DeleteServiceSpecificCredential",
    ):
        return None
    from moto.iam.models import iam_backends

    action = f"iam:{call.operation}"
    user = call.params.get("UserName", "")
    resource = f"arn:aws:iam::{caller.account}:user/{user}"
    if layer.config.iam_decision and not caller.harness:
        refusal = check_iam_decision(layer, call, caller)
        if refusal is not None:
            return refusal.respond(call, start_response)
    elif layer.config.authorization and not caller.harness and not identity_allows(call, caller, action, resource):
        return access_denied(call, caller, action, resource).respond(call, start_response)
    if user not in iam_backends[caller.account]["aws"].users or call.operation == "DeleteServiceSpecificCredential":
        # No user, or (a sandbox user has none) no such credential.
        return Refusal("NoSuchEntity", f"The user with name {user} cannot be found.", 404).respond(call, start_response)
    content_type, body = _iam_answer(call, "<ServiceSpecificCredentials/>")
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


# Some of moto's objects hold locks, which pickle refuses: a restored object gets a new, free lock.
copyreg.pickle(type(threading.Lock()), lambda _lock: (threading.Lock, ()))
copyreg.pickle(type(threading.RLock()), lambda _lock: (threading.RLock, ()))


def backends_live() -> dict[str, Any]:
    """Every service's state: each backend dict moto has used, by service name (moto's own objects)."""
    from moto.core.base_backend import BackendDict

    return {b.service_name: b for b in BackendDict._instances}  # type: ignore[misc]  # moto's class-wide list


def backends_restore(backends: dict) -> None:
    """Put saved backend dicts (from backends_live, pickled and read back) into moto's live ones."""
    from moto.backends import get_backend
    from moto.core.base_backend import BackendDict

    instances = BackendDict._instances  # type: ignore[misc]  # moto's class-wide list
    for name, saved in backends.items():
        live = get_backend(name)
        dict.clear(live)
        dict.update(live, saved)
        # Extra attributes of a service's dict (S3's bucket -> account map); the dict keeps its own id.
        live.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_id"})
        if live not in instances:
            instances.append(live)


def backends_dump() -> bytes:
    """Every service's state, pickled, for this process."""
    return pickle.dumps(backends_live(), protocol=pickle.HIGHEST_PROTOCOL)


def backends_load(data: bytes) -> None:
    """Empty every service, then put back what backends_dump kept (only ever bytes this process made).

    Not moto's reset of everything (moto_api_backend.reset()): it builds every used backend again before emptying
    it, and IAM's build parses AWS's ~1,300 managed policies, 80% of a restore's time (0.5 s), for objects thrown
    away at once. A service the snapshot holds is emptied and given the snapshot's objects (its dict's own
    attributes too: S3's bucket -> account map); only a service first used after the snapshot is reset as moto
    resets it (what its reset does beyond its dict, S3's shared bucket names, is undone), then built again, empty,
    when a call next asks for it."""
    from moto.core.base_backend import BackendDict, backend_lock
    from moto.core.model_instances import reset_model_data

    saved = pickle.loads(data)  # noqa: S301 (our own bytes, never from outside)
    with backend_lock:
        for live in BackendDict._instances:  # type: ignore[misc]  # moto's class-wide list
            if live.service_name not in saved:
                for account_backends in live.values():
                    account_backends.reset()
            dict.clear(live)
        BackendDict._instances.clear()  # type: ignore[misc]
    reset_model_data()
    backends_restore(saved)


class StrictLayer:
    """WSGI middleware around moto's application: the rules of CHECKS before a call, what a call made after."""

    def __init__(self, app):
        self.app = app
        self.config = Strictness()
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._created: dict[tuple, float] = {}  # what a create made -> when (clock.monotonic())
        self._passwords: dict[tuple[str, str], list[str]] = {}  # (account, user) -> digests, oldest first
        self._snapshots: dict[str, bytes] = {}  # name -> moto's backends, pickled (snapshot_take)
        corrections_install(self)
        speed_install()

    def configure(self, config: Strictness) -> dict:
        self.config = config
        authorization_set(config.authorization)
        s3_action_map_set(config.s3_action_names)
        return asdict(config)

    def reset(self, config: Strictness) -> dict:
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        with self._lock:
            self._created.clear()
            self._passwords.clear()
        s3_rules.reset()
        sts_rules.reset()
        refusals.reset()
        user_make(
            account_id=SETUP_ACCOUNT,
            user_name=SETUP_USER,
            policy_document=ADMIN_POLICY,
            access_key_id=SETUP_KEY_ID,
            secret_access_key=SETUP_SECRET,
        )
        return self.configure(config)

    def snapshot_take(self, name: str) -> dict:
        """Keep every service's state as it is now (pickled, in this process) under `name`, to restore it later
        instead of building it again: a test session's reset, Onramp's identity and the customer's role."""
        data = backends_dump()
        with self._lock:
            self._snapshots[name] = data
        # The server's long-lived objects (moto's and botocore's models, ~200,000) kept out of the garbage
        # collector's reach: every other restore leaves the state it replaces to a full collection, which walked
        # them all (0.15 s a time). Frozen here, by the first snapshot every service a test uses is loaded; what
        # is frozen and later dropped (this state, once per snapshot taken) stays in memory: a few MB.
        gc.collect()
        gc.freeze()
        return {"snapshot": name, "bytes": len(data)}

    def snapshot_restore(self, name: str, config: Strictness) -> dict:
        """Every service's state as it was when `name` was taken (fresh objects each time), the layer's memory
        of creates and passwords emptied, and these rules; {"restored": False} when there is no such snapshot."""
        with self._lock:
            data = self._snapshots.get(name)
        if data is None:
            return {"restored": False}
        backends_load(data)
        with self._lock:
            self._created.clear()
            self._passwords.clear()
        # What the rules remember of earlier calls (a bucket's MFA Delete, a session's source identity) is state
        # too: a restored sandbox starts with none, as a reset one does.
        s3_rules.reset()
        sts_rules.reset()
        refusals.reset()
        return {"restored": True, **self.configure(config)}

    def created_within(self, key: tuple, window: float) -> bool:
        with self._lock:
            made = self._created.get(key)
        return made is not None and clock.monotonic() - made < window

    def passwords_used(self, account: str, user: str) -> list[str]:
        with self._lock:
            return list(self._passwords.get((account, user), []))

    def __call__(self, environ, start_response):
        # One request at a time: moto's backends are plain dicts, and two requests at once can break one
        # (RuntimeError "dictionary changed size during iteration" in AttachUserPolicy while CreatePolicy adds
        # a policy: a 500 page AWS never sends). moto's work is Python under the GIL, so this costs little.
        with self._serial:
            if environ.get("PATH_INFO", "").startswith("/sandbox-api/"):
                return control(self, environ, start_response)
            return self._handle(environ, start_response)

    def _handle(self, environ, start_response):
        call = call_parse(environ, _read_body(environ))
        caller = caller_find(call.access_key_id) if call is not None else None
        if call is None or caller is None:
            return self.app(environ, start_response)  # moto answers: unsigned, or keys it does not know
        missing = answer_missing(self, call, caller, start_response)
        if missing is not None:
            _record_own_answer(environ)
            return missing
        if not caller.harness:
            for switch, check in CHECKS:
                if getattr(self.config, switch):
                    refusal = check(self, call, caller)
                    if refusal is not None:
                        _record_own_answer(environ)
                        return refusal.respond(call, start_response)
        status, headers, body = _served(self.app, environ)
        if call.service == "s3" and not any(name.lower() == "x-amz-request-id" for name, _ in headers):
            # S3 names every answer's request in x-amz-request-id, a HEAD's 404 too; moto's HeadBucket 404 does not.
            headers = [*headers, ("x-amz-request-id", uuid.uuid4().hex[:16].upper())]
        if status.startswith("2"):
            self._observe(call, caller)
        start_response(status, headers)
        return body

    def _observe(self, call: Call, caller: Caller) -> None:
        from moto.iam.models import iam_backends

        entity = created_entity(call, caller)
        s3_rules.observe(call, caller)
        sts_rules.observe(call, caller)
        if not caller.harness:
            refusals.observe(self, call, caller)
        password = call.params.get("Password") if call.service == "iam" else None
        with self._lock:
            if entity is not None and not caller.harness:
                self._created[entity] = clock.monotonic()
            if password and call.operation in ("CreateLoginProfile", "UpdateLoginProfile"):
                self._passwords.setdefault((caller.account, call.params.get("UserName", "")), []).append(
                    _digest(password)
                )
        if (
            self.config.reset_required_on_create
            and call.operation == "CreateLoginProfile"
            and call.params.get("PasswordResetRequired") == "true"
        ):
            # moto's CreateLoginProfile ignores the parameter (it sets it only on UpdateLoginProfile).
            iam_backends[caller.account]["aws"].get_user(call.params["UserName"]).password_reset_required = True


def _record_own_answer(environ) -> None:
    """A call the layer answers itself (one of AWS's refusals, a page of ListBuckets, what moto lacks) was served by
    the sandbox all the same: moto's recorder, which tests read to count what the sandbox served, gets it as moto's
    own handlers would have recorded it."""
    from moto.core.request import Request
    from moto.moto_api import recorder

    recorder._record_request(Request(environ), _read_body(environ))


def control(layer: StrictLayer, environ, start_response):
    """POST /sandbox-api/reset (a Strictness), /config (some switches), /accounts/<id>, /users, /snapshots/<name>,
    /restore/<name> (a Strictness), /clock ({"advance": seconds}); GET /config, /sessions (role sessions' source
    identities and tags)."""
    path = environ["PATH_INFO"].removeprefix("/sandbox-api/").strip("/")
    post = environ.get("REQUEST_METHOD") == "POST"
    status = "200 OK"
    result: dict | list
    try:
        data = json.loads(_read_body(environ) or b"{}")
        if path == "reset" and post:
            result = layer.reset(Strictness.of(data))
        elif path == "config":
            result = layer.configure(Strictness.of({**asdict(layer.config), **data})) if post else asdict(layer.config)
        elif path.startswith("accounts/") and post:
            result = admin_role_ensure(path.split("/", 1)[1])
        elif path == "users" and post:
            result = user_make(**data)
        elif path.startswith("snapshots/") and post:
            result = layer.snapshot_take(path.split("/", 1)[1])
        elif path.startswith("restore/") and post:
            result = layer.snapshot_restore(path.split("/", 1)[1], Strictness.of(data))
        elif path == "clock" and post:
            result = clock.clock_advance(seconds=float(data["advance"]))
        elif path == "sessions" and not post:
            result = sts_rules.sessions()
        else:
            status, result = "404 Not Found", {"error": f"no such control: {environ.get('REQUEST_METHOD')} {path}"}
    except (ValueError, TypeError, KeyError) as exc:
        status, result = "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"}
    body = json.dumps(result).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def main(argv: list[str] | None = None) -> None:
    import os
    import signal
    import sys

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description="moto's server with the strict layer")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    moto_app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, StrictLayer(moto_app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
