"""Authentication rules that hold with or without the identity provider:

- passwords: everyone's while OIDC is off; with OIDC configured, superusers' only (break-glass);
- `fresh_auth_required`: a view that shows or makes a secret needs a sign-in younger than
  FRESH_AUTH_MAX_AGE, else the person signs in again (the provider, or their password) and comes
  back to the page that offers the action.
"""

import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from provisioning.audit.chain import audit_record
from provisioning.identity.oidc import AUTH_AT, oidc_enabled
from provisioning.identity.permissions import is_portal_user
from provisioning.models import AuditEvent


class PasswordBackend(ModelBackend):
    """Django's password check; while OIDC is configured, only for superusers (break-glass)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and oidc_enabled() and not user.is_superuser:
            if request is not None:
                request.onramp_password_refused = True  # the login form and the audit say why
            return None
        return user

    def get_user(self, user_id):
        # A password session from before SSO was switched on ends with it, as a new one could not be made.
        user = super().get_user(user_id)
        if user is not None and oidc_enabled() and not user.is_superuser:
            return None
        return user


class LoginForm(AuthenticationForm):
    def get_invalid_login_error(self):
        self.break_glass_refused = getattr(self.request, "onramp_password_refused", False)
        if self.break_glass_refused:
            return ValidationError(
                f"Passwords are for break-glass only: sign in with {settings.OIDC_PROVIDER_NAME}.",
                code="break_glass_only",
            )
        return super().get_invalid_login_error()


def auth_age(request: HttpRequest) -> float | None:
    """Seconds since this session's last authentication, None if unknown (a session from before)."""
    at = request.session.get(AUTH_AT)
    return None if at is None else max(0.0, time.time() - float(at))


def auth_mark_fresh(request: HttpRequest) -> None:
    request.session[AUTH_AT] = time.time()


def fresh_auth_required(
    view: Callable[..., HttpResponse] | None = None, *, back: str | None = None, max_age: int | None = None
) -> Any:
    """Refuse the view unless the session authenticated within `max_age` seconds (default:
    FRESH_AUTH_MAX_AGE, read at each request); send the person to sign in again, then to `back`.

    `back` names the page that offers the action (a URL name taking the view's own arguments), for
    a POST cannot be replayed through a redirect: the person lands on that page and presses the
    button again. Without `back` (a GET view), the request's own URL.
    Use: `@fresh_auth_required(back="credential_detail")` under the permission decorators."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            limit = settings.FRESH_AUTH_MAX_AGE if max_age is None else max_age
            age = auth_age(request)
            if age is not None and age <= limit:
                return view(request, *args, **kwargs)
            target = reverse(back, args=args, kwargs=kwargs) if back else request.get_full_path()
            audit_record(
                action="auth.reauth_required",
                actor=request.user,
                outcome=AuditEvent.Outcome.REFUSED,
                error_code="StaleAuthentication",
                target=target,
                details={"age": None if age is None else int(age), "max_age": limit},
            )
            url = f"{reverse('reauthenticate')}?{urlencode({'next': target})}"
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(url)
            return redirect(url)

        return wrapper

    return decorator(view) if view is not None else decorator


class ReauthForm(forms.Form):
    password = forms.CharField(label="Your password", strip=False, widget=forms.PasswordInput)

    def __init__(self, request, *args, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def clean_password(self):
        password = self.cleaned_data["password"]
        username = self.request.user.get_username()
        # authenticate(): django-axes counts the failures and locks out, as on the login page.
        user = authenticate(self.request, username=username, password=password)
        if user is None or user.pk != self.request.user.pk:
            raise ValidationError("That is not your password.", code="invalid")
        return password


def auth_context(request: HttpRequest) -> dict:
    """Template context: the provider's name when OIDC is on, and whether to show the portal's menu."""
    user = getattr(request, "user", None)
    return {
        "sso_provider": settings.OIDC_PROVIDER_NAME if oidc_enabled() else "",
        "portal_user": user is not None and is_portal_user(user),
    }
