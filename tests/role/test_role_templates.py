"""The role's template published once per version in the agency's bucket (issue 31, point 1): one object for
every customer (the external id a parameter), readable by the customer's CloudFormation, never changed."""

import json
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from provisioning.models import AuditEvent, PublishedTemplate
from provisioning.registry import ROLE_NAME, ROLE_TEMPLATE_VERSION
from provisioning.role import template as role_template
from provisioning.role.published import (
    PREFIX,
    PUBLIC_ACCESS_BLOCK,
    STACK_NAME,
    TemplateConflict,
    quick_create_url,
    role_template_bucket_prepare,
    role_template_publish,
    template_key,
    template_url,
)
from sandbox.controller import session_make
from sandbox.roles import template_publish
from tests.conftest import PORTAL_KEYS
from tests.test_sandbox import _user

BUCKET = "agency-role-templates"
NEW_CUSTOMER = "444455556666"


def _operator_s3(aws):
    """The agency's operator (its administrator in the portal's account), not Onramp's identity."""
    return aws.admin(settings.PORTAL_AWS_ACCOUNT_ID).client("s3", endpoint_url=aws.url, region_name="us-east-1")


def test_the_published_template_takes_the_external_id_as_a_parameter_and_names_no_customer():
    published = role_template.published_template(portal_account_id="999988887777")
    parameter = published["Parameters"]["ExternalId"]
    # Quick-create links fill no NoEcho parameter, and an external id is not a secret.
    assert parameter["Type"] == "String" and "NoEcho" not in parameter
    assert (parameter["MinLength"], parameter["MaxLength"]) == (2, 1224)
    role = published["Resources"]["OnrampAccessRole"]["Properties"]
    condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert condition == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    # Everything else is the per-customer template's, with the value in the parameter's place.
    download = role_template.cloudformation_template(
        customer_name="Acme", portal_account_id="999988887777", external_id="x" * 40
    )
    role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] = "x" * 40
    assert published["Resources"] == download["Resources"] and published["Outputs"] == download["Outputs"]
    assert "Acme" not in json.dumps(published)


def test_template_urls_have_the_virtual_hosted_s3_form():
    assert (
        template_url(bucket="b", region="us-east-1")
        == f"https://b.s3.amazonaws.com/onramp-role/v{ROLE_TEMPLATE_VERSION}.json"
    )
    assert (
        template_url(bucket="b", region="eu-west-1", version=2)
        == "https://b.s3.eu-west-1.amazonaws.com/onramp-role/v2.json"
    )


