"""A team member's IAM user: their role's policies, console access or not; one instance per member."""

from provisioning import documents
from provisioning.kinds.iam_user_removal import declaration as user_removal
from provisioning.registry import (
    ATTACH_CONDITION,
    CHANGE_PASSWORD_POLICY,
    GENERATED,
    ONRAMPS_ONLY,
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    attach_user_policy,
    compare_tag,
    create_user,
    managed_policy_arn,
    ops,
    shown,
    user_ops,
)
from provisioning.spec import Spec, TeamMember
from provisioning.vocabulary import MemberRole

KEY = "team.member"
ORDER = 60


BILLING_REMINDER = (
    "IAM access to the Billing console must be switched on once by the account owner "
    "(root user → Account → IAM user and role access to Billing information). No API can do it."
)


def detach_user_policy(user: str, policy_arn: str) -> ApiCall:
    return ApiCall("iam", "DetachUserPolicy", {"UserName": user, "PolicyArn": policy_arn})


def create_login_profile(user: str) -> ApiCall:
    return ApiCall(
        "iam", "CreateLoginProfile", {"UserName": user, "Password": GENERATED, "PasswordResetRequired": True}
    )


def member_params(member: TeamMember, spec: Spec) -> dict:
    return {
        "email": member.email,
        "role": member.role,
        "policy": member.policy,
        "console": member.console,
        "sign_in_url": documents.sign_in_url(account_id=spec.account_id, alias=spec.account_alias),
    }


def member_policies(params: dict) -> list[str]:
    """The AWS managed policies a member's user gets: their role's, and the right to change the password
    AWS makes them change at first sign-in (a member's own policy may not include it)."""
    policies = list(TeamMember(email=params["email"], role=params["role"], policy=params["policy"]).policies)
    if params["console"] and CHANGE_PASSWORD_POLICY not in policies:
        policies.append(CHANGE_PASSWORD_POLICY)
    return policies


def _member_calls(params: dict) -> list[ApiCall]:
    user = params["email"]
    calls = [create_user(user)]
    calls += [attach_user_policy(user, managed_policy_arn(policy)) for policy in member_policies(params)]
    if params["console"]:
        calls.append(create_login_profile(user))
    return calls


def _member_title(params: dict) -> str:
    member = TeamMember(email=params["email"], role=params["role"], policy=params["policy"])
    role = "tech lead" if member.is_tech_lead else "member"
    # The policies the step attaches, IAMUserChangePassword included: the CLI and the diff show it too.
    attached = member_policies(params)
    policies = f" ({', '.join(attached)})" if attached else ""
    console = "console access" if params["console"] else "no console access"
    return f"Team {role} {params['email']}{policies}, {console}"


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    wanted = member_policies(params)
    before = member_policies(previous) if previous else []
    # Onramp takes back only what it attached before and no longer wants; what was attached by hand stays.
    stale = [name for name in before if name not in wanted and name in seen["policies"]]
    found = compare_tag(seen)
    if stale or any(name not in seen["policies"] for name in wanted):
        found.append(Difference("policies", shown(wanted), shown(seen["policies"])))
    if seen["console"] != params["console"]:
        found.append(Difference("console access", shown(params["console"]), shown(seen["console"])))
    return found


KIND = StepKind(
    key=KEY,
    branch="team",
    title=_member_title,
    instances=lambda spec: [member_params(member, spec) for member in spec.team],
    instance_id=lambda p: p["email"],
    calls=_member_calls,
    operations=(
        *user_ops("CreateUser", also=("iam:TagUser",)),
        *user_ops("TagUser", "CreateLoginProfile", "DetachUserPolicy", "DeleteLoginProfile"),
        *ops("iam", "UpdateUser", condition=ONRAMPS_ONLY),
        *ops("iam", "GetUser", "ListAttachedUserPolicies", "GetLoginProfile"),
        *user_ops("AttachUserPolicy", condition=ATTACH_CONDITION),
    ),
    resource=ResourceRecord("IAM user (team)", "email", "user"),
    publishes=(Publish("team", "arn", "Team user", many=True),),
    reminders=lambda p: [BILLING_REMINDER] if p["role"] == MemberRole.TECH_LEAD else [],
    compare=compare,
    user=True,
    removal=user_removal.USER_REMOVAL,
    absent=("NoSuchEntity",),
    exists=("EntityAlreadyExists",),
    noun="user",
)
KINDS = (KIND,)
