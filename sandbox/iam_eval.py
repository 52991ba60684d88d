"""IAM's decision in the strict sandbox: what AWS decides for a request of a caller's identity policies, where moto
implements StringEquals only, treats a missing condition key as met and checks IAM calls against "*".

For each request of a caller that is not the harness's own hand (sandbox/strict.py Caller.harness):
- the IAM actions it needs (S3's from its method and sub-resource, as AWS names them) and, per action, the
  resources it is authorised against: the required resource types and ARN formats of the Service
  Authorization Reference (sandbox/sar.py), filled from the request's parameters;
- the request context: the global keys (aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType,
  aws:RequestedRegion, aws:username), the resource's tags as aws:ResourceTag/* (and iam:/ecr:ResourceTag/*)
  where the reference says the resource type carries them, aws:RequestTag/* and aws:TagKeys from the request's
  tags, iam:PolicyARN, and sts:ExternalId / sts:SourceIdentity / sts:RoleSessionName, each only where the
  reference lists the key for the action;
- the caller's identity policies read from moto's records as they are (a user's inline, attached and groups'
  policies; a role's inline policy as CloudFormation deployed it, and its attached ones), every statement
  with AWS's rules: Action/NotAction, Resource/NotResource, the condition operators with AWS's rule for a
  key the request does not carry, an explicit Deny over any Allow, and no Allow an implicit deny.
sts:GetCallerIdentity needs no permission (STS API reference: "No permissions are required … you can still
perform this operation" even under an explicit deny). sts:AssumeRole's trust half stays sandbox/strict.py's
check_trust; across accounts this module decides the caller's half too.

moto's own authorization is replaced, not kept as a second gate: with this rule on, moto still authenticates every
request (its signature check), but its permission check defers to this decision (moto_gate_install), except for
sts:AssumeRole, whose trust policy moto checks as well as check_trust."""

import json
import re
from fnmatch import fnmatchcase
from typing import Any

from sandbox import refusals, sar, sts_rules

# --- Conditions -----------------------------------------------------------------------------------------


class ConditionNotEvaluated(Exception):
    """An operator the sandbox does not evaluate (Date*, IpAddress, Binary…): it refuses rather than guess."""


def _arn_like(actual: str, pattern: str) -> bool:
    """ARN operators compare each of the six colon-separated parts on its own (IAM User Guide, ARN condition
    operators); a wildcard does not cross a colon into the next part."""
    got, want = actual.split(":", 5), pattern.split(":", 5)
    return len(got) == len(want) == 6 and all(fnmatchcase(a, p) for a, p in zip(got, want, strict=True))


def _numeric(test):
    def compare(actual: str, expected: str) -> bool:
        try:
            return test(float(actual), float(expected))
        except ValueError:
            return False

    return compare


