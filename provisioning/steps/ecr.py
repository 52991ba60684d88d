"""ECR steps: the repository and its 19-rule lifecycle policy; and what each looks like now."""

import json

from botocore.exceptions import ClientError

from provisioning import documents, registry
from provisioning.aws import AwsAccount, error_code, error_translate
from provisioning.errors import StepFailed
from provisioning.steps.base import GONE_AFTER_EXISTS, StepContext, StepResult


def repository_read(account: AwsAccount, params: dict) -> dict | None:
    try:
        found = account.client("ecr").describe_repositories(repositoryNames=[params["repository"]])
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise
    repo = found["repositories"][0]
    scanning = repo.get("imageScanningConfiguration") or {}
    return {
        "arn": repo["repositoryArn"],
        "uri": repo["repositoryUri"],
        "scan_on_push": bool(scanning.get("scanOnPush")),
    }


def lifecycle_read(account: AwsAccount, params: dict) -> dict | None:
    try:
        text = account.client("ecr").get_lifecycle_policy(repositoryName=params["repository"])["lifecyclePolicyText"]
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        if error_code(exc) == "LifecyclePolicyNotFoundException":
            return {"policy": None}
        raise
    return {"policy": json.loads(text)}


def repository(ctx: StepContext, params: dict) -> StepResult:
    name = params["repository"]
    try:
        try:
            repo = ctx.send(registry.create_repository(name))["repository"]
            created, seen = True, {"arn": repo["repositoryArn"], "uri": repo["repositoryUri"]}
        except ClientError as exc:
            if error_code(exc) != "RepositoryAlreadyExistsException":
                raise
            created, found = False, repository_read(ctx.account, params)
            if found is None:
                raise StepFailed(GONE_AFTER_EXISTS.format(what=f"The ECR repository {name}")) from None
            seen = found
            corrected = bool(registry.REPOSITORY.compare(params, seen, None))
            if corrected:  # the one setting of an existing repository Onramp wants: scan on push
                ctx.send(registry.put_image_scanning_configuration(name))
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the ECR repository {name}") from None
    outputs = {"repository": name, "arn": seen["arn"], "uri": seen["uri"]}
    if created:
        outputs["created"] = True  # the lifecycle step knows there is no policy to read yet
        return StepResult(adopted=False, outputs=outputs)
    if corrected:
        return StepResult(adopted=False, outputs=outputs, note="Scanning on push was switched on.")
    return StepResult(adopted=True, outputs=outputs)


def lifecycle(ctx: StepContext, params: dict) -> StepResult:
    name = params["repository"]
    outputs = {"repository": name, "rules": len(documents.lifecycle_policy_document()["rules"])}
    try:
        if not ctx.created_by_run("ecr.repository"):
            seen = lifecycle_read(ctx.account, params) or {"policy": None}
            if not registry.LIFECYCLE.compare(params, seen, None):
                return StepResult(adopted=True, outputs=outputs)
        ctx.send(registry.put_lifecycle_policy(name))
    except ClientError as exc:
        raise error_translate(exc, doing="Setting the ECR lifecycle policy") from None
    return StepResult(adopted=False, outputs=outputs)


def repository_holds_data(account: AwsAccount, params: dict) -> dict | None:
    """Whether the repository holds any image (None if the repository is gone)."""
    try:
        images = account.client("ecr").list_images(repositoryName=params["name"], maxResults=1)["imageIds"]
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise
    return {"holds_data": bool(images)}
