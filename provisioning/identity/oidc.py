"""Sign-in with the agency's identity provider (OpenID Connect), on mozilla-django-oidc.

The library does the protocol: state, nonce and PKCE in the session, the code exchange, the ID
token's signature, the userinfo call, and the callback's login. Onramp adds, here:

- the provider's endpoints from its discovery document (`OIDC_ISSUER`), read at request time so
  that nothing changes while OIDC is off (development, the demo, most tests);
- who gets in: a verified email in an allowed domain; the username is that email, lowercased; the
  provider's `iss`+`sub` stored at the first sign-in finds the user afterwards (never the email alone),
  and a superuser is never signed in through the provider (break-glass: a password);
- as what: the groups claim mapped to Tech leads / Admins at every sign-in and renewal (added and
  removed, audited), or, with no groups claim configured (Google Workspace), an Admin's choice;
- refused sign-ins throttled per provider identity (`iss`+`sub`), with a high ceiling per address;
- the session re-checked with the provider every `OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS` (htmx requests
  are told to reload the page rather than follow a redirect into a fragment), and a person the
  provider no longer knows deactivated;
- logout at the provider too where it publishes an `end_session_endpoint` (RP-initiated logout);
- a fresh sign-in (`max_age=0`, `prompt=login` where supported) for provisioning/identity/auth.py's
  `fresh_auth_required`: it counts only with an `auth_time` within the limit, unless
  OIDC_TRUST_MISSING_AUTH_TIME says the provider's answer is the sign-in (Google, which omits it).
"""

import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.contrib import auth as django_auth
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRefresh
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import add_state_and_verifier_and_nonce_to_session, generate_code_challenge
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from provisioning.addresses import client_ip
from provisioning.audit.chain import audit_record
from provisioning.models import AuditEvent, ProviderIdentity
from provisioning.teams import PortalRequest

OIDC_BACKEND = "provisioning.identity.oidc.OidcBackend"
# The session's last authentication (epoch seconds): what fresh_auth_required reads.
AUTH_AT = "onramp_auth_at"
RENEW_AT = "oidc_id_token_expiration"  # mozilla-django-oidc's name: when the session must be re-checked
KIND_LOGIN, KIND_RENEW, KIND_FRESH = "login", "renew", "fresh"
# The provider's latest ID token for this session: the id_token_hint of RP-initiated logout.
ID_TOKEN = "onramp_oidc_id_token"  # noqa: S105 (the session key's name, not a token)
# The session's access token and when it expires: asked of the userinfo endpoint when a renewal finds no
# session at the provider, to tell a person removed there from one whose provider session merely ended.
ACCESS_TOKEN, ACCESS_TOKEN_EXPIRES = "onramp_oidc_access_token", "onramp_oidc_access_token_expires"
_DISCOVERY_TTL = 3600


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read."""


def oidc_enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def oidc_session(request: HttpRequest) -> bool:
    """Whether this session was signed in through the provider (else a password)."""
    return oidc_enabled() and request.session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND


def provider_config() -> dict:
    """The provider's discovery document, cached an hour per issuer."""
    issuer = settings.OIDC_ISSUER
    key = f"onramp:oidc-discovery:{issuer}"
    config = cache.get(key)
    if config is None:
        try:
            response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            config = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"{settings.OIDC_PROVIDER_NAME} did not answer ({type(exc).__name__}).")
        if config.get("issuer", "").rstrip("/") != issuer:
            raise ProviderUnavailable(f"The discovery document names another issuer: {config.get('issuer')!r}.")
        cache.set(key, config, _DISCOVERY_TTL)
    return config


def provider_origin() -> str:
    parts = urlsplit(settings.OIDC_ISSUER)
    return f"{parts.scheme}://{parts.netloc}"


