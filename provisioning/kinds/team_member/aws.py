"""Creating a team member's user (policies, console password sealed in the vault) and reading it back."""

import secrets
import string

from botocore.exceptions import ClientError

from provisioning import registry
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_translate
from provisioning.aws.settle import UNMODIFIABLE_CODES, settle
from provisioning.kinds.common_aws import (
    absent_is_none,
    policy_names,
    user_ensure,
    user_read,
)
from provisioning.kinds.team_member import declaration
from provisioning.models import Credential
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    iam = account.client("iam")
    user = user_read(iam, params["email"])
    if user is None:
        return None
    attached = iam.list_attached_user_policies(UserName=params["email"])["AttachedPolicies"]
    console = absent_is_none(lambda: iam.get_login_profile(UserName=params["email"])) is not None
    return {**user, "policies": policy_names(attached), "console": console}


def generate_password(length: int = 24) -> str:
    """A console password that meets any IAM password policy (all four character classes)."""
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*()-_=+[]{}"]
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(ch in cls for ch in password) for cls in classes):
            return password


def _member_policies_apply(ctx: StepContext, params: dict, seen: dict, *, fresh: bool) -> bool:
    """Attach the wanted policies the user lacks and detach those Onramp attached before and no longer
    wants (a role changed); what someone attached by hand stays. True when anything changed."""
    email, wanted = params["email"], declaration.member_policies(params)
    previous = ctx.previous or {}
    before = declaration.member_policies(previous) if previous else []
    changed = False
    for policy in wanted:
        if policy not in seen["policies"]:
            ctx.send(registry.attach_user_policy(email, registry.managed_policy_arn(policy)), settling=fresh)
            changed = True
    for policy in before:
        if policy not in wanted and policy in seen["policies"]:
            ctx.send(declaration.detach_user_policy(email, registry.managed_policy_arn(policy)))
            changed = True
    return changed


def execute(ctx: StepContext, params: dict) -> StepResult:
    email = params["email"]
    outputs = {"user": email, "role": params["role"], "policies": declaration.member_policies(params)}
    try:
        fresh = {"policies": [], "console": False}
        seen, created = user_ensure(ctx, email, lambda: read(ctx.account, params), fresh)
        changed = created or not seen["tagged"]
        if not seen["tagged"]:
            ctx.send(registry.tag_user(email))
        outputs["arn"] = seen["arn"]
        changed = _member_policies_apply(ctx, params, seen, fresh=created) or changed
        cut_off = ctx.step.outputs.get("login_profile_requested")  # an attempt of ours was interrupted
        if params["console"] and (not seen["console"] or cut_off):
            sealed = _console_password(ctx, params, exists=seen["console"], new_user=created)
            changed = changed or sealed is not None
            if sealed is not None:
                outputs["credential"] = str(sealed.pk)
        elif not params["console"] and seen["console"]:
            # Console access ends; a profile an onboarding made moments ago is briefly unmodifiable.
            iam = ctx.client("iam")
            settle(lambda: iam.delete_login_profile(UserName=email), codes=UNMODIFIABLE_CODES)
            changed = True
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the team member {email}") from None
    if created:
        outputs["created"] = True
    return StepResult(adopted=not changed, outputs=outputs)


def _console_password(ctx: StepContext, params: dict, *, exists: bool, new_user: bool) -> Credential | None:
    email = params["email"]
    iam = ctx.client("iam")
    mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.CONSOLE_PASSWORD, user_name=email).first()
    if exists:
        if mine is not None or not ctx.step.outputs.get("login_profile_requested"):
            return None  # the person already has a console password: adopted
        # An attempt of ours made it and was cut off before sealing the password: make it again.
        settle(lambda: iam.delete_login_profile(UserName=email), codes=UNMODIFIABLE_CODES)  # made moments ago
    ctx.remember(login_profile_requested=True)
    password = generate_password()
    ctx.send(declaration.create_login_profile(email), settling=new_user, Password=password)
    credential = ctx.seal(
        secret=password,
        kind=Credential.Kind.CONSOLE_PASSWORD,
        user_name=email,
        sign_in_url=params["sign_in_url"],
    )
    del password
    return credential
