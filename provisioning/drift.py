"""The drift check: each customer's account read back against their desired state, on a schedule and on demand.

A check is an AccountRead of purpose DRIFT of the spec of the customer's last successful run; what differs is
what the plan of that spec would change (plan.plan_difference, the same comparison the steps decide "adopt or
correct" with), in words. Each customer's outcome is one DriftState: In sync, Drifted (each difference and the
check that first found it) or Unreachable (why). Nothing changes in the account: Repair is a plan of the
desired spec, previewed and confirmed like any other.

Bounds: one pending or running check per customer (its calls go one at a time, so one call per account at
once), and DRIFT_CONCURRENCY checks at once overall: the scheduled checks are recorded pending, and that many
tasks take them one after another (drift_checks_work).
"""

import time
from datetime import datetime, timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from provisioning.audit.chain import audit_record
from provisioning.customers import customer_desired_spec, drift_rank
from provisioning.models import AccountRead, Customer, DriftState, Run
from provisioning.notify import drift_notify
from provisioning.plan import Action
from provisioning.reads import account_read_execute, account_read_start
from provisioning.spec import spec_from_json

WORK_TASK = "provisioning.tasks.drift_checks_work"
# How long one worker task takes pending checks itself before handing on to a fresh task (far under the
# soft time limit), and after how long a check still pending or running is taken for lost.
WORK_FOR_SECONDS = 60
LOST_AFTER = timedelta(hours=1)

# What an item of the plan means when nothing about it was said field by field. A resource of the desired state
# that the ledger does not hold ("adopt": there, not recorded as Onramp's) drifts only by its fields.
_ITEM_WORDS = {
    Action.CREATE: ("there", "missing"),
    Action.REMOVE: ("gone (the desired state no longer has it)", "still there"),
    Action.RELEASE: ("released (the desired state no longer has it)", "still kept by Onramp"),
}


def drift_in_progress(*, customer: Customer) -> AccountRead | None:
    """The customer's check that is pending or running (and not lost), if any."""
    return (
        AccountRead.objects.filter(
            customer=customer,
            purpose=AccountRead.Purpose.DRIFT,
            status__in=(AccountRead.Status.PENDING, AccountRead.Status.RUNNING),
            created_at__gte=timezone.now() - LOST_AFTER,
        )
        .order_by("-created_at")
        .first()
    )


def drift_check_start(*, customer: Customer, user: User | None = None, enqueue: bool = True) -> AccountRead | None:
    """Start a check of the customer's account (None when they have no desired state yet). A check already
    under way is the one returned: one per account at a time."""
    spec = customer_desired_spec(customer=customer, for_drift=True)
    if spec is None:
        return None
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=customer.pk).first()  # two starts at once: one check
        found = drift_in_progress(customer=customer)
        if found is not None:
            return found
        return account_read_start(
            customer=customer, spec=spec_from_json(spec), user=user, purpose=AccountRead.Purpose.DRIFT, enqueue=enqueue
        )


def drift_check_after_run(*, customer_id: int) -> AccountRead | None:
    """The check a repair run ends with (provisioning/engine/finish.py sends it once the run's end is committed)."""
    customer = Customer.objects.filter(pk=customer_id, is_active=True).first()
    if customer is None:
        return None
    read = drift_check_start(customer=customer)
    if read is not None:
        audit_record(
            action="drift.requested",
            actor_label="repair run",
            customer=customer,
            target=customer.name,
            details={"read": str(read.pk), "why": "a repair run succeeded"},
        )
    return read


def drift_checks_start() -> int:
    """The schedule's check: one pending check for every active customer with a desired state, no run in
    progress (a run changes the account as it goes) and no check under way, recorded at once and taken by
    DRIFT_CONCURRENCY tasks. How many started."""
    desired = Run.objects.filter(customer=OuterRef("pk"), status=Run.Status.SUCCEEDED, offboard="").order_by(
        "-finished_at"
    )
    under_way = AccountRead.objects.filter(
        purpose=AccountRead.Purpose.DRIFT,
        status__in=(AccountRead.Status.PENDING, AccountRead.Status.RUNNING),
        created_at__gte=timezone.now() - LOST_AFTER,
    )
    with transaction.atomic():
        customers = (
            Customer.objects.select_for_update()  # a Check now at the same moment waits: one check per account
            .filter(is_active=True, offboarded_at__isnull=True, pk__in=desired.values("customer"))
            .exclude(pk__in=Run.objects.filter(status__in=Run.ACTIVE).values("customer"))
            .exclude(pk__in=under_way.values("customer"))
            .annotate(desired_spec=Subquery(desired.values("spec")[:1]))
            .order_by("pk")
        )
        reads = AccountRead.objects.bulk_create(
            AccountRead(customer=c, purpose=AccountRead.Purpose.DRIFT, spec=c.desired_spec) for c in customers
        )
        audit_record(action="drift.scheduled", actor_label="drift schedule", details={"customers": len(reads)})
        for _ in range(min(settings.DRIFT_CONCURRENCY, len(reads))):
            transaction.on_commit(lambda: current_app.send_task(WORK_TASK), robust=True)
    return len(reads)


