"""Every page a tech lead and an Admin reach, at 1366×900 and 1920×1080, in Debian's Chromium: nothing
wider than the window, no table cell cut off, no table that needs a sideways scroll. Screenshots of
each page go to tests/artifacts/ (git-ignored), to look at."""

import re

import pytest
from playwright.sync_api import Page, expect

from provisioning.models import AuditEvent, Credential, Customer, Run
from tests.conftest import ARTIFACTS, seal_key, start_run, wait_for_run
from tests.layout import at_each_size, at_flow_size
from tests.staged import staged_run
from tests.test_browser import browser_type_launch_args, log_in  # noqa: F401  (Debian's Chromium)

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_approvals")]

# What does not fit: the document wider than the window; a cell whose content is wider than the cell
# while its overflow is hidden (cut off); a scrolling box other than a code block that needs a sideways
# scroll (a table hidden half off screen).
LAYOUT = """() => {
  const doc = document.documentElement;
  const hides = (s) => [s.overflow, s.overflowX].some((v) => v === "hidden" || v === "clip");
  const scrolls = (s) => ["auto", "scroll"].includes(s.overflowX);
  const text = (el) => (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 80);
  const clipped = [...document.querySelectorAll("td, th")]
    .filter((c) => c.scrollWidth > c.clientWidth + 1 && hides(getComputedStyle(c))).map(text);
  const sideways = [...document.querySelectorAll("body *:not(pre):not(textarea)")]
    .filter((el) => el.offsetParent !== null && scrolls(getComputedStyle(el)) && el.scrollWidth > el.clientWidth + 1)
    .map((el) => el.tagName + "." + el.className + ": " + text(el));
  return {overflow: doc.scrollWidth - doc.clientWidth, clipped, sideways};
}"""


class Walk:
    """A flow's pages, numbered in order, each checked at both window sizes (tests/layout.py's at_each_size)."""

    def __init__(self, page: Page):
        self.page, self.count = page, 0

    def check(self, name: str) -> None:
        """The page fits each window; its screenshot at each width is kept whatever the outcome."""
        self.page.wait_for_load_state("networkidle")
        self.count += 1
        ARTIFACTS.mkdir(exist_ok=True)
        at_each_size(self.page, lambda width: self._fits(width, name))

    def _fits(self, width: int, name: str) -> None:
        self.page.screenshot(path=ARTIFACTS / f"pages-{width}-{self.count:02d}-{name}.png", full_page=True)
        layout = self.page.evaluate(LAYOUT)
        assert layout == {"overflow": 0, "clipped": [], "sideways": []}, (name, width, self.page.url, layout)


def _runs_of_every_status(alice) -> dict[str, Run]:
    mid = {
        "preflight": "succeeded",
        "account.alias": "adopted",
        "iam.group": "succeeded",
        "iam.app_user": "running",
        "team.member:lead@agency.example": "succeeded",
        "team.member:dev@agency.example": "running",
        "s3.bucket": "adopted",
        "s3.public_access_block": "running",
        "ecr.repository": "succeeded",
    }
    return {
        "running": staged_run(alice, status="running", states=mid, account_id="333344445555"),
        "pending": staged_run(alice, status="pending", states={}, account_id="444455556666"),
        "failed": staged_run(
            alice,
            status="failed",
            states={"s3.bucket": "failed", "s3.public_access_block": "skipped", "s3.cors": "skipped"},
            default="succeeded",
            account_id="555566667777",
        ),
    }


def test_every_page_fits_the_screen_without_anything_cut_off(page, live_server, worker, alice, dana):
    base = live_server.url
    at_flow_size(page)
    walk = Walk(page)
    finished = wait_for_run(start_run(alice))
    assert finished.status == Run.Status.SUCCEEDED
    staged = _runs_of_every_status(alice)
    key = Credential.objects.get(run=finished, kind=Credential.Kind.ACCESS_KEY)

    log_in(page, base, "alice")
    walk.check("runs")

    page.goto(f"{base}/onboard/")
    page.get_by_label("New customer's name").press_sequentially("Globex Corporation International")
    page.get_by_label("AWS account id").fill("66667777")
    page.get_by_label("Role ARN", exact=True).fill("arn:aws:iam::666677778888:role/OnrampAccess")
    page.get_by_label("External id", exact=True).fill("globex-external-id-0001")
    page.locator("[name='team-0-email']").fill("lead@globex.example")
    page.locator("[name='team-0-role']").select_option("tech_lead")
    page.get_by_role("button", name="Add a team member").click()
    page.locator("[name='team-1-email']").fill("dev@globex.example")
    page.locator("[name='team-1-policy']").select_option("AmazonEC2ContainerRegistryPowerUser")
    page.get_by_role("button", name="Preview the plan").click()
    expect(page.locator("#error-summary")).to_be_visible()
    walk.check("form-errors")

    page.get_by_label("AWS account id").fill("666677778888")
    page.get_by_label("App origin for uploads (CORS)").fill("https://globex.example.com")
    page.get_by_role("button", name="Preview the plan").click()
    expect(page).to_have_url(f"{base}/onboard/preview/")
    for summary in page.locator("details > summary").all():
        summary.click()
    walk.check("preview")

    page.goto(f"{base}/runs/{staged['running'].pk}/")
    expect(page.locator("#timeline")).to_be_visible()
    walk.check("live-run")
    page.goto(f"{base}/runs/{staged['failed'].pk}/")
    walk.check("failed-run")
    page.goto(f"{base}/runs/{finished.pk}/")
    expect(page.locator("#summary")).to_be_visible()
    walk.check("finished-run")

    page.goto(f"{base}/customers/")
    walk.check("customers")
    page.goto(f"{base}/customers/{finished.customer.slug}/")
    walk.check("customer")
    page.get_by_role("button", name="Change team / settings").click()
    page.get_by_label("App origin for uploads (CORS)").fill("https://new.acme-app.example")
    page.get_by_role("button", name="Preview the plan").click()
    expect(page.locator("section.plan-group[data-action='change']")).to_contain_text("CORS", timeout=30_000)
    for summary in page.locator("details > summary").all():
        summary.click()
    walk.check("preview-difference")

    page.goto(f"{base}/credentials/{key.pk}/")
    walk.check("credential-sealed")
    page.get_by_role("button", name="Reveal once").click()
    expect(page.locator("#secret-block")).to_contain_text("AWS_SECRET_ACCESS_KEY=")
    walk.check("credential-revealed")
    page.reload()
    walk.check("credential-receipt")

    page.goto(f"{base}/audit/")
    walk.check("audit")
    page.goto(f"{base}/audit/?run={finished.pk}")
    walk.check("audit-run")
    with_arn = AuditEvent.objects.filter(run=finished, target__startswith="arn:").order_by("id").first()
    assert with_arn is not None
    page.goto(f"{base}/audit/{with_arn.pk}/")
    walk.check("audit-event")

    page.get_by_role("button", name=re.compile("Log out")).click()
    log_in(page, base, "dana")
    customer = Customer.objects.get(aws_account_id=finished.customer.aws_account_id)
    page.goto(f"{base}/admin/provisioning/customer/{customer.pk}/change/")
    walk.check("admin-customer")
    page.goto(f"{base}/admin/provisioning/customer/add/")
    walk.check("admin-customer-add")
    page.goto(f"{base}/runs/{finished.pk}/")
    walk.check("admin-finished-run")
    sealed = seal_key(finished, secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", access_key_id="AKIAI44QH8DHBEXAMPLE")
    page.goto(f"{base}/credentials/{sealed.pk}/")
    walk.check("admin-credential-sealed")
    assert walk.count == 19
