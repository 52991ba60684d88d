"""The offboarding flow, once, in Debian's headless Chromium, against the live server, the real worker and the
sandbox: the customer's page → Offboard… → the mode → the plan (a bucket holding data, its name typed) → the run
page handing over what is left → the customer's page, offboarded → an Admin reactivates them. Each page must fit
the window at 1366×900 and at 1920×1080; its screenshot at each width goes to tests/artifacts/ (git-ignored), to
look at."""

import re

import pytest
from playwright.sync_api import expect

from provisioning.models import AuditEvent, Customer, Resource, Run
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, start_run, wait_for_run
from tests.layout import at_flow_size, screenshots
from tests.test_browser import browser_type_launch_args, log_in  # noqa: F401  (Debian's Chromium)
from tests.views.test_pages import Walk

pytestmark = pytest.mark.browser


def _approved_by(page, base: str, username: str) -> None:
    """An offboarding always needs a second person: the plan awaits; `username` approves it from the
    Approvals page, which opens the run's page."""
    expect(page.locator("#approval-state")).to_have_attribute("data-state", "awaiting")
    page.get_by_role("button", name="Log out").click()
    log_in(page, base, username)
    page.get_by_role("link", name=re.compile(r"^Approvals")).click()
    page.locator("#to-decide").get_by_role("link", name=re.compile(r"^Acme Corp: offboard")).click()
    page.get_by_role("button", name="Approve and start the run").click()


def test_a_tech_lead_decommissions_a_customer_and_an_admin_reactivates_them(
    page, live_server, worker, alice, dana, sandbox
):
    base = live_server.url
    at_flow_size(page)
    walk = Walk(page)
    onboarded = wait_for_run(start_run(alice))
    assert onboarded.status == Run.Status.SUCCEEDED
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.put_object(Bucket="acme-app-media", Key="photo.jpg", Body=b"jpeg")
    customer = onboarded.customer

    log_in(page, base, "alice")
    page.goto(f"{base}/customers/{customer.slug}/")
    page.get_by_role("link", name="Offboard…").click()
    expect(page.get_by_label("The agency leaves")).to_be_checked()  # the default
    walk.check("offboard-choose")
    page.get_by_label("Decommission").check()
    page.get_by_role("button", name="Check the plan").click()

    removals = page.locator("section.plan-group[data-action='remove']")
    expect(removals).to_contain_text("IAM user (team) lead@agency.example", timeout=30_000)
    expect(page.locator("#offboard-mode")).to_contain_text("The app is shut down")
    typed = page.get_by_label(re.compile(r"^It holds data \(1 object, 4\sbytes\)\. Type acme-app-media"))
    expect(typed).to_be_visible()
    for summary in page.locator("details > summary").all():
        summary.click()
    walk.check("offboard-plan")
    typed.fill("acme-app-media")
    page.get_by_role("button", name="Ask for approval to offboard Acme Corp: decommission").click()
    _approved_by(page, base, "dana")

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=90_000)
    expect(page.locator("#offboard-badge")).to_have_text("Offboarding: decommission")
    expect(page.locator("#handover")).to_contain_text("Nothing Onramp made or adopted is left in the account")
    expect(page.locator("#role-removal")).to_contain_text("deletes the CloudFormation stack")
    walk.check("offboard-run")
    assert not Resource.objects.filter(customer=customer, state=Resource.State.PRESENT).exists()
    assert s3.list_buckets()["Buckets"] == []

    page.goto(f"{base}/customers/{customer.slug}/")
    expect(page.locator("#offboarded")).to_contain_text("Offboarded (decommission)")
    expect(page.get_by_role("link", name="Offboard…")).to_have_count(0)
    walk.check("offboard-customer")

    page.get_by_role("button", name="Log out").click()
    log_in(page, base, "dana")
    page.goto(f"{base}/admin/provisioning/customer/{customer.pk}/change/")
    expect(page.locator(".field-offboarded_display")).to_contain_text("Decommission")
    walk.check("offboard-admin-customer")
    page.goto(f"{base}/admin/provisioning/customer/")
    page.locator(f"input[name='_selected_action'][value='{customer.pk}']").check()
    page.locator("select[name='action']").select_option("reactivate")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Acme Corp is reactivated")
    # Django's own changelist, wider than 1366 px with every column before this change: looked at, not measured.
    screenshots(page, "pages-{width}-offboard-admin-reactivated")
    assert Customer.objects.get(pk=customer.pk).offboarded_at is None
    assert AuditEvent.objects.filter(action="customer.reactivated", actor=dana).count() == 1


def test_when_the_agency_leaves_the_run_page_hands_the_apps_resources_over(
    page, live_server, worker, alice, bob, sandbox
):
    base = live_server.url
    at_flow_size(page)
    walk = Walk(page)
    customer = wait_for_run(start_run(alice)).customer
    customer.team.add(bob)

    log_in(page, base, "alice")
    page.goto(f"{base}/customers/{customer.slug}/offboard/")
    page.get_by_role("button", name="Check the plan").click()  # the default: the agency leaves
    handed = page.locator("section.plan-group[data-action='keep']")
    expect(handed).to_contain_text("Stays, handed over to the customer", timeout=30_000)
    expect(page.locator("section.plan-group[data-action='remove']")).to_contain_text("lead@agency.example")
    walk.check("leave-plan")
    page.get_by_role("button", name="Ask for approval to offboard Acme Corp: the agency leaves").click()
    _approved_by(page, base, "bob")

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=90_000)
    table = page.locator("#handover table")
    expect(table).to_contain_text(f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/onramp/acme-app")
    expect(table).to_contain_text("acme-app-media")
    expect(table).not_to_contain_text("agency.example")
    walk.check("leave-run")
    users = {u["UserName"] for u in account_session(sandbox.url, CUSTOMER_ACCOUNT).iam.list_users()["Users"]}
    assert users == {"acme-app"}
