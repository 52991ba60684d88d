"""Putting the bucket's Block Public Access configuration (when it differs) and reading it back."""

from provisioning import documents
from provisioning.aws.accounts import AwsAccount
from provisioning.kinds.common_aws import (
    configure_bucket,
    s3_config_read,
)
from provisioning.kinds.s3_public_access_block import declaration
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    s3 = account.client("s3")
    config = s3_config_read(
        lambda: {"config": s3.get_public_access_block(Bucket=params["bucket"])["PublicAccessBlockConfiguration"]},
        missing="NoSuchPublicAccessBlockConfiguration",
        default={"config": None},
    )
    return config


def execute(ctx: StepContext, params: dict) -> StepResult:
    return configure_bucket(
        ctx,
        params,
        declaration.KIND,
        read,
        declaration.put_public_access_block(params["bucket"]),
        "Blocking public access",
        documents.public_access_block_document(),
    )
