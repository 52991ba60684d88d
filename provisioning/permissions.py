"""Who may do what: the two groups, and the lookups that check ownership."""

from functools import wraps

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404

from provisioning.models import Credential, Run
from provisioning.vocabulary import ADMINS, TECH_LEADS


def _groups(user) -> set[str]:
    if not hasattr(user, "_onramp_groups"):
        user._onramp_groups = set(user.groups.values_list("name", flat=True))
    return user._onramp_groups


def is_admin(user) -> bool:
    return user.is_authenticated and (user.is_superuser or ADMINS in _groups(user))


def is_portal_user(user) -> bool:
    """Tech leads and Admins use the portal; anyone else may log in and do nothing."""
    return user.is_authenticated and (is_admin(user) or TECH_LEADS in _groups(user))


def portal_user_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_portal_user(request.user):
            raise PermissionDenied("Onramp is for the Tech leads and Admins groups. Ask an admin to add you.")
        return view(request, *args, **kwargs)

    return wrapper


def access_grantors(*, limit: int = 10) -> list:
    """Who can give someone access: active Admins and superusers (shown to a person in no group)."""
    users = get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__name=ADMINS), is_active=True)
    return list(users.distinct().order_by("username")[:limit])


def may_manage_run(user, run: Run) -> bool:
    return run.started_by_id == user.pk or is_admin(user)


def get_run_for_user(request, run_id, *, manage: bool = False) -> Run:
    """Any portal user may look at a run; only its starter or an Admin may act on it (else 404)."""
    run = get_object_or_404(Run.objects.select_related("customer", "started_by"), pk=run_id)
    if manage and not may_manage_run(request.user, run):
        raise Http404("No such run.")
    return run


def get_credential_for_user(request, credential_id) -> Credential:
    """A credential exists, for this user, only if they were issued it or are an Admin: 404 otherwise,
    so ids cannot be probed."""
    credential = get_object_or_404(
        Credential.objects.select_related("run", "customer", "revealed_by"), pk=credential_id
    )
    if not (credential.issued_to_id == request.user.pk or is_admin(request.user)):
        raise Http404("No such credential.")
    return credential
