"""A new customer's preview in Debian's headless Chromium, each page checked at 1366 and 1920 px (#30 point 3):
the account is read first, what the spec names and the account has shows under "Adopt" with what was found, a
user outside Onramp's path blocks Start with the customer's command; once the customer moved it, the tech lead
asks for approval and an Admin approves the adoptions, which starts the run. Screenshots go to tests/artifacts/
(layout-<width>-adoption-*.png)."""

import re

import pytest
from playwright.sync_api import expect

from provisioning.models import PlanApproval, Run
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT
from tests.layout import at_flow_size, layout_checks
from tests.test_adoption import _customers_account
from tests.test_browser import browser_type_launch_args, fill_form, log_in  # noqa: F401  (Debian's Chromium)

pytestmark = pytest.mark.browser


def test_a_new_customers_preview_shows_adoptions_and_blocks_a_user_outside_the_path(
    page, live_server, worker, alice, dana, sandbox
):
    _customers_account(sandbox)
    at_flow_size(page)
    base = live_server.url
    log_in(page, base)
    page.goto(f"{base}/onboard/")
    fill_form(page, origin="https://acme-app.herokuapp.com")
    page.get_by_label("App name").fill("ops-admin")
    page.get_by_label("S3 bucket").fill("acme-app-media")
    page.locator("[name='team-0-email']").fill("admin@acme.example")
    page.get_by_role("button", name="Preview the plan").click()

    adopt = page.locator("section.plan-group[data-action='adopt']")
    expect(adopt).to_be_visible(timeout=30_000)
    expect(adopt.locator("li[data-item='iam.app_user']")).to_contain_text(
        "user ops-admin exists (path /): 0 access keys, a console password"
    )
    expect(adopt.locator("li[data-item='iam.app_user']")).to_contain_text("attached AdministratorAccess")
    expect(adopt.locator("li[data-item='s3.cors']")).to_contain_text("The bucket has its own CORS configuration")
    path = page.locator("#plan-checks li[data-check='path']")
    expect(path).to_have_attribute("data-outcome", "block")
    expect(path).to_contain_text("aws iam update-user --user-name ops-admin --new-path /onramp/")
    expect(page.locator("#start")).to_be_disabled()
    layout_checks(page, "adoption-blocked")
    assert not Run.objects.exists()

    # The customer moves both users into Onramp's path; the plan read again now adopts them, which only an Admin
    # may approve: the tech lead asks, an Admin approves on the same plan, and the run adopts.
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    for name in ("ops-admin", "admin@acme.example"):
        iam.update_user(UserName=name, NewPath="/onramp/")
    page.goto(f"{base}/onboard/?edit=1")
    page.get_by_role("button", name="Preview the plan").click()
    notice = page.locator("#approval-needed")
    expect(notice).to_be_visible(timeout=30_000)
    expect(notice.locator("li[data-reason='adopt']")).to_contain_text("an Admin must approve it")
    expect(page.locator("#plan-checks li[data-check='path']")).to_have_attribute("data-outcome", "pass")
    layout_checks(page, "adoption-approval")
    page.get_by_role("button", name="Ask for approval").click()
    expect(page).to_have_url(re.compile(r"/approvals/[0-9a-f-]+/$"))
    approval = PlanApproval.objects.get()
    assert approval.admin_only and not Run.objects.exists()
    page.context.clear_cookies()
    log_in(page, base, "dana")
    page.goto(f"{base}/approvals/{approval.pk}/")
    page.locator("#approve").click()
    expect(page.locator("#run-live")).to_have_attribute("data-status", "succeeded", timeout=90_000)
    run = Run.objects.get()
    assert run.started_by.username == "alice" and run.approved_by.username == "dana"
