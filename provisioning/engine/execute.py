"""Executing one step: claim it, call its executor in the customer's account, record its outcome, its ledger
rows and its audit in one transaction, then dispatch what it unblocked."""

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from provisioning.audit.chain import CallLog, audit_write
from provisioning.aws.accounts import account_for_run
from provisioning.aws.calls import aws_work
from provisioning.aws.errors import NO_ANSWER_ERRORS, error_translate
from provisioning.engine.dispatch import CLAIM, run_dispatch, run_lock
from provisioning.engine.finish import worker_label
from provisioning.errors import InternalError, OnrampError
from provisioning.kinds import REGISTRY
from provisioning.ledger import ledger_end, ledger_record
from provisioning.models import AuditEvent, Resource, Run, StepRun
from provisioning.plan import Action
from provisioning.spec import Spec, spec_from_json
from provisioning.steps.base import StepContext
from provisioning.steps.tables import tables

logger = logging.getLogger(__name__)
State = StepRun.State


@dataclass(frozen=True)
class StepOutcome:
    state: str | None  # the state the step reached, None when this call did nothing
    retry_in: float | None = None  # seconds, when the task should try again
    next_step: StepRun | None = None  # a step kept and claimed for this process to run next (see run_dispatch)


def _retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, bounded far under the broker's visibility timeout."""
    ceiling = min(60.0, settings.STEP_RETRY_BACKOFF * (2 ** max(0, attempt - 1)))
    return round(random.uniform(ceiling / 2, ceiling), 2)  # noqa: S311 (jitter, not a secret)


# A step recorded before StepRun.flags has its plan's flags in its parameters: read from there too.
_FLAGS = ("known", "ends", "read")


def step_split(step: StepRun) -> tuple[dict, dict]:
    """(the step's declared parameters as stored, how the plan runs it: StepRun.flags, "known", "ends", "read")."""
    params = dict(step.params or {})
    flags = {name: params.pop(name) for name in _FLAGS if name in params}
    return params, {**flags, **(step.flags or {})}


def _step_params(step: StepRun, stored: dict, spec: Spec) -> dict:
    """The step's declared parameters: as stored (`stored`, step_split's), or from the spec for a step recorded
    before they were stored."""
    if stored:
        return stored
    kind = REGISTRY.kind_of(step.key)
    return next(params for params in kind.instances(spec) if kind.step_key(params) == step.key)


def _step_call(step: StepRun, run: Run):
    """Run the step's function against the account: its result, or the error that stopped it."""
    try:
        spec = spec_from_json(run.spec)
        stored, flags = step_split(step)
        account, params = account_for_run(run, spec), _step_params(step, stored, spec)
        context = StepContext(
            run=run, step=step, account=account, params=params, known=bool(flags.get("known")), read=flags.get("read")
        )
        return tables().executors[REGISTRY.kind_of(step.key).key](context, context.params), None
    except OnrampError as exc:
        return None, exc
    except NO_ANSWER_ERRORS as exc:  # no usable answer from AWS escapes the steps' ClientError handling
        return None, error_translate(exc, doing=step.title)
    except (OperationalError, InterfaceError) as exc:
        message = f"The database connection failed ({type(exc).__name__}); retrying."
        return None, InternalError(message, code="DatabaseUnavailable", retryable=True)
    except Exception as exc:  # a bug: fail the step, keep the worker, log the traceback
        logger.exception("Step %s of run %s failed unexpectedly", step.key, run.pk)
        message = f"Onramp failed unexpectedly ({type(exc).__name__}). The team has the log."
        return None, InternalError(message, code="InternalError")


def step_execute(*, step_id: int, keep_next: bool = False, claimed: StepRun | None = None) -> StepOutcome:
    """Claim one pending step, run its function against the account, record the outcome and the
    AWS calls it made in one transaction, then dispatch what became ready (keeping one step for
    this process when `keep_next`, claimed in that same transaction). `claimed`: the step that the
    dispatch kept for this process, claimed already, with its run (StepOutcome.next_step)."""
    now = timezone.now()
    if claimed is None:
        taken = StepRun.objects.filter(pk=step_id, state=State.PENDING, run__status__in=Run.ACTIVE).update(
            **CLAIM, started_at=now
        )
        if taken != 1:
            return StepOutcome(state=None)  # done already, taken by another worker, or the run ended
    step = claimed or StepRun.objects.select_related("run__customer", "run__started_by", "run__approved_by").get(
        pk=step_id
    )
    run = step.run
    if run.status == Run.Status.PENDING:
        # The run's first step; every later claim follows a recorded outcome, which marked progress.
        Run.objects.filter(pk=run.pk, status=Run.Status.PENDING).update(
            status=Run.Status.RUNNING, started_at=now, progressed_at=now
        )
        run.status = Run.Status.RUNNING
    with aws_work(
        actor_label=worker_label(run),
        actor_id=run.started_by_id,
        customer_id=run.customer_id,
        run_id=run.pk,
        step_key=step.key,
        write=False,  # written with the step's outcome, in one transaction
    ) as log:
        result, error = _step_call(step, run)
    return _step_record(step, run, log, result, error, keep_next=keep_next)


