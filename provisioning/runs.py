"""Runs: create from a spec, dispatch ready steps, execute one step, finish, retry, cancel, sweep.

The database is the source of truth and the broker only a nudge: every task carries a step id,
the step's row says what to do, and anything lost on the broker is found again by the sweeper.
"""

import logging
import os
import queue
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.formats import date_format

from provisioning import documents, vault
from provisioning.audit import CallLog, audit_record, audit_write
from provisioning.aws import NO_ANSWER_ERRORS, account_for_run, aws_work, error_translate, run_accounts
from provisioning.errors import InternalError, OnrampError
from provisioning.kinds import REGISTRY
from provisioning.kinds.iam_access_key import declaration as access_key
from provisioning.ledger import ledger_end, ledger_labels, ledger_outputs, ledger_record
from provisioning.models import AccountRead, AuditEvent, Customer, PlanApproval, Resource, Run, StepRun
from provisioning.plan import Action, plan_build, plan_registry, plan_run_steps
from provisioning.registry import ROLE_NAME, Registry
from provisioning.spec import Spec, spec_from_json
from provisioning.steps.base import StepContext
from provisioning.steps.tables import tables
from provisioning.teams import customer_permission_check
from provisioning.vocabulary import OffboardMode, RunKind

logger = logging.getLogger(__name__)
State = StepRun.State
# The task that runs a step, by name: tasks call runs, and runs only names the task.
STEP_TASK = "provisioning.tasks.step_run"
NOTIFY_TASK = "provisioning.tasks.run_notify"
REPAIR_CHECK_TASK = "provisioning.tasks.drift_check_after_repair"
# What claiming a step sets (besides its start): the conditional UPDATE from pending makes it one worker's.
_CLAIM = {"state": State.RUNNING, "finished_at": None, "attempts": F("attempts") + 1, "queued_at": None}


class RunConflict(Exception):
    """Another run is in progress for this customer's account."""

    def __init__(self, active: Run):
        self.active = active
        super().__init__(
            f"Run {active.short_id} for {active.customer.name} is still in progress "
            f"(started by {active.started_by.get_username()}); wait for it to finish or cancel it."
        )


class RunStateError(Exception):
    pass


class CustomerOffboarded(RunStateError):
    """The customer was offboarded: no run starts for them until an Admin reactivates them."""

    def __init__(self, customer: Customer):
        self.customer = customer
        who = customer.offboarded_by.get_username() if customer.offboarded_by else "someone"
        super().__init__(
            f"{customer.name} was offboarded ({OffboardMode(customer.offboard_mode).label.lower()}) on "
            f"{date_format(timezone.localtime(customer.offboarded_at), 'DATETIME_FORMAT')} by {who}: Onramp starts no "
            "run for them until an Admin reactivates them (admin, Customers, the action “Reactivate”)."
        )


def customer_refuse_if_offboarded(*, customer: Customer, user: User, doing: str) -> None:
    """Raise CustomerOffboarded (audited as refused) when the customer, as the database has it now, is offboarded."""
    current = Customer.objects.select_related("offboarded_by").get(pk=customer.pk)
    if current.offboarded_at is None:
        return
    audit_record(
        action="run.refused",
        actor=user,
        customer=current,
        outcome=AuditEvent.Outcome.REFUSED,
        error_code="CustomerOffboarded",
        target=current.name,
        details={"reason": "the customer is offboarded", "doing": doing},
    )
    raise CustomerOffboarded(current)


def _active_run(customer: Customer) -> Run | None:
    return Run.objects.select_related("customer", "started_by").filter(customer=customer, status__in=Run.ACTIVE).first()


