"""Every customer's role stays current (issue 31, point 4 and "Done when", second test).

The template's version is a constant of the release, so the test stands where a customer is after a release
raised it: the agency had published version N-1 (its row and object, as `role_template publish` left them,
with one grant fewer: iam:CreateAccountAlias), the customer deployed it, and this release's version N is
published beside it. The customer shows as outdated; a run needing the missing grant is refused with the update
sentence while one whose operations are all granted runs; the stack is updated from the new URL and the
customer is current again."""

import copy
import hashlib
import json
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.test import Client, override_settings
from django.urls import reverse

from provisioning import customers
from provisioning.engine.runs import run_create
from provisioning.kinds import REGISTRY
from provisioning.models import AuditEvent, Customer, PublishedTemplate, Run
from provisioning.registry import ROLE_NAME, ROLE_TEMPLATE_VERSION, ROLE_TRUST_ACTIONS, ROLE_VERSION_TAG
from provisioning.role import template as role_template
from provisioning.role.published import STACK_NAME, template_key, template_url
from provisioning.role.versions import operations_ungranted, role_update_sentence, template_policy
from provisioning.setup_links import setup_link_create
from provisioning.spec import spec_parse
from sandbox.roles import template_publish
from tests.conftest import CUSTOMER_ACCOUNT, customer_make, spec_data, wait_for_run
from tests.test_sandbox import _user

ACCOUNT = "555566667777"
BUCKET = "agency-role-templates"
OLD = ROLE_TEMPLATE_VERSION - 1
V3 = 3  # the last version whose trust policy does not allow sts:TagSession
MISSING = "iam:CreateAccountAlias"


def _older_published(aws, *, missing: str = MISSING, trust: tuple[str, ...] | None = None, version: int = OLD) -> str:
    """`version` (OLD) as the agency published it: this release's template, one grant fewer (`missing`) and tagged
    `version`, its trust policy allowing `trust` when given. Its URL."""
    current = json.loads(PublishedTemplate.objects.get(version=ROLE_TEMPLATE_VERSION).content)
    older = copy.deepcopy(current)
    role = older["Resources"]["OnrampAccessRole"]["Properties"]
    for statement in role["Policies"][0]["PolicyDocument"]["Statement"]:
        statement["Action"] = [action for action in statement["Action"] if action != missing]
    if trust is not None:
        role["AssumeRolePolicyDocument"]["Statement"][0]["Action"] = list(trust)
    role["Tags"] = [
        {"Key": t["Key"], "Value": str(version) if t["Key"] == ROLE_VERSION_TAG else t["Value"]} for t in role["Tags"]
    ]
    older["Outputs"]["TemplateVersion"]["Value"] = str(version)
    content = (json.dumps(older, indent=2, sort_keys=True) + "\n").encode()
    s3 = aws.admin(settings.PORTAL_AWS_ACCOUNT_ID).client("s3", endpoint_url=aws.url, region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=template_key(version=version), Body=content)
    url = template_url(bucket=BUCKET, region="us-east-1", version=version)
    PublishedTemplate.objects.create(
        version=version, content=content.decode(), sha256=hashlib.sha256(content).hexdigest(), bucket=BUCKET,
        key=template_key(version=version), url=url, published_by="operator:erin",
    )  # fmt: skip
    return url