# The positive form of each operator; its Not… form is the negation (a key's values are alternatives: "not
# equal to any of them").
_TESTS = {
    "StringEquals": lambda actual, expected: actual == expected,
    "StringEqualsIgnoreCase": lambda actual, expected: actual.lower() == expected.lower(),
    "StringLike": fnmatchcase,  # IAM's wildcards are * and ?
    "ArnEquals": lambda actual, expected: actual == expected,
    "ArnLike": _arn_like,
    "Bool": lambda actual, expected: actual.lower() == expected.lower(),
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def _values(value) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def operator_holds(operator: str, actual: list[str] | None, expected: list[str]) -> bool:
    """One operator on one key, as IAM evaluates it (IAM User Guide, "Condition operators"): a key missing from
    the request context fails a positive operator and passes a negated one; …IfExists passes when the key is
    missing; Null tests presence; ForAllValues: over a missing or empty key passes, ForAnyValue: fails.
    `actual` is the key's values in the context (None: missing)."""
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists") and base != "IfExists"
    base = base.removesuffix("IfExists")
    if base == "Null":
        return (actual is None or actual == []) == (expected[0].lower() == "true")
    negated = base in _NEGATED
    test = _TESTS.get(_NEGATED.get(base, base))
    if test is None:
        raise ConditionNotEvaluated(operator)

    def one(value: str) -> bool:
        matched = any(test(value, want) for want in expected)
        return not matched if negated else matched

    if qualifier == "ForAllValues":
        return all(one(value) for value in actual or [])
    if qualifier == "ForAnyValue":
        return any(one(value) for value in actual or [])
    if qualifier:
        raise ConditionNotEvaluated(operator)
    if actual is None:
        return negated or if_exists
    # A single-valued operator on a multivalued key: some value must satisfy it (a misuse AWS warns about).
    return any(one(value) for value in actual)


def condition_holds(condition: dict, context: dict[str, list[str]]) -> bool:
    """A statement's Condition: every operator and every key in it must hold; key names ignore case."""
    lowered = {key.lower(): value for key, value in context.items()}
    for operator, keys in condition.items():
        for key, expected in keys.items():
            if not operator_holds(operator, lowered.get(key.lower()), _values(expected)):
                return False
    return True


# --- Statements and policies ----------------------------------------------------------------------------


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _statement_applies(statement: dict, action: str, resource: str, context: dict) -> bool:
    if "Action" in statement:
        if not any(fnmatchcase(action.lower(), p.lower()) for p in _listed(statement["Action"])):
            return False
    elif any(fnmatchcase(action.lower(), p.lower()) for p in _listed(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(fnmatchcase(resource, p) for p in _listed(statement["Resource"])):
            return False
    elif any(fnmatchcase(resource, p) for p in _listed(statement.get("NotResource"))):
        return False
    return condition_holds(statement.get("Condition", {}), context)


ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit deny", "implicit deny"


def policies_decide(documents: list[dict], *, action: str, resource: str, context: dict[str, list[str]]) -> str:
    """Identity policies' decision on one action and resource: an explicit Deny anywhere wins, then an Allow,
    otherwise the implicit deny (IAM User Guide, "Policy evaluation logic")."""
    allowed = False
    for document in documents:
        statements = document.get("Statement", [])
        for statement in [statements] if isinstance(statements, dict) else statements:
            if _statement_applies(statement, action, resource, context):
                if statement.get("Effect") == "Deny":
                    return EXPLICIT_DENY
                allowed = allowed or statement.get("Effect") == "Allow"
    return ALLOW if allowed else IMPLICIT_DENY


# --- Requests: actions, resources, context ----------------------------------------------------------------

# S3's operations by method and sub-resource (bucket level), as IAM names them (S3 User Guide, "Actions").
_S3_BUCKET = {
    "HEAD": {"": "s3:ListBucket"},
    "GET": {
        "": "s3:ListBucket",
        "location": "s3:GetBucketLocation",
        "cors": "s3:GetBucketCORS",
        "publicAccessBlock": "s3:GetBucketPublicAccessBlock",
        "ownershipControls": "s3:GetBucketOwnershipControls",
        "versions": "s3:ListBucketVersions",
        "versioning": "s3:GetBucketVersioning",
        "policy": "s3:GetBucketPolicy",
        "acl": "s3:GetBucketAcl",
        "tagging": "s3:GetBucketTagging",
        "lifecycle": "s3:GetLifecycleConfiguration",
        "object-lock": "s3:GetBucketObjectLockConfiguration",
    },
    "PUT": {
        "": "s3:CreateBucket",
        "cors": "s3:PutBucketCORS",
        "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
        "ownershipControls": "s3:PutBucketOwnershipControls",
        "versioning": "s3:PutBucketVersioning",
        "policy": "s3:PutBucketPolicy",
        "acl": "s3:PutBucketAcl",
        "tagging": "s3:PutBucketTagging",
        "lifecycle": "s3:PutLifecycleConfiguration",
        "object-lock": "s3:PutBucketObjectLockConfiguration",
    },
    "DELETE": {
        "": "s3:DeleteBucket",
        "cors": "s3:PutBucketCORS",
        "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
        "ownershipControls": "s3:PutBucketOwnershipControls",
        "policy": "s3:DeleteBucketPolicy",
        "tagging": "s3:PutBucketTagging",
        "lifecycle": "s3:PutLifecycleConfiguration",
    },
}
_S3_OBJECT = {
    "HEAD": "s3:GetObject",
    "GET": "s3:GetObject",
    "PUT": "s3:PutObject",
    "DELETE": "s3:DeleteObject",
    "POST": "s3:PutObject",
}

# Every S3 action a request can be authorised as here (DeleteObjects: per key, DeleteObject or -Version).
S3_ACTIONS = frozenset(
    {action for table in _S3_BUCKET.values() for action in table.values()}
    | set(_S3_OBJECT.values())
    | {"s3:ListAllMyBuckets", "s3:DeleteObjectVersion"}
)


def s3_requests(method: str, path: str, query: str, body: bytes) -> list[tuple[str, str]] | None:
    """(action, ARN) pairs an S3 request is authorised as; None when the layer has no rule for it."""
    bucket, _, key = path.lstrip("/").partition("/")
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    if not bucket:
        return [("s3:ListAllMyBuckets", "*")] if method == "GET" else None
    if method == "POST" and "delete" in names and not key:
        # DeleteObjects: each key is authorised as s3:DeleteObject, and with a version id as DeleteObjectVersion.
        text = body.decode(errors="replace")
        pairs = []
        for item in re.findall(r"<Object>(.*?)</Object>", text, re.S):
            name = re.search(r"<Key>(.*?)</Key>", item, re.S)
            arn = f"arn:aws:s3:::{bucket}/{name.group(1) if name else ''}"
            versioned = "<VersionId>" in item
            pairs.append(("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", arn))
        return pairs
    if key:
        action = _S3_OBJECT.get(method)
        if method == "DELETE" and "versionId" in names:
            action = "s3:DeleteObjectVersion"
        return [(action, f"arn:aws:s3:::{bucket}/{key}")] if action else None
    table = _S3_BUCKET.get(method, {})
    sub = next((name for name in names if name in table), "")
    action = table.get(sub) if sub or not names or method in ("GET", "HEAD") else None
    return [(action, f"arn:aws:s3:::{bucket}")] if action else None


def _iam_entity_arn(account: str, kind: str, name: str, path: str | None) -> str:
    """An IAM entity's ARN, with the path moto records for it (or the request's Path, or "/")."""
    from moto.iam.models import iam_backends

    if path is None:
        backend = iam_backends[account]["aws"]
        named: dict[str, dict[str, Any]] = {"user": backend.users, "group": backend.groups}
        found = named.get(kind)
        if kind == "role":
            role = next((r for r in backend.roles.values() if r.name == name), None)
            path = role.path if role else None
        elif found is not None and name in found:
            path = found[name].path
    return f"arn:aws:iam::{account}:{kind}{path or '/'}{name}"


def _policy_arn(call, caller) -> str:
    if call.params.get("PolicyArn"):
        return call.params["PolicyArn"]
    return f"arn:aws:iam::{caller.account}:policy{call.params.get('Path', '/')}{call.params.get('PolicyName', '')}"


# Each placeholder of the reference's ARN formats that a declared operation needs, from the request. A
# declared operation whose resource type has a placeholder missing here fails tests/test_iam_decision.py's
# completeness test.
PLACEHOLDERS = {
    "Partition": lambda call, caller: "aws",
    "Account": lambda call, caller: call.params.get("registryId") or caller.account,
    "Region": lambda call, caller: call.region,
    "UserNameWithPath": lambda call, caller: _iam_entity_arn(
        caller.account, "user", call.params.get("UserName") or caller.arn.rsplit("/", 1)[-1], call.params.get("Path")
    ).split(":user", 1)[1][1:],
    "GroupNameWithPath": lambda call, caller: _iam_entity_arn(
        caller.account, "group", call.params.get("GroupName", ""), call.params.get("Path")
    ).split(":group", 1)[1][1:],
    "RoleNameWithPath": lambda call, caller: _iam_entity_arn(
        caller.account, "role", call.params.get("RoleName", ""), call.params.get("Path")
    ).split(":role", 1)[1][1:],
    "PolicyNameWithPath": lambda call, caller: _policy_arn(call, caller).split(":policy/", 1)[1],
    "RepositoryName": lambda call, caller: call.params.get("repositoryName", ""),
    # A stack's id is AWS's own: the sandbox checks against any id (policies name stacks as stack/NAME/*).
    "StackName": lambda call, caller: call.params.get("StackName", ""),
    "Id": lambda call, caller: "*",
    "MfaTokenIdWithPath": lambda call, caller: (call.params.get("SerialNumber", "").split(":mfa/", 1) + [""])[1],
}


def arn_fill(arn_format: str, call, caller) -> str | None:
    """A reference ARN format filled from the request; None when a placeholder has no rule."""
    missing = False

    def fill(found: re.Match) -> str:
        nonlocal missing
        rule = PLACEHOLDERS.get(found.group(1))
        if rule is None:
            missing = True
            return ""
        return rule(call, caller)

    arn = re.sub(r"\$\{(\w+)\}", fill, arn_format)
    if arn_format.startswith("arn:${Partition}:iam::") and ":policy/" in arn_format and call.params.get("PolicyArn"):
        # A policy is named by its own ARN: an AWS managed policy's account part is "aws", not the caller's.
        arn = call.params["PolicyArn"]
    return None if missing else arn


def missing_placeholders(action: str) -> list[str]:
    """The placeholders of `action`'s required resource types that the layer cannot fill (the completeness
    test's measure), or ["<not in the reference>"]."""
    found = sar.privilege(action)
    if found is None:
        return ["<not in the reference>"]
    return [
        name
        for resource in found.required
        for name in re.findall(r"\$\{(\w+)\}", resource.arn)
        if name not in PLACEHOLDERS
    ]


def _tags(arn: str, region: str, tag_window: float = 0.0) -> dict[str, str] | None:
    """The tags of the resource `arn` names, from moto's records; None when it does not exist (or takes none).
    Within `tag_window` seconds of a change to a user's or role's tags, the tags from before it
    (sandbox/refusals.py check_tag_window)."""
    from moto.iam.models import iam_backends

    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, arn_region, account, rest = parts[2], parts[3], parts[4], parts[5]
    try:
        if service == "iam":
            backend = iam_backends[account if account.isdigit() else "000000000000"]["aws"]
            kind, _, name = rest.partition("/")
            name = name.rsplit("/", 1)[-1]
            changed, before = refusals.tags_seen(account, kind, name, tag_window)
            if changed:
                return before
            if kind == "user" and name in backend.users:
                return {t["Key"]: t["Value"] for t in backend.list_user_tags(name)}
            if kind == "role":
                role = next((r for r in backend.roles.values() if r.name == name), None)
                return {t["Key"]: t["Value"] for t in role.tags} if role else None
            if kind == "policy" and arn in backend.managed_policies:
                return {key: tag["Value"] for key, tag in backend.managed_policies[arn].tags.items()}
            return None
        if service == "ecr":
            from moto.ecr.models import ecr_backends

            tags = ecr_backends[account][arn_region or region].list_tags_for_resource(arn)["tags"]
            return {t["Key"]: t["Value"] for t in tags}
    except Exception:  # moto's not-found errors: a resource that does not exist has no tags
        return None
    return None


def _request_tags(call) -> dict[str, str]:
    if isinstance(call.params.get("tags"), list):  # JSON APIs (ECR)
        return {t.get("Key", ""): t.get("Value", "") for t in call.params["tags"]}
    tags = {}
    number = 1
    while f"Tags.member.{number}.Key" in call.params:
        tags[call.params[f"Tags.member.{number}.Key"]] = call.params.get(f"Tags.member.{number}.Value", "")
        number += 1
    return tags


def request_context(
    call, caller, action: str, resource_arn: str, resource_type: sar.ResourceType | None, tag_window: float = 0.0
) -> dict:
    """The keys really in the request context for this action on this resource, each a list of values (the
    resource's tags as IAM sees them `tag_window` seconds after a change: sandbox/refusals.py check_tag_window)."""
    context: dict[str, list[str]] = {
        "aws:PrincipalArn": [caller.arn],
        "aws:PrincipalAccount": [caller.account],
        "aws:PrincipalType": ["User" if caller.issued is None else "AssumedRole"],
        "aws:RequestedRegion": [call.region],
    }
    if caller.issued is None:
        context["aws:username"] = [caller.arn.rsplit("/", 1)[-1]]
    for key, value in sts_rules.session_tags(caller.session_arn).items():
        context[f"aws:PrincipalTag/{key}"] = [value]
    privilege = sar.privilege(action)
    carried = {key.lower() for key in (privilege.condition_keys if privilege else ())}
    if resource_type is not None:
        prefixes = {key.split("/", 1)[0].lower() for key in resource_type.condition_keys if "/${TagKey}" in key}
        tags = _tags(resource_arn, call.region, tag_window) if prefixes else None
        for prefix in prefixes:
            for key, value in (tags or {}).items():
                context[f"{prefix}/{key}"] = [value]
    request_tags = _request_tags(call)
    if "aws:requesttag/${tagkey}" in carried:
        for key, value in request_tags.items():
            context[f"aws:RequestTag/{key}"] = [value]
    if "aws:tagkeys" in carried and request_tags:
        context["aws:TagKeys"] = list(request_tags)
    for key, param in (
        ("iam:PolicyARN", "PolicyArn"),
        ("iam:PermissionsBoundary", "PermissionsBoundary"),
        ("sts:ExternalId", "ExternalId"),
        ("sts:SourceIdentity", "SourceIdentity"),
        ("sts:RoleSessionName", "RoleSessionName"),
        ("cloudformation:TemplateUrl", "TemplateURL"),
    ):
        if key.lower() in carried and call.params.get(param):
            context[key] = [call.params[param]]
    return context


def requests_for(call, caller, tag_window: float = 0.0) -> list[tuple[str, str, dict]] | None:
    """Each (action, resource ARN, context) the request is authorised as; None when the layer has no rule."""
    if call.service == "s3":
        pairs = s3_requests(call.method, call.path, call.query, call.body)
        if pairs is None:
            return None
        return [(action, arn, request_context(call, caller, action, arn, None)) for action, arn in pairs]
    action = f"{call.service}:{call.operation}"
    found = sar.privilege(action)
    if found is None:
        return None
    if not found.required:
        return [(found.action, "*", request_context(call, caller, found.action, "*", None))]
    requests = []
    for resource_type in found.required:
        # STS names the role by its ARN (RoleArn), which may be in another account.
        arn = call.params.get("RoleArn") if call.service == "sts" else arn_fill(resource_type.arn, call, caller)
        if arn is None:
            return None
        context = request_context(call, caller, found.action, arn, resource_type, tag_window)
        requests.append((found.action, arn, context))
    return requests


# --- The caller's policies --------------------------------------------------------------------------------


def _document(policy) -> dict:
    """A policy document from moto's record: a JSON string, a dict (CloudFormation's inline policy before the
    cfn_inline_policy correction), or a managed policy (its default version)."""
    if hasattr(policy, "versions"):
        policy = next(v.document for v in policy.versions if v.is_default)
    return json.loads(policy) if isinstance(policy, str) else policy


def identity_policies(caller) -> list[dict]:
    """The caller's identity-based policies, as moto records them now."""
    from moto.iam.models import iam_backends

    backend = iam_backends[caller.account]["aws"]
    kind, _, name = caller.arn.split(":", 5)[5].partition("/")
    name = name.rsplit("/", 1)[-1]
    if kind == "user":
        user = backend.users.get(name)
        if user is None:
            return []
        documents = [*user.policies.values(), *user.managed_policies.values()]
        for group in backend.get_groups_for_user(name):
            documents += [*group.policies.values(), *group.managed_policies.values()]
    else:
        role = next((r for r in backend.roles.values() if r.name == name), None)
        if role is None:
            return []
        documents = [*role.policies.values(), *role.managed_policies.values()]
    return [_document(policy) for policy in documents]


# --- The rule ------------------------------------------------------------------------------------------------


def _assume_role_actions(call) -> list[str]:
    actions = ["sts:AssumeRole"]
    if call.params.get("SourceIdentity"):
        actions.append("sts:SetSourceIdentity")
    if any(name.startswith("Tags.member.") for name in call.params):
        actions.append("sts:TagSession")
    return actions


def check_iam_decision(layer, call, caller):
    """The strict layer's rule (Strictness.iam_decision): refuse what the caller's identity policies do not allow
    as AWS decides it. A Refusal, or None to let the request on to moto."""
    from sandbox.strict import Refusal, access_denied

    if call.service == "sts" and call.operation == "GetCallerIdentity":
        return None  # no permission needed, even under an explicit deny
    if call.service == "sts" and call.operation == "AssumeRole":
        if call.params.get("RoleArn", "").split(":")[4:5] == [caller.account]:
            return None  # the same account: the trust policy alone may allow it (check_trust decides)
        requests: list[tuple[str, str, dict]] | None = [
            (action, call.params.get("RoleArn", ""), request_context(call, caller, action, "", None))
            for action in _assume_role_actions(call)
        ]
    else:
        requests = requests_for(call, caller, layer.config.tag_window)
    if requests is None:
        what = call.operation if call.service != "s3" else f"{call.method} {call.path}?{call.query}"
        return Refusal(
            "AccessDenied", f"The strict sandbox has no resource rule for {call.service} {what}: it refuses it", 403
        )
    documents = identity_policies(caller)
    for action, resource, context in requests:
        try:
            decision = policies_decide(documents, action=action, resource=resource, context=context)
        except ConditionNotEvaluated as exc:
            return access_denied(call, caller, action, resource, why=f"the strict sandbox cannot evaluate {exc} for")
        if decision == EXPLICIT_DENY:
            code = "AccessDeniedException" if call.protocol == "json" else "AccessDenied"
            message = (
                f"User: {caller.session_arn} is not authorized to perform: {action} on resource: {resource} "
                "with an explicit deny in an identity-based policy"
            )
            return Refusal(code, message, 403)
        if decision == IMPLICIT_DENY:
            return access_denied(call, caller, action, resource)
    return None


def moto_gate_install(layer) -> None:
    """With Strictness.iam_decision on, moto's permission check defers to this module's decision (made before the
    request reached moto); its signature check still runs."""
    from moto.iam import access_control

    for cls in (access_control.IAMRequest, access_control.S3IAMRequest):
        check = cls.check_action_permitted

        def deferring(self, resource, check=check):
            if layer.config.iam_decision and self._action != "sts:AssumeRole":
                return None
            return check(self, resource)

        cls.check_action_permitted = deferring
