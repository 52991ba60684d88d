"""Issue #33's day as a new tech lead, the pages it touched, in Debian's headless Chromium at 1366×900 and
1920×1080: each page fits its window with no table column cut off (tests/layout.py), and its screenshot is
kept in tests/artifacts/ to look at."""

import pytest
from playwright.sync_api import expect

from provisioning.models import Resource, Run
from tests.conftest import CUSTOMER_ACCOUNT, start_run, wait_for_run
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
