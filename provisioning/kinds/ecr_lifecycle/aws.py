"""Putting the repository's lifecycle policy (when it differs) and reading it back."""

import json

from botocore.exceptions import ClientError

from provisioning import documents
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_code, error_translate
from provisioning.kinds.ecr_lifecycle import declaration
from provisioning.kinds.ecr_repository import declaration as ecr_repository
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    try:
        text = account.client("ecr").get_lifecycle_policy(repositoryName=params["repository"])["lifecyclePolicyText"]
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        if error_code(exc) == "LifecyclePolicyNotFoundException":
            return {"policy": None}
        raise
    return {"policy": json.loads(text)}


def execute(ctx: StepContext, params: dict) -> StepResult:
    name = params["repository"]
    outputs = {"repository": name, "rules": len(documents.lifecycle_policy_document()["rules"])}
    try:
        if not ctx.created_by_run(ecr_repository.KEY):
            seen = read(ctx.account, params) or {"policy": None}
            if not declaration.KIND.compare(params, seen, None):
                return StepResult(adopted=True, outputs=outputs)
        ctx.send(declaration.put_lifecycle_policy(name))
    except ClientError as exc:
        raise error_translate(exc, doing="Setting the ECR lifecycle policy") from None
    return StepResult(adopted=False, outputs=outputs)
