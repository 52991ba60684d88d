"""Issue 31's pages in headless Chromium at 1366 and 1920 px and at a phone's width (customers open links
anywhere): the team makes a set-up link on the customer's page, the customer opens it without a login (waiting,
outdated with the update's steps, and green), and the Roles view. Each page: no horizontal overflow, no clipped
table column; screenshots kept in tests/artifacts/ to look at."""

import json

import pytest
from django.core.cache import caches
from playwright.sync_api import Page, expect

from provisioning.models import Customer, PublishedTemplate, SetupLink
from provisioning.registry import ROLE_TEMPLATE_VERSION
from provisioning.role import template as role_template
from provisioning.setup_links import setup_link_create
from tests import test_browser
from tests.layout import layout_check
from tests.test_browser import log_in

pytestmark = pytest.mark.browser
browser_type_launch_args, shots = test_browser.browser_type_launch_args, test_browser.shots
WIDTHS = ((1366, 900), (1920, 1000), (390, 844))
OLD = ROLE_TEMPLATE_VERSION - 1


def _at_each_width(page: Page, name: str) -> None:
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        layout_check(page, f"issue31-{name}")
    page.set_viewport_size({"width": 1366, "height": 900})


def _published(version: int, drop: str = "") -> None:
    policy = role_template.access_policy_document()
    for statement in policy["Statement"]:
        statement["Action"] = [action for action in statement["Action"] if action != drop]
    template = {"Resources": {"OnrampAccessRole": {"Type": "AWS::IAM::Role", "Properties": {
        "Policies": [{"PolicyName": "OnrampOnboarding", "PolicyDocument": policy}]}}}}  # fmt: skip
    url = f"https://agency-role-templates.s3.amazonaws.com/onramp-role/v{version}.json"
    PublishedTemplate.objects.create(
        version=version, content=json.dumps(template), sha256="0" * 64, bucket="agency-role-templates",
        key=f"onramp-role/v{version}.json", url=url, published_by="operator:erin",
    )  # fmt: skip


def _customer_opens(browser, base: str, url: str) -> Page:
    """A browser of the customer's own: no Onramp session."""
    page = browser.new_context().new_page()
    page.goto(url)
    return page


def test_the_set_up_page_and_the_roles_view_in_a_browser(page, browser, live_server, transactional_db, alice, shots):
    caches["limits"].clear()
    _published(OLD, drop="iam:CreateAccountAlias")
    _published(ROLE_TEMPLATE_VERSION)
    globex = Customer.objects.create(
        name="Globex Corporation (Europe, Middle East and Africa)", slug="globex", aws_account_id="444455556666",
        default_region="eu-west-1",
    )  # fmt: skip
    initech = Customer.objects.create(
        name="Initech", slug="initech", aws_account_id="555566667777", default_region="us-west-2",
        role_arn="arn:aws:iam::555566667777:role/OnrampAccess", role_version=OLD,
    )  # fmt: skip
    for customer in (globex, initech):
        customer.team.add(alice)
    base = live_server.url
    with shots.on_failure():
        log_in(page, base)
        page.goto(f"{base}/customers/globex/")
        page.get_by_role("button", name="Make a set-up link").click()
        link = page.locator("#setup-url").inner_text()
        assert link.startswith(f"{base}/setup/")
        _at_each_width(page, "link-made")
        # Onramp's own tries would start at the first opening: marked started, so none is queued without a worker.
        SetupLink.objects.update(watch_started_at=globex.created_at)

        customer = _customer_opens(browser, base, link)
        expect(customer.get_by_role("heading", name="Give Onramp access to your AWS account")).to_be_visible()
        expect(customer.locator("#account-id")).to_have_text("444455556666")
        launch = customer.get_by_role("link", name="Launch stack")
        assert launch.get_attribute("href").startswith("https://eu-west-1.console.aws.amazon.com/cloudformation/")
        expect(customer.locator("#setup-status")).to_contain_text("Waiting for the role")
        _at_each_width(customer, "setup-waiting")
        # The customer's one button works without an Onramp session (CSRF included); it asks for one more try.
        customer.get_by_role("button", name="I launched it").click()
        expect(customer.locator("#said")).to_contain_text("Onramp is looking for the role now")

        page.goto(f"{base}/customers/globex/")
        expect(page.locator("#setup-link")).to_contain_text("opened 1 time")
        _at_each_width(page, "customer-with-link")

        # The outdated customer's page: the update's steps and the CLI command, wrapping on a phone.
        token = setup_link_create(customer=initech, user=alice)
        SetupLink.objects.filter(customer=initech).update(watch_started_at=initech.created_at)
        outdated = _customer_opens(browser, base, f"{base}/setup/{token}/")
        expect(outdated.locator("#update-command")).to_contain_text("aws cloudformation update-stack")
        expect(outdated.locator("#setup-status")).to_contain_text("needs an update")
        _at_each_width(outdated, "setup-outdated")

        # Green once the role is current (the status part refreshes itself).
        Customer.objects.filter(pk=initech.pk).update(role_version=ROLE_TEMPLATE_VERSION)
        expect(outdated.locator("#connected")).to_be_visible(timeout=15000)
        expect(outdated.locator("#update")).to_have_count(0)  # the page came again, without the update's steps
        _at_each_width(outdated, "setup-connected")

        Customer.objects.filter(pk=initech.pk).update(role_version=OLD)
        page.get_by_role("link", name="Roles").click()
        expect(page.locator("tr[data-customer='initech'] td.deployed")).to_have_text(f"v{OLD}, outdated")
        expect(page.locator("tr[data-customer='initech'] td.changes")).to_contain_text("Allows iam:CreateAccountAlias.")
        _at_each_width(page, "roles")
        for opened in (customer, outdated):  # their status part asks again every 5 s: not after the test
            opened.context.close()