def test_the_published_policy_grants_operations_statement_by_statement():
    policy = role_template.access_policy_document()
    assert operations_ungranted(policy, REGISTRY.operations()) == []
    # A statement with another condition, or on another resource, does not grant what needs this one.
    narrowed = copy.deepcopy(policy)
    for statement in narrowed["Statement"]:
        if "iam:DeleteUser" in statement["Action"]:
            statement["Condition"] = {"StringEquals": {"aws:ResourceTag/managed-by": "someone-else"}}
        if "iam:GetRole" in statement["Action"]:
            statement["Resource"] = "arn:aws:iam::*:role/Other"
    assert {"iam:DeleteUser", "iam:GetRole"} <= set(operations_ungranted(narrowed, REGISTRY.operations()))
    # A wildcard is not read into an exact grant, and a version nobody published grants nothing.
    everything = {"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
    assert "iam:CreateUser" in operations_ungranted(everything, REGISTRY.operations())
    assert template_policy({"Resources": {}}) == {"Version": "2012-10-17", "Statement": []}


@override_settings(ROLE_TEMPLATE_BUCKET=BUCKET, ROLE_TEMPLATE_REGION="us-east-1")
def test_an_outdated_customer_runs_what_its_version_grants_and_is_current_after_the_update(worker, aws, alice):
    caches["limits"].clear()
    template_publish(url=aws.url)
    old_url = _older_published(aws)
    admin = _user(aws, ACCOUNT, "*", name="initech-admin")
    cfn = admin.client("cloudformation", endpoint_url=aws.url, region_name="us-west-2")
    customer = Customer.objects.create(
        name="Initech", slug="initech", aws_account_id=ACCOUNT, default_region="us-west-2",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}",
    )  # fmt: skip
    customer.team.add(alice)
    ids = [{"ParameterKey": "ExternalId", "ParameterValue": customer.external_id}]
    cfn.create_stack(StackName=STACK_NAME, TemplateURL=old_url, Parameters=ids, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert customers.role_refresh(customer=customer) == OLD

    # The Roles view: outdated, and what the update brings in words.
    team = Client()
    team.force_login(alice)
    roles = team.get(reverse("roles_list")).content.decode()
    assert f"v{OLD}, outdated" in roles and f"Allows {MISSING}." in roles

    # A run that needs the missing grant (an account alias) is refused with the update sentence…
    customer.refresh_from_db()
    common = {"customer": "Initech", "account_id": ACCOUNT, "role_arn": customer.role_arn,
              "external_id": customer.external_id, "bucket": "initech-app-media"}  # fmt: skip
    refused = wait_for_run(
        run_create(spec=spec_parse(spec_data(**common, account_alias="initech")), customer=customer, user=alice)
    )
    preflight = refused.steps.get(key="preflight")
    assert refused.status == Run.Status.FAILED and preflight.error_code == "RoleOutdated"
    new_url = PublishedTemplate.objects.get(version=ROLE_TEMPLATE_VERSION).url
    assert preflight.error_message == role_update_sentence(
        version=OLD, current=ROLE_TEMPLATE_VERSION, missing=[MISSING]
    )
    assert MISSING in preflight.error_message and new_url in preflight.error_message
    # …while one whose every operation version OLD grants runs.
    granted = wait_for_run(
        run_create(spec=spec_parse(spec_data(**common, account_alias="")), customer=customer, user=alice)
    )
    assert granted.status == Run.Status.SUCCEEDED, [s.error_message for s in granted.steps.all() if s.error_message]

    # The customer's set-up page gives the update; the stack is updated from the new URL with the external id.
    link = team.post(reverse("setup_link_make", args=[customer.slug])).context["url"]
    browser = Client()
    browser.get(link)
    page = browser.get(reverse("setup_page"))
    body = page.content.decode()
    assert 'id="update"' in body and new_url in body
    command = page.context["page"].update_command
    assert command == (
        f"aws cloudformation update-stack --region us-west-2 --stack-name {STACK_NAME} --template-url {new_url} "
        f"--parameters ParameterKey=ExternalId,ParameterValue={customer.external_id} "
        "--capabilities CAPABILITY_NAMED_IAM"
    )
    assert urlsplit(new_url).netloc == f"{BUCKET}.s3.amazonaws.com"
    cfn.update_stack(StackName=STACK_NAME, TemplateURL=new_url, Parameters=ids, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert customers.role_refresh(customer=customer) == ROLE_TEMPLATE_VERSION
    assert 'id="connected"' in browser.get(reverse("setup_status")).content.decode()
    roles = team.get(reverse("roles_list")).content.decode()
    assert "outdated" not in roles and f"v{ROLE_TEMPLATE_VERSION}" in roles


@override_settings(ROLE_TEMPLATE_BUCKET=BUCKET, ROLE_TEMPLATE_REGION="us-east-1")
def test_an_approved_run_on_a_role_of_version_3_goes_ahead_without_the_approver_in_its_session(worker, aws, alice, bob):
    """A customer still on version 3 (its trust policy without sts:TagSession): an approved run is not refused
    for the tag. While Onramp has not read the role's version, AWS refuses the tag and the run assumes the role
    again without it; once the preflight recorded version 3, the next run does not ask. Both say so in the audit."""
    assert "sts:TagSession" not in ROLE_TRUST_ACTIONS[V3]
    caches["limits"].clear()
    template_publish(url=aws.url)
    old_url = _older_published(aws, missing="", trust=ROLE_TRUST_ACTIONS[V3], version=V3)
    cfn = _user(aws, ACCOUNT, "*", name="initech-admin").client(
        "cloudformation", endpoint_url=aws.url, region_name="us-west-2"
    )
    customer = Customer.objects.create(
        name="Initech", slug="initech", aws_account_id=ACCOUNT, default_region="us-west-2",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}",
    )  # fmt: skip
    customer.team.add(alice, bob)
    ids = [{"ParameterKey": "ExternalId", "ParameterValue": customer.external_id}]
    cfn.create_stack(StackName=STACK_NAME, TemplateURL=old_url, Parameters=ids, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert customer.role_version is None  # not read yet
    spec = spec_parse(
        spec_data(customer="Initech", account_id=ACCOUNT, role_arn=customer.role_arn,
                  external_id=customer.external_id, bucket="initech-app-media", account_alias="")
    )  # fmt: skip

    reasons = []
    for _ in range(2):
        run = wait_for_run(run_create(spec=spec, customer=customer, user=alice, approved_by=bob))
        assert run.status == Run.Status.SUCCEEDED, [s.error_message for s in run.steps.all() if s.error_message]
        (session,) = [s for s in aws.sessions() if s["arn"].endswith(f"/onramp-run-{run.pk}")]
        assert session["tags"] == {} and session["source_identity"] == "alice"
        assert AuditEvent.objects.get(run=run, action="run.confirmed").details["approved_by"] == "bob"
        (note,) = AuditEvent.objects.filter(run=run, action="run.approver_not_in_session")
        assert note.details["approved_by"] == "bob"
        reasons.append(note.details["reason"])
        customer.refresh_from_db()
        assert customer.role_version == V3
    assert "AWS refused the session tag" in reasons[0] and "sts:TagSession" in reasons[0]
    assert "version 3" in reasons[1] and "older than 4" in reasons[1]
    # The Roles view says what the update brings: only the trust policy's sts:TagSession.
    (row,) = [row for row in customers.roles_overview() if row.customer.pk == customer.pk]
    assert row.outdated and row.changes == [
        "Its trust policy allows Onramp's account sts:TagSession (to name the approver of a run in the account's "
        "CloudTrail)."
    ]


@override_settings(ROLE_TEMPLATE_BUCKET=BUCKET, ROLE_TEMPLATE_REGION="us-east-1")
@pytest.mark.django_db
def test_an_admin_rotates_the_external_id_and_it_is_the_customers_once_their_stack_has_it(aws, alice, dana):
    """After a leaked link: the new id waits for the customer's stack, Onramp keeps reaching them with the old one
    meanwhile; the stack (deployed before templates were published, so with no ExternalId parameter) is updated
    from the published URL with the new value, and the next read makes it the customer's."""
    caches["limits"].clear()
    template_publish(url=aws.url)
    acme = customer_make()
    acme.team.add(alice)
    old = acme.external_id
    link_token = setup_link_create(customer=acme, user=alice)
    with pytest.raises(PermissionDenied):
        customers.customer_external_id_rotate(customer=acme, user=alice)
    customers.customer_external_id_rotate(customer=acme, user=dana)
    acme.refresh_from_db()
    new = acme.external_id_next
    assert new and new != old and acme.external_id == old
    assert Client().get(reverse("setup_exchange", args=[link_token])).status_code == 404  # the leaked link is dead

    assert customers.role_refresh(customer=acme) == ROLE_TEMPLATE_VERSION  # still in, with the old id
    acme.refresh_from_db()
    assert (acme.external_id, acme.external_id_next) == (old, new)

    browser = Client()
    browser.get(reverse("setup_exchange", args=[setup_link_create(customer=acme, user=alice)]))
    page = browser.get(reverse("setup_page"))
    assert page.context["state"] == "outdated" and f"ParameterValue={new}" in page.context["page"].update_command

    cfn = aws.admin(CUSTOMER_ACCOUNT).client("cloudformation", endpoint_url=aws.url, region_name="us-east-1")
    cfn.update_stack(
        StackName="onramp", TemplateURL=PublishedTemplate.objects.get(version=ROLE_TEMPLATE_VERSION).url,
        Parameters=[{"ParameterKey": "ExternalId", "ParameterValue": new}], Capabilities=["CAPABILITY_NAMED_IAM"],
    )  # fmt: skip
    assert customers.role_refresh(customer=acme) == ROLE_TEMPLATE_VERSION
    acme.refresh_from_db()
    assert (acme.external_id, acme.external_id_next) == (new, "")
    assert AuditEvent.objects.filter(action="customer.external_id_rotated", customer=acme).count() == 1
    assert browser.get(reverse("setup_status")).context["state"] == "current"
