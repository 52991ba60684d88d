"""Customer records: the access role a customer sets up for Onramp (trust policy, permissions,
CloudFormation template), checking that connection, and saving a record with its audit trail.

The document builders are pure functions; the admin only renders what they return.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery

from provisioning import vault
from provisioning.audit import PendingEvent, audit_record, audit_write
from provisioning.aws import PORTAL_ACTIONS, AwsAccount, AwsError, CallLog, account_connect, current_call_log
from provisioning.models import AuditEvent, Customer, Run, StepRun
from provisioning.steps.sts import identity_check

ROLE_NAME = "OnrampAccess"
POLICY_VERSION = "2012-10-17"

# Every AWS operation Onramp calls inside a customer's account: the steps (provisioning/steps/*.py) and
# the key rotation (provisioning/rotation.py). AssumeRole is not here: the portal's own identity calls it,
# and the trust policy is what allows it. tests/test_customers.py checks this list against the code.
ONRAMP_OPERATIONS: dict[str, tuple[str, ...]] = {
    "sts": ("GetCallerIdentity",),
    "iam": (
        "ListAccountAliases",
        "CreateAccountAlias",
        "GetGroup",
        "CreateGroup",
        "GetUser",
        "CreateUser",
        "ListGroupsForUser",
        "AddUserToGroup",
        "GetPolicy",
        "CreatePolicy",
        "GetPolicyVersion",
        "ListPolicyVersions",
        "CreatePolicyVersion",
        "DeletePolicyVersion",
        "ListAttachedUserPolicies",
        "AttachUserPolicy",
        "ListAccessKeys",
        "CreateAccessKey",
        "UpdateAccessKey",
        "DeleteAccessKey",
        "GetLoginProfile",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "DeleteLoginProfile",
    ),
    "s3": (
        "ListBuckets",
        "GetBucketLocation",
        "CreateBucket",
        "GetPublicAccessBlock",
        "PutPublicAccessBlock",
        "GetBucketCors",
        "PutBucketCors",
    ),
    "ecr": ("DescribeRepositories", "CreateRepository", "GetLifecyclePolicy", "PutLifecyclePolicy"),
}
# S3 names a few IAM actions differently from the API operations they authorise.
_ACTION_NAMES = {
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "GetBucketCors"): "s3:GetBucketCORS",
    ("s3", "PutBucketCors"): "s3:PutBucketCORS",
}
# Creating with tags (managed-by=onramp) is also authorised as tagging.
_DEPENDENT_ACTIONS = {
    "iam:CreateUser": ("iam:TagUser",),
    "iam:CreatePolicy": ("iam:TagPolicy",),
    "ecr:CreateRepository": ("ecr:TagResource",),
}


def iam_action(*, service: str, operation: str) -> str:
    """The IAM action that authorises one API operation, e.g. ("s3", "ListBuckets") -> s3:ListAllMyBuckets."""
    return _ACTION_NAMES.get((service, operation), f"{service}:{operation}")


def actions_for(operations: dict[str, tuple[str, ...]] | None = None) -> dict[str, list[str]]:
    """The IAM actions, by service, that the operations need (with the tag-on-create ones)."""
    by_service: dict[str, set[str]] = {}
    for service, names in (operations or ONRAMP_OPERATIONS).items():
        for operation in names:
            action = iam_action(service=service, operation=operation)
            by_service.setdefault(service, set()).update((action, *_DEPENDENT_ACTIONS.get(action, ())))
    return {service: sorted(actions) for service, actions in by_service.items()}


def trust_policy_document(*, portal_account_id: str, external_id: str) -> dict:
    """Who may assume the customer's role: Onramp's AWS account, and only with this customer's external id.

    sts:SetSourceIdentity because Onramp names the person who started the run in the customer's CloudTrail."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "OnrampAssumesThisRole",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{portal_account_id}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def portal_policy_document() -> dict:
    """What Onramp's own identity (in the agency's account) may do: assume customers' Onramp roles, naming the
    person as the session's source identity, and nothing else. Across accounts AWS checks both actions twice:
    in this policy and in the role's trust policy (trust_policy_document)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "OnrampAssumesCustomerRoles",
                "Effect": "Allow",
                "Action": list(PORTAL_ACTIONS),
                "Resource": f"arn:aws:iam::*:role/{ROLE_NAME}",
            }
        ],
    }


def access_policy_document() -> dict:
    """What the role may do: exactly the actions of Onramp's steps, one statement per service."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": f"Onramp{service.upper()}", "Effect": "Allow", "Action": actions, "Resource": "*"}
            for service, actions in actions_for().items()
        ],
    }


