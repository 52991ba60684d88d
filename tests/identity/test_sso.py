"""Sign-in through the agency's identity provider, passwords as break-glass, and a fresh sign-in before
a secret, against a real OpenID Connect provider on loopback (tests/oidc_provider.py).

The Django test client is Onramp's side of the browser; a `requests` session is the same person's
browser at the provider (it keeps the provider's sign-in cookie). Nothing of ours is patched: a
session "older than the limit" is a session whose stored times are older.
"""

import html
import ipaddress
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.test import Client

from provisioning.identity.oidc import AUTH_AT, ID_TOKEN, OIDC_BACKEND, RENEW_AT
from provisioning.models import AuditEvent, Credential, ProviderIdentity, Run
from tests import oidc_provider
from tests.conftest import PASSWORD, finished_run, seal_key, start_run

AT_PROVIDER = "provider-password-0123"  # the person's password at the provider
LEAD = "lead@agency.example"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _actions(**filters) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("id").values_list("action", flat=True))


def _query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def through_provider(client, browser, provider, location: str, *, email: str | None = None):
    """The person's browser follows Onramp's redirect to the provider, signs in there if the provider
    shows its form, and comes back to Onramp's callback; returns Onramp's answer to the callback."""
    assert location.startswith(f"{provider.url}/authorize?"), location
    answer = browser.get(location, allow_redirects=False)
    if answer.status_code == 200:
        assert email, "the provider asked to sign in"
        action = html.unescape(re.search(r'action="([^"]+)"', answer.text).group(1))
        answer = browser.post(
            provider.url + action, data={"email": email, "password": AT_PROVIDER}, allow_redirects=False
        )
    assert answer.status_code == 302, answer.text[:500]
    callback = answer.headers["Location"]
    assert callback.startswith("http://testserver/oidc/callback/?"), callback
    return client.get(callback.removeprefix("http://testserver"))


def sign_in(client, browser, provider, *, email: str = LEAD, next_url: str = "/"):
    start = client.get("/oidc/authenticate/", {"next": next_url})
    assert start.status_code == 302, start
    return through_provider(client, browser, provider, start["Location"], email=email)


def session_set(client, **values) -> None:
    """Change what this browser's Onramp session holds (e.g. its times, to make it older)."""
    session = client.session
    session.update(values)
    session.save()


