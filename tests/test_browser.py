"""The tech lead's whole path in a real headless Chromium (Debian's), against the live server, a real
Celery worker and the sandbox AWS.

When a scenario fails, the screenshots taken on the way (the form, the preview, the finished run) and
one of the page at the moment of failure are written to tests/artifacts/.
"""

import contextlib
import re
import time
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from provisioning.identity.oidc import AUTH_AT, RENEW_AT
from provisioning.models import AuditEvent, Credential, Customer, Run
from tests.conftest import ARTIFACTS, CUSTOMER_ACCOUNT, PASSWORD, finished_run, seal_key

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_approvals")]
RUN_TIMEOUT_MS = 90_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


class Shots:
    """Screenshots taken as a scenario goes, written to tests/artifacts/ only if it fails."""

    def __init__(self, page: Page, name: str):
        self.page, self.name, self.taken = page, re.sub(r"[^\w.-]+", "_", name), {}

    def take(self, label: str) -> None:
        self.taken[label] = self.page.screenshot(full_page=True)

    @contextlib.contextmanager
    def on_failure(self):
        try:
            yield self
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            with contextlib.suppress(Exception):
                self.taken["at-failure"] = self.page.screenshot(full_page=True)
            for label, png in self.taken.items():
                (ARTIFACTS / f"{self.name}-{label}.png").write_bytes(png)
            raise


@pytest.fixture
def shots(page, request):
    return Shots(page, request.node.name)


def log_in(page: Page, base: str, username: str = "alice") -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()


