"""Approvals, once, in Debian's headless Chromium, against the live server, the real worker and the sandbox: alice
asks (a first onboarding with a tech lead grants AdministratorAccess) → the plan awaits → dana, an Admin, sees the
count in the menu, the Approvals page, the same preview with Approve and Decline → approves → the run page names
both, and the run succeeds. Each page must fit the window at 1366×900 and at 1920×1080; its screenshot at each
width goes to tests/artifacts/ (git-ignored), to look at."""

import re

import pytest
from playwright.sync_api import expect

from provisioning.models import AuditEvent, PlanApproval, Run
from tests.layout import at_flow_size, screenshots
from tests.test_browser import browser_type_launch_args, fill_form, log_in  # noqa: F401  (Debian's Chromium)
from tests.views.test_pages import Walk

pytestmark = pytest.mark.browser
RUN_TIMEOUT_MS = 90_000


def test_a_plan_asked_for_by_one_person_is_approved_by_another_and_runs_with_both_names(
    page, live_server, worker, alice, dana
):
    base = live_server.url
    at_flow_size(page)
    walk = Walk(page)

    log_in(page, base, "alice")
    page.goto(f"{base}/onboard/")
    fill_form(page, origin="https://acme-corp.example.com")
    page.get_by_role("button", name="Preview the plan").click()
    expect(page.locator("#approval-needed")).to_contain_text("It grants AdministratorAccess to lead@agency.example")
    expect(page.locator("#break-glass")).to_have_count(0)  # alice is no Admin
    walk.check("approval-preview-asking")
    page.get_by_role("button", name="Ask for approval").click()

    expect(page.locator("#approval-state")).to_have_attribute("data-state", "awaiting")
    expect(page.locator("#may-not-decide")).to_contain_text("another person approves it")
    expect(page.locator("#nav-approvals .count")).to_have_count(0)  # nothing waits for alice herself
    walk.check("approval-requester")
    asked = PlanApproval.objects.get()
    assert not Run.objects.exists()

    page.get_by_role("button", name="Log out").click()
    log_in(page, base, "dana")
    expect(page.locator("#nav-approvals .count")).to_have_text("1")
    page.get_by_role("link", name=re.compile(r"^Approvals")).click()
    row = page.locator(f"#to-decide tr[data-approval='{asked.pk}']")
    expect(row).to_contain_text(asked.summary)
    expect(row).to_contain_text("alice")
    walk.check("approvals-page")
    screenshots(page, "approvals-{width}-list")

    row.get_by_role("link", name=asked.summary).click()
    expect(page.get_by_role("button", name="Approve and start the run")).to_be_visible()
    expect(page.get_by_role("button", name="Decline")).to_be_visible()
    created = page.locator("section.plan-group[data-action='create']")  # the same plan alice saw, read from the account
    expect(created).to_contain_text("acme-corp-media")
    expect(created).to_contain_text("lead@agency.example")
    walk.check("approval-decide")
    screenshots(page, "approvals-{width}-decide")
    page.get_by_label("Comment (optional)").fill("Checked with the customer: go.")
    page.get_by_role("button", name="Approve and start the run").click()

    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/runs/[0-9a-f-]{{36}}/$"))
    expect(page.locator("#run-started-by")).to_have_text("alice")
    expect(page.locator("#run-approved-by")).to_have_text("dana")
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#nav-approvals .count")).to_have_count(0)
    walk.check("approval-run")
    screenshots(page, "approvals-{width}-run")
    run = Run.objects.get()
    assert (run.started_by, run.approved_by) == (alice, dana)
    assert AuditEvent.objects.get(action="plan.approved").details["comment"] == "Checked with the customer: go."
