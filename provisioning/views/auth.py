"""Sign-in pages: the login page (the provider first when configured, passwords as break-glass), the
logout (the provider's too where it offers it), and the fresh sign-in that comes before a secret."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from provisioning.addresses import client_ip
from provisioning.audit.chain import audit_record
from provisioning.identity import people
from provisioning.identity.auth import LoginForm, ReauthForm, auth_age, auth_mark_fresh
from provisioning.identity.oidc import (
    ProviderUnavailable,
    fresh_sign_in_redirect,
    oidc_enabled,
    oidc_session,
    provider_logout_url,
    provider_unavailable,
    safe_next,
)
from provisioning.identity.permissions import PortalRequest, portal_user_required

login_view = LoginView.as_view(form_class=LoginForm, redirect_authenticated_user=True)


@never_cache
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Ends Onramp's session, then, for a session signed in through the provider, the provider's own
    (where it offers RP-initiated logout), so that the next sign-in asks for the password again."""
    provider_url = provider_logout_url(request)  # read before the session, and its ID token, are gone
    logout(request)
    return redirect(provider_url or settings.LOGOUT_REDIRECT_URL)


@portal_user_required
@never_cache
@require_http_methods(["GET", "POST"])
def reauthenticate(request: PortalRequest) -> HttpResponse:
    """Sign in again: through the provider for its users, with the password for local ones."""
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if oidc_session(request):
        try:
            return fresh_sign_in_redirect(request, next_url=next_url)
        except ProviderUnavailable as exc:
            return provider_unavailable(request, exc)
    form = ReauthForm(request, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        auth_mark_fresh(request)
        audit_record(
            action="auth.reauthenticated",
            actor=request.user,
            target=request.user.get_username(),
            details={"method": "password", "break_glass": oidc_enabled(), "ip": client_ip(request)},
        )
        return redirect(next_url)
    age = auth_age(request)
    return render(
        request,
        "registration/reauth.html",
        {"form": form, "next": next_url, "minutes": None if age is None else int(age // 60)},
    )


def admin_password_change(request: PortalRequest) -> HttpResponse:
    """The admin's page to change one's own password (Django's view), audited once the new password is saved:
    Django sends no signal for it. Wrapped in the admin's own checks in portal/urls.py."""
    with transaction.atomic():
        response = admin.site.password_change(request)
        # Django's view answers a redirect once the form has saved the password, and only then.
        if request.method == "POST" and response.status_code == 302:
            people.user_password_recorded(user=request.user, actor=request.user, via="own password change")
    return response
