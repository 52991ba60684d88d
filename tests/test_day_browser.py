"""Issue #33's day as a new tech lead, the pages it touched, in Debian's headless Chromium at 1366×900 and
1920×1080: each page fits its window with no table column cut off (tests/layout.py), and its screenshot is
kept in tests/artifacts/ to look at."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from provisioning.models import Customer, DriftState, Resource, Run
from tests.conftest import CUSTOMER_ACCOUNT, finished_run, start_run, wait_for_run
from tests.layout import layout_check
from tests.test_browser import browser_type_launch_args, log_in  # noqa: F401  (Debian's Chromium)
from tests.test_pages import SIZES

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_point_7_admin_ledger_table_is_not_clipped(page, live_server, worker, dana, alice, width, height):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    assert Resource.objects.filter(customer=run.customer).count() >= 9
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, live_server.url, "dana")
    page.goto(f"{live_server.url}/admin/provisioning/customer/{run.customer.pk}/change/")
    ledger = page.locator(".field-resources table")
    expect(ledger).to_contain_text(f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/acme-app")
    layout_check(page, "point-7-admin-ledger")


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


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_point_8_offboarded_customer_page_shows_handed_over_and_no_drift_state(
    page, live_server, transactional_db, alice, width, height
):
    customer = _offboarded_after_leaving(alice)
    page.set_viewport_size({"width": width, "height": height})
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
    layout_check(page, "point-8-offboarded-customer")
