"""The repository's lifecycle policy (its rules in provisioning/documents.py)."""

import json

from provisioning import documents
from provisioning.kinds.ecr_repository import declaration as ecr_repository
from provisioning.registry import (
    ApiCall,
    Difference,
    StepKind,
    document_differences,
    ops,
)

KEY = "ecr.lifecycle"
ORDER = 110


def put_lifecycle_policy(name: str) -> ApiCall:
    text = json.dumps(documents.lifecycle_policy_document(), separators=(",", ":"))
    return ApiCall("ecr", "PutLifecyclePolicy", {"repositoryName": name, "lifecyclePolicyText": text})


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    return document_differences("lifecycle policy", documents.lifecycle_policy_document(), seen["policy"])


KIND = StepKind(
    key=KEY,
    branch="ecr",
    title=lambda p: f"ECR lifecycle policy ({len(documents.lifecycle_policy_document()['rules'])} rules)",
    instances=lambda spec: [{"repository": spec.ecr_repository}],
    after=(ecr_repository.KEY,),
    part_of=ecr_repository.KEY,
    calls=lambda p: [put_lifecycle_policy(p["repository"])],
    documents=lambda p: {"lifecycle_policy": documents.lifecycle_policy_document()},
    document_titles=(("lifecycle_policy", "ECR lifecycle policy"),),
    operations=ops("ecr", "GetLifecyclePolicy", "PutLifecyclePolicy"),
    compare=compare,
    # AWS may show the policy as it was for a moment after a change (GetLifecyclePolicy right after
    # PutLifecyclePolicy): a read of one a run changed moments ago is read again until it shows the change.
    settles=True,
    absent=("RepositoryNotFoundException", "LifecyclePolicyNotFoundException"),
    noun="repository setting",
    found_words=lambda identity, seen: (
        "The repository's own lifecycle policy" + (" is there." if seen.get("policy") else ": none.")
    ),
)
KINDS = (KIND,)
