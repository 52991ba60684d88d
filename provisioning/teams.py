"""Each customer's team of tech leads, and the one rule of who may change a customer.

Only the customer's team and Admins may plan, run, repair, offboard, rotate, reveal or change the settings of
a customer; every other portal user sees the customer read-only. Every view, service and command asks
`customer_permission_check` (it sits below the services and runs, so that each of them can).
"""

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from provisioning.audit.chain import audit_record
from provisioning.models import AuditEvent, Customer
from provisioning.vocabulary import ADMINS, TECH_LEADS

# What only the team and Admins may do to a customer, in the words the refusal says.
CUSTOMER_ACTIONS = {
    "plan": "plan changes for",
    "run": "run or cancel a run for",
    "repair": "repair",
    "offboard": "offboard",
    "rotate": "issue or remove an access key for",
    "reveal": "reveal a secret of",
    "settings": "change the team or settings of",
}


# For the type checker: what the middleware adds to every request (django-htmx's `htmx`), and what a view behind
# permissions.portal_user_required (or the admin's own checks) receives: a request whose user signed in.
class HtmxRequest(HttpRequest):
    htmx: HtmxDetails


class PortalRequest(HtmxRequest):
    user: User


def _groups(user) -> set[str]:
    if not hasattr(user, "_onramp_groups"):
        user._onramp_groups = set(user.groups.values_list("name", flat=True))
    return user._onramp_groups


def is_admin(user: User | AnonymousUser) -> bool:
    return user.is_authenticated and (user.is_superuser or ADMINS in _groups(user))


def is_tech_lead(user: User | AnonymousUser) -> bool:
    return user.is_authenticated and TECH_LEADS in _groups(user)


class NotOnCustomerTeam(PermissionDenied):
    """The person is not on the customer's team (nor an Admin): a sentence saying who to ask."""

    def __init__(self, *, user, customer: Customer, action: str):
        self.customer = customer
        super().__init__(
            f"Only {customer.name}'s team and Admins may {CUSTOMER_ACTIONS[action]} {customer.name}; "
            f"{user.get_username()} is not on it. Ask an Admin to add you to the customer's team."
        )


def customer_may_change(user: User, customer: Customer) -> bool:
    """Whether `user` may plan, run, repair, offboard, rotate, reveal or change settings for `customer`."""
    if is_admin(user):
        return True
    return is_tech_lead(user) and customer.team.filter(pk=user.pk).exists()


def customer_permission_check(*, user: User, customer: Customer, action: str) -> None:
    """Raise NotOnCustomerTeam (a PermissionDenied: the 403 page), audited as refused, unless `user` may do
    `action` (one of CUSTOMER_ACTIONS) for `customer`."""
    if action not in CUSTOMER_ACTIONS:
        raise ValueError(f"Unknown customer action {action!r}.")
    if customer_may_change(user, customer):
        return
    audit_record(
        action="customer.refused",
        actor=user,
        customer=customer,
        outcome=AuditEvent.Outcome.REFUSED,
        error_code="NotOnCustomerTeam",
        target=customer.name,
        details={"reason": "not on the customer's team", "doing": action},
    )
    raise NotOnCustomerTeam(user=user, customer=customer, action=action)


def customer_team_join(*, customer: Customer, user: User, via: str) -> bool:
    """Put a tech lead on the customer's team (audited); False if they already were on it or are not a tech
    lead (an Admin needs no team)."""
    if not is_tech_lead(user) or customer.team.filter(pk=user.pk).exists():
        return False
    customer.team.add(user)
    audit_record(
        action="customer.team_changed",
        actor=user,
        customer=customer,
        target=customer.name,
        details={"added": [user.get_username()], "removed": [], "via": via},
    )
    return True


def customer_team_changed(*, customer: Customer, user: User, before: set[int], via: str) -> None:
    """Audit an Admin's change of a customer's team (`before`: the members' ids before it), if any."""
    after = set(customer.team.values_list("pk", flat=True))
    if after == before:
        return
    names = dict(customer.team.model.objects.filter(pk__in=before | after).values_list("pk", "username"))
    audit_record(
        action="customer.team_changed",
        actor=user,
        customer=customer,
        target=customer.name,
        details={
            "added": sorted(names[pk] for pk in after - before),
            "removed": sorted(names[pk] for pk in before - after),
            "via": via,
        },
    )
