"""Putting the bucket's CORS configuration (when it differs) and reading it back."""

from provisioning import documents
from provisioning.aws.accounts import AwsAccount
from provisioning.kinds.common_aws import (
    configure_bucket,
    s3_config_read,
)
from provisioning.kinds.s3_cors import declaration
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    s3 = account.client("s3")
    rules = s3_config_read(
        lambda: s3.get_bucket_cors(Bucket=params["bucket"])["CORSRules"],
        missing="NoSuchCORSConfiguration",
        default=[],
    )
    return None if rules is None else {"rules": documents.cors_rules_normal(rules)}


def execute(ctx: StepContext, params: dict) -> StepResult:
    rules = len(documents.cors_document(app_origin=params["origin"])["CORSRules"])
    return configure_bucket(
        ctx,
        params,
        declaration.KIND,
        read,
        declaration.put_bucket_cors(params["bucket"], params["origin"]),
        "Setting the bucket's CORS",
        {"rules": rules, "upload_origin": params["origin"]},
    )
