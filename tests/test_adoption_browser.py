"""A new customer's preview in Debian's headless Chromium at 1366 and 1920 px (#30 point 3): the account is read
first, what the spec names and the account has shows under "Adopt" with what was found, a user outside Onramp's
path blocks Start with the customer's command. Screenshots go to tests/artifacts/ (layout-<width>-adoption-*.png)."""

import pytest
from playwright.sync_api import expect

from provisioning.models import Run
from tests.layout import layout_check
from tests.test_adoption import _customers_account
from tests.test_browser import browser_type_launch_args, fill_form, log_in  # noqa: F401  (Debian's Chromium)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (1920, 1080)])
def test_a_new_customers_preview_shows_adoptions_and_blocks_a_user_outside_the_path(
    page, live_server, worker, alice, sandbox, width, height
):
    _customers_account(sandbox)
    page.set_viewport_size({"width": width, "height": height})
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
    layout_check(page, "adoption-blocked")
    assert not Run.objects.exists()
