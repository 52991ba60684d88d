"""Audit of authentication: logins, failed logins, logouts and lockouts."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from provisioning.audit import audit_record
from provisioning.models import AuditEvent


def _ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=user, target=user.get_username(), details={"ip": _ip(request)})


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=user, target=user.get_username(), details={"ip": _ip(request)})


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action="auth.login_failed",
        actor_label=username or "anonymous",
        outcome=AuditEvent.Outcome.ERROR,
        error_code="BadCredentials",
        target=username,
        details={"ip": _ip(request)},
    )


@receiver(user_locked_out)
def _locked_out(sender, request, username, ip_address, **kwargs):
    audit_record(
        action="auth.locked_out",
        actor_label=str(username or "anonymous")[:150],
        outcome=AuditEvent.Outcome.REFUSED,
        error_code="TooManyFailures",
        target=str(username or ""),
        details={"ip": ip_address},
    )
