"""Creating the app user (or adopting it: moved into the path, tagged, put in its group) and reading it back."""

from botocore.exceptions import ClientError

from provisioning import registry
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_translate
from provisioning.kinds.common_aws import (
    user_ensure,
    user_read,
)
from provisioning.kinds.iam_app_user import declaration
from provisioning.kinds.iam_group import declaration as iam_group
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    iam = account.client("iam")
    user = user_read(iam, params["user"])
    if user is None:
        return None
    groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=params["user"])["Groups"]]
    return {**user, "groups": groups}


def execute(ctx: StepContext, params: dict) -> StepResult:
    name, group_name = params["user"], params["group"]
    try:
        seen, created = user_ensure(ctx, name, lambda: read(ctx.account, params), {"groups": []})
        if not seen["tagged"]:
            ctx.send(registry.tag_user(name))
        differences = declaration.KIND.compare(params, {**seen, "tagged": True}, None)
        if differences:
            fresh = created or ctx.created_by_run(iam_group.KEY)
            ctx.send(declaration.add_user_to_group(name, group_name), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the app user {name}") from None
    outputs = {"user": name, "arn": seen["arn"], "group": group_name}
    if created:
        outputs["created"] = True
    return StepResult(adopted=not (created or differences or not seen["tagged"]), outputs=outputs)
