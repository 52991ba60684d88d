"""What AWS enforces that a lenient sandbox let pass (issue 13), on the strict sandbox: each defect's test."""

import json

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from parliament import analyze_policy_string

from provisioning import customers
from provisioning.aws.settle import settle
from provisioning.kinds.s3_bucket.aws import bucket_region
from provisioning.models import AuditEvent, Customer, Run
from provisioning.registry import ATTACHABLE_POLICIES, ROLE_NAME, ROLE_TEMPLATE_VERSION, managed_policy_arn
from provisioning.role import template as role_template
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, customer_make, start_run, wait_for_run

PORTAL = "123456789012"


def test_a_console_member_who_is_not_a_tech_lead_may_change_the_password_aws_makes_them_change(worker, alice, sandbox):
    team = [{"email": "dev@agency.example", "role": "member", "policy": "ReadOnlyAccess", "console": True}]
    run = wait_for_run(start_run(alice, team=team))
    assert run.status == Run.Status.SUCCEEDED
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    attached = {
        p["PolicyName"] for p in iam.list_attached_user_policies(UserName="dev@agency.example")["AttachedPolicies"]
    }
    assert attached == {"ReadOnlyAccess", "IAMUserChangePassword"}
    assert iam.get_login_profile(UserName="dev@agency.example")["LoginProfile"]["PasswordResetRequired"] is True