def run_kind_for(*, customer: Customer, offboard: str = "", repair: bool = False) -> str:
    """The kind of a run about to start: an offboarding; a repair (asked for from the customer's drift); a
    change when Onramp already keeps the account in a state (a successful onboarding or change, and no
    offboarding since); an onboarding otherwise."""
    if offboard:
        return RunKind.OFFBOARDING
    last = (
        Run.objects.filter(customer=customer, status=Run.Status.SUCCEEDED)
        .order_by(F("finished_at").desc(nulls_last=True), "-created_at")
        .values_list("kind", flat=True)
        .first()
    )
    if last is None or last == RunKind.OFFBOARDING:
        return RunKind.ONBOARDING
    return RunKind.REPAIR if repair else RunKind.CHANGE


def run_create(
    *,
    spec: Spec,
    customer: Customer,
    user: User,
    read: AccountRead | None = None,
    items: list[dict] | None = None,
    offboard: str = "",
    repair: bool = False,
    approved_by: User | None = None,
) -> Run:
    """Create the run and its steps, then enqueue the first step once the transaction commits. Every plan reads
    first (onboarding_draft_read, the onboard command, offboarding): with the `read` and its decided `items`
    (provisioning.plan.plan_decide), the run carries out that difference, and its preflight refuses an account
    that changed since the read, so nothing is taken over unseen. Without a read (the engine's own tests and
    benchmarks, the smoke check against a throwaway account; no page or command of the portal), every step of
    the spec runs. `offboard`: the run is that offboarding; `repair`: it repairs the customer's drift
    (run_kind_for); `approved_by`: the second person who approved the plan (provisioning/approvals.py), named in
    the customer's CloudTrail as the session tag onramp-approver (provisioning.aws.run_session_tags).
    CustomerOffboarded for an offboarded customer; NotOnCustomerTeam for someone not on the
    customer's team (nor an Admin); RunConflict when another run of the customer is active."""
    action = "offboard" if offboard else "repair" if repair else "run"
    customer_permission_check(user=user, customer=customer, action=action)
    customer_refuse_if_offboarded(customer=customer, user=user, doing="offboard" if offboard else "run")
    if read is not None:
        planned = plan_run_steps(
            spec=spec, items=items or [], read_id=str(read.pk), registry=plan_registry(read.offboard)
        )
    else:
        planned = plan_build(spec)
    run = Run(
        customer=customer,
        started_by=user,
        approved_by=approved_by,
        spec=spec.to_json(),
        kind=run_kind_for(customer=customer, offboard=offboard, repair=repair),
        read=read,
        plan=items or [],
        offboard=offboard,
    )
    try:
        with transaction.atomic():
            _run_record(run, planned, user=user, spec=spec, read=read, items=items)
    except IntegrityError:  # the one-active-run-per-customer constraint
        active = _active_run(customer)
        if active is None:
            raise
        audit_record(
            action="run.refused",
            actor=user,
            customer=customer,
            run=active,
            outcome=AuditEvent.Outcome.REFUSED,
            error_code="RunInProgress",
            details={"reason": "another run is in progress"},
        )
        raise RunConflict(active) from None
    return run


def _run_record(
    run: Run, planned: list, *, user: User, spec: Spec, read: AccountRead | None, items: list[dict] | None
) -> None:
    """Save the run and its steps, audit the confirmation, and send the steps that wait on nothing once this
    transaction commits (or finish a run with nothing to do)."""
    run.save(force_insert=True)
    now = timezone.now()
    steps = StepRun.objects.bulk_create(
        StepRun(
            run=run,
            key=step.key,
            title=step.title,
            branch=step.branch,
            position=index,
            depends_on=list(step.depends_on),
            params=step.params,
            flags=step.flags,
            # The run's first dispatch, made here without reading what was just written: the steps that
            # wait on nothing are queued (ready now), and sent once this transaction commits.
            queued_at=None if step.depends_on else now,
            ready_at=None if step.depends_on else now,
        )
        for index, step in enumerate(planned)
    )
    audit_record(
        action="run.confirmed",
        actor=user,
        customer=run.customer,
        run=run,
        target=spec.app_name,
        details={
            "kind": run.kind,
            "spec": spec.to_json(),
            "read": str(read.pk) if read else None,
            "plan": _plan_counts(items),
            **({"offboard": run.offboard} if run.offboard else {}),
            **({"approved_by": run.approved_by.get_username()} if run.approved_by else {}),
        },
    )
    if steps:
        first = _longest_first([s for s in steps if s.queued_at], _chain_lengths({s.key: s for s in steps}))
        transaction.on_commit(lambda: _enqueue([s.pk for s in first]), robust=True)
    else:  # nothing to do: the dispatch finishes the run
        run_dispatch(run_id=run.pk, run_locked=True)


