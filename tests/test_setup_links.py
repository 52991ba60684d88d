"""The customer's set-up link (issue 31, point 2): made by the customer's team, stored hashed, one live per
customer, expiring, revocable, audited; the token exchanged for a cookie; a page without login that shows what
the customer must know and the quick-create link."""

import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from provisioning import customers
from provisioning.models import AuditEvent, PublishedTemplate, SetupLink, SetupLinkOpening
from provisioning.registry import ROLE_TEMPLATE_VERSION
from provisioning.role.published import STACK_NAME
from tests.conftest import customer_make

PREVIEW_AGENT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


@pytest.fixture(autouse=True)
def _fresh_limits():
    caches["limits"].clear()  # the rate limit counts per address: each test starts from nothing
    yield
    caches["limits"].clear()


@pytest.fixture
def acme(alice):
    customer = customer_make()
    customer.team.add(alice)
    return customer


def _make(client: Client, customer) -> str:
    """Press "Make a set-up link" on the customer's page; the link shown (once)."""
    response = client.post(reverse("setup_link_make", args=[customer.slug]))
    assert response.status_code == 200 and response["Referrer-Policy"] == "no-referrer"
    return response.context["url"]


def _published():
    PublishedTemplate.objects.create(
        version=ROLE_TEMPLATE_VERSION,
        content="{}",
        sha256="0" * 64,
        bucket="agency-role-templates",
        key=f"onramp-role/v{ROLE_TEMPLATE_VERSION}.json",
        url=f"https://agency-role-templates.s3.amazonaws.com/onramp-role/v{ROLE_TEMPLATE_VERSION}.json",
        published_by="operator:erin",
    )


def test_a_team_member_makes_a_link_stored_hashed_and_audited_without_the_token(client, alice, acme):
    client.force_login(alice)
    url = _make(client, acme)
    token = urlsplit(url).path.rstrip("/").rsplit("/", 1)[1]
    link = SetupLink.objects.get(customer=acme)
    assert link.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert timedelta(days=13, hours=23) < link.expires_at - timezone.now() <= timedelta(days=14)
    event = AuditEvent.objects.get(action="setup_link.created")
    assert event.actor_label == "alice" and token not in str(event.details) and token not in event.target
    # The page that shows it is not kept by a cache; the customer's page says a live link exists.
    page = client.get(reverse("customer_detail", args=[acme.slug]))
    assert token not in page.content.decode() and b"works until" in page.content


def test_only_the_customers_team_or_an_admin_makes_or_revokes_a_link(client, bob, dana, acme):
    client.force_login(bob)  # a tech lead, not on Acme's team
    assert client.post(reverse("setup_link_make", args=[acme.slug])).status_code == 403
    assert not SetupLink.objects.exists()
    client.force_login(dana)
    _make(client, acme)
    client.force_login(bob)
    assert client.post(reverse("setup_link_revoke", args=[acme.slug])).status_code == 403
    assert SetupLink.objects.get().revoked_at is None


