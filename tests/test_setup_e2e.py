"""The customer's half in one click, end to end on the strict sandbox (issue 31, "Done when", first test): a
customer with a name and an account id; a set-up link made by the team and opened without login; the quick-create
URL parsed and CreateStack called with exactly its values in the customer's account; Onramp notices the role by
itself; an onboarding then succeeds."""

import time
from urllib.parse import parse_qs, urlsplit

from django.core import mail
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import reverse

from provisioning.engine.runs import run_create
from provisioning.models import AuditEvent, Customer, Run, SetupLink
from provisioning.registry import ROLE_NAME, ROLE_TEMPLATE_VERSION
from provisioning.spec import spec_parse
from sandbox.roles import template_publish
from tests.conftest import spec_data, wait_for_run
from tests.test_sandbox import _user

ACCOUNT = "444455556666"
BUCKET = "agency-role-templates"


def _wait(condition, timeout: float = 60):
    """Until `condition()` is true (bounded: the watch tries every fraction of a second here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not true after {timeout} s")


@override_settings(
    ROLE_TEMPLATE_BUCKET=BUCKET, ROLE_TEMPLATE_REGION="us-east-1", SETUP_WATCH_FIRST=0.2, SETUP_WATCH_MAX_DELAY=0.5
)
def test_the_customer_launches_the_stack_from_the_link_and_onramp_connects_by_itself(worker, aws, alice):
    caches["limits"].clear()
    template_publish(url=aws.url)  # the agency's operator, as make run does
    customer = Customer.objects.create(name="Globex", slug="globex", aws_account_id=ACCOUNT, default_region="us-west-2")
    assert customer.role_arn == "" and customer.role_version is None
    customer.team.add(alice)
    team = Client()
    team.force_login(alice)
    link = team.post(reverse("setup_link_make", args=[customer.slug])).context["url"]

    # The customer, without an Onramp login: the link, then the page. Onramp starts looking (AccessDenied).
    browser = Client()
    assert browser.get(link, HTTP_USER_AGENT="Mozilla/5.0 (customer)").status_code == 302
    page = browser.get(reverse("setup_page"))
    _wait(lambda: SetupLink.objects.get(customer=customer).attempts >= 1)
    assert not Customer.objects.get(pk=customer.pk).role_arn

    launch = page.context["page"].launch_url
    parts = urlsplit(launch)
    assert (parts.netloc, parts.path, parse_qs(parts.query)) == (
        "us-west-2.console.aws.amazon.com",
        "/cloudformation/home",
        {"region": ["us-west-2"]},
    )
    route, _, query = parts.fragment.partition("?")
    values = parse_qs(query, strict_parsing=True)
    assert route == "/stacks/create/review" and sorted(values) == ["param_ExternalId", "stackName", "templateURL"]
    admin = _user(aws, ACCOUNT, "*", name="globex-admin")
    admin.client("cloudformation", endpoint_url=aws.url, region_name="us-west-2").create_stack(
        StackName=values["stackName"][0],
        TemplateURL=values["templateURL"][0],
        Parameters=[
            {"ParameterKey": key.removeprefix("param_"), "ParameterValue": value[0]}
            for key, value in values.items()
            if key.startswith("param_")
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )

    # Onramp notices by itself: role ARN and version recorded, the team told, the page green.
    _wait(lambda: SetupLink.objects.get(customer=customer).connected_at is not None)
    customer.refresh_from_db()
    assert customer.role_arn == f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
    assert (customer.access, customer.role_version) == ("role", ROLE_TEMPLATE_VERSION) and customer.role_seen_at
    assert AuditEvent.objects.filter(action="setup_link.connected", customer=customer).count() == 1
    denied = AuditEvent.objects.filter(customer=customer, action="aws.sts.AssumeRole", outcome="error").first()
    assert denied is not None and denied.error_code == "AccessDenied"
    _wait(lambda: any("connected" in message.subject for message in mail.outbox))
    assert "alice@agency.example" in next(m for m in mail.outbox if "connected" in m.subject).to
    assert 'id="connected"' in browser.get(reverse("setup_status")).content.decode()

    # An onboarding then succeeds through the role Onramp found.
    data = spec_data(
        customer="Globex",
        account_id=ACCOUNT,
        role_arn=customer.role_arn,
        external_id=customer.external_id,
        account_alias="globex-corp",
        bucket="globex-app-media",
    )
    run = wait_for_run(run_create(spec=spec_parse(data), customer=customer, user=alice))
    assert run.status == Run.Status.SUCCEEDED, [(s.key, s.error_message) for s in run.steps.all() if s.error_message]