def _plan_counts(items: list[dict] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items or []:
        counts[item["action"]] = counts.get(item["action"], 0) + 1
    return counts


def _enqueue(step_ids: list[int]) -> None:
    for step_id in step_ids:
        current_app.send_task(STEP_TASK, args=[step_id])


class _Publisher:
    """Sends step tasks from a thread of its own, for a dispatch whose thread goes on to run the step it kept:
    that thread makes its next AWS call at once instead of after publishing its siblings (~2 ms each on a busy
    worker). A message this loses (the process dies first) is a step queued in the database and in no message,
    which the sweeper sends again, as any message lost on the broker (runs_sweep). One thread per process,
    started on first use (after a worker forks)."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: tuple[int, threading.Thread] | None = None  # (the process that started it, the thread)
        self._lock = threading.Lock()

    def _running(self) -> bool:
        """Whether this process's thread is sending (a forked child has its parent's record, not its thread)."""
        return self._thread is not None and self._thread[0] == os.getpid() and self._thread[1].is_alive()

    def put(self, step_ids: list[int]) -> None:
        with self._lock:
            if not self._running():
                thread = threading.Thread(target=self._loop, name="onramp-publisher", daemon=True)
                self._thread = (os.getpid(), thread)
                thread.start()
        self._queue.put(step_ids)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()  # everything put before it is sent
                continue
            try:
                _enqueue(item)
            except Exception:  # the broker is away: the sweeper sends these again
                logger.exception("Could not send step tasks %s; the sweeper will", item)

    def drain(self, timeout: float = 10) -> bool:
        """Wait until everything put so far is sent (a worker's shutdown); False if that took over `timeout`."""
        with self._lock:
            if not self._running():
                return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)


publisher = _Publisher()


def _run_lock(run_id, now) -> bool:
    """Mark the run's progress, which takes its row lock until the transaction ends; False when the
    run is no longer active. Every writer takes the run's row before the audit chain's lock
    (run_cancel and run_retry update the run, then audit), so none waits on the other in a cycle."""
    return bool(Run.objects.filter(pk=run_id, status__in=Run.ACTIVE).update(progressed_at=now))