def _next_pending() -> str | None:
    pending = AccountRead.objects.filter(purpose=AccountRead.Purpose.DRIFT, status=AccountRead.Status.PENDING)
    found = pending.order_by("created_at").values_list("pk", flat=True).first()
    return str(found) if found else None


def drift_checks_work(*, seconds: float = WORK_FOR_SECONDS) -> int:
    """Carry out pending checks one after another for about `seconds`; then hand on to a new task if any are
    left. How many this call carried out."""
    started, done = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        read_id = _next_pending()
        if read_id is None:
            return done
        done += drift_check_execute(read_id=read_id) is not None
    if _next_pending() is not None:
        current_app.send_task(WORK_TASK)
    return done


def drift_check_execute(*, read_id: UUID | str) -> DriftState | None:
    """Carry out one check (safe twice: only the first claims it) and record what it found."""
    read = account_read_execute(read_id=read_id)
    if read is None or read.purpose != AccountRead.Purpose.DRIFT:
        return None
    return drift_record(read=read)


def drift_differences(items: list[dict], *, checked: datetime, read_id: str) -> list[dict]:
    """A read's items as differences in words: each field that is not as wanted, and each resource missing
    or still there when it should not be."""
    found = []
    for item in items:
        fields = list(item["differences"])
        if item["action"] in _ITEM_WORDS:
            expected, actual = _ITEM_WORDS[item["action"]]
            fields.insert(0, {"field": "resource", "expected": expected, "actual": actual, "repairable": True})
        for difference in fields:
            field, expected, actual = difference["field"], difference["expected"], difference["actual"]
            words = f"{item['title']}: {field}: expected {expected}, found {actual}"
            if not difference["repairable"]:
                words += " (Repair does not change this)"
            found.append(
                {
                    "key": item["key"],
                    "title": item["title"],
                    **difference,
                    "words": words,
                    "since": checked.isoformat(),
                    "since_read": read_id,
                }
            )
    return found


def _carried(found: list[dict], before: list[dict]) -> tuple[list[dict], list[dict]]:
    """The differences with the check that first found each kept, and those no check found before."""
    earlier = {(d["key"], d["field"]): d for d in before}
    new = []
    for difference in found:
        first = earlier.get((difference["key"], difference["field"]))
        if first is None:
            new.append(difference)
        else:
            difference["since"], difference["since_read"] = first["since"], first["since_read"]
    return found, new


def drift_record(*, read: AccountRead) -> DriftState:
    """Record what a finished check found on the customer's DriftState; tell the customer's tech leads and
    the Admins (notify.drift_notify) when it found a difference no earlier check had found."""
    checked = read.finished_at or timezone.now()
    with transaction.atomic():
        state = DriftState.objects.select_for_update().filter(customer=read.customer).first()
        if state is not None and state.checked_at > checked:
            return state  # a later check was recorded first
        before = state.differences if state else []
        new: list[dict] = []
        new_state, reason = DriftState.State.UNREACHABLE, read.error_message
        differences = before  # an account that could not be read keeps its last known differences
        if read.status == AccountRead.Status.DONE:
            differences, new = _carried(drift_differences(read.items, checked=checked, read_id=str(read.pk)), before)
            new_state, reason = (DriftState.State.DRIFTED if differences else DriftState.State.IN_SYNC), ""
        since = state.since if state and state.state == new_state else checked
        state, _ = DriftState.objects.update_or_create(
            customer=read.customer,
            defaults={"state": new_state, "differences": differences, "reason": reason, "since": since,
                      "checked_at": checked, "last_read": read},
        )  # fmt: skip
        audit_record(
            action="drift.checked",
            actor_label="drift check",
            customer=read.customer,
            target=read.customer.name,
            details={"read": str(read.pk), "state": new_state, "differences": len(differences), "new": len(new)},
        )
        if new:
            drift_notify(
                customer=read.customer,
                differences=[d["words"] for d in differences],
                checked_at=checked,
                repairable=state.repairable,
            )
    return state


def drift_overview() -> list[Customer]:
    """Every active customer not offboarded with its drift state, worst first: Unreachable, Drifted, In
    sync, never checked; within each, the longest in that state first."""
    return list(
        Customer.objects.filter(is_active=True, offboarded_at__isnull=True)
        .select_related("drift")
        .annotate(drift_rank=drift_rank())
        .order_by("drift_rank", "drift__since", "name")
    )
