"""The plan's checks in the preview (issue 32 point 4), walked once in Debian's headless Chromium, each page
checked at 1366 and 1920 px: each check a row with its sentence and what to do, a blocking row keeping Start
disabled with its reason, and a Start forced anyway refused. Screenshots go to tests/artifacts/
(layout-<width>-plan-checks-*.png)."""

import pytest
from playwright.sync_api import expect

from provisioning.models import Run
from tests.awsread import account_session
from tests.conftest import start_run, wait_for_run
from tests.layout import at_flow_size, layout_checks
from tests.test_browser import browser_type_launch_args, log_in  # noqa: F401  (Debian's Chromium)
from tests.test_sandbox import OTHER_ACCOUNT

pytestmark = pytest.mark.browser


def test_the_preview_shows_each_check_and_a_blocking_one_keeps_start_disabled(
    page, live_server, worker, alice, sandbox
):
    at_flow_size(page)
    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    account_session(sandbox.url, OTHER_ACCOUNT).s3.create_bucket(Bucket="theirs-media")
    base = live_server.url
    log_in(page, base)
    page.goto(f"{base}/customers/")
    page.get_by_role("link", name="Acme Corp").click()
    page.get_by_role("button", name="Change team / settings").click()
    page.get_by_label("S3 bucket").fill("theirs-media")
    page.get_by_role("button", name="Preview the plan").click()
    checks = page.locator("#plan-checks")
    expect(checks).to_be_visible(timeout=30_000)
    bucket = checks.locator("li[data-check='bucket']")
    expect(bucket).to_have_attribute("data-outcome", "block")
    expect(bucket).to_contain_text("Another AWS account already has a bucket named theirs-media")
    expect(bucket).to_contain_text("Choose another bucket name.")
    expect(checks.locator("li[data-check='billing']")).to_have_attribute("data-outcome", "warn")
    for name in ("region", "alias", "policies"):
        expect(checks.locator(f"li[data-check='{name}']")).to_have_attribute("data-outcome", "pass")
    start = page.locator("#start")
    expect(start).to_be_disabled()
    expect(page.locator("#start-blocked")).to_contain_text("Another AWS account already has a bucket")
    layout_checks(page, "plan-checks-blocked")

    # A Start forced anyway (the button enabled by hand) is refused by the server, with the same reason.
    page.evaluate("document.getElementById('start').disabled = false")
    start.click()
    expect(page.locator("ul.messages")).to_contain_text("The plan's checks found what would fail")
    assert Run.objects.count() == 1

    # Another name: every check passes but Billing's reminder, and Start is enabled.
    page.get_by_label("S3 bucket").fill("acme-app-media-2")
    page.get_by_role("button", name="Preview the plan").click()
    expect(page.locator("#plan-checks li[data-check='bucket']")).to_have_attribute(
        "data-outcome", "pass", timeout=30_000
    )
    expect(page.locator("#start")).to_be_enabled()
    expect(page.locator("#start-blocked")).to_have_count(0)
    layout_checks(page, "plan-checks-passing")