def _outcome_fields(step: StepRun, log: CallLog, result, error: OnrampError | None, now) -> tuple[dict, float | None]:
    """The step row's new fields, with its own audit event buffered on the log; and the retry delay."""
    if error is None:
        # A resource the plan adopts is adopted, even when its step changed it (tagged it, added it to its group).
        adopted = result.adopted or _planned_action(step.run, step.key) == Action.ADOPT
        state = State.GONE if result.gone else State.ADOPTED if adopted else State.SUCCEEDED
        log.record(action=f"step.{state}", target=step.title, details={"outputs": result.outputs})
        fields = {
            "state": state,
            "finished_at": now,
            "outputs": {**step.outputs, **result.outputs},
            "error_code": "",
            "error_message": result.note,
        }
        return fields, None
    retry_in = None
    if error.retryable and step.attempts <= settings.STEP_MAX_RETRIES:
        retry_in = _retry_delay(step.attempts)
    log.record(
        action="step.retrying" if retry_in else "step.failed",
        outcome=AuditEvent.Outcome.ERROR,
        error_code=error.code,
        target=step.title,
        details={"message": str(error), "attempt": step.attempts, "retry_in_seconds": retry_in},
    )
    fields = {
        "state": State.PENDING if retry_in else State.FAILED,
        "finished_at": None if retry_in else now,
        "error_code": error.code[:128],
        "error_message": str(error),
        "queued_at": now if retry_in else None,
    }
    if retry_in:
        fields["ready_at"] = now + timedelta(seconds=retry_in)  # the timeline's wait starts after the backoff
    return fields, retry_in


def _planned_action(run: Run, key: str) -> str:
    return next((item["action"] for item in run.plan or [] if item["key"] == key), "")


def _step_record(
    step: StepRun, run: Run, log: CallLog, result, error: OnrampError | None, *, keep_next: bool
) -> StepOutcome:
    now = timezone.now()
    fields, retry_in = _outcome_fields(step, log, result, error, now)
    state = fields["state"]
    next_step = None
    try:
        with transaction.atomic():
            # The outcome and the dispatch it causes are one transaction: no other step's dispatch can
            # see this step done (uncommitted) and enqueue the step this process keeps. The step's own
            # row and its resource come first (no other transaction writes them); then the run's lock,
            # which serializes the run's dispatches, so it is held for the dispatch, the audit and the
            # commit only; then the audit chain's lock, taken last: every step of every run takes it.
            recorded = StepRun.objects.filter(pk=step.pk, state=State.RUNNING).update(**fields)
            if recorded and error is None:
                _ledger_after(run, step, result)
            active = run_lock(run.pk, now)
            if retry_in is None and active:
                after = step if keep_next and state in StepRun.DONE else None
                next_step = run_dispatch(run_id=run.pk, after=after, run_locked=True, log=log)
            audit_write(log.drain())
    except DatabaseError:
        # The database went away while recording: leave the step running; the sweeper re-drives it.
        logger.warning("Could not record step %s of run %s; the sweeper will pick it up", step.key, run.pk)
        raise
    if next_step is not None:
        next_step.run = run  # the run this process holds: its customer, its starter, its open account
    return StepOutcome(state=state, retry_in=retry_in, next_step=next_step)


def _ledger_after(run: Run, step: StepRun, result) -> None:
    """What a finished step leaves in the ledger: its resource, created or adopted; or, for the last step of
    a removal, the resources it removed."""
    kind = REGISTRY.kind_of(step.key)
    params, flags = step_split(step)
    if kind.resource is not None:
        ledger_record(run=run, kind=kind, params=params, outputs={**step.outputs, **result.outputs})
    if flags.get("ends"):
        ledger_end(run=run, resource_ids=flags["ends"], state=Resource.State.REMOVED)
