"""Who may reach what: every URL pattern, walked, for anonymous users, charlie (in no group), another
tech lead, and a POST without a CSRF token; and the login's rate limit, audited."""

import re
import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from provisioning import vault
from provisioning.identity.permissions import ACCESS_DENIED_LIMIT, ACCESS_DENIED_TARGET_MAX
from provisioning.models import AuditEvent, Credential, Run
from tests.conftest import PASSWORD, seal_key, start_run

# Reachable by anyone: the login pages, the identity provider's sign-in start and callback (404 while
# OIDC is not configured) and the health check (it names no data, only "ok"/"down").
# The customer's set-up pages need no Onramp login by design (issue 31): a signed cookie from a set-up link opens them.
PUBLIC = {"login", "admin:login", "healthz", "oidc_start", "oidc_callback", "favicon"} | {
    "setup_page", "setup_status", "setup_action", "setup_exchange"
}  # fmt: skip
LOGIN_PATHS = (settings.LOGIN_URL, "/login/", "/admin/login/")


def _patterns(patterns=None, prefix: str = "", namespace: str | None = None):
    """(route, name) for every URL pattern the project serves, admin included."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name or ""
            yield prefix + str(pattern.pattern), name


def _fill(route: str, ids: dict) -> str:
    """A concrete path for a route: uuids and ints become real ids where the name says which
    (run, credential, audit event), random ones otherwise."""

    def convert(match: re.Match) -> str:
        kind, name = match.group(1) or "str", match.group(2)
        if kind == "uuid":
            return str(ids.get(name, uuid.uuid4()))
        if kind == "int":
            return str(ids.get(name, 1))
        if name in ids:
            return str(ids[name])
        return "1"

    path = re.sub(r"<(?:(\w+):)?(\w+)>", convert, route)
    # The admin's two regex routes: an app index and its catch-all.
    path = re.sub(r"\(\?P<app_label>[^)]*\)", "provisioning", path)
    path = re.sub(r"\(\?P<url>[^)]*\)", "no-such-page/", path)
    return "/" + path.replace("^", "").replace("$", "")


@pytest.fixture
def world(alice, bob):
    """alice's run and the access key credential it issued her; nothing is enqueued (the test's
    transaction never commits), so the rows stay as they are."""
    run = start_run(alice)
    credential = seal_key(run, secret="alice-secret-never-for-bob", access_key_id="AKIAALICE0000000000")
    event = AuditEvent.objects.order_by("-id").first()
    ids = {
        "run_id": run.pk,
        "credential_id": credential.pk,
        "event_id": event.pk,
        "object_id": run.customer.pk,
        "content_type_id": 1,
        "fmt": "csv",
        "id": alice.pk,
    }
    return {"run": run, "credential": credential, "ids": ids}


def _urls(world):
    urls = [(name, _fill(route, world["ids"])) for route, name in _patterns()]
    assert len(urls) > 20 and any(name == "run_detail" for name, _ in urls)
    return urls


def _to_login(response) -> bool:
    return response.status_code == 302 and response["Location"].split("?")[0] in LOGIN_PATHS


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_log_in_everywhere(world):
    client = Client()
    for name, url in _urls(world):
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if name in PUBLIC:
                assert response.status_code < 500, (method, url)
                continue
            assert _to_login(response), (method, url, response.status_code, response.get("Location"))


@pytest.mark.django_db
def test_charlie_in_no_group_can_do_nothing(world, charlie):
    client = Client()
    client.force_login(charlie)
    run, credential = world["run"], world["credential"]
    for name, url in _urls(world):
        if name in PUBLIC or name in ("logout", "admin:logout"):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            # 403, or the admin's own login page (charlie is not staff): never a page with data.
            assert response.status_code == 403 or _to_login(response), (method, url, response.status_code)
            assert run.customer.name.encode() not in response.content, url
            assert str(run.pk).encode() not in response.content or response.status_code == 403, url
    run.refresh_from_db()
    credential.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert credential.state == Credential.State.SEALED and credential.ciphertext
    assert AuditEvent.objects.filter(action="access.denied", actor=charlie).exists()


@pytest.mark.django_db
def test_a_tech_lead_cannot_see_or_reveal_another_tech_leads_credentials(world, bob):
    client = Client()
    client.force_login(bob)
    credential = world["credential"]
    assert client.get(f"/credentials/{credential.pk}/").status_code == 404
    assert client.post(f"/credentials/{credential.pk}/reveal/").status_code == 404
    assert client.post(f"/credentials/{credential.pk}/remove-old-key/").status_code == 404
    # bob may look at alice's run, but its credentials are not listed for him.
    page = client.get(f"/runs/{world['run'].pk}/")
    assert page.status_code == 200
    assert str(credential.pk).encode() not in page.content
    assert b"alice-secret-never-for-bob" not in page.content
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED
    assert vault.decrypt(credential.ciphertext) == "alice-secret-never-for-bob"
    # A random id answers exactly like someone else's: ids cannot be probed.
    assert client.get(f"/credentials/{uuid.uuid4()}/").status_code == 404


@pytest.mark.django_db
def test_a_tech_lead_cannot_retry_or_cancel_a_run_of_a_customer_whose_team_they_are_not_on(world, bob, alice):
    run = world["run"]
    client = Client()
    client.force_login(bob)
    for action in ("retry", "cancel", "new-key"):
        assert client.post(f"/runs/{run.pk}/{action}/").status_code == 403, action
    run.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert not AuditEvent.objects.filter(action__in=["run.cancelled", "run.retried"]).exists()
    # alice, on the customer's team, can: the 403 above was about bob, not about the URL.
    client.force_login(alice)
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


@pytest.mark.django_db
def test_every_post_without_a_csrf_token_is_refused(world, alice, dana):
    for user in (None, alice, dana):
        client = Client(enforce_csrf_checks=True)
        if user is not None:
            client.force_login(user)
        for name, url in _urls(world):
            response = client.post(url, {"username": "alice", "password": PASSWORD})
            if name == "setup_action":
                # The customer's set-up page is exempt from Django's check (under Referrer-Policy: no-referrer a
                # browser posts "Origin: null"); without its SameSite=Lax signed cookie a POST does nothing (404).
                # tests/test_setup_links.py covers the cross-site refusal.
                assert response.status_code in (403, 404), (user, url, response.status_code)
                continue
            assert response.status_code == 403, (user, url, response.status_code)
    run, credential = world["run"], world["credential"]
    run.refresh_from_db()
    credential.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert credential.state == Credential.State.SEALED


@pytest.mark.django_db
def test_login_is_rate_limited_and_the_lock_is_audited(alice):
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit):
        response = client.post("/login/", {"username": "alice", "password": "wrong password"})
        assert response.status_code in (200, 429)
    assert AuditEvent.objects.filter(action="auth.login_failed", target="alice").count() == limit
    # Locked: even the right password is refused now.
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302
    locked = AuditEvent.objects.filter(action="auth.locked_out", target="alice")
    assert locked.exists()
    assert locked.first().outcome == AuditEvent.Outcome.REFUSED
    assert not AuditEvent.objects.filter(action="auth.login", target="alice").exists()


@pytest.mark.django_db
def test_the_right_password_below_the_limit_still_logs_in(alice):
    """The control for the test above: the lock comes from the failures, not from the form."""
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "alice", "password": "wrong password"})
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_point_16_a_person_in_no_group_cannot_flood_the_audit_log_with_text_of_their_choice(charlie, bob):
    """Each refusal writes a row whose target is the path charlie typed: a bounded number of rows a window, each
    path cut short. Another person's refusals are counted apart."""
    client = Client()
    client.force_login(charlie)
    chosen = "ignore-previous-rows-" + "x" * 400
    for attempt in range(ACCESS_DENIED_LIMIT + 15):
        assert client.get(f"/customers/{chosen}-{attempt}/").status_code == 403
    rows = list(AuditEvent.objects.filter(action="access.denied", actor=charlie).order_by("id"))
    assert len(rows) == ACCESS_DENIED_LIMIT
    assert all(len(row.target) <= ACCESS_DENIED_TARGET_MAX for row in rows)
    assert rows[0].target.startswith("/customers/ignore-previous-rows-xxx") and rows[0].target.endswith("…")
    assert rows[-1].details == {"limit_reached": ACCESS_DENIED_LIMIT, "not_recorded_for_seconds": 600}
    client.force_login(bob)  # a tech lead refused the admin's user list: counted as bob's, recorded
    client.get("/admin/auth/user/")
    assert AuditEvent.objects.filter(action="access.denied", actor=bob).count() == 1


@pytest.mark.django_db
def test_point_17_the_403_page_names_no_admin_and_no_superuser(charlie, dana):
    get_user_model().objects.create_superuser("break-glass", email="break-glass@agency.example", password=PASSWORD)
    dana.first_name, dana.last_name = "Dana", "Admin"
    dana.save()
    client = Client()
    client.force_login(charlie)
    page = client.get("/onboard/")
    assert page.status_code == 403
    text = page.content.decode()
    assert "An Admin grants access by adding you to the Tech leads or Admins group." in text
    for named in ("dana", "Dana Admin", "break-glass", "@agency.example"):
        assert named not in text, named
