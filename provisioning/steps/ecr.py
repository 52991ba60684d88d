"""ECR steps: the repository and its 19-rule lifecycle policy."""

import json

from botocore.exceptions import ClientError

from provisioning import documents, registry
from provisioning.aws import error_code, error_translate
from provisioning.steps.base import StepContext, StepResult


def repository(ctx: StepContext, params: dict) -> StepResult:
    name = params["repository"]
    try:
        try:
            repo = ctx.send(registry.create_repository(name))["repository"]
            created = True
        except ClientError as exc:
            if error_code(exc) != "RepositoryAlreadyExistsException":
                raise
            repo = ctx.client("ecr").describe_repositories(repositoryNames=[name])["repositories"][0]
            created = False
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the ECR repository {name}") from None
    outputs = {"repository": name, "arn": repo["repositoryArn"], "uri": repo["repositoryUri"]}
    if created:
        outputs["created"] = True  # the lifecycle step knows there is no policy to read yet
    return StepResult(adopted=not created, outputs=outputs)


def lifecycle(ctx: StepContext, params: dict) -> StepResult:
    ecr = ctx.client("ecr")
    name = params["repository"]
    wanted = documents.lifecycle_policy_document()
    outputs = {"repository": name, "rules": len(wanted["rules"])}
    try:
        if not ctx.created_by_run("ecr.repository"):
            try:
                current = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
                if json.loads(current) == wanted:
                    return StepResult(adopted=True, outputs=outputs)
            except ClientError as exc:
                if error_code(exc) != "LifecyclePolicyNotFoundException":
                    raise
        ctx.send(registry.put_lifecycle_policy(name))
    except ClientError as exc:
        raise error_translate(exc, doing="Setting the ECR lifecycle policy") from None
    return StepResult(adopted=False, outputs=outputs)
