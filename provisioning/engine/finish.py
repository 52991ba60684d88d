"""A run's end: its summary, and what finishing does (an offboarding's end, removed users' secrets wiped,
stale approvals voided, the notification and the repair's drift check sent)."""

from collections.abc import Sequence

from celery import current_app
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisioning import documents, vault
from provisioning.audit.chain import CallLog, audit_record
from provisioning.aws.accounts import run_accounts
from provisioning.kinds import REGISTRY
from provisioning.kinds.iam_access_key import declaration as access_key
from provisioning.ledger import ledger_end, ledger_labels, ledger_outputs
from provisioning.models import AuditEvent, Customer, PlanApproval, Resource, Run, StepRun
from provisioning.plan import Action
from provisioning.registry import ROLE_NAME, Registry
from provisioning.spec import Spec, spec_from_json
from provisioning.vocabulary import RunKind

State = StepRun.State


NOTIFY_TASK = "provisioning.tasks.run_notify"
REPAIR_CHECK_TASK = "provisioning.tasks.drift_check_after_repair"


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


def worker_label(run: Run) -> str:
    return f"worker for {run.started_by.get_username()}"


def run_finish(run: Run, steps: dict[str, StepRun], *, log: CallLog | None = None) -> None:
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
        actor_label=worker_label(run),
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
        actor_label=worker_label(run),
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
        actor_label=worker_label(run),
        actor_id=run.started_by_id,
        customer=customer.pk,
        run=run,
        target=customer.name,
        details={"mode": run.offboard, "handed_over": [row["name"] for row in handed]},
    )
    return {"mode": run.offboard, "handed_over": handed, "access": customer.access, "role_name": ROLE_NAME}