def fill_form(page: Page, *, origin: str) -> None:
    page.get_by_label("New customer's name").press_sequentially("Acme Corp")
    page.get_by_label("AWS account id").fill(CUSTOMER_ACCOUNT)
    page.get_by_label("Region", exact=True).select_option("us-west-2")
    page.get_by_label("Role ARN", exact=True).fill(f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess")
    page.get_by_label("External id", exact=True).fill("acme-external-id-0123456789")
    page.get_by_label("App origin for uploads (CORS)").fill(origin)
    page.locator("[name='team-0-email']").fill("lead@agency.example")
    page.locator("[name='team-0-role']").select_option("tech_lead")


# Records, in the page, every state each step row shows, across htmx swaps; and counts the swaps.
WATCH_STEPS = """() => {
  window.__onrampMarker = "same page";
  window.__seen = {};
  window.__swaps = 0;
  const record = () => document.querySelectorAll("tr.step").forEach((row) => {
    const seen = (window.__seen[row.dataset.step] = window.__seen[row.dataset.step] || []);
    if (seen[seen.length - 1] !== row.dataset.state) seen.push(row.dataset.state);
  });
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, attributes: true});
  document.body.addEventListener("htmx:afterSwap", () => { window.__swaps += 1; });
}"""


def test_a_tech_lead_onboards_an_account_from_the_form_to_the_credentials(page, live_server, worker, alice, shots):
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.get_by_role("link", name="Onboard a customer's AWS account").click()
        expect(page).to_have_url(f"{base}/onboard/")

        # Defaults follow the customer's name as it is typed.
        fill_form(page, origin="http://acme-corp.example.com")
        expect(page.get_by_label("App name (IAM user)")).to_have_value("acme-corp")
        expect(page.get_by_label("S3 bucket")).to_have_value("acme-corp-media")
        expect(page.get_by_label("ECR repository")).to_have_value("acme-corp")
        expect(page.locator("[name='team-0-policy']")).to_be_hidden()  # tech leads get their policies

        # A mistake: the message is next to the field, the summary links to it.
        page.get_by_role("button", name="Preview the plan").click()
        error = page.locator("#field-app_origin .error")
        expect(error).to_contain_text("The app's origin must start with https://")
        expect(page.get_by_label("App origin for uploads (CORS)")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#error-summary")).to_be_focused()
        expect(page.locator(".has-error")).to_have_count(1)
        expect(page.get_by_label("New customer's name")).to_have_value("Acme Corp")  # nothing typed is lost
        shots.take("form")

        page.get_by_label("App origin for uploads (CORS)").fill("https://acme-corp.example.com")
        page.get_by_role("button", name="Preview the plan").click()
        expect(page).to_have_url(f"{base}/onboard/preview/")
        # Every plan reads the account first: an empty one, so each of the 12 resources is created (the repository's
        # policy too: none, which a new repository already is).
        expect(page.locator("li.plan-item[data-action='create']")).to_have_count(12, timeout=30_000)
        page.locator("summary", has_text="ECR lifecycle policy").click()
        expect(page.locator("pre[data-document='lifecycle_policy']")).to_contain_text('"rulePriority": 19')
        shots.take("preview")

        page.get_by_role("button", name="Start", exact=True).click()
        expect(page).to_have_url(re.compile(rf"{re.escape(base)}/runs/[0-9a-f-]{{36}}/$"))
        navigations = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
        page.evaluate(WATCH_STEPS)
        first_seen = page.evaluate("() => Object.values(window.__seen).map((states) => states[0])")

        # The steps turn green while this very page stays loaded: htmx swaps the rows in.
        expect(page.locator("#run-live")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT_MS)
        seen = page.evaluate("() => window.__seen")
        assert navigations == [] and page.evaluate("() => window.__onrampMarker") == "same page"
        assert page.evaluate("() => window.__swaps") >= 1
        assert any(state != "succeeded" for state in first_seen), first_seen  # it was not done when shown
        assert all(states[-1] == "succeeded" for states in seen.values()), seen
        assert max(len(states) for states in seen.values()) >= 2, seen  # a step changed state on screen
        expect(page.locator("tr.step")).to_have_count(13)
        expect(page.locator("#run-status")).to_have_text("Succeeded")
        expect(page.locator("#cancel")).to_have_count(0)  # the last poll took the Cancel button away
        summary = page.locator("#summary")
        expect(summary).to_contain_text(f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/onramp/acme-corp")
        expect(summary).to_contain_text("arn:aws:s3:::acme-corp-media")
        expect(summary).to_contain_text(f"{CUSTOMER_ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/acme-corp")
        expect(summary).to_contain_text("https://acme-corp.signin.aws.amazon.com/console")
        shots.take("run")

        # Reveal the app's key once.
        run = Run.objects.get()
        key = Credential.objects.get(run=run, kind=Credential.Kind.ACCESS_KEY)
        page.locator(f"li[data-credential='{key.pk}']").get_by_role("button", name="Reveal once").click()
        secret_block = page.locator("#secret-block")
        expect(secret_block).to_contain_text(f"AWS_ACCESS_KEY_ID={key.access_key_id}")
        assert re.search(r"^AWS_SECRET_ACCESS_KEY=\S{20,}$", secret_block.inner_text(), re.M)
        expect(secret_block).to_contain_text("AWS_S3_BUCKET=acme-corp-media")
        # The page swapped its history entry for the credential's GET page (the POST is not replayed).
        expect(page).to_have_url(f"{base}/credentials/{key.pk}/")

        # Reload: the secret is gone, the receipt says who saw it; the reload did not try to reveal again.
        page.reload()
        expect(page.locator(".receipt")).to_contain_text("Revealed by alice")
        expect(page.locator("body")).not_to_contain_text("AWS_SECRET_ACCESS_KEY")
        key.refresh_from_db()
        assert key.state == Credential.State.REVEALED and key.refused_attempts == 0 and key.ciphertext == ""
        page.get_by_role("link", name="Back to the run").click()
        expect(page.locator(f"li[data-credential='{key.pk}']")).to_contain_text("revealed by alice")


def _overflow(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_the_pages_fit_a_phone_screen(page, live_server, worker, alice, shots):
    base = live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/onboard/")
        assert _overflow(page) <= 390
        shots.take("form")
        fill_form(page, origin="https://acme-corp.example.com/with/a/path")
        page.get_by_label("S3 bucket").fill("a-very-long-bucket-name-that-is-still-fine..but-not-with-two-dots")
        page.get_by_role("button", name="Preview the plan").click()
        expect(page.locator(".has-error")).to_have_count(2)
        assert _overflow(page) <= 390
        shots.take("form-errors")
        page.get_by_label("S3 bucket").fill("acme-corp-media")
        page.get_by_label("App origin for uploads (CORS)").fill("https://acme-corp.example.com")
        page.get_by_role("button", name="Preview the plan").click()
        expect(page).to_have_url(f"{base}/onboard/preview/")
        assert _overflow(page) <= 390
        shots.take("preview")
        page.get_by_role("button", name="Start", exact=True).click()
        expect(page.locator("#run-live")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT_MS)
        assert _overflow(page) <= 390
        shots.take("run")


# Every visible field of the form, in the order Tab should reach them.
TAB_ORDER = [
    "customer",
    "new_customer_name",
    "account_id",
    "region",
    "account_alias",
    "access",
    "role_arn",
    "external_id",
    "app_name",
    "group_name",
    "bucket",
    "app_origin",
    "ecr_repository",
    "media_scope",
    "team-0-email",
    "team-0-role",
    "team-0-policy",
    "team-0-console",
    "#remove-team-0",
    "#add-member",
    "#submit",
]
UNLABELLED = """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !el.getAttribute("aria-labelledby"))
  .map((el) => el.name || el.id)"""
FOCUSED = """() => { const el = document.activeElement;
  if (el.type === "submit") return "#submit";
  return el.name || (el.id ? "#" + el.id : el.tagName); }"""


def test_the_form_is_keyboard_navigable_and_every_field_has_a_label(page, live_server, alice, shots):
    base = live_server.url
    with shots.on_failure():
        page.goto(f"{base}/login/")
        assert page.evaluate(UNLABELLED) == []
        log_in(page, base)
        page.goto(f"{base}/onboard/")
        assert page.evaluate(UNLABELLED) == []
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")  # the skip link jumps over the navigation
        reached = []
        for _ in range(60):
            page.keyboard.press("Tab")
            name = page.evaluate(FOCUSED)
            if name in ("#submit", "BODY"):
                reached.append(name)
                break
            if name not in reached:
                reached.append(name)
        assert reached == TAB_ORDER

        # The keyboard adds a team member and lands in its first field; the new row has labels too.
        page.locator("#add-member").focus()
        page.keyboard.press("Enter")
        expect(page.locator("[name='team-1-email']")).to_be_focused()
        assert page.evaluate(UNLABELLED) == []
        # The keys fields appear, labelled, when chosen with the keyboard.
        page.locator("#id_access_0").focus()
        page.keyboard.press("ArrowDown")
        expect(page.get_by_label("Access key id")).to_be_visible()
        expect(page.get_by_label("Role ARN")).to_be_hidden()
        assert page.evaluate(UNLABELLED) == []


def test_picking_a_customer_on_record_fills_its_account_and_the_defaults(page, live_server, alice, shots):
    customer = Customer.objects.create(
        name="Globex Corporation",
        slug="globex",
        aws_account_id="444455556666",
        default_region="eu-west-1",
        role_arn="arn:aws:iam::444455556666:role/OnrampAccess",
        external_id="globex-external-id-0001",
    )
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/onboard/")
        page.get_by_label("Customer", exact=True).select_option(str(customer.pk))
        expect(page.get_by_label("AWS account id")).to_have_value("444455556666")
        expect(page.get_by_label("Region", exact=True)).to_have_value("eu-west-1")
        expect(page.get_by_label("Role ARN", exact=True)).to_have_value("arn:aws:iam::444455556666:role/OnrampAccess")
        expect(page.get_by_label("External id", exact=True)).to_have_value("globex-external-id-0001")
        expect(page.get_by_label("New customer's name")).to_be_hidden()
        expect(page.get_by_label("App name (IAM user)")).to_have_value("globex")
        expect(page.get_by_label("S3 bucket")).to_have_value("globex-media")
        # A value the user typed is theirs: picking again does not overwrite it.
        page.get_by_label("S3 bucket").fill("globex-uploads")
        page.get_by_label("Customer", exact=True).select_option("")
        page.get_by_label("Customer", exact=True).select_option(str(customer.pk))
        expect(page.get_by_label("S3 bucket")).to_have_value("globex-uploads")


# --- Sign-in through the identity provider (tests/oidc_provider.py on loopback) ---
LEAD = "lead@agency.example"
AT_PROVIDER = "provider-password-0123"


def sso_log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_role("link", name="Sign in with Test provider").click()
    expect(page.get_by_role("heading", name="Test provider: sign in")).to_be_visible()
    page.get_by_label("Email").fill(LEAD)
    page.get_by_label("Password").fill(AT_PROVIDER)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()


def browser_session_set(page: Page, **values) -> None:
    """Change what the browser's Onramp session holds (its times, to make it older)."""
    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    session.update(values)
    session.save()


def test_a_tech_lead_signs_in_with_the_provider_and_signs_in_again_before_a_reveal(page, live_server, oidc, shots):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    base = live_server.url
    with shots.on_failure():
        sso_log_in(page, base)
        lead = User.objects.get(username=LEAD)
        assert list(lead.groups.values_list("name", flat=True)) == ["Tech leads"]
        run = finished_run(lead)
        key = seal_key(run, secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        browser_session_set(page, **{AUTH_AT: time.time() - 11 * 60})  # signed in 11 minutes ago

        page.goto(f"{base}/runs/{run.pk}/")
        page.locator(f"li[data-credential='{key.pk}']").get_by_role("button", name="Reveal once").click()
        # The provider asks again (max_age=0, prompt=login), although its own session is on.
        expect(page.get_by_role("heading", name="Test provider: sign in")).to_be_visible()
        assert (oidc.requests[-1]["max_age"], oidc.requests[-1]["prompt"]) == ("0", "login")
        expect(page.get_by_label("Email")).to_have_value(LEAD)
        shots.take("provider-asks-again")
        page.get_by_label("Password").fill(AT_PROVIDER)
        page.get_by_role("button", name="Sign in").click()

        # Back on the credential's page, still sealed: the reveal happens once, now.
        expect(page).to_have_url(f"{base}/credentials/{key.pk}/")
        key.refresh_from_db()
        assert key.state == Credential.State.SEALED
        page.get_by_role("button", name="Reveal once").click()
        expect(page.locator("#secret-block")).to_contain_text(
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )
        page.reload()
        expect(page.locator(".receipt")).to_contain_text(f"Revealed by {LEAD}")
        assert AuditEvent.objects.filter(action="credential.revealed").count() == 1
        assert AuditEvent.objects.filter(action="auth.reauthenticated", actor=lead).count() == 1


def test_the_live_run_page_goes_through_the_provider_when_the_session_is_due_for_a_check(
    page, live_server, oidc, shots
):
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    base = live_server.url
    with shots.on_failure():
        sso_log_in(page, base)
        lead = User.objects.get(username=LEAD)
        run = finished_run(lead)
        Run.objects.filter(pk=run.pk).update(status=Run.Status.PENDING)  # active: the page polls every second
        page.goto(f"{base}/runs/{run.pk}/")
        page.evaluate("() => { window.__onrampMarker = 'before'; }")
        expect(page.locator("#run-live")).to_have_attribute("hx-trigger", "every 1s")

        browser_session_set(page, **{RENEW_AT: time.time() - 1})
        # The next poll makes htmx reload the whole page; the reload goes through the provider
        # (prompt=none, silently) and comes back to the run's page, not to its polled fragment.
        page.wait_for_function("() => window.__onrampMarker === undefined", timeout=15_000)
        expect(page).to_have_url(f"{base}/runs/{run.pk}/")
        expect(page.locator("#run-live")).to_have_attribute("data-status", "pending")
        assert oidc.requests[-1]["prompt"] == "none"
        assert AuditEvent.objects.filter(action="auth.session_renewed", actor=lead).count() == 1


def test_a_failed_run_is_edited_and_started_again_as_a_difference_plan(
    page, live_server, worker, alice, sandbox, shots
):
    """Failed run → Edit and start again → the difference plan (it removes the policy made for the bucket
    name that was taken) → the run → the customer's page, where the ledger says what happened."""
    from tests.conftest import start_run, wait_for_run

    sandbox.configure(bucket_taken_at_create="taken-media")  # taken after the preflight checked it
    failed = wait_for_run(start_run(alice, bucket="taken-media", team=[]))
    assert failed.status == Run.Status.FAILED
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/runs/{failed.pk}/")
        page.get_by_role("button", name="Edit and start again").click()
        expect(page).to_have_url(f"{base}/onboard/?edit=1")
        bucket = page.get_by_label("S3 bucket")
        expect(bucket).to_have_value("taken-media")
        bucket.fill("acme-app-media-2")
        shots.take("form")
        page.get_by_role("button", name="Preview the plan").click()
        expect(page).to_have_url(f"{base}/onboard/preview/")
        # The account is read as a task; the page reloads into the difference once it is done.
        removal = page.locator("section.plan-group[data-action='remove']")
        expect(removal).to_contain_text("MediaManagement-taken-media", timeout=30_000)
        expect(page.locator("section.plan-group[data-action='create']")).to_contain_text(
            "MediaManagement-acme-app-media-2"
        )
        expect(page.locator("section.plan-group[data-action='keep']")).to_contain_text("App user acme-app")
        shots.take("preview")
        page.get_by_role("button", name="Start").click()
        expect(page).to_have_url(re.compile(rf"{re.escape(base)}/runs/[0-9a-f-]{{36}}/$"))
        expect(page.locator("#run-live")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT_MS)
        shots.take("run")
        page.goto(f"{base}/customers/")
        page.get_by_role("link", name="Acme Corp").click()
        resources = page.locator("#resources")
        expect(resources.locator("tr[data-resource='MediaManagement-acme-app-media-2']")).to_contain_text("Present")
        expect(resources.locator("tr[data-resource='MediaManagement-taken-media']")).to_contain_text("Removed")
        # The first run's access key still waits to be revealed, listed where the tech lead looks.
        expect(page.locator("#unrevealed")).to_contain_text("App access key")
        shots.take("customer")


def test_point_7_logging_out_in_a_browser_ends_the_providers_session_too(page, live_server, oidc, shots):
    """The logout form's redirect to the provider passes the Content Security Policy (form-action), and the
    next sign-in shows the provider's form again."""
    oidc.account_set(LEAD, password=AT_PROVIDER, groups=["onramp-leads"])
    oidc.post_logout_redirect_uris.add(f"{live_server.url}/login/")
    with shots.on_failure():
        sso_log_in(page, live_server.url)
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{live_server.url}/login/")
        assert len(oidc.logouts) == 1
        page.get_by_role("link", name="Sign in with Test provider").click()
        expect(page.get_by_role("heading", name="Test provider: sign in")).to_be_visible()
