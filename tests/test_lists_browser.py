"""Issue 33's pages in a real headless Chromium at 1366 and 1920 px: the Runs page (kinds, filters), the
Customers list (last run, drift, role, offboarding; sort, search) and a customer's drift panel without a
Repair that would do nothing. Each page: no horizontal overflow, no clipped table column; screenshots kept
in tests/artifacts/ to look at."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from provisioning.models import DriftState, Run, StepRun
from provisioning.vocabulary import OffboardMode
from tests import test_browser
from tests.conftest import ARTIFACTS
from tests.layout import layout_check
from tests.test_browser import log_in
from tests.views.test_lists import _runs

pytestmark = pytest.mark.browser
browser_type_launch_args, shots = test_browser.browser_type_launch_args, test_browser.shots
WIDTHS = (1366, 1920)


def _at_each_width(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        layout_check(page)
        page.screenshot(path=ARTIFACTS / f"issue33-{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def _many(alice, bob) -> dict[str, Run]:
    runs = _runs(alice, bob)
    acme = runs["acme_onboarding"].customer
    acme.name = "Acme Corporation International Holdings (Europe, Middle East and Africa)"  # a long name
    acme.role_version = 1
    now = timezone.now()
    acme.offboarded_at, acme.offboard_mode, acme.offboarded_by = now, OffboardMode.LEAVE, bob  # its last run
    acme.save()
    beta = runs["beta_change"].customer
    DriftState.objects.create(
        customer=beta,
        state=DriftState.State.DRIFTED,
        since=now - timedelta(days=2),
        checked_at=now,
        differences=[
            {"key": "iam.group", "title": "Group Apps", "field": "member eve", "expected": "not in the group",
             "actual": "made by hand, not by Onramp", "repairable": False, "words": "Group Apps: member eve",
             "since": now.isoformat(), "since_read": ""},
        ],
    )  # fmt: skip
    Run.objects.filter(pk=runs["beta_change"].pk).update(created_at=now + timedelta(minutes=1))
    return runs


def test_point_3_the_runs_page_in_a_browser(page, live_server, transactional_db, alice, bob, shots):
    _many(alice, bob)
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        rows = page.locator("table.runs tbody tr")
        expect(rows).to_have_count(4)
        expect(page.locator("tr[data-kind='offboarding'] td.kind")).to_have_text("Offboarding (the agency leaves)")
        _at_each_width(page, "runs")
        page.get_by_label("Kind").select_option("repair")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        expect(rows.first.locator("td.kind")).to_have_text("Repair")
        page.get_by_role("link", name="Clear filters").click()
        page.get_by_label("Customer name contains").fill("beta")
        page.get_by_label("Started by").select_option("bob")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Beta Ltd")
        _at_each_width(page, "runs-filtered")


def test_point_4_the_customers_list_in_a_browser(page, live_server, transactional_db, alice, bob, shots):
    runs = _many(alice, bob)
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/customers/")
        beta = page.locator("tr[data-customer='beta']")
        expect(beta.locator("td.drift")).to_have_text("Drifted")
        expect(beta.locator("td.last-run")).to_contain_text("Change")
        _at_each_width(page, "customers")
        page.get_by_role("link", name="Last run").click()
        expect(page.locator("table.customers tbody tr").first).to_have_attribute("data-customer", "beta")
        page.get_by_label("Name or account id contains").fill("acme")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("table.customers tbody tr")).to_have_count(1)
        _at_each_width(page, "customers-searched")
        # Beta drifted only by something made by hand: no Repair to press, and why.
        page.goto(f"{base}/customers/beta/")
        expect(page.locator("#drift #drift-state")).to_have_text("Drifted")
        expect(page.locator("#repair")).to_have_count(0)
        expect(page.locator("#no-repair")).to_be_visible()
        _at_each_width(page, "customer-no-repair")
    assert runs


def test_point_2_an_offboardings_page_says_already_gone_in_a_browser(
    page, live_server, transactional_db, alice, bob, shots
):
    run = _many(alice, bob)["acme_offboarding"]
    now = timezone.now()
    for position, (key, title, state) in enumerate(
        [
            ("preflight", "Reach the account and check who Onramp is there", StepRun.State.SUCCEEDED),
            ("remove.user.login_profile:lead@agency.example", "Remove lead@agency.example's console password",
             StepRun.State.SUCCEEDED),
            ("remove.user.ssh_public_keys:lead@agency.example", "Remove lead@agency.example's SSH keys",
             StepRun.State.GONE),
            ("remove.user:lead@agency.example", "Remove the IAM user lead@agency.example", StepRun.State.SUCCEEDED),
        ]
    ):  # fmt: skip
        StepRun.objects.create(run=run, key=key, title=title, branch="remove", position=position, state=state,
                               started_at=now, finished_at=now, ready_at=now)  # fmt: skip
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/runs/{run.pk}/")
        expect(page.locator("#run-kind")).to_have_text("Offboarding (the agency leaves)")
        gone = page.locator("tr.step[data-step='remove.user.ssh_public_keys:lead@agency.example']")
        expect(gone.locator(".badge")).to_have_text("Already gone")
        expect(page.get_by_text("Adopted (already existed)")).to_have_count(0)
        _at_each_width(page, "run-already-gone")
