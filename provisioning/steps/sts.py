"""Preflight: reach the account, refuse root, refuse the wrong account."""

from provisioning.aws import error_translate
from provisioning.errors import StepFailed
from provisioning.steps.base import StepContext, StepResult


def identity_check(*, sts, account_id: str) -> dict:
    """Who the credentials are, refusing root and any account but `account_id`: {"arn", "account"}.

    Shared by the preflight step and the admin's "Check connection", so both refuse the same things."""
    try:
        identity = sts.get_caller_identity()
    except Exception as exc:
        raise error_translate(exc, doing="Checking who Onramp is in the account") from None
    arn, account = identity["Arn"], identity["Account"]
    if arn.endswith(":root"):
        raise StepFailed(
            "These are the account's root credentials. Onramp never uses root: give it a role "
            "(recommended) or an IAM user's keys instead.",
            code="RootCredentials",
        )
    if account != account_id:
        raise StepFailed(
            f"These credentials reach account {account}, not the customer's account {account_id}. "
            "Check the role ARN or the stored keys.",
            code="WrongAccount",
        )
    return {"arn": arn, "account": account}


def preflight(ctx: StepContext, params: dict) -> StepResult:
    identity = identity_check(sts=ctx.client("sts"), account_id=params["account_id"])
    return StepResult(adopted=False, outputs={**identity, "via": ctx.account.access})
