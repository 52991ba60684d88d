"""The drift check in a real headless Chromium: the Drift page → the customer → Repair's plan → its run →
In sync again. The live server, the real worker, the strict sandbox."""

import re

import pytest
from playwright.sync_api import Page, expect

from provisioning import drift
from provisioning.models import DriftState, Run
from tests import test_browser
from tests.awsread import account_session
from tests.conftest import ARTIFACTS, CUSTOMER_ACCOUNT, start_run, wait_for_run
from tests.test_browser import RUN_TIMEOUT_MS, log_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser
# The browser's fixtures, as the other browser tests have them.
browser_type_launch_args, shots = test_browser.browser_type_launch_args, test_browser.shots


def _walk(page: Page, name: str) -> None:
    """The page at both desktop widths, kept in tests/artifacts/ to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1366, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=ARTIFACTS / f"drift-{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_drift_page_to_customer_to_repair_plan_to_run_to_in_sync(page, live_server, worker, alice, sandbox, shots):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    customer = run.customer
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.delete_bucket_cors(Bucket="acme-app-media")  # someone debugging an upload
    read = drift.drift_check_start(customer=customer)  # as the nightly schedule does
    wait_until(DriftState.objects.filter(last_read=read).exists, timeout=30, message="the check did not end")
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Drift").click()
        row = page.locator("tr[data-customer='c-111122223333']")
        expect(row).to_contain_text("Drifted")
        expect(row).to_contain_text("CORS rules")
        _walk(page, "list")
        row.get_by_role("link", name="Acme Corp").click()
        panel = page.locator("#drift")
        expect(panel.locator("#drift-state")).to_have_text("Drifted")
        expect(panel).to_contain_text("CORS: GET from anywhere, uploads from https://acme-app.herokuapp.com")
        _walk(page, "customer")
        panel.get_by_role("button", name="Repair…").click()
        expect(page).to_have_url(f"{base}/onboard/preview/")
        change = page.locator("section.plan-group[data-action='change']")
        expect(change).to_contain_text("CORS", timeout=30_000)
        expect(page.locator("section.plan-group[data-action='create']")).to_have_count(0)
        shots.take("plan")
        page.get_by_role("button", name="Start").click()
        expect(page).to_have_url(re.compile(rf"{re.escape(base)}/runs/[0-9a-f-]{{36}}/$"))
        expect(page.locator("#run-live")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT_MS)
        page.goto(f"{base}/customers/{customer.slug}/")
        page.locator("#drift").get_by_role("button", name="Check now").click()
        expect(page.locator("#drift #drift-state")).to_have_text("In sync", timeout=30_000)
        _walk(page, "customer-in-sync")
    assert s3.get_bucket_cors(Bucket="acme-app-media")["CORSRules"]


def test_an_unreachable_customer_comes_first_with_its_reason_and_the_admin_filters_it(
    page, live_server, worker, alice, dana, sandbox, shots
):
    from tests.conftest import customer_make

    run = wait_for_run(start_run(alice))
    customer = run.customer
    customer_make(name="Beta Ltd", slug="beta", aws_account_id="444455556666")  # never checked: last
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    for name in iam.list_role_policies(RoleName="OnrampAccess")["PolicyNames"]:
        iam.delete_role_policy(RoleName="OnrampAccess", PolicyName=name)
    iam.delete_role(RoleName="OnrampAccess")
    read = drift.drift_check_start(customer=customer)
    wait_until(DriftState.objects.filter(last_read=read).exists, timeout=30, message="the check did not end")
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/drift/")
        rows = page.locator("table.drift tbody tr")
        expect(rows.nth(0)).to_contain_text("Unreachable")
        expect(rows.nth(0)).to_contain_text("AWS refused sts:AssumeRole")
        expect(rows.nth(1)).to_contain_text("Not checked yet")
        _walk(page, "list-unreachable")
        page.goto(f"{base}/customers/{customer.slug}/")
        expect(page.locator("#drift-reason")).to_contain_text("AWS refused sts:AssumeRole on the customer's role")
        expect(page.locator("#drift #repair")).to_have_count(0)  # nothing to repair until it can be read
        _walk(page, "customer-unreachable")
        page.context.clear_cookies()  # alice signs out; dana, an Admin, signs in
        log_in(page, base, "dana")
        page.goto(f"{base}/admin/provisioning/customer/?drift=unreachable")
        expect(page.locator("#result_list")).to_contain_text("Unreachable")
        expect(page.locator("#result_list")).not_to_contain_text("Beta Ltd")
        _walk(page, "admin")
