"""The app's ECR repository, scanned on push; and its removal (with its images only when its name was typed)."""

from provisioning.registry import (
    MANAGED_TAGS,
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    ops,
    removal_kind,
)

KEY = "ecr.repository"
REMOVAL_KEY = "remove.ecr.repository"
ORDER = 100


def create_repository(name: str) -> ApiCall:
    return ApiCall(
        "ecr",
        "CreateRepository",
        {"repositoryName": name, "imageScanningConfiguration": {"scanOnPush": True}, "tags": MANAGED_TAGS},
    )


def put_image_scanning_configuration(name: str) -> ApiCall:
    return ApiCall(
        "ecr",
        "PutImageScanningConfiguration",
        {"repositoryName": name, "imageScanningConfiguration": {"scanOnPush": True}},
    )


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    if seen.get("scan_on_push", True):
        return []
    return [Difference("scan on push", "on", "off")]


KIND = StepKind(
    key=KEY,
    branch="ecr",
    title=lambda p: f"ECR repository {p['repository']}, scanned on push",
    instances=lambda spec: [{"repository": spec.ecr_repository}],
    calls=lambda p: [create_repository(p["repository"])],
    operations=(
        *ops("ecr", "CreateRepository", also=("ecr:TagResource",)),
        *ops("ecr", "DescribeRepositories", "PutImageScanningConfiguration"),
    ),
    resource=ResourceRecord("ECR repository", "repository", "repository"),
    publishes=(Publish("repository_uri", "uri", "Repository"),),
    compare=compare,
    removal=(REMOVAL_KEY,),
    absent=("RepositoryNotFoundException",),
    exists=("RepositoryAlreadyExistsException",),
    noun="repository",
)
REMOVAL = removal_kind(
    REMOVAL_KEY,
    lambda p: f"Delete the ECR repository {p['name']}" + (" and its images" if p.get("confirmed") else ""),
    ops("ecr", "ListImages", "DeleteRepository"),
    calls=lambda p: [
        ApiCall("ecr", "DeleteRepository", {"repositoryName": p["name"], "force": bool(p.get("confirmed"))})
    ],
)
KINDS = (KIND, REMOVAL)
