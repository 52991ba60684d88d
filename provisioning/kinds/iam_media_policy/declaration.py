"""The app's MediaManagement policy (S3 access to its bucket), attached to the app user; and its removal."""

import json

from provisioning import documents
from provisioning.kinds.iam_app_user import declaration as iam_app_user
from provisioning.registry import (
    ATTACH_CONDITION,
    MANAGED_TAGS,
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    attach_user_policy,
    document_differences,
    group_ops,
    ops,
    policy_arn,
    removal_kind,
    user_ops,
)
from provisioning.spec import Spec

KEY = "iam.media_policy"
REMOVAL_KEY = "remove.iam.media_policy"
ORDER = 40
MEDIA_POLICY_DESCRIPTION = "Grants access to S3 buckets and objects"


def create_policy(name: str, document: dict) -> ApiCall:
    return ApiCall(
        "iam",
        "CreatePolicy",
        {
            "PolicyName": name,
            "PolicyDocument": json.dumps(document, separators=(",", ":")),
            "Description": MEDIA_POLICY_DESCRIPTION,
            "Tags": MANAGED_TAGS,
        },
    )


def create_policy_version(arn: str, document: dict) -> ApiCall:
    return ApiCall(
        "iam",
        "CreatePolicyVersion",
        {"PolicyArn": arn, "PolicyDocument": json.dumps(document, separators=(",", ":")), "SetAsDefault": True},
    )


def _media_params(spec: Spec) -> dict:
    name = documents.media_policy_name(scope=spec.media_scope, bucket=spec.bucket)
    return {
        "user": spec.app_name,
        "scope": spec.media_scope,
        "bucket": spec.bucket,
        "name": name,
        "arn": policy_arn(spec.account_id, name),
    }


def media_document(params: dict) -> dict:
    return documents.media_policy_document(scope=params["scope"], bucket=params["bucket"])


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    found = document_differences("policy document", media_document(params), seen["document"])
    if not seen["attached"]:
        found.append(Difference(f"attached to {params['user']}", "yes", "no"))
    return found


KIND = StepKind(
    key=KEY,
    branch="iam",
    title=lambda p: f"Policy {p['name']}, attached to {p['user']}",
    instances=lambda spec: [_media_params(spec)],
    after=(iam_app_user.KEY,),
    calls=lambda p: [create_policy(p["name"], media_document(p)), attach_user_policy(p["user"], p["arn"])],
    documents=lambda p: {"policy": media_document(p)},
    document_titles=(("policy", "MediaManagement IAM policy"),),
    operations=(
        *ops("iam", "CreatePolicy", also=("iam:TagPolicy",)),
        *ops(
            "iam",
            "GetPolicy",
            "GetPolicyVersion",
            "ListPolicyVersions",
            "CreatePolicyVersion",
            "DeletePolicyVersion",
            "ListAttachedUserPolicies",
        ),
        *user_ops("AttachUserPolicy", condition=ATTACH_CONDITION),
    ),
    resource=ResourceRecord("IAM policy", "name", "policy"),
    publishes=(Publish("policy", "arn", "Policy"),),
    compare=compare,
    removal=(REMOVAL_KEY,),
    absent=("NoSuchEntity",),
    exists=("EntityAlreadyExists",),
    noun="policy",
)
REMOVAL = removal_kind(
    REMOVAL_KEY,
    lambda p: f"Delete the policy {p['name']} (detached from everyone first)",
    (
        # Detaching from a user touches the user: only Onramp's (a role or another user keeps it attached,
        # and the removal stops saying so).
        *ops("iam", "ListEntitiesForPolicy", "ListPolicyVersions"),
        *group_ops("DetachGroupPolicy"),
        *ops("iam", "DeletePolicyVersion", "DeletePolicy"),
        *user_ops("DetachUserPolicy"),
    ),
    calls=lambda p: [ApiCall("iam", "DeletePolicy", {"PolicyArn": p["arn"]})],
)
KINDS = (KIND, REMOVAL)
