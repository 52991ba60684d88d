"""Creating the group (or adopting it), reading it back with its members, and deleting it."""

from botocore.exceptions import ClientError

from provisioning import registry
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_translate
from provisioning.errors import StepFailed
from provisioning.kinds.common_aws import (
    absent_is_none,
    delete,
    gone,
    iam_exists,
    removed_by_run,
)
from provisioning.kinds.iam_group import declaration
from provisioning.kinds.iam_user_removal import declaration as user_removal
from provisioning.ledger import ledger_holds_user
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    """The group and its members (every page of them)."""
    pages = account.client("iam").get_paginator("get_group").paginate(GroupName=params["group"])
    found = absent_is_none(lambda: list(pages))
    if found is None:
        return None
    members = [{"name": user["UserName"]} for page in found for user in page["Users"]]
    group = found[0]["Group"]
    return {"arn": group["Arn"], "path": group.get("Path", "/"), "members": members}


def execute(ctx: StepContext, params: dict) -> StepResult:
    name = params["group"]
    try:
        try:
            created = ctx.send(declaration.create_group(name))["Group"]
            return StepResult(adopted=False, outputs={"group": name, "arn": created["Arn"], "created": True})
        except ClientError as exc:
            if not iam_exists(exc):
                raise
        found = read(ctx.account, params)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the group {name}") from None
    if found and found["path"] != registry.ONRAMP_PATH:
        raise StepFailed(declaration.group_outside_sentence(name), code="OutsideOnrampsPath")
    return StepResult(adopted=True, outputs={"group": name, "arn": found["arn"] if found else ""})


def _group_in_use(ctx: StepContext, name: str, found: dict) -> StepFailed | None:
    theirs = [member["UserName"] for member in found["Users"] if not ledger_holds_user(ctx.run.customer_id, member)]
    if not theirs:
        return None
    return StepFailed(
        f"The group {name} still has members Onramp does not manage: {', '.join(theirs)}. Remove them from "
        "the group (or delete the group yourself), then retry.",
        code="GroupInUse",
    )


def _group_conflict(ctx: StepContext, name: str, removed: set[str]) -> bool:
    """DeleteGroup answered DeleteConflict: a member Onramp does not manage, or a policy it did not take off, is a
    sentence at once; otherwise AWS does not see yet what this step or the run's user removals took off (True)."""
    iam = ctx.client("iam")
    refused = _group_in_use(ctx, name, iam.get_group(GroupName=name))
    if refused is not None:
        raise refused
    policies = [p["PolicyArn"] for p in iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]]
    policies += iam.list_group_policies(GroupName=name)["PolicyNames"]
    added = [policy for policy in policies if policy not in removed]
    if added:
        raise StepFailed(
            f"The group {name} has policies Onramp did not put there: {', '.join(added)}. Remove them from the group "
            "(or delete the group yourself), then retry.",
            code="GroupInUse",
        )
    return bool(removed) or name in removed_by_run(ctx, f"{user_removal.part_key('groups')}:")


def remove(ctx: StepContext, params: dict) -> StepResult:
    iam, name = ctx.client("iam"), params["name"]
    removed: set[str] = set()  # the members and policies this step took off the group
    try:
        found = absent_is_none(lambda: iam.get_group(GroupName=name))
        if found is None:
            return gone(name)
        refused = _group_in_use(ctx, name, found)
        if refused is not None:
            raise refused
        for member in found["Users"]:
            iam.remove_user_from_group(GroupName=name, UserName=member["UserName"])
            removed.add(member["UserName"])
        for policy in iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]:
            iam.detach_group_policy(GroupName=name, PolicyArn=policy["PolicyArn"])
            removed.add(policy["PolicyArn"])
        for policy_name in iam.list_group_policies(GroupName=name)["PolicyNames"]:
            iam.delete_group_policy(GroupName=name, PolicyName=policy_name)
            removed.add(policy_name)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Removing the group {name}") from None
    return delete(ctx, params, gone_codes=("NoSuchEntity",), conflict=lambda: _group_conflict(ctx, name, removed))
