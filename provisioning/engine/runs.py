"""Runs: create one from a spec (one run per account at a time), its kind, retry, cancel, and the sweeper.

The database is the source of truth and the broker only a nudge: every task carries a step id,
the step's row says what to do, and anything lost on the broker is found again by the sweeper.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from provisioning.audit.chain import audit_record
from provisioning.customers import customer_refuse_if_offboarded
from provisioning.engine.dispatch import chain_lengths, longest_first, run_dispatch, step_tasks_send
from provisioning.models import AccountRead, AuditEvent, Customer, Run, StepRun
from provisioning.plan import plan_build, plan_registry, plan_run_steps
from provisioning.spec import Spec
from provisioning.teams import customer_permission_check
from provisioning.vocabulary import RunKind

State = StepRun.State


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
        first = longest_first([s for s in steps if s.queued_at], chain_lengths({s.key: s for s in steps}))
        transaction.on_commit(lambda: step_tasks_send([s.pk for s in first]), robust=True)
    else:  # nothing to do: the dispatch finishes the run
        run_dispatch(run_id=run.pk, run_locked=True)


def _plan_counts(items: list[dict] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items or []:
        counts[item["action"]] = counts.get(item["action"], 0) + 1
    return counts


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