@pytest.mark.django_db
def test_make_runs_operator_publishes_a_template_any_customer_deploys_with_its_own_external_id(aws):
    with override_settings(ROLE_TEMPLATE_BUCKET=BUCKET, ROLE_TEMPLATE_REGION="us-east-1"):
        lines = template_publish(url=aws.url)
    url = template_url(bucket=BUCKET, region="us-east-1")
    assert lines[-1] == f"Role template version {ROLE_TEMPLATE_VERSION} published: {url}"
    s3 = _operator_s3(aws)
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCK
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert [(s["Principal"], s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        ("*", "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}*")
    ]
    row = PublishedTemplate.objects.get(version=ROLE_TEMPLATE_VERSION)
    body = s3.get_object(Bucket=BUCKET, Key=template_key())["Body"].read()
    assert (row.content.encode(), row.url, row.key) == (body, url, template_key())
    assert AuditEvent.objects.filter(action="role_template.published", target=url).count() == 1

    # A customer's administrator in their own account: CloudFormation reads the URL with their rights.
    admin = _user(aws, NEW_CUSTOMER, "*", name="customer-admin")
    cfn = admin.client("cloudformation", endpoint_url=aws.url, region_name="us-east-1")
    cfn.create_stack(
        StackName="onramp",
        TemplateURL=url,
        Parameters=[{"ParameterKey": "ExternalId", "ParameterValue": "their-external-id-0123"}],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    assert cfn.describe_stacks(StackName="onramp")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    sts = boto3.client(
        "sts",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id=PORTAL_KEYS[0],
        aws_secret_access_key=PORTAL_KEYS[1],
    )
    role_arn = f"arn:aws:iam::{NEW_CUSTOMER}:role/{ROLE_NAME}"
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="check", ExternalId="another-customers-id-0")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName="check", ExternalId="their-external-id-0123")
    assert assumed["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{NEW_CUSTOMER}:assumed-role/{ROLE_NAME}/")

    # Without the bucket's policy the customer's CloudFormation could not read the template.
    s3.delete_bucket_policy(Bucket=BUCKET)
    with pytest.raises(ClientError) as unreadable:
        cfn.create_stack(
            StackName="again",
            TemplateURL=url,
            Parameters=[{"ParameterKey": "ExternalId", "ParameterValue": "their-external-id-0123"}],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
    assert unreadable.value.response["Error"]["Code"] == "ValidationError"


@pytest.mark.django_db
def test_a_published_version_is_never_changed(aws):
    s3 = _operator_s3(aws)
    role_template_bucket_prepare(s3=s3, bucket=BUCKET, region="us-east-1")
    publish = {"s3": s3, "bucket": BUCKET, "region": "us-east-1", "actor_label": "operator:erin"}
    first = role_template_publish(portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID, **publish)
    again = role_template_publish(portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID, **publish)
    assert (first.uploaded, again.uploaded, again.sha256) == (True, False, first.sha256)
    body = s3.get_object(Bucket=BUCKET, Key=template_key())["Body"].read()

    # The same version with other content (here: another account in its trust policy) is refused…
    with pytest.raises(TemplateConflict, match="never changed"):
        role_template_publish(portal_account_id="999988887777", **publish)
    # …by the object itself when Onramp's records are gone (another installation, a restored database).
    PublishedTemplate.objects.all().delete()
    with pytest.raises(TemplateConflict, match=f"s3://{BUCKET}/{template_key()}"):
        role_template_publish(portal_account_id="999988887777", **publish)
    assert s3.get_object(Bucket=BUCKET, Key=template_key())["Body"].read() == body
    assert not PublishedTemplate.objects.exists()
    assert AuditEvent.objects.filter(action="role_template.published").count() == 1


@pytest.mark.django_db
def test_onramps_own_identity_cannot_publish(aws):
    """The command takes the standard credential chain: in the tests that is Onramp's identity, whose policy
    allows assuming customers' roles and nothing else. It is refused, and nothing is published."""
    role_template_bucket_prepare(s3=_operator_s3(aws), bucket=BUCKET, region="us-east-1")
    with override_settings(ROLE_TEMPLATE_BUCKET=BUCKET), pytest.raises(CommandError, match="not allowed|denied"):
        call_command("role_template", "publish")
    assert not PublishedTemplate.objects.exists()
    assert "Contents" not in _operator_s3(aws).list_objects_v2(Bucket=BUCKET)


@pytest.mark.django_db
def test_a_bucket_name_with_a_dot_is_refused():
    with pytest.raises(CommandError, match="dot"), override_settings(ROLE_TEMPLATE_BUCKET="agency.templates"):
        call_command("role_template", "publish")


@pytest.mark.django_db
def test_the_quick_create_link_has_the_consoles_form_and_creates_the_role_with_exactly_its_values(aws):
    """The link as AWS documents it, parsed back: CreateStack with exactly its templateURL, stackName and
    param_* values, in the customer's account, makes the role Onramp's identity assumes with that external id."""
    with override_settings(ROLE_TEMPLATE_BUCKET=BUCKET, ROLE_TEMPLATE_REGION="us-east-1"):
        template_publish(url=aws.url)
    external_id = "customer-external-id-0123456789"
    link = quick_create_url(
        template_url=template_url(bucket=BUCKET, region="us-east-1"), region="eu-west-1", external_id=external_id
    )
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "eu-west-1.console.aws.amazon.com",
        "/cloudformation/home",
    )
    assert parse_qs(parts.query) == {"region": ["eu-west-1"]}
    route, _, query = parts.fragment.partition("?")
    assert route == "/stacks/create/review"
    values = parse_qs(query, strict_parsing=True)
    assert sorted(values) == ["param_ExternalId", "stackName", "templateURL"]
    assert all(len(v) == 1 for v in values.values()) and values["stackName"] == [STACK_NAME]

    admin = _user(aws, NEW_CUSTOMER, "*", name="customer-admin")
    cfn = admin.client("cloudformation", endpoint_url=aws.url, region_name="eu-west-1")
    cfn.create_stack(
        StackName=values["stackName"][0],
        TemplateURL=values["templateURL"][0],
        Parameters=[
            {"ParameterKey": name.removeprefix("param_"), "ParameterValue": value[0]}
            for name, value in values.items()
            if name.startswith("param_")
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],  # the acknowledgement the customer ticks
    )
    outputs = {
        o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]["Outputs"]
    }
    assert outputs == {
        "RoleArn": f"arn:aws:iam::{NEW_CUSTOMER}:role/{ROLE_NAME}",
        "TemplateVersion": str(ROLE_TEMPLATE_VERSION),
    }
    sts = session_make(aws_access_key_id=PORTAL_KEYS[0], aws_secret_access_key=PORTAL_KEYS[1]).client(
        "sts", endpoint_url=aws.url, region_name="us-east-1"
    )
    sts.assume_role(RoleArn=outputs["RoleArn"], RoleSessionName="check", ExternalId=external_id)
