"""Audit of authentication: logins, failed logins, logouts and lockouts.

A failed login or a lockout names the username only when it is one of ours: anyone can type anything in
the login form, and what a stranger types has no place in the hash-chained log (it would also let them
fill it with text of their choosing on every attempt).
"""

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from provisioning.audit import audit_record
from provisioning.login_limits import client_ip
from provisioning.models import AuditEvent


def _ip(request) -> str:
    return client_ip(request) if request is not None else ""


def _known_username(typed) -> str:
    """The typed username if a user has it, else "" (the typed value is not recorded)."""
    username = str(typed or "")[:150]
    if username and get_user_model().objects.filter(username=username).exists():
        return username
    return ""


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=user, target=user.get_username(), details={"ip": _ip(request)})


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=user, target=user.get_username(), details={"ip": _ip(request)})


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = _known_username(credentials.get("username"))
    audit_record(
        action="auth.login_failed",
        actor_label=username or "anonymous",
        outcome=AuditEvent.Outcome.ERROR,
        error_code="BadCredentials" if username else "UnknownUsername",
        target=username,
        details={"ip": _ip(request)},
    )


@receiver(user_locked_out)
def _locked_out(sender, request, username, ip_address, **kwargs):
    username = _known_username(username)
    audit_record(
        action="auth.locked_out",
        actor_label=username or "anonymous",
        outcome=AuditEvent.Outcome.REFUSED,
        error_code="TooManyFailures",
        target=username,
        details={"ip": ip_address},
    )
