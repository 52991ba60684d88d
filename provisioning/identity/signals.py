"""Audit of authentication: logins (break-glass ones named so), failed and refused logins, logouts
and lockouts. Sign-ins through the identity provider add their own rows (provisioning/identity/oidc.py).

A failed login or a lockout names the username only when it is one of ours: anyone can type anything in
the login form, and what a stranger types has no place in the hash-chained log (it would also let them
fill it with text of their choosing on every attempt).
"""

import time

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from provisioning.addresses import client_ip
from provisioning.audit.chain import audit_record
from provisioning.identity.oidc import AUTH_AT, OIDC_BACKEND, oidc_enabled
from provisioning.models import AuditEvent


def _known_username(typed) -> str:
    """The typed username if a user has it, else "" (the typed value is not recorded)."""
    username = str(typed or "")[:150]
    if username and get_user_model().objects.filter(username=username).exists():
        return username
    return ""


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    method = "oidc" if getattr(user, "backend", "") == OIDC_BACKEND else "password"
    # A password while the provider signs everyone in: a superuser's break-glass sign-in.
    action = "auth.break_glass" if method == "password" and oidc_enabled() else "auth.login"
    audit_record(
        action=action, actor=user, target=user.get_username(), details={"ip": client_ip(request), "method": method}
    )
    if request is not None and hasattr(request, "session"):
        request.session[AUTH_AT] = time.time()  # the callback corrects it from the provider's auth_time


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=user, target=user.get_username(), details={"ip": client_ip(request)})


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    if "username" not in credentials and hasattr(request, "onramp_flow"):
        return  # the provider's callback: it audits its own refusals
    username = _known_username(credentials.get("username"))
    if getattr(request, "onramp_password_refused", False):
        # The right password, but passwords are break-glass only while OIDC is configured.
        audit_record(
            action="auth.password_refused",
            actor_label=username,
            outcome=AuditEvent.Outcome.REFUSED,
            error_code="BreakGlassOnly",
            target=username,
            details={"ip": client_ip(request)},
        )
        return
    audit_record(
        action="auth.login_failed",
        actor_label=username or "anonymous",
        outcome=AuditEvent.Outcome.ERROR,
        error_code="BadCredentials" if username else "UnknownUsername",
        target=username,
        details={"ip": client_ip(request)},
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
