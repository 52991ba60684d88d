"""The customer's set-up page, reached by a set-up link without an Onramp login, and the team's buttons that
make and revoke the link. Thin: provisioning.setup_links holds the rules."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from provisioning.addresses import client_ip
from provisioning.identity.permissions import HtmxRequest, PortalRequest, portal_user_required
from provisioning.models import Customer
from provisioning.setup_links import (
    NOT_YET,
    setup_launched,
    setup_link_by_id,
    setup_link_create,
    setup_link_live,
    setup_link_open,
    setup_link_revoke,
    setup_outputs_given,
    setup_page,
    setup_state,
    setup_updated,
    setup_watch_over,
)

COOKIE = "onramp_setup"
SALT = "onramp.setup-link"


def _limited(request) -> bool:
    """More than SETUP_RATE_LIMIT requests from this address in SETUP_RATE_WINDOW seconds (tokens are not to be
    guessed at speed). Counted in this process's memory: each gunicorn worker keeps its own count."""
    limits, key = caches["limits"], f"setup:{client_ip(request)}"
    limits.add(key, 0, timeout=settings.SETUP_RATE_WINDOW)
    return limits.incr(key) > settings.SETUP_RATE_LIMIT


def _private(response):
    # The page's address must not leave in a Referer (a token once, then the page), nor be kept by a cache.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def _gone(request, status: int = 404):
    return _private(render(request, "provisioning/setup_gone.html", {"limited": status == 429}, status=status))


@login_not_required
@require_GET
def setup_exchange(request: HttpRequest, token: str) -> HttpResponse:
    """The link itself: its token is exchanged for a cookie and the browser sent on to an address without it,
    so the token appears in one access log line only."""
    if _limited(request):
        return _gone(request, 429)
    link = setup_link_open(token=token, user_agent=request.headers.get("User-Agent", ""))
    if link is None:
        return _gone(request)
    response = redirect("setup_page")
    response.set_signed_cookie(
        COOKIE,
        str(link.pk),
        salt=SALT,
        max_age=max(int((link.expires_at - timezone.now()).total_seconds()), 0),
        path=reverse("setup_page"),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return _private(response)


def _link_of(request):
    link_id = request.get_signed_cookie(COOKIE, default="", salt=SALT)
    return setup_link_by_id(link_id=int(link_id)) if link_id.isdigit() else None


def _status(link) -> dict:
    state = setup_state(link=link)
    return {"state": state, "connected": state == "current", "tried": link.attempts > 0, "not_yet": NOT_YET,
            "ask_outputs": state == "waiting" and setup_watch_over(link=link)}  # fmt: skip


@login_not_required
@require_GET
def setup_view(request: HttpRequest) -> HttpResponse:
    if _limited(request):
        return _gone(request, 429)
    link = _link_of(request)
    if link is None:
        return _gone(request)
    context = {"page": setup_page(link=link), **_status(link)}
    return _private(render(request, "provisioning/setup.html", context))


@login_not_required
@require_GET
def setup_status(request: HtmxRequest) -> HttpResponse:
    """The page's status part, which the page asks for again every few seconds until it is green."""
    link = _link_of(request)
    if link is None:
        return _gone(request)
    status = _status(link)
    response = render(request, "provisioning/_setup_status.html", status)
    if status["connected"] and request.htmx:
        response["HX-Refresh"] = "true"  # the whole page again: its launch or update steps are done with
    return _private(response)


@csrf_exempt  # see below: under Referrer-Policy no-referrer a browser's form POST carries "Origin: null"
@login_not_required
@require_POST
def setup_action(request: HttpRequest) -> HttpResponse:
    """ "I launched it" (one more try now), or the stack's outputs pasted after Onramp's own tries ended.

    Django's CSRF check refuses the page's own POSTs: with no referrer policy the browser sends "Origin: null".
    What stands in for it: the only credential here is the signed cookie, which is SameSite=Lax, so a browser
    never sends it with another site's POST; and a browser that says the request is cross-site is refused."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return _private(HttpResponseForbidden("Cross-site requests are refused."))
    if _limited(request):
        return _gone(request, 429)
    link = _link_of(request)
    if link is None:
        return _gone(request)
    if "updated" in request.POST:
        setup_updated(link=link)
        sentence = "Thank you: Onramp is reading the role's version again. This page turns green when it is current."
    elif "role_arn" in request.POST:
        sentence = setup_outputs_given(
            link=link,
            role_arn=request.POST.get("role_arn", "").strip()[:2048],
            template_version=request.POST.get("template_version", "").strip()[:16],
        )
    else:
        setup_launched(link=link)
        sentence = "Thank you: Onramp is looking for the role now. This page turns green when it finds it."
    context = {"page": setup_page(link=link), **_status(link), "said": sentence}
    return _private(render(request, "provisioning/setup.html", context))


@portal_user_required
@require_POST
def setup_link_make(request: PortalRequest, slug: str) -> HttpResponse:
    """Make the customer's link (a live one is revoked) and show it once: only its hash is kept."""
    customer = get_object_or_404(Customer, slug=slug)
    token = setup_link_create(customer=customer, user=request.user)
    context = {
        "customer": customer,
        "link": setup_link_live(customer=customer),
        "url": request.build_absolute_uri(reverse("setup_exchange", args=[token])),
    }
    return _private(render(request, "provisioning/setup_link_made.html", context))


@portal_user_required
@require_POST
def setup_link_cancel(request: PortalRequest, slug: str) -> HttpResponse:
    customer = get_object_or_404(Customer, slug=slug)
    setup_link_revoke(customer=customer, user=request.user)
    return redirect("customer_detail", slug=slug)
