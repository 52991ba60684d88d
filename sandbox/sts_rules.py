"""STS's source identity through role chaining, where moto keeps none (issue 28 section 3, point 8): a switch of
sandbox/strict.py's Strictness, checked before moto answers, tested in tests/test_sandbox_sts_rules.py. Nothing here
imports Django.

AWS: "After the source identity is set, the value cannot be changed. It is present in the request for all actions
that are taken by the role and persists across chained role sessions" (STS API reference, AssumeRole:
SourceIdentity; IAM User Guide, "Monitor and control actions taken with assumed roles")."""

import threading

# A role session's source identity, by the session's ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), as the
# AssumeRole that made it set or carried it.
_SOURCE_IDENTITY: dict[str, str] = {}
_LOCK = threading.Lock()


def reset() -> None:
    with _LOCK:
        _SOURCE_IDENTITY.clear()


def _session_arn(role_arn: str, session_name: str) -> str:
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    role_name = role_arn.rsplit("/", 1)[-1]
    return f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"


def observe(call, caller) -> None:
    """After an AssumeRole moto accepted: the new session's source identity, set by the request or carried over from
    the calling session."""
    if call.service != "sts" or call.operation != "AssumeRole":
        return
    with _LOCK:
        carried = _SOURCE_IDENTITY.get(caller.session_arn)
        value = carried or call.params.get("SourceIdentity")
        if value:
            _SOURCE_IDENTITY[_session_arn(call.params.get("RoleArn", ""), call.params.get("RoleSessionName", ""))] = (
                value
            )


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