def run_dispatch(
    *, run_id: UUID | str, after: StepRun | None = None, run_locked: bool = False, log: CallLog | None = None
) -> StepRun | None:
    """Enqueue every pending step whose dependencies are done; skip those whose dependencies
    failed; finish the run when nothing is left. Safe to call any number of times.

    With `after` (the step this process just finished), one step that waited on it is kept
    instead of enqueued, claimed, and returned as the claim left it: the caller runs it next in the
    same process, with the clients it already has, and skips a broker round trip and a read. The
    longest remaining branch is the one kept, so the critical path never waits on the broker.
    `run_locked`: the caller's transaction already holds the run's lock (see _run_lock); `log`: the
    caller writes the audit events buffered on it (the run's end among them) when its transaction is
    done with everything else."""
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        if not run_locked and not _run_lock(run_id, now):  # one dispatch at a time per run
            return None
        steps = {s.key: s for s in StepRun.objects.filter(run_id=run_id)}
        ready, skipped = [], []
        changed = True
        while changed:  # a skip can make more skips down the chain
            changed = False
            for step in steps.values():
                if step.state != State.PENDING:
                    continue
                deps = [steps[key].state for key in step.depends_on]
                if any(d in (State.FAILED, State.SKIPPED, State.CANCELLED) for d in deps):
                    step.state = State.SKIPPED
                    skipped.append(step.pk)
                    changed = True
                elif all(d in StepRun.DONE for d in deps) and step.queued_at is None:
                    step.queued_at = now  # once per dispatch, however many passes the loop makes
                    ready.append(step)
        if skipped:
            StepRun.objects.filter(pk__in=skipped, state=State.PENDING).update(
                state=State.SKIPPED, error_message="Skipped: a step it depends on did not finish.", finished_at=now
            )
        chain = _chain_lengths(steps)
        keep = _step_to_keep(after, ready, chain) if after is not None else None
        enqueue = [s.pk for s in _longest_first(ready, chain) if s is not keep]
        if enqueue:
            # ready_at: the first time the step could run (a re-drive by the sweeper keeps it), for the timeline.
            StepRun.objects.filter(pk__in=enqueue, queued_at__isnull=True).update(
                queued_at=now, ready_at=Coalesce(F("ready_at"), Value(now))
            )
        # The kept step is claimed here, in the transaction that recorded the step before it: one commit, not two.
        if keep is not None:
            keep = _claim_kept(keep, now)
        if enqueue:
            # This thread goes on with the kept step: its siblings are sent beside it (see _Publisher).
            send = (lambda: publisher.put(enqueue)) if keep is not None else (lambda: _enqueue(enqueue))
            transaction.on_commit(send, robust=True)
        if all(s.state in StepRun.FINISHED for s in steps.values()):
            _run_finish(Run.objects.select_related("started_by").get(pk=run_id), steps, log=log)
    return keep


def _claim_kept(step: StepRun, now) -> StepRun | None:
    """Claim a kept step (read in this transaction, under the run's lock, pending and in no broker message:
    no one else can claim it) and set on it what the claim wrote; None if it was not pending after all."""
    if not StepRun.objects.filter(pk=step.pk, state=State.PENDING).update(
        **_CLAIM, started_at=now, ready_at=Coalesce(F("ready_at"), Value(now))
    ):
        return None
    for name, value in _CLAIM.items():
        setattr(step, name, value if name != "attempts" else step.attempts + 1)  # F("attempts") + 1, in memory
    step.started_at, step.ready_at = now, step.ready_at or now
    return step


def _chain_lengths(steps: dict[str, StepRun]) -> dict[str, int]:
    """For each step, how many pending steps (itself included) its chain still holds."""
    waiting_on: dict[str, list[str]] = {key: [] for key in steps}
    for step in steps.values():
        if step.state == State.PENDING:
            for dep in step.depends_on:
                waiting_on[dep].append(step.key)

    def length(key: str) -> int:
        return 1 + max((length(k) for k in waiting_on[key]), default=0)

    return {key: length(key) for key in steps}


def _longest_first(steps: list[StepRun], chain: dict[str, int]) -> list[StepRun]:
    """The order to send ready steps in: with fewer free slots than branches, the critical path starts first."""
    return sorted(steps, key=lambda s: -chain[s.key])


def _step_to_keep(after: StepRun, ready: list[StepRun], chain: dict[str, int]) -> StepRun | None:
    followers = [s for s in ready if after.key in s.depends_on]
    if not followers:
        return None
    return max(followers, key=lambda s: (chain[s.key], s.branch == after.branch))


