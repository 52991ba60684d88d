"""The role a customer sets up for Onramp, as documents: its trust policy, the permissions policy derived from
the declarations, Onramp's own policy, and the CloudFormation template (one per customer, or published once per
version). Pure builders: the admin, the set-up page and the publisher only render or upload what they return."""

from typing import Any

from provisioning.aws.errors import PORTAL_ACTIONS
from provisioning.kinds import REGISTRY
from provisioning.models import EXTERNAL_ID_MAX, EXTERNAL_ID_MIN
from provisioning.registry import (
    ASSUME_SECONDS,
    MANAGED_BY_CONDITION_KEY,
    MANAGED_TAGS,
    ONRAMPS_GROUPS,
    ONRAMPS_USERS,
    ROLE_NAME,
    ROLE_TEMPLATE_VERSION,
    ROLE_TRUST_ACTIONS,
    ROLE_VERSION_TAG,
    Registry,
    role_arn_for,
)
from provisioning.role.versions import condition_document

POLICY_VERSION = "2012-10-17"

# How a conditioned statement is named after its condition's key.
_CONDITION_NAMES = {"iam:PolicyARN": "OnlyListedPolicies", MANAGED_BY_CONDITION_KEY: "OnlyWhatOnrampTagged"}
# And an unconditioned one after its resource (a Sid is unique within a policy).
_RESOURCE_NAMES = {ONRAMPS_USERS: "OnlyOnrampsUsers", ONRAMPS_GROUPS: "OnlyOnrampsGroups"}


def _statements(registry: Registry) -> list[dict]:
    """One statement per service, condition and resource: an action allowed without condition everywhere is
    not repeated under a narrower statement."""
    grouped: dict[tuple[str, tuple, str], set[str]] = {}
    for operation in registry.operations():
        grouped.setdefault((operation.service, operation.condition, operation.resource), set()).update(
            operation.actions
        )
    free = {
        service: actions
        for (service, condition, resource), actions in grouped.items()
        if not condition and resource == "*"
    }
    statements = []
    for (service, condition, resource), actions in grouped.items():
        if condition or resource != "*":
            actions = actions - free.get(service, set())
        if not actions:
            continue
        name = (
            _CONDITION_NAMES.get(condition[0][1], "Conditioned")
            if condition
            else _RESOURCE_NAMES.get(resource, "" if resource == "*" else "OwnRole")
        )
        statement: dict[str, Any] = {
            "Sid": f"Onramp{service.upper()}{name}",
            "Effect": "Allow",
            "Action": sorted(actions),
        }
        statement["Resource"] = resource
        if condition:
            statement["Condition"] = condition_document(condition)
        statements.append(statement)
    return statements


def trust_policy_document(*, portal_account_id: str, external_id: str | dict) -> dict:
    """Who may assume the customer's role: Onramp's AWS account, and only with this customer's external id.

    sts:SetSourceIdentity because Onramp names the person who started the run in the customer's CloudTrail, and
    sts:TagSession to name the approver of a run there (the session tag onramp-approver)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "OnrampAssumesThisRole",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{portal_account_id}:root"},
                "Action": list(ROLE_TRUST_ACTIONS[ROLE_TEMPLATE_VERSION]),
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def portal_policy_document() -> dict:
    """What Onramp's own identity (in the agency's account) may do: assume customers' Onramp roles, naming the
    person as the session's source identity and the approver as a session tag, and nothing else. Across accounts
    AWS checks each action twice: in this policy and in the role's trust policy (trust_policy_document)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "OnrampAssumesCustomerRoles",
                "Effect": "Allow",
                "Action": list(PORTAL_ACTIONS),
                "Resource": role_arn_for("*"),
            }
        ],
    }


def access_policy_document(registry: Registry = REGISTRY) -> dict:
    """What the role may do: exactly the actions of Onramp's declared steps, one statement per service."""
    return {"Version": POLICY_VERSION, "Statement": _statements(registry)}


def _role_resources(*, portal_account_id: str, external_id: str | dict, registry: Registry) -> dict:
    """The template's role and outputs: the same in the per-customer download and the published template."""
    return {
        "Resources": {
            "OnrampAccessRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": ROLE_NAME,  # Onramp's own policy may assume this name only
                    "Description": "Assumed by Onramp to onboard this account",
                    "MaxSessionDuration": ASSUME_SECONDS,  # exactly the session Onramp asks for
                    "AssumeRolePolicyDocument": trust_policy_document(
                        portal_account_id=portal_account_id, external_id=external_id
                    ),
                    "Policies": [
                        {"PolicyName": "OnrampOnboarding", "PolicyDocument": access_policy_document(registry)}
                    ],
                    "Tags": [
                        *MANAGED_TAGS,
                        {"Key": ROLE_VERSION_TAG, "Value": str(ROLE_TEMPLATE_VERSION)},
                    ],
                },
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Paste this into Onramp as the customer's role ARN.",
                "Value": {"Fn::GetAtt": ["OnrampAccessRole", "Arn"]},
            },
            "TemplateVersion": {
                "Description": "The version of Onramp's template this stack deploys (Onramp checks it).",
                "Value": str(ROLE_TEMPLATE_VERSION),
            },
        },
    }


def cloudformation_template(
    *, customer_name: str, portal_account_id: str, external_id: str, registry: Registry = REGISTRY
) -> dict:
    """A CloudFormation template (JSON) that creates the role Onramp assumes, in one step, with this customer's
    external id written in (the admin's download)."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"The role Onramp assumes to onboard {customer_name}'s account "
        "(IAM users, group and policy; an S3 bucket; an ECR repository).",
        **_role_resources(portal_account_id=portal_account_id, external_id=external_id, registry=registry),
    }


# AWS's limits and characters for sts:ExternalId (AssumeRole's ExternalId: 2 to 1224 characters of [\w+=,.@:/-]).
EXTERNAL_ID_PATTERN = r"[\w+=,.@:\/-]*"


def published_template(*, portal_account_id: str, registry: Registry = REGISTRY) -> dict:
    """The template published once per version for every customer (provisioning/role/published.py): the
    external id is a parameter the quick-create link fills in. Not NoEcho: the CloudFormation console's
    quick-create links do not fill NoEcho parameters, and an external id is not a secret."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"The role Onramp assumes to onboard this account, template version {ROLE_TEMPLATE_VERSION} "
        "(IAM users, group and policy; an S3 bucket; an ECR repository).",
        "Parameters": {
            "ExternalId": {
                "Type": "String",
                "Description": "The external id Onramp gave you for this account (not a secret).",
                "MinLength": EXTERNAL_ID_MIN,
                "MaxLength": EXTERNAL_ID_MAX,
                "AllowedPattern": EXTERNAL_ID_PATTERN,
            }
        },
        **_role_resources(portal_account_id=portal_account_id, external_id={"Ref": "ExternalId"}, registry=registry),
    }