def _groups(username: str) -> list[str]:
    return sorted(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_a_first_sign_in_creates_the_user_named_by_email_with_the_mapped_groups(client, oidc):
    oidc.account_set("Lead@Agency.Example", password=AT_PROVIDER, groups=["onramp-leads", "payroll"], given_name="Lee")
    answer = sign_in(client, requests.Session(), oidc, email="Lead@Agency.Example", next_url="/audit/")
    assert answer.status_code == 302 and answer["Location"] == "/audit/"

    user = User.objects.get()
    assert (user.username, user.email, user.first_name) == (LEAD, LEAD, "Lee")
    assert _groups(LEAD) == ["Tech leads"] and user.is_staff and not user.has_usable_password()
    assert client.get("/").status_code == 200
    assert _actions() == ["auth.user_created", "auth.groups_changed", "auth.login"]
    changed = AuditEvent.objects.get(action="auth.groups_changed")
    assert changed.details["added"] == ["Tech leads"] and changed.details["removed"] == []
    assert AuditEvent.objects.get(action="auth.login").details["method"] == "oidc"
    first = oidc.requests[0]  # the authorization request: code flow with state, nonce and PKCE
    assert first["response_type"] == "code" and first["code_challenge_method"] == "S256"
    assert first["state"] and first["nonce"] and first["redirect_uri"] == "http://testserver/oidc/callback/"


def test_a_disallowed_domain_is_refused_and_nobody_is_created(client, oidc):
    oidc.account_set("mallory@gmail.example", password=AT_PROVIDER, groups=["onramp-admins"])
    answer = sign_in(client, requests.Session(), oidc, email="mallory@gmail.example")
    assert answer.status_code == 302 and answer["Location"] == "/login/"
    assert not User.objects.exists()
    page = client.get("/login/").content.decode()
    assert "mallory@gmail.example is not in an allowed domain" in page and "@agency.example" in page
    assert client.get("/").status_code == 302
    refused = AuditEvent.objects.get(action="auth.domain_refused")
    assert (refused.target, refused.error_code) == ("mallory@gmail.example", "DomainNotAllowed")
    assert refused.outcome == AuditEvent.Outcome.REFUSED
    assert _actions() == ["auth.domain_refused"]


def test_an_unverified_email_is_refused(client, oidc):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"], email_verified=False)
    assert sign_in(client, requests.Session(), oidc)["Location"] == "/login/"
    assert not User.objects.exists()
    assert AuditEvent.objects.get(action="auth.sso_refused").error_code == "EmailNotVerified"


@pytest.mark.parametrize(
    "verified", [{"omit": ("email_verified",)}, {"email_verified": "false"}, {"email_verified": 0},
                 {"email_verified": "true"}, {"email_verified": 1}],
)  # fmt: skip
def test_point_1_an_email_is_verified_only_by_the_boolean_true(client, oidc, verified):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"], **verified)
    assert sign_in(client, requests.Session(), oidc)["Location"] == "/login/"
    assert not User.objects.exists()
    assert AuditEvent.objects.get(action="auth.sso_refused").error_code == "EmailNotVerified"
    assert "did not give a verified email address" in client.get("/login/").content.decode()


def test_point_1_a_provider_that_never_sends_email_verified_is_trusted_only_when_configured(client, oidc, settings):
    settings.OIDC_TRUST_MISSING_EMAIL_VERIFIED = True
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"], omit=("email_verified",))
    assert sign_in(client, browser, oidc)["Location"] == "/"
    assert User.objects.get().username == LEAD
    client.post("/logout/")
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"], email_verified="false")
    assert sign_in(client, browser, oidc)["Location"] == "/login/"  # said, and not the boolean true


def test_point_1_later_sign_ins_are_linked_by_issuer_and_subject_never_by_email(client, oidc):
    first = oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, requests.Session(), oidc)
    lead = User.objects.get(username=LEAD)
    identity = ProviderIdentity.objects.get(user=lead)
    assert (identity.issuer, identity.subject) == (oidc.url, first.sub)
    assert AuditEvent.objects.get(action="auth.user_created").details["sub"] == first.sub
    client.post("/logout/")

    # Renamed at the provider: the same subject, the same Onramp account.
    oidc.account_rename(LEAD, "lee@agency.example")
    assert sign_in(client, requests.Session(), oidc, email="lee@agency.example")["Location"] == "/"
    assert client.session["_auth_user_id"] == str(lead.pk)
    assert User.objects.count() == 1
    client.post("/logout/")

    # Someone else at the provider now has the address: not the lead's account.
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads", "onramp-admins"])
    assert sign_in(client, requests.Session(), oidc)["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    refused = AuditEvent.objects.get(action="auth.sso_refused")
    assert (refused.error_code, refused.target) == ("EmailLinkedToAnotherIdentity", LEAD)
    assert _groups(LEAD) == ["Tech leads"]


def test_point_1_an_account_made_before_sso_is_linked_once_at_its_first_sign_in(client, oidc, bob):
    bob.username = bob.email = "bob@agency.example"
    bob.save()
    account = oidc.account_set("bob@agency.example", password=AT_PROVIDER, groups=["onramp-leads"])
    assert sign_in(client, requests.Session(), oidc, email="bob@agency.example")["Location"] == "/"
    assert client.session["_auth_user_id"] == str(bob.pk)
    assert ProviderIdentity.objects.get(user=bob).subject == account.sub
    linked = AuditEvent.objects.get(action="auth.identity_linked")
    assert (linked.target, linked.details["sub"]) == ("bob@agency.example", account.sub)


def test_point_2_an_identity_with_a_superusers_username_does_not_sign_in_as_the_superuser(client, oidc):
    root = User.objects.create_superuser("root@agency.example", "root@agency.example", PASSWORD)
    oidc.account_set("root@agency.example", password=AT_PROVIDER, groups=["onramp-admins"])
    assert sign_in(client, requests.Session(), oidc, email="root@agency.example")["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302
    refused = AuditEvent.objects.get(action="auth.sso_refused")
    assert (refused.error_code, refused.target) == ("SuperuserPasswordOnly", "root@agency.example")
    assert not AuditEvent.objects.filter(action__in=["auth.login", "auth.identity_linked"]).exists()
    assert not ProviderIdentity.objects.filter(user=root).exists()
    assert "signs in with its password" in client.get("/login/").content.decode()

    # Even once linked, a user later made superuser is reached by the password only: the session ends too.
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, requests.Session(), oidc)
    assert client.get("/").status_code == 200
    User.objects.filter(username=LEAD).update(is_superuser=True)
    assert client.get("/").status_code == 302
    assert sign_in(client, requests.Session(), oidc)["Location"] == "/login/"
    assert AuditEvent.objects.filter(action="auth.sso_refused", error_code="SuperuserPasswordOnly").count() == 2


def test_a_person_deactivated_in_onramp_is_refused_though_the_provider_signs_them_in(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    client.post("/logout/")
    User.objects.filter(username=LEAD).update(is_active=False)
    assert sign_in(client, browser, oidc)["Location"] == "/login/"
    assert "deactivated in Onramp" in client.get("/login/").content.decode()
    refused = AuditEvent.objects.get(action="auth.sso_refused")
    assert (refused.error_code, refused.target) == ("Inactive", LEAD)


def test_a_group_removed_at_the_provider_is_removed_at_the_next_sign_in(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads", "onramp-admins"])
    sign_in(client, browser, oidc)
    assert _groups(LEAD) == ["Admins", "Tech leads"]
    client.post("/logout/")

    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    answer = sign_in(client, browser, oidc)  # still signed in at the provider: no form this time
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert _groups(LEAD) == ["Tech leads"]
    removed = AuditEvent.objects.filter(action="auth.groups_changed").order_by("id").last()
    assert removed.details["removed"] == ["Admins"] and removed.details["added"] == []
    assert _actions(action__in=["auth.login", "auth.logout"]) == ["auth.login", "auth.logout", "auth.login"]

    # Out of every group at the provider: signed in, and shown only who grants access.
    client.post("/logout/")
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=[])
    sign_in(client, browser, oidc)
    assert _groups(LEAD) == [] and not User.objects.get(username=LEAD).is_staff
    page = client.get("/")
    assert page.status_code == 403
    text = page.content.decode()
    assert "onramp-leads" in text and "Ask its administrators" in text
    assert 'href="/onboard/"' not in text and 'href="/audit/"' not in text


def test_without_a_groups_claim_an_admin_assigns_the_groups(client, oidc, settings, dana):
    settings.OIDC_GROUPS_CLAIM = ""  # Google Workspace sends no groups claim
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-admins"])
    sign_in(client, browser, oidc)
    assert _groups(LEAD) == []
    page = client.get("/")
    assert page.status_code == 403
    text = page.content.decode()
    assert "An Admin grants access" in text and "dana@agency.example" not in text  # names nobody (point 17)
    assert 'href="/onboard/"' not in text

    User.objects.get(username=LEAD).groups.add(Group.objects.get(name="Tech leads"))  # dana, in the admin
    client.post("/logout/")
    sign_in(client, browser, oidc)
    assert _groups(LEAD) == ["Tech leads"]  # the provider's sign-in leaves the Admin's choice alone
    assert client.get("/").status_code == 200
    assert not AuditEvent.objects.filter(action="auth.groups_changed").exists()


def test_the_session_is_checked_with_the_provider_once_older_than_the_interval(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads", "onramp-admins"])
    sign_in(client, browser, oidc)
    run = finished_run(User.objects.get(username=LEAD))
    assert client.get(f"/runs/{run.pk}/").status_code == 200  # within the interval: no provider
    assert len(oidc.requests) == 1

    session_set(client, **{RENEW_AT: time.time() - 1})
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])  # changed at the provider meanwhile
    to_provider = client.get(f"/runs/{run.pk}/")
    assert to_provider.status_code == 302
    assert _query(to_provider["Location"])["prompt"] == "none"
    assert _query(to_provider["Location"])["login_hint"] == LEAD
    back = through_provider(client, browser, oidc, to_provider["Location"])  # silent: no form
    assert back.status_code == 302 and back["Location"] == f"/runs/{run.pk}/"
    assert client.get(f"/runs/{run.pk}/").status_code == 200
    assert _groups(LEAD) == ["Tech leads"]
    assert _actions()[-2:] == ["auth.groups_changed", "auth.session_renewed"]
    assert client.session[RENEW_AT] > time.time() + 14 * 60


def test_a_person_removed_at_the_provider_loses_access_at_the_next_check(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    oidc.account_remove(LEAD)
    session_set(client, **{RENEW_AT: time.time() - 1})

    back = through_provider(client, browser, oidc, client.get("/")["Location"])
    assert back.status_code == 302 and back["Location"] == "/login/"
    assert client.get("/").status_code == 302  # signed out
    refused = AuditEvent.objects.get(action="auth.sso_refused")
    assert (refused.error_code, refused.actor.username, refused.details["kind"]) == ("login_required", LEAD, "renew")
    assert _actions()[-3:] == ["auth.sso_refused", "auth.user_deactivated", "auth.logout"]


def test_point_8_a_person_removed_at_the_provider_is_deactivated_by_the_renewal_check(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads", "onramp-admins"])
    sign_in(client, browser, oidc)
    oidc.account_remove(LEAD)
    session_set(client, **{RENEW_AT: time.time() - 1})

    back = through_provider(client, browser, oidc, client.get("/")["Location"])
    assert back["Location"] == "/login/" and client.get("/").status_code == 302
    lead = User.objects.get(username=LEAD)
    assert not lead.is_active  # no drift emails, no sign-in, until an Admin says otherwise
    gone = AuditEvent.objects.get(action="auth.user_deactivated")
    assert (gone.target, gone.details["source"]) == (LEAD, "provider")
    assert _actions()[-3:] == ["auth.sso_refused", "auth.user_deactivated", "auth.logout"]


def test_point_8_a_person_whose_provider_session_merely_ended_stays_active(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    oidc.sessions_end(LEAD)  # timed out at the provider; still employed
    session_set(client, **{RENEW_AT: time.time() - 1})

    assert through_provider(client, browser, oidc, client.get("/")["Location"])["Location"] == "/login/"
    assert User.objects.get(username=LEAD).is_active
    assert not AuditEvent.objects.filter(action="auth.user_deactivated").exists()
    assert sign_in(client, browser, oidc, email=LEAD)["Location"] == "/"  # signs in again, as before


def test_the_live_run_poll_is_told_to_reload_the_whole_page_when_the_session_needs_checking(client, oidc):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, requests.Session(), oidc)
    run = start_run(User.objects.get(username=LEAD))  # pending: its page polls every second
    poll = client.get(f"/runs/{run.pk}/live/", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and b'hx-trigger="every 1s"' in poll.content

    session_set(client, **{RENEW_AT: time.time() - 1})
    poll = client.get(
        f"/runs/{run.pk}/live/", headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver/runs/{run.pk}/"}
    )
    # Not a redirect (htmx would follow it and swap the provider's page into the fragment): htmx reloads.
    assert poll.status_code == 200 and poll["HX-Refresh"] == "true" and "Location" not in poll
    assert b"run-live" not in poll.content
    assert len(oidc.requests) == 1  # nobody was sent to the provider by the poll

    # The reload of the whole page goes to the provider, and comes back to the page, not the fragment.
    reload = client.get(f"/runs/{run.pk}/")
    assert reload.status_code == 302 and reload["Location"].startswith(f"{oidc.url}/authorize?")
    state = _query(reload["Location"])["state"]
    assert client.session["oidc_states"][state]["onramp_next"] == f"/runs/{run.pk}/"


def test_a_post_with_a_session_due_for_a_check_is_not_carried_out(client, oidc):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    browser = requests.Session()
    sign_in(client, browser, oidc)
    run = start_run(User.objects.get(username=LEAD))
    session_set(client, **{RENEW_AT: time.time() - 1})
    page = f"http://testserver/runs/{run.pk}/"
    answer = client.post(f"/runs/{run.pk}/cancel/", headers={"Referer": page})
    assert answer.status_code == 303 and answer["Location"].startswith(f"{oidc.url}/authorize?")
    run.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert through_provider(client, browser, oidc, answer["Location"])["Location"] == page


def test_with_oidc_only_superusers_may_use_a_password_and_that_is_break_glass(client, oidc, alice):
    login = client.get("/login/").content.decode()
    assert login.index('id="sso"') < login.index('name="password"')  # the provider first
    assert "Sign in with Test provider" in login

    refused = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 200
    assert "Passwords are for break-glass only" in refused.content.decode()
    assert client.get("/").status_code == 302
    assert client.post("/admin/login/", {"username": "alice", "password": PASSWORD}).status_code == 200
    assert client.get("/admin/").status_code == 302
    event = AuditEvent.objects.filter(action="auth.password_refused").first()
    assert (event.target, event.outcome, event.error_code) == ("alice", "refused", "BreakGlassOnly")
    assert not AuditEvent.objects.filter(action__in=["auth.login", "auth.break_glass"]).exists()

    User.objects.create_superuser("root", "root@agency.example", PASSWORD)
    assert client.post("/login/", {"username": "root", "password": PASSWORD})["Location"] == "/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.get(action="auth.break_glass").target == "root"
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_without_oidc_the_password_login_is_as_before(client, alice):
    login = client.get("/login/").content.decode()
    assert "Sign in with" not in login and "Break-glass" not in login
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/", {"code": "x", "state": "y"}).status_code == 404
    assert client.post("/login/", {"username": "alice", "password": PASSWORD})["Location"] == "/"
    event = AuditEvent.objects.get(action="auth.login")
    assert event.details["method"] == "password"


def _stale_reveal(client, user, *, age: int = 601):
    run = finished_run(user)
    credential = seal_key(run, secret=SECRET)
    session_set(client, **{AUTH_AT: time.time() - age})
    answer = client.post(f"/credentials/{credential.pk}/reveal/")
    assert answer.status_code == 302
    assert answer["Location"] == f"/reauth/?next=%2Fcredentials%2F{credential.pk}%2F"
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED and credential.ciphertext
    return credential, answer["Location"]


def _reveals_once(client, credential) -> None:
    page = client.get(f"/credentials/{credential.pk}/")
    assert page.status_code == 200 and b"Reveal once" in page.content
    revealed = client.post(f"/credentials/{credential.pk}/reveal/")
    assert revealed.status_code == 200 and SECRET in revealed.content.decode()
    assert client.post(f"/credentials/{credential.pk}/reveal/").status_code == 410
    assert AuditEvent.objects.filter(action="credential.revealed").count() == 1


def test_a_reveal_after_an_old_sign_in_goes_through_the_provider_again_then_reveals_once(client, oidc):
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    credential, reauth = _stale_reveal(client, User.objects.get(username=LEAD))
    assert AuditEvent.objects.get(action="auth.reauth_required").target == f"/credentials/{credential.pk}/"

    to_provider = client.get(reauth)
    params = _query(to_provider["Location"])
    assert (params["max_age"], params["prompt"], params["login_hint"]) == ("0", "login", LEAD)
    # The provider asks for the password again although its own session is still on.
    back = through_provider(client, browser, oidc, to_provider["Location"], email=LEAD)
    assert back.status_code == 302 and back["Location"] == f"/credentials/{credential.pk}/"
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED  # nothing was revealed on the way back
    _reveals_once(client, credential)
    fresh = AuditEvent.objects.get(action="auth.reauthenticated")
    assert fresh.details["method"] == "oidc" and fresh.details["auth_time"] >= time.time() - 60


def test_an_auth_time_older_than_the_limit_is_not_a_fresh_sign_in(client, oidc):
    oidc.reauth_supported = False  # a provider that ignores max_age and prompt=login
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    oidc.sessions_age(20 * 60)
    credential, reauth = _stale_reveal(client, User.objects.get(username=LEAD), age=20 * 60)
    back = through_provider(client, browser, oidc, client.get(reauth)["Location"])  # silent, old auth_time
    assert back["Location"] == f"/credentials/{credential.pk}/"
    assert "did not ask you to sign in again" in client.get(back["Location"]).content.decode()
    assert AuditEvent.objects.get(action="auth.reauth_failed").error_code == "AuthTimeTooOld"
    assert client.post(f"/credentials/{credential.pk}/reveal/")["Location"].startswith("/reauth/")
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED


def test_a_provider_that_sends_no_auth_time_like_google_counts_its_answer_as_the_sign_in_when_trusted(
    client, oidc, settings
):
    settings.OIDC_REAUTH_PROMPT = ""  # Google has no prompt=login
    settings.OIDC_TRUST_MISSING_AUTH_TIME = True  # the operator's choice (docs/deploying.md, Google Workspace)
    oidc.reauth_supported, oidc.sends_auth_time = False, False
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    credential, reauth = _stale_reveal(client, User.objects.get(username=LEAD))
    to_provider = client.get(reauth)["Location"]
    assert _query(to_provider)["max_age"] == "0" and "prompt" not in _query(to_provider)
    assert through_provider(client, browser, oidc, to_provider)["Location"] == f"/credentials/{credential.pk}/"
    _reveals_once(client, credential)
    assert AuditEvent.objects.get(action="auth.reauthenticated").details["auth_time"] is None


def test_point_3_missing_auth_time_is_not_fresh(client, oidc, settings):
    assert settings.OIDC_TRUST_MISSING_AUTH_TIME is False  # the default
    oidc.sends_auth_time = False  # asks for the password again, but the ID token does not say when
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    assert AUTH_AT not in client.session  # unknown: nothing counts as fresh yet
    run = finished_run(User.objects.get(username=LEAD))
    credential = seal_key(run, secret=SECRET)
    reauth = client.post(f"/credentials/{credential.pk}/reveal/")["Location"]
    assert reauth.startswith("/reauth/")

    back = through_provider(client, browser, oidc, client.get(reauth)["Location"], email=LEAD)
    assert back["Location"] == f"/credentials/{credential.pk}/"
    assert "did not say when you last signed in" in client.get(back["Location"]).content.decode()
    failed = AuditEvent.objects.get(action="auth.reauth_failed")
    assert (failed.error_code, failed.details["auth_time"]) == ("AuthTimeMissing", None)
    assert not AuditEvent.objects.filter(action="auth.reauthenticated").exists()
    assert client.post(f"/credentials/{credential.pk}/reveal/")["Location"].startswith("/reauth/")

    # A silent renewal without auth_time does not make the session fresh either.
    session_set(client, **{RENEW_AT: time.time() - 1})
    through_provider(client, browser, oidc, client.get("/")["Location"])
    assert AuditEvent.objects.filter(action="auth.session_renewed").exists() and AUTH_AT not in client.session
    assert client.post(f"/credentials/{credential.pk}/reveal/")["Location"].startswith("/reauth/")
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED


def test_point_3_a_sign_in_60_s_inside_the_limit_is_fresh_and_60_s_beyond_is_not(client, oidc, settings):
    limit = settings.FRESH_AUTH_MAX_AGE
    oidc.reauth_supported = False  # the provider answers from its session: its auth_time is what counts
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    lead = User.objects.get(username=LEAD)

    # Onramp's own session: 60 s inside the limit reveals, 60 s beyond sends to sign in again.
    session_set(client, **{AUTH_AT: time.time() - (limit - 60)})
    inside = seal_key(finished_run(lead), secret=SECRET)
    assert client.post(f"/credentials/{inside.pk}/reveal/").status_code == 200

    # The provider's auth_time: 60 s inside the limit counts as the fresh sign-in...
    oidc.sessions_age(limit - 60)
    credential, reauth = _stale_reveal(client, lead, age=limit + 60)
    assert through_provider(client, browser, oidc, client.get(reauth)["Location"])["Location"].endswith("/")
    assert AuditEvent.objects.filter(action="auth.reauthenticated").count() == 1
    _reveals_once_more(client, credential)

    # ...120 s older, 60 s beyond it, does not.
    oidc.sessions_age(120)
    credential, reauth = _stale_reveal(client, lead, age=limit + 60)
    through_provider(client, browser, oidc, client.get(reauth)["Location"])
    failed = AuditEvent.objects.get(action="auth.reauth_failed")
    assert failed.error_code == "AuthTimeTooOld" and failed.details["age"] >= limit + 60
    assert client.post(f"/credentials/{credential.pk}/reveal/")["Location"].startswith("/reauth/")


def _reveals_once_more(client, credential) -> None:
    revealed = client.post(f"/credentials/{credential.pk}/reveal/")
    assert revealed.status_code == 200 and SECRET in revealed.content.decode()


def test_a_local_user_types_their_password_again_before_a_reveal(client, alice):
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    credential, reauth = _stale_reveal(client, alice)
    form = client.get(reauth)
    assert form.status_code == 200 and b"Confirm it" in form.content and b"yours was 10 minutes ago" in form.content
    wrong = client.post(reauth, {"password": "not my password"})
    assert wrong.status_code == 200 and b"That is not your password." in wrong.content
    assert AuditEvent.objects.filter(action="auth.login_failed", target="alice").count() == 1
    assert client.post(f"/credentials/{credential.pk}/reveal/")["Location"] == reauth  # still not fresh

    right = client.post(reauth, {"password": PASSWORD, "next": f"/credentials/{credential.pk}/"})
    assert right.status_code == 302 and right["Location"] == f"/credentials/{credential.pk}/"
    _reveals_once(client, credential)
    assert AuditEvent.objects.get(action="auth.reauthenticated").details["method"] == "password"


def test_a_session_from_before_fresh_sign_ins_counts_as_old(client, alice):
    client.force_login(alice)
    session = client.session
    del session[AUTH_AT]
    session.save()
    credential = seal_key(finished_run(alice), secret=SECRET)
    assert client.post(f"/credentials/{credential.pk}/reveal/")["Location"].startswith("/reauth/")


def test_issuing_a_new_key_needs_a_fresh_sign_in_too(client, alice):
    client.force_login(alice)
    run = finished_run(alice)
    session_set(client, **{AUTH_AT: time.time() - 601})
    answer = client.post(f"/runs/{run.pk}/new-key/")
    assert answer.status_code == 302 and answer["Location"] == f"/reauth/?next=%2Fruns%2F{run.pk}%2F"
    assert not Credential.objects.exists()  # nothing was asked of AWS
    event = AuditEvent.objects.get(action="auth.reauth_required")
    assert (event.target, event.details["max_age"], event.details["age"]) == (f"/runs/{run.pk}/", 600, 601)


def test_an_htmx_request_for_a_secret_with_an_old_sign_in_is_sent_to_sign_in_again_as_a_whole_page(client, alice):
    client.force_login(alice)
    credential = seal_key(finished_run(alice), secret=SECRET)
    session_set(client, **{AUTH_AT: time.time() - 601})
    answer = client.post(f"/credentials/{credential.pk}/reveal/", headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "Location" not in answer
    assert answer["HX-Redirect"] == f"/reauth/?next=%2Fcredentials%2F{credential.pk}%2F"
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_CLIENT_ID": "onramp"}, "OIDC_CLIENT_SECRET, OIDC_ALLOWED_DOMAINS must be set too"),
        (
            {"OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s", "OIDC_ALLOWED_DOMAINS": "a.example",
             "OIDC_GROUP_MAP": "onramp-root=Superusers"},
            "OIDC_GROUP_MAP maps provider groups to 'Tech leads' or 'Admins' only",
        ),
    ],
)  # fmt: skip
def test_a_half_configured_provider_stops_the_start(env, message):
    from tests.test_foundation import _manage

    result = _manage("check", env={"DJANGO_ENV": "development", "OIDC_ISSUER": "https://idp.example", **env})
    assert result.returncode != 0 and message in result.stderr


def test_point_6_a_password_session_from_before_sso_ends_when_sso_is_switched_on(client, settings, alice):
    from tests.oidc_provider import CLIENT_ID

    assert client.post("/login/", {"username": "alice", "password": PASSWORD})["Location"] == "/"
    root = Client()
    User.objects.create_superuser("root", "root@agency.example", PASSWORD)
    assert root.post("/login/", {"username": "root", "password": PASSWORD})["Location"] == "/"
    assert client.get("/").status_code == 200

    settings.OIDC_ISSUER, settings.OIDC_RP_CLIENT_ID = "https://idp.agency.example", CLIENT_ID
    assert client.get("/").status_code == 302  # alice's password session is over
    assert client.get("/audit/")["Location"].startswith("/login/")
    assert root.get("/").status_code == 200  # a superuser's password is break-glass: it stays


def test_point_7_logout_ends_the_providers_session_too(client, oidc):
    oidc.post_logout_redirect_uris.add("http://testserver/login/")  # registered at the provider (docs/deploying.md)
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    id_token = client.session[ID_TOKEN]

    out = client.post("/logout/")
    assert out.status_code == 302 and out["Location"].startswith(f"{oidc.url}/logout?")
    params = _query(out["Location"])
    assert params == {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": "http://testserver/login/",
        "client_id": oidc_provider.CLIENT_ID,
    }
    assert client.get("/").status_code == 302  # Onramp's session is over already
    assert _actions()[-1] == "auth.logout"
    at_provider = browser.get(out["Location"], allow_redirects=False)
    assert at_provider.status_code == 302 and at_provider.headers["Location"] == "http://testserver/login/"

    # The provider's session is over too: the next sign-in asks for the password again.
    again = browser.get(client.get("/oidc/authenticate/")["Location"], allow_redirects=False)
    assert again.status_code == 200 and "Test provider: sign in" in again.text


def test_point_7_a_provider_without_an_end_session_endpoint_like_google_keeps_its_session(client, oidc):
    oidc.end_session_supported = False
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, browser, oidc)
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/").status_code == 302
    assert browser.get(client.get("/oidc/authenticate/")["Location"], allow_redirects=False).status_code == 302
    assert oidc.logouts == []


def test_point_7_a_break_glass_session_logs_out_at_onramp_only(client, oidc):
    User.objects.create_superuser("root", "root@agency.example", PASSWORD)
    client.post("/login/", {"username": "root", "password": PASSWORD})
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/").status_code == 302 and oidc.logouts == []


def test_point_4_refused_sign_ins_throttle_that_identity_not_everyone_behind_its_address(client, oidc, settings):
    pat = oidc.account_set("pat@agency.example", password=AT_PROVIDER, groups=["onramp-leads"], email_verified=False)
    browser = requests.Session()
    for _ in range(settings.AXES_FAILURE_LIMIT):  # all from the office's one address
        assert sign_in(client, browser, oidc, email="pat@agency.example")["Location"] == "/login/"
    refused = AuditEvent.objects.filter(action="auth.sso_refused").first()
    assert (refused.details["iss"], refused.details["sub"]) == (oidc.url, pat.sub)

    # A colleague behind the same address signs in.
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    assert sign_in(Client(), requests.Session(), oidc)["Location"] == "/"

    # Pat, verified now, waits out the cool-off: the throttle is Pat's identity's.
    oidc.account_set("pat@agency.example", password=AT_PROVIDER, groups=["onramp-leads"])
    assert sign_in(client, browser, oidc, email="pat@agency.example")["Location"] == "/login/"
    assert "Too many refused sign-ins for this account" in client.get("/login/").content.decode()
    throttled = AuditEvent.objects.get(action="auth.sso_throttled")
    assert (throttled.error_code, throttled.details["sub"]) == ("TooManyRefusals", pat.sub)
    assert not User.objects.filter(username="pat@agency.example").exists()


def test_point_4_a_flood_of_refused_sign_ins_from_one_address_meets_a_ceiling(client, oidc, settings):
    assert settings.OIDC_IP_FAILURE_LIMIT >= 10 * settings.AXES_FAILURE_LIMIT  # high by default
    settings.OIDC_IP_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT + 2  # lower here, to keep the test short
    for n in range(settings.OIDC_IP_FAILURE_LIMIT):  # many identities, each refused once or twice
        oidc.account_set(f"m{n // 2}@gmail.example", password=AT_PROVIDER)
        sign_in(Client(), requests.Session(), oidc, email=f"m{n // 2}@gmail.example")
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    flooded = sign_in(client, requests.Session(), oidc)
    assert flooded.status_code == 429 and "_auth_user_id" not in client.session
    other = Client(REMOTE_ADDR="192.0.2.50")
    assert sign_in(other, requests.Session(), oidc)["Location"] == "/"


def test_point_5_every_sign_in_row_records_the_client_behind_the_proxy_not_the_proxy(client, oidc, settings, alice):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/24")]
    behind = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7"}
    office = Client(**behind)
    browser = requests.Session()
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(office, browser, oidc)
    credential, reauth = _stale_reveal(office, User.objects.get(username=LEAD))
    through_provider(office, browser, oidc, office.get(reauth)["Location"], email=LEAD)
    oidc.account_set("m@gmail.example", password=AT_PROVIDER)
    sign_in(office, requests.Session(), oidc, email="m@gmail.example")

    settings.OIDC_ISSUER = ""  # a local user's password re-authentication, behind the same proxy
    local = Client(**behind)
    local.post("/login/", {"username": "alice", "password": PASSWORD})
    _, reauth = _stale_reveal(local, alice)
    local.post(reauth, {"password": PASSWORD, "next": "/"})

    rows = AuditEvent.objects.filter(action__startswith="auth.").exclude(action="auth.reauth_required")
    assert set(rows.values_list("action", flat=True)) >= {
        "auth.user_created", "auth.groups_changed", "auth.login", "auth.reauthenticated", "auth.domain_refused"
    }  # fmt: skip
    assert set(rows.values_list("details__ip", flat=True)) == {"203.0.113.7"}


def test_point_1_an_admin_unlinks_an_identity_so_that_the_next_one_with_the_email_is_linked(client, oidc, dana):
    first = oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    sign_in(client, requests.Session(), oidc)
    lead = User.objects.get(username=LEAD)
    client.post("/logout/")
    oidc.account_remove(LEAD)
    second = oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])  # remade at the provider
    assert sign_in(client, requests.Session(), oidc)["Location"] == "/login/"

    admin = Client()
    admin.force_login(dana, backend=OIDC_BACKEND)  # an Admin signed in through the provider
    session_set(admin, **{RENEW_AT: time.time() + 3600})
    identity = ProviderIdentity.objects.get(user=lead)
    page = admin.get("/admin/provisioning/provideridentity/")
    assert page.status_code == 200 and first.sub in page.content.decode()
    assert admin.get(f"/admin/provisioning/provideridentity/{identity.pk}/delete/").status_code == 200
    admin.post(f"/admin/provisioning/provideridentity/{identity.pk}/delete/", {"post": "yes"})
    unlinked = AuditEvent.objects.get(action="auth.identity_unlinked")
    assert (unlinked.actor, unlinked.target, unlinked.details["sub"]) == (dana, LEAD, first.sub)

    assert sign_in(client, requests.Session(), oidc)["Location"] == "/"
    assert client.session["_auth_user_id"] == str(lead.pk)
    assert ProviderIdentity.objects.get(user=lead).subject == second.sub