def test_one_live_link_per_customer_and_a_revoked_or_expired_one_opens_nothing(client, alice, acme):
    client.force_login(alice)
    first = _make(client, acme)
    second = _make(client, acme)
    customer_client = Client()
    assert customer_client.get(first).status_code == 404  # replaced
    assert customer_client.get(second).status_code == 302
    assert SetupLink.objects.filter(customer=acme, revoked_at__isnull=True).count() == 1
    client.post(reverse("setup_link_revoke", args=[acme.slug]))
    # Revoked: neither the link nor the cookie it gave opens the page any more.
    assert customer_client.get(reverse("setup_page")).status_code == 404
    assert customer_client.get(second).status_code == 404
    actions = list(AuditEvent.objects.filter(action__startswith="setup_link.").values_list("action", flat=True))
    assert actions.count("setup_link.revoked") == 2 and actions.count("setup_link.opened") == 1

    third = _make(client, acme)
    SetupLink.objects.filter(revoked_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(third).status_code == 404


def test_the_token_is_exchanged_for_a_cookie_and_the_page_needs_no_login(client, alice, acme):
    client.force_login(alice)
    _published()
    link = _make(client, acme)
    customer = Client()
    exchanged = customer.get(link, HTTP_USER_AGENT=PREVIEW_AGENT)
    assert exchanged.status_code == 302 and exchanged["Location"] == reverse("setup_page")
    assert exchanged["Referrer-Policy"] == "no-referrer"
    cookie = exchanged.cookies["onramp_setup"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == reverse("setup_page")
    page = customer.get(reverse("setup_page"))
    assert page.status_code == 200 and page["Referrer-Policy"] == "no-referrer" and page["Cache-Control"] == "no-store"
    body = page.content.decode()
    assert acme.aws_account_id in body and acme.external_id in body and "not a secret" in body
    assert "alice" in body and "IAM" in body and "only on what Onramp tagged" in body
    # Nothing on the page could change the account Onramp goes to: its one form is "I launched it".
    assert (
        body.count("<form") == 1
        and 'name="role_arn"' not in body
        and 'type="hidden" name="csrfmiddlewaretoken"' in body
    )
    assert body.count("<input") == 1
    assert SetupLinkOpening.objects.get().user_agent == PREVIEW_AGENT
    assert AuditEvent.objects.get(action="setup_link.opened").details["user_agent"] == PREVIEW_AGENT

    launch = urlsplit(page.context["page"].launch_url)
    assert launch.netloc == f"{acme.default_region}.console.aws.amazon.com"
    values = parse_qs(launch.fragment.partition("?")[2])
    assert values == {
        "templateURL": [PublishedTemplate.objects.get().url],
        "stackName": [STACK_NAME],
        "param_ExternalId": [acme.external_id],
    }


def test_without_a_published_template_the_page_says_so_instead_of_a_button(client, alice, acme):
    client.force_login(alice)
    customer = Client()
    customer.get(_make(client, acme))
    page = customer.get(reverse("setup_page")).content.decode()
    assert 'id="not-published"' in page and 'id="launch-stack"' not in page


def test_an_address_that_asks_too_often_is_refused(client, alice, acme):
    client.force_login(alice)
    link = _make(client, acme)
    stranger = Client()
    with override_settings(SETUP_RATE_LIMIT=3):
        answers = [
            stranger.get(link.replace(link.rstrip("/").rsplit("/", 1)[1], f"guess{n}")).status_code for n in range(4)
        ]
        assert answers == [404, 404, 404, 429]
        assert stranger.get(link).status_code == 429  # even the right token, from that address, for a while
    assert not SetupLinkOpening.objects.exists()


def test_after_the_watch_the_page_asks_for_the_outputs_and_another_accounts_role_is_reported_never_applied(
    client, alice, acme, django_capture_on_commit_callbacks, mailoutbox
):
    client.force_login(alice)
    customer = Client()
    customer.get(_make(client, acme))
    assert 'id="outputs"' not in customer.get(reverse("setup_page")).content.decode()
    SetupLink.objects.update(watch_started_at=timezone.now() - timedelta(minutes=31), attempts=12)
    page = customer.get(reverse("setup_page")).content.decode()
    assert 'id="outputs"' in page and "another external id" in page

    before = (acme.role_arn, acme.aws_account_id)
    with django_capture_on_commit_callbacks(execute=True):
        answer = customer.post(
            reverse("setup_action"),
            {"role_arn": "arn:aws:iam::999988887777:role/OnrampAccess", "template_version": "3"},
        )
    assert "not in account 111122223333" in answer.content.decode()
    acme.refresh_from_db()
    assert (acme.role_arn, acme.aws_account_id) == before
    assert (
        AuditEvent.objects.get(action="setup_link.mismatch")
        .details["role_arn"]
        .endswith("999988887777:role/OnrampAccess")
    )
    assert [m.to for m in mailoutbox] == [["alice@agency.example"]] and "another account" in mailoutbox[0].subject


def test_i_launched_it_asks_onramp_to_look_again_now(client, alice, acme, django_capture_on_commit_callbacks):
    client.force_login(alice)
    customer = Client()
    customer.get(_make(client, acme))
    with django_capture_on_commit_callbacks() as sent:
        answer = customer.post(reverse("setup_action"))
    assert "looking for the role now" in answer.content.decode()
    assert len(sent) == 1 and AuditEvent.objects.filter(action="setup_link.launched").count() == 1


def test_point_5_a_customer_reached_with_stored_keys_has_no_link_nor_role_to_keep_current(client, alice):
    keys = customer_make(access="keys", role_arn="", access_key_id="AKIAIOSFODNN7EXAMPLE")
    keys.team.add(alice)
    client.force_login(alice)
    assert 'id="setup-link"' not in client.get(reverse("customer_detail", args=[keys.slug])).content.decode()
    assert keys.pk not in customers.roles_to_refresh() and customers.role_refresh(customer=keys) is None
    assert 'data-customer="acme-corp"' not in client.get(reverse("roles_list")).content.decode()


def test_another_sites_post_reaches_no_link(client, alice, acme):
    """The action takes no CSRF token (the page's no-referrer policy makes a browser send "Origin: null"): the
    signed cookie is SameSite=Lax, so another site's POST arrives without it; one a browser marks cross-site is
    refused outright."""
    client.force_login(alice)
    customer = Client()
    customer.get(_make(client, acme))
    assert Client().post(reverse("setup_action")).status_code == 404  # no cookie: no link
    assert customer.post(reverse("setup_action"), headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert not AuditEvent.objects.filter(action="setup_link.launched").exists()
