"""Input that used to answer 500 (issue 26, point 14): a NUL byte in any admin list's filters, a groups claim that
is a number or a boolean, an authorization code used twice. Each answer is a 400 or a sentence, never a 500; the
test client raises what a 500 would have been."""

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from provisioning.models import AuditEvent
from tests.conftest import PASSWORD
from tests.identity.test_sso import AT_PROVIDER, LEAD, sign_in, through_provider

NUL = "a\x00b"


def _changelists() -> list[str]:
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") for model in admin.site._registry
    ]


@pytest.mark.django_db
def test_point_14_a_nul_byte_in_any_admin_list_filter_is_a_400():
    root = User.objects.create_superuser("root", "root@agency.example", PASSWORD)
    client = Client()
    client.force_login(root)
    walked = 0
    for url in _changelists():
        page = client.get(url)
        assert page.status_code == 200, url
        changelist = page.context_data["cl"]
        parameters = {"q", "o", "p", "e"} | {
            name for spec in changelist.filter_specs for name in spec.expected_parameters()
        }
        for name in sorted(parameters):
            answer = client.get(url, {name: NUL})
            assert answer.status_code == 400, (url, name, answer.status_code)
            assert b"NUL" in answer.content
            walked += 1
        assert client.get(url + "?" + urlencode({NUL: "1"})).status_code == 400  # in a parameter's name too
    assert walked > 40  # every list's filters, axes' included
    assert client.get("/admin/provisioning/customer/a%00b/change/").status_code == 400  # and in the path


@pytest.mark.django_db
def test_point_14_a_nul_byte_in_the_portals_own_filters_and_the_callback_is_a_400(client, alice, oidc):
    client.force_login(alice)
    assert client.get("/audit/", {"action": NUL}).status_code == 400
    assert client.get("/oidc/callback/", {"code": NUL, "state": NUL}).status_code == 400


@pytest.mark.parametrize("groups", [5, 0, True, False, 1.5, {"onramp-leads": True}, ["onramp-leads", True]])
def test_point_14_a_groups_claim_that_is_not_names_refuses_the_sign_in_with_a_sentence(client, oidc, groups):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=groups)
    answer = sign_in(client, requests.Session(), oidc)
    assert answer.status_code == 302 and answer["Location"] == reverse("login")
    page = client.get(answer["Location"]).content.decode()
    assert "Test provider sent a groups claim (groups) that is not a list of group names" in page
    assert client.get("/")["Location"].startswith(reverse("login"))  # not signed in
    refused = AuditEvent.objects.get(action="auth.sso_refused")
    assert (refused.error_code, refused.target) == ("GroupsClaimUnreadable", LEAD)


def test_point_14_a_reused_authorization_code_is_a_refused_sign_in_not_an_unavailable_provider(client, oidc):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    browser = requests.Session()
    start = client.get("/oidc/authenticate/", {"next": "/"})
    callback = browser.get(start["Location"], allow_redirects=False)
    action = re.search(r'action="([^"]+)"', callback.text).group(1).replace("&amp;", "&")
    callback = browser.post(oidc.url + action, data={"email": LEAD, "password": AT_PROVIDER}, allow_redirects=False)
    used_code = parse_qs(urlsplit(callback.headers["Location"]).query)["code"][0]
    assert client.get(callback.headers["Location"].removeprefix("http://testserver")).status_code == 302
    client.post("/logout/")

    # A second sign-in's callback, carrying its own state but the first, already used code.
    start = client.get("/oidc/authenticate/", {"next": "/"})
    fresh = browser.get(start["Location"], allow_redirects=False).headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(fresh).query).items()} | {"code": used_code}
    answer = client.get("/oidc/callback/", query)
    assert answer.status_code == 302 and answer["Location"] == reverse("login")
    page = client.get(answer["Location"]).content.decode()
    assert "Test provider refused the sign-in&#x27;s one-time code (invalid_grant)" in page
    assert "Sign in again." in page
    refused = AuditEvent.objects.filter(action="auth.sso_refused").get()
    assert refused.error_code == "invalid_grant"
    # The same person signing in afresh is let in: nothing was locked or left half-done.
    assert through_provider(client, browser, oidc, client.get("/oidc/authenticate/")["Location"]).status_code == 302
