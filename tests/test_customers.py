"""The role's documents (provisioning/role/template.py), the permissions they grant against what the code calls,
and checking a customer's connection (provisioning/customers.py) against the sandbox."""

import json
from pathlib import Path

import pytest
from botocore.stub import Stubber

import provisioning
from provisioning import customers
from provisioning.aws.accounts import account_connect
from provisioning.kinds import REGISTRY
from provisioning.models import AuditEvent, Run
from provisioning.registry import Operation
from provisioning.role import template as role_template
from provisioning.vocabulary import Access
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    EXTERNAL_ID,
    customer_keys_give,
    customer_make,
    customer_role_deploy,
    start_run,
    wait_for_run,
)

PORTAL = "123456789012"
OTHER_ACCOUNT = "444455556666"
SERVICES = ("sts", "iam", "s3", "ecr")


def _template_actions(template: dict) -> set[str]:
    role = template["Resources"]["OnrampAccessRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert all(s["Effect"] == "Allow" for s in statements)
    return {action for s in statements for action in s["Action"]}


def _template(external_id: str = "e" * 40) -> dict:
    return role_template.cloudformation_template(
        customer_name="Acme", portal_account_id=PORTAL, external_id=external_id
    )


def test_trust_policy_lets_only_the_portal_account_in_and_only_with_the_external_id():
    policy = role_template.trust_policy_document(portal_account_id=PORTAL, external_id="f" * 40)
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{PORTAL}:root"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "f" * 40}}
    # Onramp passes SourceIdentity when it assumes the role: AWS then also checks sts:SetSourceIdentity; and an
    # approved run's approver as a session tag: sts:TagSession.
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert _template("f" * 40)["Resources"]["OnrampAccessRole"]["Properties"]["AssumeRolePolicyDocument"] == policy


# That each call the code makes is one its step's kind declares is checked on every call of every test, by
# tests/conftest.py's hook (operation_refusal), not by reading the source; tests/test_kinds.py proves the hook.


def test_the_templates_actions_are_the_declared_operations_and_nothing_beyond():
    expected = {action for operation in REGISTRY.operations() for action in operation.actions}
    actions = _template_actions(_template())
    assert actions == expected
    assert not any("*" in action for action in actions)
    assert {"s3:ListAllMyBuckets", "s3:PutBucketCORS", "s3:PutBucketPublicAccessBlock"} <= actions
    assert {"iam:TagUser", "iam:TagPolicy", "ecr:TagResource"} <= actions  # creating with tags is tagging too
    assert {"ecr:GetRepositoryPolicy", "ecr:DeleteRepositoryPolicy"} <= actions  # the kind ecr.repository_policy


def test_a_full_onboarding_calls_only_what_the_template_allows(worker, alice):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    called = set(AuditEvent.objects.filter(run=run, action__startswith="aws.").values_list("action", flat=True))
    # AssumeRole is the portal's own call into the account, allowed by the trust policy, not the role's policy.
    assert "aws.sts.AssumeRole" in called
    operations = {tuple(a.split(".")[1:]) for a in called} - {("sts", "AssumeRole")}
    needed = {Operation(service, op).action for service, op in operations}
    allowed = _template_actions(_template())
    assert needed <= allowed, needed - allowed
    assert len(needed) >= 15  # a real run touched every service (a first run creates without looking first)
    assert {service for service, _ in operations} == set(SERVICES)

    # What the steps recorded is what the admin lists as the customer's resources.
    resources = {(r.kind, r.name) for r in customers.customer_resources(customer=run.customer)}
    assert {
        ("IAM group", "Apps"),
        ("IAM user (app)", "acme-app"),
        ("IAM policy", "MediaManagement-acme-app-media"),
        ("IAM user (team)", "lead@agency.example"),
        ("S3 bucket", "acme-app-media"),
        ("ECR repository", "acme-app"),
        ("Account alias", "acme-corp"),
    } <= resources


def test_the_cloudformation_template_deploys_and_makes_the_role(aws):
    """The sandbox's CloudFormation creates the role from the template as a customer's administrator would."""
    template = _template("a" * 40)
    outputs = aws.stack_deploy(account_id=OTHER_ACCOUNT, template=template)
    assert outputs["RoleArn"] == f"arn:aws:iam::{OTHER_ACCOUNT}:role/{role_template.ROLE_NAME}"

    iam = aws.admin(OTHER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    role = iam.get_role(RoleName=role_template.ROLE_NAME)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust == role_template.trust_policy_document(portal_account_id=PORTAL, external_id="a" * 40)
    inline = iam.get_role_policy(RoleName=role_template.ROLE_NAME, PolicyName="OnrampOnboarding")["PolicyDocument"]
    assert inline == role_template.access_policy_document()


def test_onramps_own_identity_may_assume_onramp_roles_and_set_the_source_identity_and_tags_nothing_more():
    (statement,) = role_template.portal_policy_document()["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert statement["Resource"] == f"arn:aws:iam::*:role/{role_template.ROLE_NAME}"
    assert "Condition" not in statement and "NotAction" not in statement


def test_the_deploying_doc_shows_the_portal_identitys_policy_as_generated():
    deploying = (Path(provisioning.__file__).parent.parent / "docs" / "deploying.md").read_text()
    assert json.dumps(role_template.portal_policy_document(), indent=2) in deploying


def test_check_connection_assumes_the_role_and_confirms_the_account(aws, dana):
    customer = customer_make()
    result = customers.customer_check_connection(customer=customer, user=dana)
    assert result.ok, result.message
    assert result.arn.startswith(f"arn:aws:sts::{CUSTOMER_ACCOUNT}:assumed-role/OnrampAccess/")
    assert f"reaches account {CUSTOMER_ACCOUNT}" in result.message
    events = AuditEvent.objects.filter(customer=customer).order_by("id")
    assert list(events.values_list("action", "outcome")) == [
        ("aws.sts.AssumeRole", "ok"),
        ("aws.sts.GetCallerIdentity", "ok"),
        ("aws.iam.GetRole", "ok"),  # the role's template version
        ("customer.connection_checked", "ok"),
    ]
    assert events.last().actor_label == "dana"


def test_check_connection_assumes_the_role_exactly_as_a_run_does(worker, aws, alice, dana):
    customer = customer_make()
    assert customers.customer_check_connection(customer=customer, user=dana).ok
    run = wait_for_run(start_run(alice, team=[]))
    checked = AuditEvent.objects.get(customer=customer, run=None, action="aws.sts.AssumeRole").details["params"]
    ran = AuditEvent.objects.get(run=run, action="aws.sts.AssumeRole").details["params"]
    assert checked.pop("RoleSessionName") == f"onramp-check-{customer.pk}"  # its own session name
    assert ran.pop("RoleSessionName") == f"onramp-run-{run.pk}"
    assert (checked.pop("SourceIdentity"), ran.pop("SourceIdentity")) == ("dana", "alice")  # the person, each time
    assert checked == ran  # the same role, external id and duration


def test_check_connection_fails_where_a_run_would_on_a_role_that_refuses_a_source_identity(aws, dana):
    """A hand-made role whose trust policy lacks sts:SetSourceIdentity: every run fails at preflight, so Check
    connection must too (it used to assume the role without a source identity, and go green)."""
    trust = role_template.trust_policy_document(portal_account_id=PORTAL, external_id=EXTERNAL_ID)
    trust["Statement"][0]["Action"] = ["sts:AssumeRole"]
    admin = aws.admin(OTHER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    admin.create_role(RoleName=role_template.ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    customer = customer_make(
        name="Globex",
        slug="globex",
        aws_account_id=OTHER_ACCOUNT,
        role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/{role_template.ROLE_NAME}",
    )
    result = customers.customer_check_connection(customer=customer, user=dana)
    assert not result.ok and result.code == "AccessDenied"
    assert "AWS refused sts:SetSourceIdentity on the customer's role" in result.message, result.message
    assert "trust policy" in result.message


def test_check_connection_refuses_another_account(aws, dana):
    customer_role_deploy(aws, OTHER_ACCOUNT)  # a role that works, in an account that is not this customer's
    customer = customer_make(role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/OnrampAccess")
    result = customers.customer_check_connection(customer=customer, user=dana)
    assert not result.ok
    assert result.code == "WrongAccount"
    assert "reach account 444455556666, not the customer's account 111122223333" in result.message
    event = AuditEvent.objects.get(action="customer.connection_checked")
    assert (event.outcome, event.error_code, event.customer_id) == ("error", "WrongAccount", customer.pk)


def test_check_connection_refuses_root(aws, dana):
    """The sandbox never answers with a root ARN: stub GetCallerIdentity at the client boundary."""
    customer = customer_make()
    account = account_connect(
        customer=customer, region=customer.default_region, session_name="onramp-check", source_identity="dana"
    )
    stubber = Stubber(account.client("sts"))
    root = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:root"
    stubber.add_response("get_caller_identity", {"UserId": CUSTOMER_ACCOUNT, "Account": CUSTOMER_ACCOUNT, "Arn": root})
    with stubber:
        result = customers.customer_check_connection(customer=customer, user=dana, account=account)
    stubber.assert_no_pending_responses()
    assert not result.ok
    assert result.code == "RootCredentials"
    assert "never uses root" in result.message
    event = AuditEvent.objects.get(action="customer.connection_checked")
    assert (event.outcome, event.error_code) == ("error", "RootCredentials")


def test_check_connection_with_stored_keys_never_audits_the_secret(aws, dana):
    customer = customer_make(aws_account_id=OTHER_ACCOUNT, access=Access.KEYS, role_arn="")
    _, secret = customer_keys_give(aws, customer, account_id=OTHER_ACCOUNT)  # an IAM user's in its account
    result = customers.customer_check_connection(customer=customer, user=dana)
    assert result.ok, result.message
    assert "via keys" in result.message
    rows = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert "customer.connection_checked" in rows
    assert secret not in rows


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        (("s3", "ListBuckets"), "s3:ListAllMyBuckets"),
        (("s3", "CreateBucket"), "s3:CreateBucket"),
        (("iam", "CreateUser"), "iam:CreateUser"),
        (("ecr", "PutLifecyclePolicy"), "ecr:PutLifecyclePolicy"),
    ],
)
def test_iam_action_names_follow_aws_where_they_differ_from_the_api(operation, action):
    assert Operation(*operation).action == action
