"""Offboarding a customer, in one of two modes chosen explicitly, each a difference plan previewed and
confirmed like any run (provisioning.plan.plan_registry: the desired state that wants less):

- the agency leaves: the team users Onramp made are removed; what the customer's app needs stays, handed over;
- decommission: everything Onramp made is removed; what holds data only once its name is typed.

Once the run succeeds the customer is offboarded (engine.runs.run_create refuses new runs) until an Admin reactivates
them. Runs, audit and ledger are kept.
"""

from uuid import UUID

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from provisioning.approvals import plan_start
from provisioning.audit.chain import audit_record
from provisioning.customers import customer_desired_spec, customer_refuse_if_offboarded
from provisioning.models import AccountRead, Customer, PlanApproval, Run
from provisioning.plan import plan_decide
from provisioning.reads import account_read_start
from provisioning.spec import SpecError, spec_parse
from provisioning.vocabulary import OffboardMode

# What each mode does, in words: the choice page and the plan say it.
MODE_WORDS = {
    OffboardMode.LEAVE: (
        "The agency's people lose access: the team users Onramp created are removed (console login, keys, "
        "policies, then the user). What the customer's app needs stays and is handed over: its IAM user and "
        "access key, the media policy, the group, the sign-in alias, the bucket and the repository. The customer "
        "is then told how to delete Onramp's role."
    ),
    OffboardMode.DECOMMISSION: (
        "The app is shut down: everything Onramp created goes, the app's access key and user included. The "
        "bucket and the repository go only if they are empty, or once their names are typed. What was already "
        "there before Onramp is left in the account unless you tick it."
    ),
}


class OffboardRefused(Exception):
    """This customer cannot be offboarded now, in a sentence."""


def offboard_start(*, customer: Customer, mode: str, user: User) -> AccountRead:
    """Read the customer's account for an offboarding in `mode` (a task; the plan page polls it), audited."""
    if mode not in OffboardMode.values:
        raise OffboardRefused("Choose how the customer is offboarded.")
    customer_refuse_if_offboarded(customer=customer, user=user, doing="offboard")
    desired = customer_desired_spec(customer=customer)
    if desired is None:
        raise OffboardRefused(f"{customer.name} has no onboarding: Onramp made nothing there to offboard.")
    try:
        spec = spec_parse(desired)
    except SpecError:
        raise OffboardRefused(
            f"{customer.name}'s last spec no longer passes today's rules: change the team or settings first."
        ) from None
    with transaction.atomic():
        audit_record(
            action="offboard.requested", actor=user, customer=customer, target=customer.name, details={"mode": mode}
        )
        return account_read_start(
            customer=customer, spec=spec, user=user, purpose=AccountRead.Purpose.OFFBOARD, offboard=mode
        )


def offboard_read(*, customer: Customer, read_id: UUID | str) -> AccountRead | None:
    """An offboarding read of this customer, or None."""
    return AccountRead.objects.filter(
        pk=read_id, customer=customer, purpose=AccountRead.Purpose.OFFBOARD, offboard__in=OffboardMode.values
    ).first()


def offboard_confirm(
    *, read: AccountRead, user: User, delete: set[int], typed: dict[int, str], emergency: str = ""
) -> PlanApproval | Run:
    """An offboarding always needs a second person: save the plan a read made, with the tech lead's ticks and
    typed names (plan_decide), as awaiting approval; approving it starts the run (provisioning/approvals.py).
    `emergency`: an Admin's reason to start it alone (break-glass)."""
    if read.status != AccountRead.Status.DONE:
        raise OffboardRefused("The account was not read for this plan yet: check the plan again.")
    items = plan_decide(read.items, delete=set(delete), typed=typed, offboard=read.offboard)
    # Not in one transaction with the run: a refusal (offboarded meanwhile, a run in progress) stays audited.
    customer_refuse_if_offboarded(customer=read.customer, user=user, doing="offboard")
    return plan_start(
        spec=spec_parse(read.spec),
        customer=read.customer,
        user=user,
        read=read,
        items=items,
        offboard=read.offboard,
        emergency=emergency,
    )


def customer_reactivate(*, customer: Customer, user: User) -> bool:
    """An Admin ends an offboarding: runs may start again (audited). False when the customer was not offboarded."""
    with transaction.atomic():
        current = Customer.objects.select_for_update().get(pk=customer.pk)
        if current.offboarded_at is None:
            return False
        details = {
            "mode": current.offboard_mode,
            "offboarded_at": current.offboarded_at.isoformat(),
            "offboarded_by": current.offboarded_by.get_username() if current.offboarded_by else None,
        }
        current.offboarded_at, current.offboarded_by, current.offboard_mode = None, None, ""
        current.updated_at = timezone.now()
        current.save(update_fields=["offboarded_at", "offboarded_by", "offboard_mode", "updated_at"])
        audit_record(action="customer.reactivated", actor=user, customer=current, target=current.name, details=details)
    return True
