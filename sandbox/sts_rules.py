"""STS's source identity through role chaining, where moto keeps none (issue 28 section 3, point 8): a switch of
sandbox/strict.py's Strictness, checked before moto answers, tested in tests/test_sandbox_sts_rules.py. And each
session's tags (AssumeRole's Tags, which moto drops): kept by session, in the evaluator's request context as
aws:PrincipalTag/<key> (IAM User Guide, "Pass session tags in AWS STS"), and read back by tests through the control
API (GET /sandbox-api/sessions). Nothing here imports Django.

AWS: "After the source identity is set, the value cannot be changed. It is present in the request for all actions
that are taken by the role and persists across chained role sessions" (STS API reference, AssumeRole:
SourceIdentity; IAM User Guide, "Monitor and control actions taken with assumed roles")."""

import threading

# A role session's source identity, by the session's ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), as the
# AssumeRole that made it set or carried it.
_SOURCE_IDENTITY: dict[str, str] = {}
# A role session's tags, by the session's ARN, as the AssumeRole that made it passed them (no transitive tags: a
# chained session starts with none of its caller's, as AWS does without TransitiveTagKeys).
_TAGS: dict[str, dict[str, str]] = {}
_LOCK = threading.Lock()


def reset() -> None:
    with _LOCK:
        _SOURCE_IDENTITY.clear()
        _TAGS.clear()


def request_tags(params: dict) -> dict[str, str]:
    """AssumeRole's Tags from its query parameters (Tags.member.N.Key / .Value)."""
    tags = {}
    number = 1
    while f"Tags.member.{number}.Key" in params:
        tags[params[f"Tags.member.{number}.Key"]] = params.get(f"Tags.member.{number}.Value", "")
        number += 1
    return tags


def session_tags(session_arn: str) -> dict[str, str]:
    """The tags a role session was assumed with (empty for a user, or a session assumed without)."""
    with _LOCK:
        return dict(_TAGS.get(session_arn, {}))


def sessions() -> list[dict]:
    """Every role session the layer saw made since the reset: its ARN, source identity and tags."""
    with _LOCK:
        arns = sorted({*_SOURCE_IDENTITY, *_TAGS})
        return [{"arn": arn, "source_identity": _SOURCE_IDENTITY.get(arn), "tags": _TAGS.get(arn, {})} for arn in arns]


def _session_arn(role_arn: str, session_name: str) -> str:
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    role_name = role_arn.rsplit("/", 1)[-1]
    return f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"


def observe(call, caller) -> None:
    """After an AssumeRole moto accepted: the new session's source identity, set by the request or carried over from
    the calling session."""
    if call.service != "sts" or call.operation != "AssumeRole":
        return
    session = _session_arn(call.params.get("RoleArn", ""), call.params.get("RoleSessionName", ""))
    tags = request_tags(call.params)
    with _LOCK:
        carried = _SOURCE_IDENTITY.get(caller.session_arn)
        value = carried or call.params.get("SourceIdentity")
        if value:
            _SOURCE_IDENTITY[session] = value
        if tags:
            _TAGS[session] = tags
        else:  # the same session name assumed again, without tags: a new session with none
            _TAGS.pop(session, None)


def check_source_identity_chain(layer, call, caller):
    """A role session that carries a source identity asks AssumeRole for another: refused. The answer's code and words
    are assumed (AWS documents that the value cannot be changed, not the refusal): AccessDenied, worded as an
    AssumeRole refusal, which does not say why."""
    from sandbox.strict import Refusal

    if call.service != "sts" or call.operation != "AssumeRole":
        return None
    with _LOCK:
        carried = _SOURCE_IDENTITY.get(caller.session_arn)
    asked = call.params.get("SourceIdentity")
    if not carried or not asked or asked == carried:
        return None
    message = (
        f"User: {caller.session_arn} is not authorized to perform: sts:AssumeRole on resource: "
        f"{call.params.get('RoleArn', '')}"
    )
    return Refusal("AccessDenied", message, 403)


CHECKS = (("source_identity_chain", check_source_identity_chain),)