def run_summary(
    *, spec: Spec, steps: dict[str, StepRun], resources: Sequence[dict] = (), registry: Registry = REGISTRY
) -> dict:
    """What exists now, as the declarations publish it: from the ledger's present `resources`
    (provisioning.ledger.ledger_outputs), and from the run's own done steps (never a secret)."""
    summary: dict = {
        "account_id": spec.account_id,
        "region": spec.region,
        "sign_in_url": documents.sign_in_url(account_id=spec.account_id, alias=spec.account_alias),
    }
    found: dict[str, dict[str, dict]] = {}  # kind -> identity -> outputs
    for row in resources:
        found.setdefault(row["kind"], {})[row["identity"]] = row["outputs"]
    reminders: list[str] = []
    for key, step in steps.items():
        kind = registry.kind_of(key)
        if step.state in StepRun.DONE:
            identity = str((step.params or {}).get(kind.resource.identity_param, key)) if kind.resource else key
            found.setdefault(kind.key, {})[identity] = step.outputs
            reminders += [r for r in kind.reminders(step.params or {}) if r not in reminders]
    for kind in registry.kinds:
        for publish in kind.publishes:
            values = [outputs.get(publish.output) for outputs in found.get(kind.key, {}).values()]
            summary[publish.field] = [v for v in values if v] if publish.many else next(reversed(values), None)
    summary["steps"] = {key: step.state for key, step in steps.items()}
    summary["reminders"] = reminders
    return summary


def run_summary_now(run: Run) -> dict:
    """What exists now, from the ledger as it stands (a key rotated since the run shows as the new key; what
    a later run removed is gone)."""
    resources = ledger_outputs(customer_id=run.customer_id)
    return run_summary(spec=spec_from_json(run.spec), steps={}, resources=resources)


def run_summary_rows(summary: dict, *, registry: Registry = REGISTRY) -> list[tuple[str, str]]:
    """The summary as (label, value) rows to show, in the declarations' order."""
    rows = []
    for publish in registry.publishes():
        values = summary.get(publish.field)
        for value in (values or []) if publish.many else [values]:
            if value:
                rows.append((publish.label, str(value)))
    # Nobody signs in to an account where nothing of Onramp's exists (a run that failed at preflight).
    return [("Sign-in URL", summary.get("sign_in_url", "")), *rows] if rows else []


def _run_finish(run: Run, steps: dict[str, StepRun], *, log: CallLog | None = None) -> None:
    """Every step has finished: the run succeeded if each is done, and says what exists now."""
    ok = all(s.state in StepRun.DONE for s in steps.values())
    if ok:  # what the plan releases stays in the account, forgotten by Onramp
        released = [item["resource"] for item in run.plan if item["action"] == Action.RELEASE]
        ledger_end(run=run, resource_ids=released, state=Resource.State.RELEASED)
        _removed_secrets_wipe(run)
    run.status = Run.Status.SUCCEEDED if ok else Run.Status.FAILED
    resources = ledger_outputs(customer_id=run.customer_id)
    run.summary = run_summary(spec=spec_from_json(run.spec), steps=steps, resources=resources)
    if ok and run.offboard:
        run.summary["offboard"] = _offboard_finish(run)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "summary", "finished_at"])
    failed = [k for k, s in steps.items() if s.state == State.FAILED]
    if any(s.error_code == "PlanStale" for s in steps.values()):
        _approval_void_stale(run, log=log)
    audit_record(
        action="run.succeeded" if ok else "run.failed",
        actor_label=_worker_label(run),
        customer=run.customer_id,
        run=run,
        outcome=AuditEvent.Outcome.OK if ok else AuditEvent.Outcome.ERROR,
        error_code="" if ok else "StepsFailed",
        details={"failed_steps": failed} if failed else {"summary": run.summary},
        into=log,
    )
    transaction.on_commit(lambda: run_accounts.forget(run.pk))
    # Tell the tech lead once the end is committed; robust: a notification never fails the run.
    transaction.on_commit(lambda: current_app.send_task(NOTIFY_TASK, args=[str(run.pk)]), robust=True)
    if ok and run.kind == RunKind.REPAIR:  # the drift state it repaired is stale from now on: check again
        transaction.on_commit(lambda: current_app.send_task(REPAIR_CHECK_TASK, args=[run.customer_id]), robust=True)


