"""STS's source identity through role chaining, in the strict sandbox (sandbox/sts_rules.py, issue 28 section 3
point 8): a session that carries a source identity cannot set another by assuming a role; switched off, moto lets
it."""

import json

import pytest
from django.conf import settings

from provisioning.registry import APPROVER_TAG
from sandbox.controller import session_make
from tests.conftest import CUSTOMER_ACCOUNT, EXTERNAL_ID, PORTAL_KEYS
from tests.test_sandbox import _client, _error, _user

pytestmark = pytest.mark.strict(consistency_window=0.0, session_max_age=0.0)
ONRAMP_ROLE = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess"


def chained_session(aws, *, source_identity: str):
    """A role session in the portal's account, assumed with `source_identity`, allowed to assume the customer's role:
    Onramp's own identity as an operator might give it. Its STS client."""
    portal = settings.PORTAL_AWS_ACCOUNT_ID
    admin = aws.admin(portal).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{portal}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            }
        ],
    }
    admin.create_role(RoleName="OnrampHop", AssumeRolePolicyDocument=json.dumps(trust))
    allow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": "*"}],
    }
    admin.put_role_policy(RoleName="OnrampHop", PolicyName="hop", PolicyDocument=json.dumps(allow))
    user = _client(aws, _user(aws, portal, "sts:AssumeRole", "sts:SetSourceIdentity"), "sts", region="us-east-1")
    creds = user.assume_role(
        RoleArn=f"arn:aws:iam::{portal}:role/OnrampHop", RoleSessionName="operator", SourceIdentity=source_identity
    )["Credentials"]
    session = session_make(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    return _client(aws, session, "sts", region="us-east-1")


def test_a_chained_session_cannot_change_its_source_identity(aws):
    sts = chained_session(aws, source_identity="deploy-bot")
    request = {"RoleArn": ONRAMP_ROLE, "RoleSessionName": "onramp-run", "ExternalId": EXTERNAL_ID}
    error = _error(lambda: sts.assume_role(**request, SourceIdentity="alice"))
    assert error["Code"] == "AccessDenied" and "sts:AssumeRole" in error["Message"]
    sts.assume_role(**request, SourceIdentity="deploy-bot")  # the same value is no change

    aws.configure(source_identity_chain=False)
    sts.assume_role(**request, SourceIdentity="alice")


# --- Session tags (an approver, issue 32): sts:TagSession in the trust policy and in the caller's own policy ---


def _trusting_role(aws, account: str, *actions: str) -> str:
    """An Onramp role (the name Onramp's own policy names) in `account` whose trust policy allows the portal's
    account exactly `actions`."""
    admin = _client(aws, aws.admin(account), "iam", region="us-east-1")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions),
             "Principal": {"AWS": f"arn:aws:iam::{settings.PORTAL_AWS_ACCOUNT_ID}:root"}}]}  # fmt: skip
    admin.create_role(RoleName="OnrampAccess", AssumeRolePolicyDocument=json.dumps(trust))
    return f"arn:aws:iam::{account}:role/OnrampAccess"


def _portal_sts(aws):
    """Onramp's own identity with the README's policy (the `aws` fixture's)."""
    session = session_make(aws_access_key_id=PORTAL_KEYS[0], aws_secret_access_key=PORTAL_KEYS[1])
    return _client(aws, session, "sts", region="us-east-1")


APPROVER = [{"Key": APPROVER_TAG, "Value": "bob"}]
# Accounts no other test uses: a role another test deployed in its account was seen still there after the sandbox's
# snapshot restore (tests/role/test_role_versions.py's 555566667777, when it ran first).
TAG_ACCOUNTS = ("246813579024", "135792468013")


