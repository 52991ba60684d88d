"""The repository's policy: reading it back (RepositoryPolicyNotFoundException is AWS's "none"), and deleting
one added by hand."""

import json

from botocore.exceptions import ClientError

from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_code, error_translate
from provisioning.kinds.ecr_repository import declaration as ecr_repository
from provisioning.kinds.ecr_repository_policy import declaration
from provisioning.steps.base import StepContext, StepResult

# AWS's answers to GetRepositoryPolicy and DeleteRepositoryPolicy for a repository that has no policy, and for a
# repository that is not there (ECR API reference, GetRepositoryPolicy, Errors).
NO_POLICY = "RepositoryPolicyNotFoundException"
NO_REPOSITORY = "RepositoryNotFoundException"


def read(account: AwsAccount, params: dict) -> dict | None:
    """{"policy": the policy document, or None when the repository has none}; None when there is no repository."""
    try:
        text = account.client("ecr").get_repository_policy(repositoryName=params["repository"])["policyText"]
    except ClientError as exc:
        if error_code(exc) == NO_REPOSITORY:
            return None
        if error_code(exc) == NO_POLICY:
            return {"policy": None}
        raise
    return {"policy": json.loads(text)}


def execute(ctx: StepContext, params: dict) -> StepResult:
    """A repository this run made has no policy (nothing to send); otherwise one found is deleted (someone may
    delete it first), and none found is adopted as it is."""
    name = params["repository"]
    outputs = {"repository": name, "policy": "none"}
    try:
        if ctx.created_by_run(ecr_repository.KEY):
            return StepResult(adopted=False, outputs=outputs)
        seen = read(ctx.account, params) or {"policy": None}
        if not declaration.KIND.compare(params, seen, None):
            return StepResult(adopted=True, outputs=outputs)
        try:
            ctx.send(declaration.delete_repository_policy(name))
        except ClientError as exc:
            if error_code(exc) != NO_POLICY:
                raise
    except ClientError as exc:
        raise error_translate(exc, doing=f"Removing the repository policy of {name}") from None
    return StepResult(adopted=False, outputs=outputs, note="The repository policy added by hand was deleted.")