def _approval_void_stale(run: Run, *, log: CallLog | None) -> None:
    """The approval a run started from was for the account as it was read: the account changed (its preflight
    found the plan stale), so that approval is void, audited; a new plan needs a new approval."""
    sentence = "The account changed since the plan was read: the run changed nothing. Plan again and ask again."
    if not PlanApproval.objects.filter(run=run, state=PlanApproval.State.APPROVED).update(
        state=PlanApproval.State.VOIDED, ended_reason=sentence
    ):
        return
    audit_record(
        action="plan.voided",
        actor_label=_worker_label(run),
        customer=run.customer_id,
        run=run,
        target=run.customer.name,
        details={"approval": str(run.approval.pk), "reason": sentence},
        into=log,
    )


def _removed_secrets_wipe(run: Run) -> None:
    """Whatever run removed a user (a change of team, an offboarding, a repair) wipes the user's secrets still
    waiting to be revealed, and the sealed secret of an access key it deleted: nothing is left to sign in or
    call AWS with, and the portal no longer offers them. Each wipe is audited with the reason."""
    removed = Resource.objects.filter(removed_by_run=run, state=Resource.State.REMOVED)
    users = [row.name for row in removed.filter(kind__in=REGISTRY.user_kinds())]
    keys = [row.name for row in removed.filter(kind=access_key.KEY)]
    which = "the offboarding" if run.offboard else f"run {run.short_id}"
    vault.credentials_wipe(customer_id=run.customer_id, user_names=users, reason=f"{which} removed the user")
    vault.credentials_wipe(customer_id=run.customer_id, access_key_ids=keys, reason=f"{which} deleted the access key")


def _offboard_finish(run: Run) -> dict:
    """An offboarding succeeded: the customer is marked offboarded (audited), and the summary hands over what
    is left in the account (what the ledger still holds, what this run released) and says how the customer
    removes Onramp's own access."""
    customer = run.customer
    now = timezone.now()
    Customer.objects.filter(pk=customer.pk).update(
        offboarded_at=now, offboarded_by=run.started_by, offboard_mode=run.offboard, updated_at=now
    )
    left = Resource.objects.filter(customer=customer).filter(
        Q(state=Resource.State.PRESENT) | Q(state=Resource.State.RELEASED, removed_by_run=run)
    )
    labels = ledger_labels()
    handed = [
        {"label": labels.get(row.kind, row.kind), "name": row.name, "arn": row.arn} for row in left.order_by("id")
    ]
    audit_record(
        action="customer.offboarded",
        actor_label=_worker_label(run),
        actor_id=run.started_by_id,
        customer=customer.pk,
        run=run,
        target=customer.name,
        details={"mode": run.offboard, "handed_over": [row["name"] for row in handed]},
    )
    return {"mode": run.offboard, "handed_over": handed, "access": customer.access, "role_name": ROLE_NAME}


@dataclass(frozen=True)
class StepOutcome:
    state: str | None  # the state the step reached, None when this call did nothing
    retry_in: float | None = None  # seconds, when the task should try again
    next_step: StepRun | None = None  # a step kept and claimed for this process to run next (see run_dispatch)


def _retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, bounded far under the broker's visibility timeout."""
    ceiling = min(60.0, settings.STEP_RETRY_BACKOFF * (2 ** max(0, attempt - 1)))
    return round(random.uniform(ceiling / 2, ceiling), 2)  # noqa: S311 (jitter, not a secret)


def _worker_label(run: Run) -> str:
    return f"worker for {run.started_by.get_username()}"


# A step recorded before StepRun.flags has its plan's flags in its parameters: read from there too.
_FLAGS = ("known", "ends")


def step_split(step: StepRun) -> tuple[dict, dict]:
    """(the step's declared parameters as stored, how the plan runs it: StepRun.flags, "known" and "ends")."""
    params = dict(step.params or {})
    flags = {name: params.pop(name) for name in _FLAGS if name in params}
    return params, {**flags, **(step.flags or {})}


def _step_params(step: StepRun, spec: Spec) -> dict:
    """The step's declared parameters (a step recorded before they were stored gets them from the spec)."""
    if step.params:
        return step_split(step)[0]
    kind = REGISTRY.kind_of(step.key)
    return next(params for params in kind.instances(spec) if kind.step_key(params) == step.key)


