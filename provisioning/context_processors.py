"""Template context shared by every page."""

from django.http import HttpRequest

from provisioning.approvals import approvals_waiting_count
from provisioning.identity.permissions import is_portal_user
from provisioning.vocabulary import Access, MediaScope, MemberRole


def vocabulary(request: HttpRequest) -> dict:
    """The spec's words, so templates compare with Access.ROLE rather than a literal "role"."""
    return {"Access": Access, "MediaScope": MediaScope, "MemberRole": MemberRole}


def approvals(request: HttpRequest) -> dict:
    """How many plans wait for the signed-in person's approval, for the menu (0 shows nothing)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not is_portal_user(user):
        return {}
    return {"approvals_waiting": approvals_waiting_count(user)}
