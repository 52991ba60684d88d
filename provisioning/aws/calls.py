"""The botocore event hook that audits every AWS call on the current call log, audited work (aws_work), and the
pools that run AWS work beside the caller's thread (aws_beside, aws_checking)."""

import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from uuid import UUID

from botocore.parsers import ResponseParserError

from provisioning.audit.chain import CallLog, audit_write, redact
from provisioning.kinds import REGISTRY

current_call_log: contextvars.ContextVar[CallLog | None] = contextvars.ContextVar("onramp_call_log", default=None)
# An audit row's target: the first of a call's parameters that names a resource. Per call, not per kind (the calls of
# no kind, AssumeRole and the plan's checks, are audited too); tests/test_kinds.py checks every operation a kind
# declares that names a resource in botocore's model has one of these.
_TARGET_PARAMS = (
    "UserName",
    "GroupName",
    "PolicyArn",
    "PolicyName",
    "Bucket",
    "repositoryName",
    "AccountAlias",
    "RoleArn",
    "RoleName",
    "SerialNumber",
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
_pools_lock = threading.Lock()
_POOL_SIZES = {"onramp-aws": 4, "onramp-checks": 16}


def _pool_submit(name: str, work: Callable[[], object]) -> Future:
    with _pools_lock:
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


def audit_hook_install(client) -> None:
    events = client.meta.events
    events.register("before-parameter-build.*.*", _on_params, unique_id="onramp-audit-params")
    events.register("before-call.*.*", _on_before_call, unique_id="onramp-audit-model")
    events.register("after-call.*.*", _on_after_call, unique_id="onramp-audit-after")
    events.register("after-call-error.*.*", _on_after_call_error, unique_id="onramp-audit-error")
