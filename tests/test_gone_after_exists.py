"""A create AWS answers "already exists" while the read just after finds nothing: someone is deleting the
resource at that moment. mypy found the steps then compared None (a TypeError, an Onramp bug to the person);
they now stop with a sentence. The race is not something the sandbox can produce, so the create's answer is
stubbed at the boto3 client boundary; the read is the sandbox's own."""

import pytest
from botocore.awsrequest import AWSResponse

from provisioning.aws.accounts import account_connect
from provisioning.errors import StepFailed
from provisioning.kinds.ecr_repository import aws as ecr_repository
from provisioning.kinds.iam_media_policy import aws as media_policy
from provisioning.models import StepRun
from provisioning.steps.base import StepContext
from tests.conftest import CUSTOMER_ACCOUNT, customer_for, spec_data


def _account():
    customer = customer_for(spec_data())
    return account_connect(customer=customer, region="us-west-2", session_name="gone", source_identity="alice")


def _already_exists(client, operation: str, code: str) -> None:
    """The client's `operation` answers AWS's `code` without reaching the sandbox."""

    def answer(**kwargs):
        return AWSResponse("https://aws.example/", 400, {}, None), {
            "Error": {"Code": code, "Message": "It already exists."},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "stubbed"},
        }

    client.meta.events.register(f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}", answer)


def test_a_repository_that_exists_then_is_gone_stops_the_step_with_a_sentence(db, aws):
    account = _account()
    _already_exists(account.client("ecr"), "CreateRepository", "RepositoryAlreadyExistsException")
    params = {"repository": "acme-app"}
    ctx = StepContext(run=None, step=StepRun(key=ecr_repository.declaration.KEY), account=account, params=params)
    with pytest.raises(StepFailed) as failed:
        ecr_repository.execute(ctx, params)
    assert str(failed.value).startswith("The ECR repository acme-app already existed when Onramp tried to create it")
    assert "Run again once they are done." in str(failed.value)


def test_a_policy_that_exists_then_is_gone_stops_the_step_with_a_sentence(db, aws):
    account = _account()
    _already_exists(account.client("iam"), "CreatePolicy", "EntityAlreadyExists")
    arn = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:policy/acme-app-media"
    params = {"name": "acme-app-media", "arn": arn, "user": "acme-app", "bucket": "acme-app-media", "scope": "bucket"}
    ctx = StepContext(run=None, step=StepRun(key=media_policy.declaration.KEY), account=account, params=params)
    with pytest.raises(StepFailed) as failed:
        media_policy.execute(ctx, params)
    assert str(failed.value).startswith("The policy acme-app-media already existed when Onramp tried to create it")