def _step_call(step: StepRun, run: Run):
    """Run the step's function against the account: its result, or the error that stopped it."""
    try:
        spec = spec_from_json(run.spec)
        account, params = account_for_run(run, spec), _step_params(step, spec)
        known = bool(step_split(step)[1].get("known"))
        context = StepContext(run=run, step=step, account=account, params=params, known=known)
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
            **_CLAIM, started_at=now
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
        actor_label=_worker_label(run),
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
            active = _run_lock(run.pk, now)
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


def run_retry(*, run: Run, user: User) -> Run:
    """Re-run a failed run's failed, skipped and pending steps; finished steps stay as they are."""
    if run.status != Run.Status.FAILED:
        raise RunStateError("Only a failed run can be retried.")
    customer_permission_check(user=user, customer=run.customer, action="run")
    customer_refuse_if_offboarded(customer=run.customer, user=user, doing="retry")
    try:
        with transaction.atomic():
            updated = Run.objects.filter(pk=run.pk, status=Run.Status.FAILED).update(
                status=Run.Status.RUNNING, finished_at=None, progressed_at=timezone.now()
            )
            if updated != 1:
                raise RunStateError("This run is no longer failed.")
            StepRun.objects.filter(run=run, state__in=[State.FAILED, State.SKIPPED, State.CANCELLED]).update(
                state=State.PENDING, error_code="", error_message="", queued_at=None, finished_at=None, ready_at=None
            )
            audit_record(action="run.retried", actor=user, customer=run.customer, run=run)
            transaction.on_commit(lambda: run_dispatch(run_id=run.pk), robust=True)
    except IntegrityError:
        active = _active_run(run.customer)
        if active is None:  # the other run finished in between: nothing to name
            raise
        raise RunConflict(active) from None
    run.refresh_from_db()
    return run


def run_cancel(*, run: Run, user: User) -> Run:
    """Stop a run: pending steps are cancelled; a step already running finishes its AWS call."""
    customer_permission_check(user=user, customer=run.customer, action="run")
    with transaction.atomic():
        updated = Run.objects.filter(pk=run.pk, status__in=Run.ACTIVE).update(
            status=Run.Status.CANCELLED, finished_at=timezone.now()
        )
        if updated != 1:
            raise RunStateError("Only a run in progress can be cancelled.")
        StepRun.objects.filter(run=run, state=State.PENDING).update(state=State.CANCELLED)
        audit_record(action="run.cancelled", actor=user, customer=run.customer, run=run)
    run.refresh_from_db()
    return run


def runs_sweep(*, stale_after: float | None = None) -> list:
    """Find active runs with no progress for a while and drive them again: steps left running by a
    dead worker go back to pending (audited as interrupted), lost broker messages are re-sent."""
    stale_after = settings.RUN_STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    swept = []
    for run in Run.objects.filter(status__in=Run.ACTIVE, progressed_at__lt=cutoff).select_related("started_by"):
        with transaction.atomic():
            stuck = list(
                StepRun.objects.select_for_update().filter(
                    Q(state=State.RUNNING, started_at__lt=cutoff) | Q(state=State.PENDING, queued_at__lt=cutoff),
                    run=run,
                )
            )
            for step in stuck:
                if step.state == State.RUNNING:
                    audit_record(
                        action="step.interrupted",
                        actor_label="sweeper",
                        customer=run.customer_id,
                        run=run,
                        step_key=step.key,
                        outcome=AuditEvent.Outcome.ERROR,
                        error_code="NoProgress",
                        target=step.title,
                        details={"attempt": step.attempts, "stale_after_seconds": stale_after},
                    )
            StepRun.objects.filter(pk__in=[s.pk for s in stuck]).update(state=State.PENDING, queued_at=None)
        run_dispatch(run_id=run.pk)
        swept.append(run.pk)
    return swept