def cloudformation_template(*, customer_name: str, portal_account_id: str, external_id: str) -> dict:
    """A CloudFormation template (JSON) that creates the role Onramp assumes, in one step."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"The role Onramp assumes to onboard {customer_name}'s account "
        "(IAM users, group and policy; an S3 bucket; an ECR repository).",
        "Parameters": {
            "RoleName": {
                "Type": "String",
                "Default": ROLE_NAME,
                "Description": "The role's name; give Onramp the role ARN from this stack's outputs.",
            }
        },
        "Resources": {
            "OnrampAccessRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "Description": "Assumed by Onramp to onboard this account",
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": trust_policy_document(
                        portal_account_id=portal_account_id, external_id=external_id
                    ),
                    "Policies": [{"PolicyName": "OnrampOnboarding", "PolicyDocument": access_policy_document()}],
                    "Tags": [{"Key": "managed-by", "Value": "onramp"}],
                },
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Paste this into Onramp as the customer's role ARN.",
                "Value": {"Fn::GetAtt": ["OnrampAccessRole", "Arn"]},
            }
        },
    }


# --- Checking the connection ----------------------------------------------------------


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    code: str = ""
    arn: str = ""


def customer_check_connection(*, customer: Customer, user, account: AwsAccount | None = None) -> ConnectionCheck:
    """The preflight, on demand: reach the account (assume the role or use the stored keys), confirm the
    account id, refuse root. The role is assumed exactly as a run assumes it (the same request, the person
    checking as the source identity), so a connection that passes here passes a run's preflight. Every AWS
    call and the result are audited. `account` is opened from the customer's record unless given."""
    log = CallLog(actor_label=user.get_username(), actor_id=user.pk, customer_id=customer.pk)
    token = current_call_log.set(log)
    try:
        if account is None:
            account = account_connect(
                customer=customer,
                region=customer.default_region,
                source_identity=user.get_username(),
                session_name=f"onramp-check-{customer.pk}",
            )
        identity = identity_check(sts=account.client("sts"), account_id=customer.aws_account_id)
        result = ConnectionCheck(
            ok=True,
            message=f"{customer.name}: Onramp reaches account {identity['account']} as {identity['arn']} "
            f"(via {account.how}).",
            arn=identity["arn"],
        )
    except AwsError as exc:
        result = ConnectionCheck(ok=False, message=f"{customer.name}: {exc}", code=exc.code)
    except vault.VaultError as exc:  # stored keys sealed with a key no longer configured
        result = ConnectionCheck(ok=False, message=f"{customer.name}: {exc}", code="VaultError")
    finally:
        current_call_log.reset(token)
    outcome = AuditEvent.Outcome.OK if result.ok else AuditEvent.Outcome.ERROR
    audit_write(
        [
            *log.drain(),
            PendingEvent(
                action="customer.connection_checked",
                actor_label=log.actor_label,
                actor_id=log.actor_id,
                customer_id=customer.pk,
                outcome=outcome,
                error_code=result.code,
                target=customer.name,
                details={"connection": customer.connection, "arn": result.arn, "message": result.message},
            ),
        ]
    )
    return result


# --- Saving from the admin ------------------------------------------------------------

SECRET_FIELD = "secret_access_key"  # noqa: S105 (a form field name, not a secret)


def customer_save(*, customer: Customer, user, created: bool, changed: list[str], secret_access_key: str = "") -> None:
    """Save a customer edited by a person, the secret (if given) encrypted by the vault, and audit which
    fields changed: names only, and for the secret only that it was set or replaced."""
    fields = [name for name in changed if name != SECRET_FIELD]
    if secret_access_key:
        customer.secret_access_key_ciphertext = vault.encrypt(secret_access_key)
        fields.append(f"{SECRET_FIELD} ({'set' if created else 'replaced'})")
    with transaction.atomic():
        customer.save()
        if not (created or fields):
            return  # saved as it was: nothing to record
        audit_record(
            action="customer.created" if created else "customer.changed",
            actor=user,
            customer=customer,
            target=customer.name,
            details={"fields": fields, "via": "admin"},
        )


def customer_delete(*, customer: Customer, user) -> None:
    with transaction.atomic():
        audit_record(
            action="customer.deleted",
            actor=user,
            customer=customer,
            target=customer.name,
            details={"aws_account_id": customer.aws_account_id, "via": "admin"},
        )
        customer.delete()


# --- Selectors ------------------------------------------------------------------------


def customers_with_last_run(queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Each customer with its last run's date and status, in the same query (two correlated subqueries)."""
    last = Run.objects.filter(customer=OuterRef("pk")).order_by("-created_at")
    return queryset.annotate(
        last_run_at=Subquery(last.values("created_at")[:1]),
        last_run_status=Subquery(last.values("status")[:1]),
    )


# What each step created, by its outputs: (step key prefix, kind, the output naming it).
_RESOURCE_STEPS = (
    ("account.alias", "Account alias", "alias"),
    ("iam.group", "IAM group", "group"),
    ("iam.app_user", "IAM user (app)", "user"),
    ("iam.media_policy", "IAM policy", "policy"),
    ("iam.access_key", "Access key", "access_key_id"),
    ("team.member:", "IAM user (team)", "user"),
    ("s3.bucket", "S3 bucket", "bucket"),
    ("ecr.repository", "ECR repository", "repository"),
)


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    arn: str
    run_id: object
    when: object


def customer_resources(*, customer: Customer) -> list[Resource]:
    """The resources Onramp created or adopted in the customer's account, newest record of each, as the
    steps recorded them (ARNs, names, ids: never a secret)."""
    steps = (
        StepRun.objects.filter(run__customer=customer, state__in=StepRun.DONE)
        .order_by("-finished_at", "-id")
        .values("key", "outputs", "run_id", "finished_at")
    )
    seen: dict[tuple[str, str], Resource] = {}
    for step in steps:
        for prefix, kind, name_key in _RESOURCE_STEPS:
            if not (step["key"] == prefix or (prefix.endswith(":") and step["key"].startswith(prefix))):
                continue
            outputs = step["outputs"] or {}
            name = str(outputs.get(name_key) or "")
            if name and (kind, name) not in seen:
                arn = str(outputs.get("arn") or outputs.get("uri") or "")
                seen[(kind, name)] = Resource(kind, name, arn, step["run_id"], step["finished_at"])
    order = {kind: i for i, (_, kind, _) in enumerate(_RESOURCE_STEPS)}
    return sorted(seen.values(), key=lambda r: (order[r.kind], r.name))
