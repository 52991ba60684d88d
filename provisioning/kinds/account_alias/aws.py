"""Setting the account's sign-in alias, reading it back, and deleting it."""

from botocore.exceptions import ClientError

from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_translate
from provisioning.errors import StepFailed
from provisioning.kinds.account_alias import declaration
from provisioning.kinds.common_aws import (
    delete,
    iam_exists,
)
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict:
    aliases = account.client("iam").list_account_aliases()["AccountAliases"]
    return {"alias": aliases[0] if aliases else ""}


def execute(ctx: StepContext, params: dict) -> StepResult:
    alias = params["alias"]
    try:
        differences = declaration.KIND.compare(params, read(ctx.account, params), None)
        if not differences:
            return StepResult(adopted=True, outputs={"alias": alias})
        if not differences[0].repairable:
            raise StepFailed(
                f"The account already has the sign-in alias '{differences[0].actual}'. Onramp never replaces an "
                f"alias: change it in the IAM console if it should be '{alias}', or leave the alias empty in the spec.",
                code="AliasConflict",
            )
        ctx.send(declaration.create_account_alias(alias))
    except ClientError as exc:
        if iam_exists(exc):
            raise StepFailed(
                f"The sign-in alias '{alias}' is taken by another AWS account. Choose another one.",
                code="AliasTaken",
            ) from None
        raise error_translate(exc, doing="Setting the account alias") from None
    return StepResult(adopted=False, outputs={"alias": alias, "created": True})


def remove(ctx: StepContext, params: dict) -> StepResult:
    return delete(ctx, params, gone_codes=("NoSuchEntity",))