def authorization_redirect(
    request: HttpRequest, *, kind: str, next_url: str, extra: dict | None = None
) -> HttpResponseRedirect:
    """Send the browser to the provider (code flow with state, nonce and PKCE, as mozilla-django-oidc's
    own views do), remembering in the state's entry what this sign-in is for and where to go after."""
    endpoint = provider_config()["authorization_endpoint"]
    state = get_random_string(32)
    verifier = get_random_string(64)
    params = {
        "response_type": "code",
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "redirect_uri": request.build_absolute_uri(reverse("oidc_callback")),
        "scope": settings.OIDC_RP_SCOPES,
        "state": state,
        "nonce": get_random_string(32),
        "code_challenge": generate_code_challenge(verifier, "S256"),
        "code_challenge_method": "S256",
        **(extra or {}),
    }
    add_state_and_verifier_and_nonce_to_session(request, state, params, verifier)
    request.session["oidc_states"][state].update({"onramp_kind": kind, "onramp_next": next_url})
    request.session.modified = True
    return HttpResponseRedirect(f"{endpoint}?{urlencode(params)}")


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where to send the browser after Onramp's logout so that the provider's session ends too (OpenID Connect
    RP-Initiated Logout): its `end_session_endpoint`, with this session's ID token as `id_token_hint` and the
    login page as `post_logout_redirect_uri` (registered at the provider). None for a password session, or a
    provider that publishes no such endpoint (Google), or one that does not answer: Onramp's logout stands."""
    id_token = request.session.get(ID_TOKEN)
    if not oidc_session(request) or not id_token:
        return None
    try:
        endpoint = provider_config().get("end_session_endpoint")
    except ProviderUnavailable:
        return None
    if not endpoint:
        return None
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL)),
        "client_id": settings.OIDC_RP_CLIENT_ID,
    }
    return f"{endpoint}?{urlencode(params)}"


def safe_next(request: HttpRequest, value: str | None) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def provider_unavailable(request: HttpRequest, exc: ProviderUnavailable) -> HttpResponse:
    return render(
        request,
        "registration/sso_unavailable.html",
        {"reason": str(exc), "provider": settings.OIDC_PROVIDER_NAME},
        status=503,
    )


@login_not_required
@require_GET
def oidc_start(request: HttpRequest) -> HttpResponse:
    """ "Sign in with <provider>" on the login page."""
    if not oidc_enabled():
        raise Http404("Single sign-on is not configured.")
    try:
        return authorization_redirect(
            request, kind=KIND_LOGIN, next_url=safe_next(request, request.GET.get("next")), extra={}
        )
    except ProviderUnavailable as exc:
        return provider_unavailable(request, exc)


def fresh_sign_in_redirect(request: PortalRequest, *, next_url: str) -> HttpResponseRedirect:
    """Through the provider again, now: `max_age=0` (OpenID Connect: re-authenticate) and `prompt=login`
    where the provider supports it (OIDC_REAUTH_PROMPT; Google does not)."""
    extra = {"max_age": 0, "login_hint": request.user.email}
    if settings.OIDC_REAUTH_PROMPT:
        extra["prompt"] = settings.OIDC_REAUTH_PROMPT
    return authorization_redirect(request, kind=KIND_FRESH, next_url=next_url, extra=extra)


# --- who gets in, as what ---


def _email(claims: dict) -> str:
    return str(claims.get("email") or "").strip().lower()


class GroupsClaimUnreadable(ValueError):
    pass