def test_the_bucket_is_made_with_acls_off_and_an_adopted_one_is_switched_to_it(worker, alice, sandbox):
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.create_bucket(Bucket="acme-app-media", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_ownership_controls(
        Bucket="acme-app-media", OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    )
    run = wait_for_run(start_run(alice, team=[]))
    assert run.status == Run.Status.SUCCEEDED
    bucket = run.steps.get(key="s3.bucket")
    assert bucket.state == "succeeded" and "ACLs were switched off" in bucket.error_message
    rules = s3.get_bucket_ownership_controls(Bucket="acme-app-media")["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    again = wait_for_run(start_run(alice, team=[], bucket="acme-app-media-2"))
    create = AuditEvent.objects.get(run=again, action="aws.s3.CreateBucket")
    assert create.details["params"]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert "ACL" not in create.details["params"]


def test_the_legacy_eu_location_of_old_eu_west_1_buckets_reads_as_eu_west_1():
    """The sandbox never answers "EU" (the oldest buckets' location): stubbed at the client boundary."""
    import boto3

    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_response("get_bucket_location", {"LocationConstraint": "EU"}, {"Bucket": "old"})
        stub.add_response("get_bucket_location", {}, {"Bucket": "east"})
        assert bucket_region(s3, "old") == "eu-west-1"
        assert bucket_region(s3, "east") == "us-east-1"


def test_settling_waits_out_a_create_and_a_missing_entity_still_fails(settings):
    """AWS's propagation delay after a create is retried for a bounded time; then AWS's answer stands."""
    attempts = []

    def not_yet_then_there():
        attempts.append(1)
        if len(attempts) < 3:
            raise ClientError({"Error": {"Code": "NoSuchEntity", "Message": "not yet"}}, "AddUserToGroup")
        return {"ok": True}

    assert settle(not_yet_then_there, wait=10) == {"ok": True} and len(attempts) == 3

    def never():
        raise ClientError({"Error": {"Code": "NoSuchEntity", "Message": "no such user"}}, "AddUserToGroup")

    with pytest.raises(ClientError):
        settle(never, wait=0.5)

    def refused():
        attempts.append(1)
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AddUserToGroup")

    attempts.clear()
    with pytest.raises(ClientError):
        settle(refused, wait=10)
    assert len(attempts) == 1  # not a propagation delay: not retried


def _statements() -> list[dict]:
    return role_template.access_policy_document()["Statement"]


def test_the_roles_attach_permission_reaches_only_the_policies_onramp_attaches():
    attach = [s for s in _statements() if "iam:AttachUserPolicy" in s["Action"]]
    assert len(attach) == 1
    (listed,) = attach[0]["Condition"]["ArnLike"].values()
    assert set(listed) == {
        "arn:aws:iam::*:policy/MediaManagement*",
        *(managed_policy_arn(p) for p in ATTACHABLE_POLICIES),
    }
    assert managed_policy_arn("IAMUserChangePassword") in listed and managed_policy_arn("AdministratorAccess") in listed
    assert not any("iam:AttachUserPolicy" in s["Action"] for s in _statements() if "Condition" not in s)


def test_point_2_what_makes_changes_or_deletes_a_user_reaches_only_users_in_onramps_path():
    """A user's ARN holds its path: every write on a user is granted on arn:aws:iam::*:user/onramp/* only, so a
    user Onramp did not make (or the customer did not move into the path) is beyond the role's reach."""
    user_actions = {"iam:CreateUser", "iam:TagUser", "iam:CreateAccessKey", "iam:UpdateAccessKey",
                    "iam:DeleteAccessKey", "iam:CreateLoginProfile", "iam:DeleteLoginProfile",
                    "iam:AttachUserPolicy", "iam:DetachUserPolicy", "iam:DeleteUserPolicy",
                    "iam:DeactivateMFADevice", "iam:DeleteSigningCertificate", "iam:DeleteSSHPublicKey",
                    "iam:DeleteServiceSpecificCredential", "iam:DeleteUser"}  # fmt: skip
    granted = set()
    for statement in _statements():
        touched = user_actions & set(statement["Action"])
        if touched:
            assert statement["Resource"] == "arn:aws:iam::*:user/onramp/*", (touched, statement)
            granted |= touched
    assert granted == user_actions


def test_point_2_group_writes_and_membership_reach_only_groups_in_onramps_path():
    """AddUserToGroup's and RemoveUserFromGroup's only resource is the group: granted on Onramp's groups only,
    a customer's group (its admins') is beyond reach, which no tag on a user could guard."""
    group_actions = {"iam:CreateGroup", "iam:AddUserToGroup", "iam:RemoveUserFromGroup", "iam:DeleteGroup",
                     "iam:DetachGroupPolicy", "iam:DeleteGroupPolicy"}  # fmt: skip
    granted = set()
    for statement in _statements():
        touched = group_actions & set(statement["Action"])
        if touched:
            assert statement["Resource"] == "arn:aws:iam::*:group/onramp/*" and "Condition" not in statement
            granted |= touched
    assert granted == group_actions


def test_point_2_moving_a_user_into_the_path_is_granted_only_for_users_tagged_as_onramps():
    """UpdateUser (the one-time move of a user Onramp made before the path) is never granted on other users."""
    (moving,) = [s for s in _statements() if "iam:UpdateUser" in s["Action"]]
    assert moving["Action"] == ["iam:UpdateUser"]
    assert moving["Condition"] == {"StringEquals": {"aws:ResourceTag/managed-by": "onramp"}}
    assert not any("iam:UpdateGroup" in s["Action"] for s in _statements())


def test_the_policies_pass_an_iam_policy_linter():
    """parliament (an IAM policy linter) on every document Onramp hands out: known actions, conditions that
    apply to their actions, nothing malformed. Resource "*" is what a role must have for resources a spec names
    later, so RESOURCE_STAR alone is expected on the role's policy."""
    documents_to_lint = {
        "role": role_template.access_policy_document(),
        "portal": role_template.portal_policy_document(),
    }  # the trust policy is a resource policy, which parliament does not check: its content is tested as data
    for name, document in documents_to_lint.items():
        policy = analyze_policy_string(json.dumps(document), ignore_private_auditors=True)
        issues = {finding.issue for finding in policy.findings} - ({"RESOURCE_STAR"} if name == "role" else set())
        assert issues == set(), (name, [(f.issue, f.detail) for f in policy.findings])


def test_the_template_carries_its_version_and_an_outdated_role_is_named_as_such(worker, alice, dana, sandbox):
    template = role_template.cloudformation_template(
        customer_name="Acme", portal_account_id=PORTAL, external_id="e" * 40
    )
    assert template["Outputs"]["TemplateVersion"]["Value"] == str(ROLE_TEMPLATE_VERSION)
    tags = template["Resources"]["OnrampAccessRole"]["Properties"]["Tags"]
    assert {"Key": "onramp-template-version", "Value": str(ROLE_TEMPLATE_VERSION)} in tags

    # The customer's stack predates versions: its role carries no version tag.
    admin_iam = sandbox.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=sandbox.url, region_name="us-east-1")
    admin_iam.untag_role(RoleName=ROLE_NAME, TagKeys=["onramp-template-version"])
    run = wait_for_run(start_run(alice, team=[]))
    preflight = run.steps.get(key="preflight")
    assert run.status == Run.Status.FAILED and preflight.error_code == "RoleOutdated"
    assert (
        f"needs version {ROLE_TEMPLATE_VERSION}" in preflight.error_message
        and "Update stack" in preflight.error_message
    )
    customer = Customer.objects.get(pk=run.customer_id)
    assert customer.role_version == 0
    result = customers.customer_check_connection(customer=customer, user=dana)
    assert not result.ok and result.code == "RoleOutdated"

    admin_iam.tag_role(
        RoleName=ROLE_NAME, Tags=[{"Key": "onramp-template-version", "Value": str(ROLE_TEMPLATE_VERSION)}]
    )
    result = customers.customer_check_connection(customer=customer, user=dana)
    assert result.ok and f"role template version {ROLE_TEMPLATE_VERSION}" in result.message


@pytest.mark.django_db
def test_the_admin_lists_customers_whose_role_is_out_of_date(client, dana):
    customer_make(name="Old", slug="old", aws_account_id="222233334444", role_version=1)
    customer_make(name="New", slug="new", aws_account_id="555566667777", role_version=ROLE_TEMPLATE_VERSION)
    client.force_login(dana)
    page = client.get("/admin/provisioning/customer/", {"role": "outdated"}).content.decode()
    assert "Old" in page and "New" not in page and "update the stack" in page
