"""Issue #33's day as a new tech lead, the pages it touched, in Debian's headless Chromium, each page checked at
1366×900 and at 1920×1080: it fits the window with no table column cut off (tests/layout.py), and its screenshot
at each width is kept in tests/artifacts/ to look at."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from provisioning.models import Credential, Customer, DriftState, Resource, Run
from tests.awsread import account_session
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    EXAMPLE_KEY_ID_2,
    EXAMPLE_KEYS,
    finished_run,
    seal_key,
    start_run,
    wait_for_run,
)
from tests.layout import at_flow_size, layout_checks
from tests.test_browser import browser_type_launch_args, log_in  # noqa: F401  (Debian's Chromium)

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_approvals")]


def test_point_7_admin_ledger_table_is_not_clipped(page, live_server, worker, dana, alice):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    assert Resource.objects.filter(customer=run.customer).count() >= 9
    at_flow_size(page)
    log_in(page, live_server.url, "dana")
    page.goto(f"{live_server.url}/admin/provisioning/customer/{run.customer.pk}/change/")
    ledger = page.locator(".field-resources table")
    expect(ledger).to_contain_text(f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/onramp/acme-app")
    layout_checks(page, "point-7-admin-ledger")


def _offboarded_after_leaving(alice) -> Customer:
    """Acme Corp after the agency left: the app's resources still in the ledger (handed over), the team removed,
    and the drift state the last check before the offboarding wrote (In sync)."""
    onboarded = finished_run(alice)
    customer = onboarded.customer
    leaving = Run.objects.create(
        customer=customer, started_by=alice, spec=onboarded.spec, status=Run.Status.SUCCEEDED, offboard="leave"
    )
    for kind, name, state in [
        ("iam.app_user", "acme-app", Resource.State.PRESENT),
        ("s3.bucket", "acme-app-media", Resource.State.PRESENT),
        ("team.member", "lead@agency.example", Resource.State.REMOVED),
    ]:
        Resource.objects.create(
            customer=customer,
            kind=kind,
            identity=name,
            name=name,
            arn=f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/{name}" if kind != "s3.bucket" else f"arn:aws:s3:::{name}",
            origin=Resource.Origin.CREATED,
            state=state,
            created_by_run=onboarded,
            last_run=leaving if state == Resource.State.REMOVED else onboarded,
            removed_by_run=leaving if state == Resource.State.REMOVED else None,
            ended_at=timezone.now() if state == Resource.State.REMOVED else None,
        )
    before = timezone.now()
    DriftState.objects.create(customer=customer, state="in_sync", since=before, checked_at=before)
    Customer.objects.filter(pk=customer.pk).update(
        offboarded_at=timezone.now(), offboarded_by=alice, offboard_mode="leave"
    )
    return customer


def test_point_8_offboarded_customer_page_shows_handed_over_and_no_drift_state(
    page, live_server, transactional_db, alice
):
    customer = _offboarded_after_leaving(alice)
    at_flow_size(page)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/customers/{customer.slug}/")
    resources = page.locator("#resources")
    expect(resources.get_by_role("heading")).to_have_text("What Onramp made or adopted in this account, handed over")
    expect(resources.locator("tr[data-resource='acme-app']")).to_contain_text("Handed over (now the customer's)")
    expect(resources.locator("tr[data-resource='acme-app-media']")).to_contain_text("Handed over")
    expect(resources.locator("tr[data-resource='lead@agency.example']")).to_contain_text("Removed by Onramp")
    expect(resources).not_to_contain_text("Present")
    expect(page.locator("#drift-state")).to_have_count(0)
    expect(page.locator("#drift")).not_to_contain_text("In sync")
    expect(page.locator("#drift-offboarded")).to_contain_text("not checked for drift")
    layout_checks(page, "point-8-offboarded-customer")


def test_point_10_an_empty_teams_plan_says_nobody_gets_a_user(page, live_server, transactional_db, alice):
    base = live_server.url
    at_flow_size(page)
    log_in(page, base, "alice")
    page.goto(f"{base}/onboard/")
    page.get_by_label("New customer's name").press_sequentially("Acme Corp")
    page.get_by_label("AWS account id").fill(CUSTOMER_ACCOUNT)
    page.get_by_label("Region", exact=True).select_option("us-west-2")
    page.get_by_label("Role ARN", exact=True).fill(f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess")
    page.get_by_label("External id", exact=True).fill("acme-external-id-0123456789")
    page.get_by_label("App origin for uploads (CORS)").fill("https://acme-corp.example.com")
    page.get_by_role("button", name="Preview the plan").click()  # nobody in the team
    expect(page.locator("#empty-team")).to_contain_text("No team: nobody gets an IAM user or a console sign-in")
    layout_checks(page, "point-10-empty-team-plan")


def test_point_9_renaming_the_bucket_in_the_browser_plan_and_run_say_what_happens(
    page, live_server, worker, alice, sandbox
):
    base = live_server.url
    customer = wait_for_run(start_run(alice)).customer
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.put_object(Bucket="acme-app-media", Key="a.jpg", Body=b"jpeg")
    s3.put_object(Bucket="acme-app-media", Key="b.png", Body=b"png-01")
    at_flow_size(page)
    log_in(page, base, "alice")
    page.goto(f"{base}/customers/{customer.slug}/")
    expect(page.locator("#resources a.last-run").first).to_have_text(customer.runs.get().short_id)  # point 13
    layout_checks(page, "point-9-customer")
    page.get_by_role("button", name="Change team / settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change Acme Corp's team and settings")  # point 13
    layout_checks(page, "point-13-change-form")
    page.get_by_label("S3 bucket").fill("acme-app-media-2")
    page.get_by_role("button", name="Preview the plan").click()

    old = page.locator("li.plan-item[data-item='s3.bucket:acme-app-media']")
    expect(old).to_contain_text("It holds data (2 objects, 10\xa0bytes)", timeout=60_000)
    expect(old).to_contain_text("acme-app-media-2 is a new, empty bucket. Onramp copies no object from acme-app-media")
    expect(old).to_contain_text("must change from acme-app-media to acme-app-media-2")
    layout_checks(page, "point-9-plan")
    page.get_by_role("button", name="Start", exact=True).click()

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=90_000)
    notes = page.locator("#plan-notes")
    expect(notes).to_contain_text("kept in the account, released (no longer Onramp's), holding 2 objects, 10\xa0bytes")
    expect(page.locator("#timeline .tl-legend")).to_contain_text("adopted")  # point 13
    layout_checks(page, "point-9-run")
    assert Resource.objects.get(kind="s3.bucket", name="acme-app-media").state == Resource.State.RELEASED


def test_point_13_removing_the_old_key_asks_before_deleting(page, live_server, transactional_db, alice):
    run = finished_run(alice)
    new = seal_key(run, secret="x" * 40, access_key_id=EXAMPLE_KEY_ID_2, replaces_access_key_id=EXAMPLE_KEYS[0])
    revealed = {"state": Credential.State.REVEALED, "revealed_by": alice, "revealed_at": timezone.now()}
    Credential.objects.filter(pk=new.pk).update(**revealed)
    at_flow_size(page)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    layout_checks(page, "point-13-run-old-key")
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.dismiss()  # No: nothing is deleted

    page.once("dialog", answer)
    page.get_by_role("button", name=f"The app uses the new key: remove the old key {EXAMPLE_KEYS[0]}").click()
    expect(page.get_by_role("button", name=f"remove the old key {EXAMPLE_KEYS[0]}")).to_be_visible()
    assert asked and asked[0].startswith(f"Delete the old access key {EXAMPLE_KEYS[0]} now?")
    assert page.url == f"{live_server.url}/runs/{run.pk}/"
    assert Credential.objects.get(pk=new.pk).replacement_done_at is None


def test_point_13_the_drift_table_fits_with_prose_as_prose(page, live_server, transactional_db, alice):
    customer = finished_run(alice).customer
    since = "2026-12-07T01:00:00+00:00"
    differences = [
        {"key": "s3.cors", "field": "allowed origin", "title": "CORS: GET from anywhere, uploads from the app",
         "expected": "https://acme-app-with-a-rather-long-name.herokuapp.com", "actual": "https://old.example.com",
         "repairable": True, "since": since},
        {"key": "iam.group", "field": "member intruder", "title": "Group Apps", "expected": "not in the group",
         "actual": "made by hand", "repairable": False, "since": since},
    ]  # fmt: skip
    now = timezone.now()
    DriftState.objects.create(customer=customer, state="drifted", differences=differences, since=now, checked_at=now)
    at_flow_size(page)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/customers/{customer.slug}/")
    group = page.locator("tr[data-difference='iam.group|member intruder']")
    expect(group).to_contain_text("not in the group")
    expect(group.locator("code")).to_have_count(0)  # prose, not monospace
    layout_checks(page, "point-13-drift-table")