def _auth_time(id_claims: dict) -> float | None:
    """The ID token's auth_time (when the person last authenticated at the provider), if it is a number."""
    value = id_claims.get("auth_time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _email_verified(claims: dict) -> bool:
    """`email_verified` is the JSON boolean true (not "true", 1, or absent), or, where the provider never
    sends it (OIDC_TRUST_MISSING_EMAIL_VERIFIED), absent."""
    if "email_verified" not in claims:
        return settings.OIDC_TRUST_MISSING_EMAIL_VERIFIED
    return claims["email_verified"] is True


def _group_names(value) -> list[str]:
    """The groups claim's names: one string or a list of strings; absent is none. Anything else (a number, a
    boolean, an object, a list holding them) is refused rather than guessed at."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return value
    raise GroupsClaimUnreadable(
        f"{settings.OIDC_PROVIDER_NAME} sent a groups claim ({settings.OIDC_GROUPS_CLAIM}) that is not a list of "
        "group names, so Onramp cannot tell your groups. Ask its administrators to check the claim."
    )


def groups_from_claims(claims: dict) -> set[str] | None:
    """Onramp's groups the provider says this person is in; None when the provider sends no groups
    (no OIDC_GROUPS_CLAIM): then an Admin assigns them. With a claim configured, a token without it
    means no group."""
    claim = settings.OIDC_GROUPS_CLAIM
    if not claim:
        return None
    mapping = settings.OIDC_GROUP_MAP
    return {mapping[name] for name in _group_names(claims.get(claim)) if name in mapping}


def user_groups_sync(*, user: User, wanted: set[str], request: HttpRequest | None = None) -> None:
    """Make the user's mapped groups what the provider says (only groups named in OIDC_GROUP_MAP are
    touched); staff status follows (Tech leads and Admins use the admin). Audited when anything changes."""
    managed = set(settings.OIDC_GROUP_MAP.values())
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    added, removed = sorted(wanted - current), sorted(current - wanted)
    staff = bool(wanted) or user.is_superuser
    if not added and not removed and user.is_staff == staff:
        return
    with transaction.atomic():
        user.groups.add(*Group.objects.filter(name__in=added))
        user.groups.remove(*Group.objects.filter(name__in=removed))
        if user.is_staff != staff:
            user.is_staff = staff
            user.save(update_fields=["is_staff"])
        audit_record(
            action="auth.groups_changed",
            actor_label=f"{settings.OIDC_PROVIDER_NAME} (for {user.get_username()})",
            target=user.get_username(),
            details={
                "added": added,
                "removed": removed,
                "is_staff": staff,
                "source": "provider",
                "ip": client_ip(request),
            },
        )
    if hasattr(user, "_onramp_groups"):
        del user._onramp_groups


def _sso_refused(request, *, code: str, email: str = "", action: str = "auth.sso_refused") -> None:
    """Audit a sign-in through the provider that did not let someone in (once per callback)."""
    user = request.user if request.user.is_authenticated else None
    audit_record(
        action=action,
        actor=user,
        actor_label=None if user else (email or "anonymous"),
        outcome=AuditEvent.Outcome.REFUSED,
        error_code=code[:128],
        target=email or (user.get_username() if user else ""),
        details={
            "kind": getattr(request, "onramp_flow", {}).get("kind", KIND_LOGIN),
            "ip": client_ip(request),
            **getattr(request, "onramp_identity", {}),
        },
    )
    request.onramp_refusal_audited = True


def _refuse(request, *, action: str, code: str, email: str, message: str) -> None:
    _sso_refused(request, code=code, email=email, action=action)
    request.onramp_refusal = message


# Refusals by Onramp's rules that count towards the throttles (a refusal for being throttled does not).
_REFUSALS = ("auth.sso_refused", "auth.domain_refused")


def sso_refusals_count(**match: Any) -> int:
    """Refused sign-ins (not renewals or fresh sign-ins: the provider's answer to those) within the cool-off,
    from the audit log, matching `match` on their details (`sub` and `iss`, or `ip`)."""
    since = timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME)
    lookups = {f"details__{key}": value for key, value in {"kind": KIND_LOGIN, **match}.items()}
    return AuditEvent.objects.filter(
        action__in=_REFUSALS, outcome=AuditEvent.Outcome.REFUSED, created_at__gte=since, **lookups
    ).count()


def sso_address_throttled(request: HttpRequest) -> bool:
    """A flood from one address: OIDC_IP_FAILURE_LIMIT refusals, whoever they were for, within the cool-off.
    High, for an office behind one address signs in through it."""
    return sso_refusals_count(ip=client_ip(request)) >= settings.OIDC_IP_FAILURE_LIMIT


def sso_identity_throttled(*, issuer: str, subject: str) -> bool:
    """AXES_FAILURE_LIMIT refusals of one identity at the provider (`iss`+`sub`) within the cool-off: not of an
    email claim, which someone else could present to lock its owner out."""
    return sso_refusals_count(iss=issuer, sub=subject) >= settings.AXES_FAILURE_LIMIT


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with the provider's endpoints from discovery and Onramp's rules."""

    def __init__(self, *args, **kwargs):
        # The parent reads the endpoints from settings here; they come from discovery, per sign-in.
        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        # Only the callback's code exchange (it passes a nonce), and only while OIDC is configured.
        if not oidc_enabled() or request is None or "nonce" not in kwargs:
            return None
        config = provider_config()
        self.OIDC_OP_TOKEN_ENDPOINT = config["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = config["userinfo_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = config["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id):
        # Turning OIDC off ends the sessions it made; so does making their user a superuser (password only).
        user = super().get_user(user_id) if oidc_enabled() else None
        return None if user is None or user.is_superuser else user

    def verify_token(self, token, **kwargs):
        """The library checks the signature, expiry and nonce; the issuer and audience are checked here."""
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if payload.get("iss", "").rstrip("/") != settings.OIDC_ISSUER or settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token is not from the configured issuer, or not for this client.")
        return payload

    def get_token(self, payload):
        token = super().get_token(payload)
        expires_in = token.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            self.request.onramp_access_token_expires = time.time() + expires_in
        return token

    def store_tokens(self, access_token, id_token):
        # Kept on the request; the callback writes them into the session once the sign-in succeeded.
        self.request.onramp_id_token = id_token
        self.request.onramp_access_token = access_token

    def get_or_create_user(self, access_token, id_token, payload):
        """The library's, with the user found by the provider's `iss`+`sub` (stored at the first link),
        never by email alone, and a superuser never reached through the provider."""
        self.request.onramp_id_claims = payload  # auth_time, and groups if the provider puts them only here
        claims = self.get_userinfo(access_token, id_token, payload)
        if str(claims.get("sub", "")) != str(payload.get("sub", "")):
            # OpenID Connect Core 5.3.2: userinfo about anyone but the ID token's subject is not used.
            _sso_refused(self.request, code="SubjectMismatch", email=_email(claims))
            return None
        subject = str(payload["sub"])
        self.request.onramp_identity = {"iss": settings.OIDC_ISSUER, "sub": subject}
        if sso_identity_throttled(issuer=settings.OIDC_ISSUER, subject=subject):
            _refuse(
                self.request,
                action="auth.sso_throttled",
                code="TooManyRefusals",
                email=_email(claims),
                message="Too many refused sign-ins for this account: try again in "
                f"{round(settings.AXES_COOLOFF_TIME * 60)} minutes, or ask an Admin.",
            )
            return None
        if not self.verify_claims(claims):
            return None
        user = self._user_for_identity(claims, subject=subject)
        return None if user is None else self.update_user(user, claims)

    def _user_for_identity(self, claims: dict, *, subject: str):
        email = _email(claims)
        identity = ProviderIdentity.objects.filter(issuer=settings.OIDC_ISSUER, subject=subject).first()
        user = identity.user if identity else self.UserModel.objects.filter(username=email).first()
        if user is None:
            return self.create_user(claims)
        if user.is_superuser:
            # Break-glass accounts are reached by their password only, whatever the provider says.
            _refuse(
                self.request,
                action="auth.sso_refused",
                code="SuperuserPasswordOnly",
                email=email,
                message=f"This account signs in with its password, not with {settings.OIDC_PROVIDER_NAME}.",
            )
            return None
        if identity is None:
            if ProviderIdentity.objects.filter(user=user, issuer=settings.OIDC_ISSUER).exists():
                # The email's account belongs to another identity at the provider (an address reused).
                _refuse(
                    self.request,
                    action="auth.sso_refused",
                    code="EmailLinkedToAnotherIdentity",
                    email=email,
                    message=f"The Onramp account {email} belongs to another {settings.OIDC_PROVIDER_NAME} "
                    "identity. Ask an Admin.",
                )
                return None
            with transaction.atomic():
                ProviderIdentity.objects.create(user=user, issuer=settings.OIDC_ISSUER, subject=subject)
                audit_record(
                    action="auth.identity_linked",
                    actor_label=f"{settings.OIDC_PROVIDER_NAME} (for {email})",
                    target=user.get_username(),
                    details={"ip": client_ip(self.request), "iss": settings.OIDC_ISSUER, "sub": subject},
                )
        return user

    def verify_claims(self, claims):
        email = _email(claims)
        if not email or not _email_verified(claims) or len(email) > 150:
            _refuse(
                self.request,
                action="auth.sso_refused",
                code="EmailNotVerified",
                email=email,
                message=f"{settings.OIDC_PROVIDER_NAME} did not give a verified email address for this account.",
            )
            return False
        if email.rpartition("@")[2] not in settings.OIDC_ALLOWED_DOMAINS:
            _refuse(
                self.request,
                action="auth.domain_refused",
                code="DomainNotAllowed",
                email=email,
                message=f"{email} is not in an allowed domain. Onramp is for "
                + ", ".join(f"@{d}" for d in settings.OIDC_ALLOWED_DOMAINS)
                + " accounts.",
            )
            return False
        return True

    def _claims_groups(self, claims: dict) -> set[str] | None:
        id_claims = getattr(self.request, "onramp_id_claims", {}) or {}
        claim = settings.OIDC_GROUPS_CLAIM
        merged = claims if not claim or claim in claims else {**claims, claim: id_claims.get(claim)}
        return groups_from_claims(merged)

    def create_user(self, claims):
        email = _email(claims)
        with transaction.atomic():
            user = self.UserModel.objects.create_user(
                email,
                email=email,
                first_name=str(claims.get("given_name") or "")[:150],
                last_name=str(claims.get("family_name") or "")[:150],
            )  # no password: an unusable one
            subject = str(claims["sub"])
            ProviderIdentity.objects.create(user=user, issuer=settings.OIDC_ISSUER, subject=subject)
            audit_record(
                action="auth.user_created",
                actor_label=f"{settings.OIDC_PROVIDER_NAME} (for {email})",
                target=email,
                details={"ip": client_ip(self.request), "iss": settings.OIDC_ISSUER, "sub": subject},
            )
        return self._groups_apply(user, claims)

    def update_user(self, user, claims):
        return self._groups_apply(user, claims)

    def _groups_apply(self, user, claims):
        try:
            wanted = self._claims_groups(claims)
        except GroupsClaimUnreadable as exc:  # not let in (None): the callback's login_failure says why
            _refuse(
                self.request,
                action="auth.sso_refused",
                code="GroupsClaimUnreadable",
                email=user.username,
                message=str(exc),
            )
            return None
        if wanted is not None:
            user_groups_sync(user=user, wanted=wanted, request=self.request)
        return user


def provider_says_gone(request: HttpRequest) -> bool:
    """Whether the person this session signed in is gone at the provider: its userinfo endpoint refuses the
    session's access token (401) although the token has not expired, i.e. the provider revoked it with the
    account. A provider that accepts it (the person's session there merely ended), an expired or missing
    token, or no answer: not known to be gone."""
    token = request.session.get(ACCESS_TOKEN)
    if not token or float(request.session.get(ACCESS_TOKEN_EXPIRES) or 0) <= time.time():
        return False
    try:
        endpoint = provider_config()["userinfo_endpoint"]
        answer = requests.get(endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=settings.OIDC_TIMEOUT)
    except (ProviderUnavailable, KeyError, requests.RequestException):
        return False
    return answer.status_code == 401


def user_deactivate_as_gone(*, user: User, request: HttpRequest) -> None:
    """Deactivate a user the provider no longer knows: no more sign-ins, notifications or groups' duties
    (an Admin reactivates them in the admin if that was a mistake). Audited."""
    if not user.is_active:
        return
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(
            action="auth.user_deactivated",
            actor_label=f"{settings.OIDC_PROVIDER_NAME} (for {user.get_username()})",
            target=user.get_username(),
            details={"source": "provider", "reason": "gone at the provider", "ip": client_ip(request)},
        )


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """The library's callback (state, nonce, PKCE, code exchange, login), plus what each sign-in was for:
    a first sign-in, a renewal of the session, or a fresh sign-in before a secret."""

    def get(self, request):
        if not oidc_enabled():
            raise Http404("Single sign-on is not configured.")
        entry = request.session.get("oidc_states", {}).get(request.GET.get("state", "")) or {}
        request.onramp_flow = {"kind": entry.get("onramp_kind", KIND_LOGIN), "requested_at": entry.get("added_on")}
        request.onramp_user_before = request.user
        if entry.get("onramp_next"):
            request.session["oidc_login_next"] = entry["onramp_next"]
        if request.onramp_flow["kind"] == KIND_LOGIN and sso_address_throttled(request):
            # Not audited: a flood would write a row per request. The refusals that made it are.
            return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=429)
        if request.GET.get("error"):
            # The provider would not sign this person in (e.g. login_required on a renewal: they left).
            _sso_refused(request, code=request.GET["error"])
            if request.onramp_flow["kind"] == KIND_RENEW and oidc_session(request) and provider_says_gone(request):
                user_deactivate_as_gone(user=request.user, request=request)
        try:
            return super().get(request)
        except SuspiciousOperation:  # a state not ours, a token not signed or not for us: 400
            _sso_refused(request, code="InvalidResponse")
            raise
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 400:
                return self._code_refused(exc.response)
            return provider_unavailable(request, ProviderUnavailable(f"{type(exc).__name__} from the provider."))
        except requests.RequestException as exc:  # the token or userinfo endpoint did not answer
            return provider_unavailable(request, ProviderUnavailable(f"{type(exc).__name__} from the provider."))
        except ProviderUnavailable as exc:
            return provider_unavailable(request, exc)

    def _code_refused(self, response):
        """The token endpoint answered 400 (RFC 6749, 5.2): it refused this sign-in's code (used already, expired,
        not for this client), the provider is up. The sign-in is refused with that sentence; the person starts
        again."""
        try:
            error = str(response.json().get("error") or "")
        except (ValueError, AttributeError):
            error = ""
        error = error if re.fullmatch(r"[a-z_]{1,64}", error) else "TokenRefused"  # the spec's error codes only
        _refuse(
            self.request,
            action="auth.sso_refused",
            code=error,
            email="",
            message=f"{settings.OIDC_PROVIDER_NAME} refused the sign-in's one-time code ({error}): it was used "
            "already or has expired. Sign in again.",
        )
        return self.login_failure()

    @property
    def failure_url(self):
        return reverse("login")

    def login_failure(self):
        user = getattr(self, "user", None)
        inactive = user is not None and not user.is_active
        if not getattr(self.request, "onramp_refusal_audited", False):
            code = "Inactive" if inactive else "SignInFailed"
            _sso_refused(self.request, code=code, email=user.get_username() if user else "")
        if self.request.user.is_authenticated:
            # A renewal or fresh sign-in that fails ends the session: no loop back to the provider.
            django_auth.logout(self.request)
        message = "This account is deactivated in Onramp. Ask an Admin." if inactive else ""
        message = message or getattr(self.request, "onramp_refusal", "")
        messages.error(self.request, message or f"Sign-in with {settings.OIDC_PROVIDER_NAME} did not succeed.")
        return super().login_failure()

    def login_success(self):
        before = self.request.onramp_user_before
        same_user = before.is_authenticated and before.pk == self.user.pk
        response = super().login_success()
        kind = self.request.onramp_flow["kind"] if same_user else KIND_LOGIN
        auth_time = _auth_time(getattr(self.request, "onramp_id_claims", {}) or {})
        now = time.time()
        if getattr(self.request, "onramp_id_token", None):
            self.request.session[ID_TOKEN] = self.request.onramp_id_token
        if getattr(self.request, "onramp_access_token", None):
            self.request.session[ACCESS_TOKEN] = self.request.onramp_access_token
            self.request.session[ACCESS_TOKEN_EXPIRES] = getattr(self.request, "onramp_access_token_expires", 0)
        if kind == KIND_FRESH:
            return self._fresh(response, auth_time=auth_time, now=now)
        if auth_time is not None:
            self.request.session[AUTH_AT] = min(auth_time, now)
        elif not settings.OIDC_TRUST_MISSING_AUTH_TIME:
            if kind == KIND_LOGIN:  # a renewal keeps what the session had
                # Unknown when the person last typed their password: no secret until a fresh sign-in says.
                self.request.session.pop(AUTH_AT, None)
        elif kind == KIND_LOGIN or AUTH_AT not in self.request.session:
            self.request.session[AUTH_AT] = now
        if kind == KIND_RENEW:
            audit_record(
                action="auth.session_renewed",
                actor=self.user,
                target=self.user.get_username(),
                details={"ip": client_ip(self.request)},
            )
        return response

    def _fresh(self, response, *, auth_time: float | None, now: float):
        """A fresh sign-in counts when the ID token's auth_time is within the limit; without one, only where
        OIDC_TRUST_MISSING_AUTH_TIME says this provider's answer to max_age=0 is itself the sign-in."""
        limit = settings.FRESH_AUTH_MAX_AGE
        details = {"method": "oidc", "auth_time": auth_time, "ip": client_ip(self.request)}
        if auth_time is None and not settings.OIDC_TRUST_MISSING_AUTH_TIME:
            return self._not_fresh(
                response,
                code="AuthTimeMissing",
                details=details,
                message=f"{settings.OIDC_PROVIDER_NAME} did not say when you last signed in there, so Onramp "
                "cannot count this as a fresh sign-in and shows no secret after it. Ask an Admin.",
            )
        if auth_time is not None and now - auth_time > limit:
            return self._not_fresh(
                response,
                code="AuthTimeTooOld",
                details={**details, "age": int(now - auth_time)},
                message=f"{settings.OIDC_PROVIDER_NAME} did not ask you to sign in again (your last sign-in there "
                f"was {int((now - auth_time) // 60)} minutes ago). Sign out, sign in again, then retry.",
            )
        self.request.session[AUTH_AT] = now if auth_time is None else min(auth_time, now)
        audit_record(action="auth.reauthenticated", actor=self.user, target=self.user.get_username(), details=details)
        return response

    def _not_fresh(self, response, *, code: str, details: dict, message: str):
        audit_record(
            action="auth.reauth_failed",
            actor=self.user,
            outcome=AuditEvent.Outcome.REFUSED,
            error_code=code,
            target=self.user.get_username(),
            details=details,
        )
        messages.error(self.request, message)
        return response


class SessionRenewalMiddleware:
    """Re-checks a provider-signed session with the provider (`prompt=none`) once it is older than
    OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS, for every request (a POST too: it is not carried out, the person
    lands back on the page). An htmx request is answered `HX-Refresh: true`: htmx reloads the whole
    page, and that page's request goes through the provider. Also lets forms lead to the provider
    (the CSP's form-action) while OIDC is configured."""

    EXEMPT = ("login", "logout", "oidc_start", "oidc_callback", "healthz")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self._renewal(request) or self.get_response(request)
        if oidc_enabled():
            response._csp_update = {"form-action": [provider_origin()]}
        return response

    def _renewal(self, request):
        if not oidc_session(request) or not request.user.is_authenticated:
            return None
        if request.session.get(RENEW_AT, 0) > time.time():
            return None
        if request.path in {reverse(name) for name in self.EXEMPT}:
            return None
        if getattr(request, "htmx", False):
            return HttpResponseClientRefresh()
        if request.method in ("GET", "HEAD"):
            next_url = request.get_full_path()
        else:
            next_url = safe_next(request, request.headers.get("Referer"))
        try:
            response = authorization_redirect(
                request,
                kind=KIND_RENEW,
                next_url=next_url,
                extra={"prompt": "none", "login_hint": request.user.email},
            )
        except ProviderUnavailable as exc:
            return provider_unavailable(request, exc)
        if request.method not in ("GET", "HEAD"):
            response.status_code = 303
        return response
