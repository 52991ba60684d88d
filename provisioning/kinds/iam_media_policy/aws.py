"""Creating the policy (or a new default version of it), attaching it, reading it back, and deleting it."""

from botocore.exceptions import ClientError

from provisioning import registry
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_translate
from provisioning.errors import StepFailed
from provisioning.kinds.common_aws import (
    absent_is_none,
    as_dict,
    delete,
    gone,
    iam_exists,
    removed_by_run,
)
from provisioning.kinds.iam_app_user import declaration as iam_app_user
from provisioning.kinds.iam_media_policy import declaration
from provisioning.kinds.iam_user_removal import declaration as user_removal
from provisioning.steps.base import GONE_AFTER_EXISTS, StepContext, StepResult

MAX_POLICY_VERSIONS = 5


def read(account: AwsAccount, params: dict) -> dict | None:
    iam = account.client("iam")
    policy = absent_is_none(lambda: iam.get_policy(PolicyArn=params["arn"]))
    if policy is None:
        return None
    version = iam.get_policy_version(PolicyArn=params["arn"], VersionId=policy["Policy"]["DefaultVersionId"])
    attached = absent_is_none(lambda: iam.list_attached_user_policies(UserName=params["user"]))
    arns = {p["PolicyArn"] for p in (attached or {}).get("AttachedPolicies", [])}
    return {"document": as_dict(version["PolicyVersion"]["Document"]), "attached": params["arn"] in arns}


def _policy_version_make(ctx: StepContext, arn: str, wanted: dict) -> None:
    """Make `wanted` the policy's default version, keeping at most five versions as IAM allows."""
    iam = ctx.client("iam")
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    ctx.send(declaration.create_policy_version(arn, wanted))


def execute(ctx: StepContext, params: dict) -> StepResult:
    name, arn, user = params["name"], params["arn"], params["user"]
    wanted = declaration.media_document(params)
    try:
        seen = read(ctx.account, params) if ctx.known else None
        created = False
        if seen is None:
            try:
                ctx.send(declaration.create_policy(name, wanted))
                created, seen = True, {"document": wanted, "attached": False}  # attached to no one yet
            except ClientError as exc:
                if not iam_exists(exc):
                    raise
                seen = read(ctx.account, params)
                if seen is None:
                    raise StepFailed(GONE_AFTER_EXISTS.format(what=f"The policy {name}")) from None
        differences = declaration.KIND.compare(params, seen, None)
        if seen["document"] != wanted:
            _policy_version_make(ctx, arn, wanted)
        if not seen["attached"]:
            fresh = created or ctx.created_by_run(iam_app_user.KEY)
            ctx.send(registry.attach_user_policy(user, arn), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the policy {name}") from None
    outputs = {"policy": name, "arn": arn, "attached_to": user}
    if created:
        outputs["created"] = True
    return StepResult(adopted=not (created or differences), outputs=outputs)


def _policy_in_use(name: str, entities: dict, detached: set[str] | None = None) -> StepFailed | None:
    """A role holds the policy (Onramp manages none); once Onramp `detached` it from its users and groups, also a
    user or group it did not detach it from."""
    roles = [r["RoleName"] for r in entities["PolicyRoles"]]
    if roles:
        return StepFailed(
            f"The policy {name} is attached to the role(s) {', '.join(roles)}, which Onramp does not "
            "manage: detach it there, then retry.",
            code="PolicyInUse",
        )
    if detached is None:
        return None
    others = [e["UserName"] for e in entities["PolicyUsers"]] + [e["GroupName"] for e in entities["PolicyGroups"]]
    others = [other for other in others if other not in detached]
    if others:
        return StepFailed(
            f"The policy {name} was attached to {', '.join(others)} after Onramp detached it from everyone: detach it "
            "there (or keep the policy), then retry.",
            code="PolicyInUse",
        )
    return None


def _policy_conflict(ctx: StepContext, params: dict, removed: set[str]) -> bool:
    """DeletePolicy answered DeleteConflict: an attachment Onramp did not remove is the sentence, at once; otherwise
    AWS does not see yet what this step or the run's user removals detached (True: wait it out)."""
    entities = ctx.client("iam").list_entities_for_policy(PolicyArn=params["arn"])
    refused = _policy_in_use(params["name"], entities, removed)
    if refused is not None:
        raise refused
    return bool(removed) or params["arn"] in removed_by_run(ctx, f"{user_removal.part_key('attached_policies')}:")


def remove(ctx: StepContext, params: dict) -> StepResult:
    iam, arn = ctx.client("iam"), params["arn"]
    removed: set[str] = set()  # the users, groups and versions this step detached or deleted
    try:
        entities = absent_is_none(lambda: iam.list_entities_for_policy(PolicyArn=arn))
        if entities is None:
            return gone(params["name"])
        refused = _policy_in_use(params["name"], entities)
        if refused is not None:
            raise refused
        for entity in entities["PolicyUsers"]:
            iam.detach_user_policy(UserName=entity["UserName"], PolicyArn=arn)
            removed.add(entity["UserName"])
        for entity in entities["PolicyGroups"]:
            iam.detach_group_policy(GroupName=entity["GroupName"], PolicyArn=arn)
            removed.add(entity["GroupName"])
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
                removed.add(version["VersionId"])
    except ClientError as exc:
        raise error_translate(exc, doing=f"Removing the policy {params['name']}") from None
    return delete(ctx, params, gone_codes=("NoSuchEntity",), conflict=lambda: _policy_conflict(ctx, params, removed))
