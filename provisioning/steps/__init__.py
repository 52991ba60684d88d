"""One module per AWS service; each step is a plain function (context, spec) -> StepResult."""

from provisioning.steps import ecr, iam, s3, sts
from provisioning.steps.base import StepContext, StepFailed, StepResult

STEP_FUNCTIONS = {
    "preflight": sts.preflight,
    "account.alias": iam.account_alias,
    "iam.group": iam.group,
    "iam.app_user": iam.app_user,
    "iam.media_policy": iam.media_policy,
    "iam.access_key": iam.access_key,
    "team.member": iam.team_member,
    "s3.bucket": s3.bucket,
    "s3.public_access_block": s3.public_access_block,
    "s3.cors": s3.cors,
    "ecr.repository": ecr.repository,
    "ecr.lifecycle": ecr.lifecycle,
}

__all__ = ["STEP_FUNCTIONS", "StepContext", "StepFailed", "StepResult"]
