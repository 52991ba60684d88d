"""Reading a customer's account against a desired spec, as a task: the difference a plan shows (and, for
the drift check, what no longer matches). Read-only, audited like every AWS call."""

from uuid import UUID

from botocore.exceptions import ClientError
from celery import current_app
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from provisioning.audit.chain import audit_record
from provisioning.aws.accounts import account_for_spec
from provisioning.aws.calls import aws_work
from provisioning.aws.errors import NO_ANSWER_ERRORS, error_translate
from provisioning.checks import BLOCK, checks_sentence, plan_checks, region_check
from provisioning.errors import OnrampError
from provisioning.kinds.preflight.aws import identity_check
from provisioning.ledger import ledger_changed_lately, ledger_rows
from provisioning.models import AccountRead, AuditEvent, Customer
from provisioning.plan import plan_difference, plan_offboard, plan_registry
from provisioning.spec import Spec, spec_from_json
from provisioning.steps.reading import SETTLING_READS, account_seen, seen_fingerprint
from provisioning.teams import customer_permission_check

READ_TASK = "provisioning.tasks.account_read"
DRIFT_SOURCE_IDENTITY = "onramp-drift-check"  # the reads a drift check makes, which no person started


def account_read_now(*, customer: Customer, spec: Spec, user: User) -> AccountRead:
    """Read the account in this process (the onboard command waits for it anyway), audited the same way."""
    customer_permission_check(user=user, customer=customer, action="plan")
    read = AccountRead.objects.create(customer=customer, requested_by=user, spec=spec.to_json())
    account_read_execute(read_id=read.pk)  # claims it: nobody else knows the new read
    read.refresh_from_db()
    return read


def account_read_start(
    *,
    customer: Customer,
    spec: Spec,
    user: User | None,
    purpose: str = AccountRead.Purpose.PLAN,
    offboard: str = "",
    enqueue: bool = True,
) -> AccountRead:
    """Record a read of the customer's account against `spec` and enqueue it once that is committed (unless
    `enqueue` is False: the drift check's bounded workers take pending reads themselves). With `offboard`
    (a mode), the read plans that offboarding: the desired state that wants less. A plan or an offboarding is
    for the customer's team and Admins (customer_permission_check); a drift check changes nothing, anyone may."""
    if purpose != AccountRead.Purpose.DRIFT:
        assert user is not None  # a plan or an offboarding is always someone's
        action = "offboard" if purpose == AccountRead.Purpose.OFFBOARD else "plan"
        customer_permission_check(user=user, customer=customer, action=action)
    with transaction.atomic():
        read = AccountRead.objects.create(
            customer=customer, requested_by=user, purpose=purpose, spec=spec.to_json(), offboard=offboard
        )
        audit_record(
            action=f"{purpose}.read_requested",
            actor=user,
            actor_label=None if user else "drift schedule",
            customer=customer,
            target=customer.name,
            details={"read": str(read.pk)},
        )
        if enqueue:
            transaction.on_commit(lambda: current_app.send_task(READ_TASK, args=[str(read.pk)]), robust=True)
    return read


def _read_account(read: AccountRead, spec: Spec) -> dict:
    """The account read against the spec and the ledger: {"items", "fingerprint"}; raises OnrampError."""
    user = read.requested_by
    registry = plan_registry(read.offboard)
    try:
        account = account_for_spec(
            customer=read.customer,
            spec=spec,
            session_name=f"onramp-read-{read.pk}",
            source_identity=user.get_username() if user else DRIFT_SOURCE_IDENTITY,
            services=registry.services(),  # the read calls each of them: made while the role is assumed
        )
        identity_check(sts=account.client("sts"), account_id=spec.account_id)
        ledger = ledger_rows(customer_id=read.customer_id)
        lately = ledger_changed_lately(customer_id=read.customer_id, kinds=SETTLING_READS)
        drift = read.purpose == AccountRead.Purpose.DRIFT
        seen = account_seen(
            account,
            spec=spec,
            ledger=ledger,
            registry=registry,
            changed_lately=lately,
            adoptions=not drift,
            beside=not drift,
        )
        items = plan_difference(spec=spec, ledger=ledger, seen=seen, registry=registry)
        if read.offboard:
            items = plan_offboard(items)
        rows = [item.to_json() for item in items]
        checks = []
        if _checked(read):
            checks = plan_checks(account, spec=spec, customer_id=read.customer_id, items=rows)
    except (ClientError, *NO_ANSWER_ERRORS) as exc:  # explained the same way a step's would be
        raise error_translate(exc, doing="Reading the account") from None
    return {"items": rows, "seen": seen, "fingerprint": seen_fingerprint(seen), "checks": checks}


def _checked(read: AccountRead) -> bool:
    """An onboarding's plan is checked for what would fail (an offboarding creates nothing; drift plans nothing)."""
    return read.purpose == AccountRead.Purpose.PLAN and not read.offboard


def _region_check(read: AccountRead, spec: Spec):
    user = read.requested_by
    try:
        return region_check(
            customer=read.customer, spec=spec, source_identity=user.get_username() if user else DRIFT_SOURCE_IDENTITY
        )
    except (ClientError, *NO_ANSWER_ERRORS) as exc:
        raise error_translate(exc, doing="Checking the account's region") from None


def account_read_execute(*, read_id: UUID | str) -> AccountRead | None:
    """Carry out one pending read (safe to call twice: only the first claims it)."""
    if (
        AccountRead.objects.filter(pk=read_id, status=AccountRead.Status.PENDING).update(
            status=AccountRead.Status.RUNNING
        )
        != 1
    ):
        return None
    read = AccountRead.objects.select_related("customer", "requested_by").get(pk=read_id)
    user = read.requested_by
    label = f"worker for {user.get_username()}" if user else "drift check"
    with aws_work(actor_label=label, actor_id=user.pk if user else None, customer_id=read.customer_id) as log:
        try:
            spec = spec_from_json(read.spec)
            if _checked(read):
                # First, and from a region every account has: in an opt-in region the account has not enabled,
                # nothing else can be read (its credentials are refused there).
                region = _region_check(read, spec)
                read.checks = [region.to_json()]
                if region.outcome == BLOCK:
                    raise OnrampError(checks_sentence(read.checks), code="RegionNotEnabled")
            found = _read_account(read, spec)
            read.items, read.seen, read.fingerprint = found["items"], found["seen"], found["fingerprint"]
            read.checks += [check.to_json() for check in found["checks"]]
            read.status = AccountRead.Status.DONE
        except OnrampError as exc:
            read.status, read.error_code, read.error_message = AccountRead.Status.FAILED, exc.code[:128], str(exc)
        read.finished_at = timezone.now()
        actions: dict[str, int] = {}
        for item in read.items:
            actions[item["action"]] = actions.get(item["action"], 0) + 1
        log.record(
            action=f"{read.purpose}.read",
            customer=read.customer_id,
            outcome=AuditEvent.Outcome.OK if read.status == AccountRead.Status.DONE else AuditEvent.Outcome.ERROR,
            error_code=read.error_code,
            target=read.customer.name,
            details={"read": str(read.pk), "actions": actions},
        )
    # Saved once its calls' audit is written (on leaving aws_work): whoever sees the read done or failed finds
    # every call of it in the audit already.
    read.save(
        update_fields=["items", "seen", "fingerprint", "checks", "status", "error_code", "error_message", "finished_at"]
    )
    return read
