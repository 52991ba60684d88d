"""Preflight: reach the account, refuse root, refuse the wrong account."""

from provisioning.aws import error_translate
from provisioning.spec import Spec
from provisioning.steps.base import StepContext, StepFailed, StepResult


def preflight(ctx: StepContext, spec: Spec) -> StepResult:
    try:
        identity = ctx.client("sts").get_caller_identity()
    except Exception as exc:
        raise error_translate(exc, doing="Checking who Onramp is in the account") from None
    arn, account = identity["Arn"], identity["Account"]
    if arn.endswith(":root"):
        raise StepFailed(
            "These are the account's root credentials. Onramp never uses root: give it a role "
            "(recommended) or an IAM user's keys instead.",
            code="RootCredentials",
        )
    if account != spec.account_id:
        raise StepFailed(
            f"These credentials reach account {account}, not the customer's account {spec.account_id}. "
            "Check the role ARN or the stored keys.",
            code="WrongAccount",
        )
    return StepResult(adopted=False, outputs={"arn": arn, "account": account, "via": ctx.account.how})
