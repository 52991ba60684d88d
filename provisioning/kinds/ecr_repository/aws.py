"""Creating the repository (or adopting it: scanning switched on), reading it back, its images, and deleting it."""

from botocore.exceptions import ClientError

from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_code, error_translate
from provisioning.errors import StepFailed
from provisioning.kinds.common_aws import (
    delete,
)
from provisioning.kinds.ecr_repository import declaration
from provisioning.steps.base import GONE_AFTER_EXISTS, StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
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


def execute(ctx: StepContext, params: dict) -> StepResult:
    name = params["repository"]
    try:
        try:
            repo = ctx.send(declaration.create_repository(name))["repository"]
            created, seen = True, {"arn": repo["repositoryArn"], "uri": repo["repositoryUri"]}
        except ClientError as exc:
            if error_code(exc) != "RepositoryAlreadyExistsException":
                raise
            created, found = False, read(ctx.account, params)
            if found is None:
                raise StepFailed(GONE_AFTER_EXISTS.format(what=f"The ECR repository {name}")) from None
            seen = found
            corrected = bool(declaration.KIND.compare(params, seen, None))
            if corrected:  # the one setting of an existing repository Onramp wants: scan on push
                ctx.send(declaration.put_image_scanning_configuration(name))
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the ECR repository {name}") from None
    outputs = {"repository": name, "arn": seen["arn"], "uri": seen["uri"]}
    if created:
        outputs["created"] = True  # the lifecycle step knows there is no policy to read yet
        return StepResult(adopted=False, outputs=outputs)
    if corrected:
        return StepResult(adopted=False, outputs=outputs, note="Scanning on push was switched on.")
    return StepResult(adopted=True, outputs=outputs)


def holdings(account: AwsAccount, params: dict) -> dict | None:
    """Whether the repository holds any image (None if the repository is gone)."""
    try:
        images = account.client("ecr").list_images(repositoryName=params["name"], maxResults=1)["imageIds"]
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise
    return {"holds_data": bool(images)}


def remove(ctx: StepContext, params: dict) -> StepResult:
    not_empty = (
        f"The repository {params['name']} holds images. Onramp deletes it with its images only when its name "
        "was typed in the plan: plan again and type it, or delete the images yourself."
    )
    return delete(
        ctx,
        params,
        gone_codes=("RepositoryNotFoundException",),
        refusals={"RepositoryNotEmptyException": not_empty},
    )
