"""STS's source identity through role chaining, in the strict sandbox (sandbox/sts_rules.py, issue 28 section 3
point 8): a session that carries a source identity cannot set another by assuming a role; switched off, moto lets
it."""

import json

import boto3
import pytest
from django.conf import settings

from tests.conftest import CUSTOMER_ACCOUNT, EXTERNAL_ID
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
    session = boto3.Session(
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