def test_session_tags_need_sts_tag_session_in_the_roles_trust_policy(aws):
    """AWS: passing session tags needs sts:TagSession allowed by the role's trust policy (IAM User Guide, "Pass
    session tags in AWS STS", permissions required); refused as an AccessDenied naming sts:TagSession."""
    role = _trusting_role(aws, TAG_ACCOUNTS[0], "sts:AssumeRole", "sts:SetSourceIdentity")
    sts = _portal_sts(aws)
    request = {"RoleArn": role, "RoleSessionName": "onramp-run", "SourceIdentity": "alice"}
    sts.assume_role(**request)  # without tags, the trust policy of version 3 is enough
    error = _error(lambda: sts.assume_role(**request, Tags=APPROVER))
    assert error["Code"] == "AccessDenied"
    assert f"is not authorized to perform: sts:TagSession on resource: {role}" in error["Message"]

    tagging = _trusting_role(aws, TAG_ACCOUNTS[1], "sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")
    sts.assume_role(**{**request, "RoleArn": tagging}, Tags=APPROVER)
    # Onramp's template (version 4) allows it too, with the customer's external id.
    sts.assume_role(**{**request, "RoleArn": ONRAMP_ROLE}, ExternalId=EXTERNAL_ID, Tags=APPROVER)

    aws.configure(trust=False)
    sts.assume_role(**request, Tags=APPROVER)  # moto checks no trust policy across accounts


def test_session_tags_need_sts_tag_session_in_the_callers_own_policy(aws):
    caller = _user(aws, settings.PORTAL_AWS_ACCOUNT_ID, "sts:AssumeRole", "sts:SetSourceIdentity", name="no-tags")
    sts = _client(aws, caller, "sts", region="us-east-1")
    request = {"RoleArn": ONRAMP_ROLE, "RoleSessionName": "onramp-run", "ExternalId": EXTERNAL_ID}
    sts.assume_role(**request, SourceIdentity="alice")
    error = _error(lambda: sts.assume_role(**request, SourceIdentity="alice", Tags=APPROVER))
    assert error["Code"] == "AccessDenied"
    assert "sts:TagSession" in error["Message"] and "no identity-based policy allows" in error["Message"]

    aws.configure(trust=False, iam_decision=False, authorization=False)
    sts.assume_role(**request, SourceIdentity="alice", Tags=APPROVER)


def test_a_sessions_tags_are_recorded_and_are_its_principal_tags(aws):
    """The sandbox keeps each session's tags (moto drops them): read back by tests, and in the request context of
    the session's calls as aws:PrincipalTag/<key>, as AWS puts them."""
    role = _trusting_role(aws, TAG_ACCOUNTS[0], "sts:AssumeRole", "sts:TagSession")
    admin = _client(aws, aws.admin(TAG_ACCOUNTS[0]), "iam", region="us-east-1")
    bob_only = {"StringEquals": {f"aws:PrincipalTag/{APPROVER_TAG}": "bob"}}
    only_bob = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListAccountAliases",
                "Resource": "*", "Condition": bob_only}]}  # fmt: skip
    admin.put_role_policy(RoleName="OnrampAccess", PolicyName="only-bob", PolicyDocument=json.dumps(only_bob))
    sts = _portal_sts(aws)

    def iam_as(session_name: str, tags: list | None):
        request = {"RoleArn": role, "RoleSessionName": session_name, **({"Tags": tags} if tags else {})}
        creds = sts.assume_role(**request)["Credentials"]
        session = session_make(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        return _client(aws, session, "iam", region="us-east-1")

    iam_as("approved", APPROVER).list_account_aliases()
    for name, tags in (("untagged", None), ("eve", [{"Key": APPROVER_TAG, "Value": "eve"}])):
        error = _error(lambda name=name, tags=tags: iam_as(name, tags).list_account_aliases())
        assert error["Code"] == "AccessDenied" and "iam:ListAccountAliases" in error["Message"]

    recorded = {s["arn"].rsplit("/", 1)[-1]: s["tags"] for s in aws.sessions()}
    assert recorded["approved"] == {APPROVER_TAG: "bob"}
    assert recorded["eve"] == {APPROVER_TAG: "eve"}
    assert "untagged" not in recorded or recorded["untagged"] == {}
