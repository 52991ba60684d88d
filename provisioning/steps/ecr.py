"""ECR steps: the repository and its 19-rule lifecycle policy."""

import json

from botocore.exceptions import ClientError

from provisioning import documents
from provisioning.aws import error_code, error_translate
from provisioning.spec import Spec
from provisioning.steps.base import StepContext, StepResult


def repository(ctx: StepContext, spec: Spec) -> StepResult:
    ecr = ctx.client("ecr")
    name = spec.ecr_repository
    try:
        try:
            repo = ecr.create_repository(
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": True},
                tags=[{"Key": "managed-by", "Value": "onramp"}],
            )["repository"]
            created = True
        except ClientError as exc:
            if error_code(exc) != "RepositoryAlreadyExistsException":
                raise
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
            created = False
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the ECR repository {name}") from None
    outputs = {"repository": name, "arn": repo["repositoryArn"], "uri": repo["repositoryUri"]}
    if created:
        outputs["created"] = True  # the lifecycle step knows there is no policy to read yet
    return StepResult(adopted=not created, outputs=outputs)


def lifecycle(ctx: StepContext, spec: Spec) -> StepResult:
    ecr = ctx.client("ecr")
    wanted = documents.lifecycle_policy_document()
    outputs = {"repository": spec.ecr_repository, "rules": len(wanted["rules"])}
    try:
        if not ctx.outputs_of("ecr.repository").get("created"):
            try:
                current = ecr.get_lifecycle_policy(repositoryName=spec.ecr_repository)["lifecyclePolicyText"]
                if json.loads(current) == wanted:
                    return StepResult(adopted=True, outputs=outputs)
            except ClientError as exc:
                if error_code(exc) != "LifecyclePolicyNotFoundException":
                    raise
        ecr.put_lifecycle_policy(repositoryName=spec.ecr_repository, lifecyclePolicyText=json.dumps(wanted))
    except ClientError as exc:
        raise error_translate(exc, doing="Setting the ECR lifecycle policy") from None
    return StepResult(adopted=False, outputs=outputs)
