"""Who may do what: the two groups, and the lookups that check ownership."""

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils import timezone

from provisioning.audit.chain import audit_record
from provisioning.models import AuditEvent, Credential, Run
from provisioning.teams import (
    HtmxRequest,
    NotOnCustomerTeam,
    PortalRequest,
    customer_may_change,
    customer_permission_check,
    is_admin,
    is_tech_lead,
)
from provisioning.vocabulary import TECH_LEADS

# Re-exported: the views and services ask this module who may do what.
__all__ = [
    "HtmxRequest",
    "NotOnCustomerTeam",
    "PortalRequest",
    "TECH_LEADS",
    "customer_may_change",
    "customer_permission_check",
    "is_admin",
]


def is_portal_user(user: User | AnonymousUser) -> bool:
    """Tech leads and Admins use the portal; anyone else may log in and do nothing."""
    return is_admin(user) or is_tech_lead(user)


def portal_user_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_portal_user(request.user):
            raise PermissionDenied("Onramp is for the Tech leads and Admins groups. Ask an admin to add you.")
        return view(request, *args, **kwargs)

    return wrapper


# A person in no group reaches only refusals, and each is audited with the path they typed: at most
# ACCESS_DENIED_LIMIT rows per person in ACCESS_DENIED_WINDOW seconds (anonymous refusals share one count), each
# path cut to ACCESS_DENIED_TARGET_MAX characters, so nobody can fill the append-only log with text of their choice.
ACCESS_DENIED_LIMIT = 20
ACCESS_DENIED_WINDOW = 600
ACCESS_DENIED_TARGET_MAX = 200


def access_denied_record(*, user: User | AnonymousUser, path: str) -> AuditEvent | None:
    """Audit a refused request (the 403 page), unless this person's refusals already reached the limit of the
    window; the last row recorded says that the next ones are not. None when not recorded."""
    actor = user if user.is_authenticated else None
    if len(path) > ACCESS_DENIED_TARGET_MAX:
        path = path[: ACCESS_DENIED_TARGET_MAX - 1] + "…"
    with transaction.atomic():
        if actor is not None:
            # One person's refusals in parallel requests are counted one after another: the limit holds.
            get_user_model().objects.select_for_update().only("pk").get(pk=actor.pk)
        since = timezone.now() - timedelta(seconds=ACCESS_DENIED_WINDOW)
        recent = AuditEvent.objects.filter(action="access.denied", actor=actor, created_at__gte=since).count()
        if recent >= ACCESS_DENIED_LIMIT:
            return None
        details = {}
        if recent == ACCESS_DENIED_LIMIT - 1:
            details = {"limit_reached": ACCESS_DENIED_LIMIT, "not_recorded_for_seconds": ACCESS_DENIED_WINDOW}
        return audit_record(
            action="access.denied",
            actor=actor,
            outcome=AuditEvent.Outcome.REFUSED,
            error_code="Forbidden",
            target=path,
            details=details,
        )


def may_manage_run(user: User, run: Run) -> bool:
    """Acting on a run (retry, cancel, a new key, plan again) is for the customer's team and Admins."""
    return customer_may_change(user, run.customer)


def get_run_for_user(request: PortalRequest, run_id: UUID | str, *, action: str | None = None) -> Run:
    """Any portal user may look at a run; only the customer's team or an Admin may `action` it
    (customer_permission_check: 403, audited)."""
    run = get_object_or_404(Run.objects.select_related("customer", "started_by", "approved_by"), pk=run_id)
    if action is not None:
        customer_permission_check(user=request.user, customer=run.customer, action=action)
    return run


def get_credential_for_user(request: PortalRequest, credential_id: UUID | str) -> Credential:
    """A credential exists, for this user, only if they were issued it or are an Admin: 404 otherwise,
    so ids cannot be probed."""
    credential = get_object_or_404(
        Credential.objects.select_related("run", "customer", "revealed_by"), pk=credential_id
    )
    if not (credential.issued_to_id == request.user.pk or is_admin(request.user)):
        raise Http404("No such credential.")
    return credential
