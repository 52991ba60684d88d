"""IAM's decision in the strict sandbox (sandbox/iam_eval.py, issue 28 section 1): the action's resource from the
Service Authorization Reference, the condition keys really in the request context, AWS's operators and its rule
for a missing key, explicit denies, the role's inline policy as CloudFormation deployed it. Each sandbox test
shows the rule refusing what AWS refuses and, with the rule off (moto's evaluator alone), letting it by."""

import pytest

from provisioning.aws.errors import PORTAL_ACTIONS
from provisioning.kinds import REGISTRY
from provisioning.role import template as role_template
from sandbox import iam_eval
from sandbox.controller import session_make
from sandbox.iam_eval import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, operator_holds, policies_decide
from tests.conftest import CUSTOMER_ACCOUNT, EXTERNAL_ID, NOTHING_ALLOWED
from tests.test_sandbox import ROLE, _assume, _client, _error, _keys, _onramp_role, _portal

pytestmark = pytest.mark.strict(
    consistency_window=0.0, session_max_age=0.0, login_profile_window=0.0, new_key_window=0.0
)

ONRAMP_TAG = [{"Key": "managed-by", "Value": "onramp"}]


def _user_with(aws, document: dict, name: str = "tester"):

    keys = _keys()
    aws.user_make(account_id=CUSTOMER_ACCOUNT, user_name=name, policy_document=document, keys=keys)
    return session_make(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])


def _admin_iam(aws):
    return aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")


def _person(
    aws, name: str, tags: list[dict] | None = None, login: bool = False, group: str = "", path: str = "/"
) -> None:
    """A user in the customer's account, made by the customer's administrator (the harness)."""
    iam = _admin_iam(aws)
    iam.create_user(UserName=name, Path=path, **({"Tags": tags} if tags else {}))
    if login:
        iam.create_login_profile(UserName=name, Password="Correct-Horse-9!")
    if group:
        iam.add_user_to_group(GroupName=group, UserName=name)


# --- Operators and AWS's rule for a key the request does not carry (IAM User Guide, "Condition operators") -----

ABSENT = [
    ("StringEquals", False),
    ("StringNotEquals", True),
    ("StringEqualsIgnoreCase", False),
    ("StringNotEqualsIgnoreCase", True),
    ("StringLike", False),
    ("StringNotLike", True),
    ("ArnEquals", False),
    ("ArnNotEquals", True),
    ("ArnLike", False),
    ("ArnNotLike", True),
    ("Bool", False),
    ("NumericEquals", False),
    ("NumericNotEquals", True),
    ("StringEqualsIfExists", True),
    ("ArnLikeIfExists", True),
    ("StringNotLikeIfExists", True),
    ("ForAllValues:StringEquals", True),
    ("ForAllValues:StringNotLike", True),
    ("ForAnyValue:StringEquals", False),
    ("ForAnyValue:StringLike", False),
]


@pytest.mark.parametrize(("operator", "holds"), ABSENT)
def test_each_operator_over_a_key_absent_from_the_context_follows_awss_rule(operator, holds):
    assert operator_holds(operator, None, ["x"]) is holds


def test_null_tests_presence_and_for_all_values_over_an_empty_key_holds():
    assert operator_holds("Null", None, ["true"]) and not operator_holds("Null", ["x"], ["true"])
    assert operator_holds("Null", ["x"], ["false"]) and not operator_holds("Null", None, ["false"])
    assert operator_holds("ForAllValues:StringEquals", [], ["a"])
    assert not operator_holds("ForAnyValue:StringEquals", [], ["a"])


PRESENT = [
    ("StringEquals", "onramp", ["onramp"], True),
    ("StringEquals", "Onramp", ["onramp"], False),
    ("StringNotEquals", "onramp", ["other", "onramp"], False),
    ("StringNotEquals", "x", ["other", "onramp"], True),
    ("StringEqualsIgnoreCase", "ONRAMP", ["onramp"], True),
    ("StringLike", "onramp-app", ["onramp-*"], True),
    ("StringLike", "app", ["onramp-*"], False),
    ("StringNotLike", "app", ["onramp-*"], True),
    ("ArnEquals", "arn:aws:iam::aws:policy/ReadOnlyAccess", ["arn:aws:iam::aws:policy/ReadOnlyAccess"], True),
    ("ArnLike", "arn:aws:iam::111122223333:policy/MediaManagement-a", ["arn:aws:iam::*:policy/MediaManagement*"], True),
    ("ArnLike", "arn:aws:iam::aws:policy/IAMFullAccess", ["arn:aws:iam::*:policy/MediaManagement*"], False),
    # A wildcard stays within its part of the ARN: it does not reach across the colon into the account.
    ("ArnLike", "arn:aws:iam::111122223333:policy/x", ["arn:aws:iam:*/x"], False),
    ("ArnNotLike", "arn:aws:iam::aws:policy/IAMFullAccess", ["arn:aws:iam::*:policy/MediaManagement*"], True),
    ("Bool", "true", ["true"], True),
    ("Bool", "false", ["true"], False),
    ("NumericLessThan", "3", ["10"], True),
    ("NumericGreaterThan", "3", ["10"], False),
]


@pytest.mark.parametrize(("operator", "actual", "expected", "holds"), PRESENT)
def test_each_operator_allows_and_refuses_on_the_value_in_the_context(operator, actual, expected, holds):
    assert operator_holds(operator, [actual], expected) is holds


def test_set_operators_over_a_multivalued_key():
    assert operator_holds("ForAllValues:StringEquals", ["a", "b"], ["a", "b", "c"])
    assert not operator_holds("ForAllValues:StringEquals", ["a", "z"], ["a", "b"])
    assert operator_holds("ForAnyValue:StringEquals", ["a", "z"], ["a"])


def test_an_operator_the_sandbox_does_not_evaluate_is_refused_not_guessed():
    with pytest.raises(iam_eval.ConditionNotEvaluated):
        operator_holds("DateLessThan", ["2026-01-01T00:00:00Z"], ["2027-01-01T00:00:00Z"])


def test_an_explicit_deny_wins_and_no_allow_is_an_implicit_deny():
    allow = {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "iam:DeleteUser", "Resource": "*"}
    documents = [{"Statement": [allow]}, {"Statement": [deny]}]
    assert policies_decide(documents, action="iam:DeleteUser", resource="arn:x", context={}) == EXPLICIT_DENY
    assert policies_decide(documents, action="iam:GetUser", resource="arn:x", context={}) == ALLOW
    assert policies_decide(documents, action="s3:ListBucket", resource="arn:x", context={}) == IMPLICIT_DENY
    not_action = [{"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}]
    assert policies_decide(not_action, action="iam:GetUser", resource="arn:x", context={}) == IMPLICIT_DENY


# --- Completeness: every operation Onramp may call has a resource rule --------------------------------------


def rule_problems(actions: list[str]) -> list[str]:
    problems = []
    for action in actions:
        if action.startswith("s3:"):
            if action not in iam_eval.S3_ACTIONS:
                problems.append(f"{action}: no S3 request maps to it")
        elif action != "sts:AssumeRole" and iam_eval.missing_placeholders(action):
            problems.append(f"{action}: {iam_eval.missing_placeholders(action)}")
    return problems


def test_every_declared_operation_and_the_portals_own_has_a_resource_rule():
    actions = sorted({action for op in REGISTRY.operations() for action in op.actions} | set(PORTAL_ACTIONS))
    assert rule_problems(actions) == []


def test_the_completeness_check_names_an_action_without_a_rule():
    assert rule_problems(["iam:NoSuchAction", "s3:GetObjectRetention", "iam:CreateUser"]) == [
        "iam:NoSuchAction: ['<not in the reference>']",
        "s3:GetObjectRetention: no S3 request maps to it",
    ]


# --- In the sandbox ----------------------------------------------------------------------------------------


def _v2_policy() -> dict:
    """Role template version 2's policy: today's, with iam:RemoveUserFromGroup under the tag condition again."""
    document = role_template.access_policy_document()
    for statement in document["Statement"]:
        if statement["Action"].count("iam:RemoveUserFromGroup"):
            statement["Action"].remove("iam:RemoveUserFromGroup")
    tagged = next(s for s in document["Statement"] if s["Sid"] == "OnrampIAMOnlyWhatOnrampTagged")
    tagged["Action"] = sorted([*tagged["Action"], "iam:RemoveUserFromGroup"])
    return document


def test_point_1_the_v2_remove_user_from_group_statement_is_refused(aws):
    """IAM groups take no tags: the group, RemoveUserFromGroup's only resource, brings no aws:ResourceTag into
    the context, so AWS refuses the v2 statement even for a user Onramp tagged. moto let it by."""
    _admin_iam(aws).create_group(GroupName="developers")
    _person(aws, "bob", tags=ONRAMP_TAG, group="developers")
    iam = _client(aws, _user_with(aws, _v2_policy()), "iam", region="us-east-1")
    error = _error(lambda: iam.remove_user_from_group(GroupName="developers", UserName="bob"))
    assert error["Code"] == "AccessDenied"
    assert "iam:RemoveUserFromGroup on resource: arn:aws:iam::111122223333:group/developers" in error["Message"]

    aws.configure(iam_decision=False)
    iam.remove_user_from_group(GroupName="developers", UserName="bob")  # moto's evaluator: any condition is met


def test_point_2_the_deployed_roles_user_writes_reach_only_users_in_onramps_path(aws):
    """Resource arn:aws:iam::*:user/onramp/*, in the role's inline policy as CloudFormation deployed it: allowed
    on a user in the path; refused on one outside it, even one tagged managed-by=onramp (anyone can tag)."""
    _person(aws, "ours", tags=ONRAMP_TAG, login=True, path="/onramp/")
    _person(aws, "tagged-outside", tags=ONRAMP_TAG, login=True)
    _person(aws, "untagged", login=True)
    iam = _client(aws, _onramp_role(aws), "iam", region="us-east-1")
    iam.delete_login_profile(UserName="ours")
    for name in ("tagged-outside", "untagged"):
        for call in (
            lambda name=name: iam.delete_login_profile(UserName=name),
            lambda name=name: iam.create_access_key(UserName=name),
            lambda name=name: iam.tag_user(UserName=name, Tags=ONRAMP_TAG),
        ):
            error = _error(call)
            assert error["Code"] == "AccessDenied"
            assert f"on resource: arn:aws:iam::111122223333:user/{name}" in error["Message"]

    # moto's evaluator checks IAM calls against "*": it refuses even the user in the path.
    aws.configure(iam_decision=False)
    assert _error(lambda: iam.create_access_key(UserName="ours"))["Code"] == "AccessDenied"


def test_point_2_the_deployed_role_moves_only_a_user_tagged_as_onramps_into_its_path(aws):
    """UpdateUser NewPath, conditioned on the tag: a user Onramp made before the path moves once; a customer's
    untagged user is refused, so a spec naming it cannot pull it into Onramp's reach."""
    _person(aws, "made-before", tags=ONRAMP_TAG)
    _person(aws, "ops-admin")
    iam = _client(aws, _onramp_role(aws), "iam", region="us-east-1")
    iam.update_user(UserName="made-before", NewPath="/onramp/")
    assert iam.get_user(UserName="made-before")["User"]["Arn"].endswith(":user/onramp/made-before")
    error = _error(lambda: iam.update_user(UserName="ops-admin", NewPath="/onramp/"))
    assert error["Code"] == "AccessDenied" and "iam:UpdateUser" in error["Message"]


def test_point_2_the_tag_condition_refuses_a_user_tagged_managed_by_another_value(aws):
    """aws:ResourceTag/managed-by present with another value: StringEquals refuses it (the key allowed and absent are
    the test above). moto's evaluator, which checks IAM calls against "*" and meets any condition, let it move."""
    _person(aws, "theirs", tags=[{"Key": "managed-by", "Value": "terraform"}])
    iam = _client(aws, _onramp_role(aws), "iam", region="us-east-1")
    error = _error(lambda: iam.update_user(UserName="theirs", NewPath="/onramp/"))
    assert error["Code"] == "AccessDenied" and "iam:UpdateUser" in error["Message"]

    aws.configure(iam_decision=False)
    iam.update_user(UserName="theirs", NewPath="/onramp/")


def test_point_2_the_deployed_role_cannot_join_its_users_to_a_customers_group(aws):
    """AddUserToGroup's resource is the group: a customer's group outside /onramp/ is refused, Onramp's own is not."""
    admin = _admin_iam(aws)
    admin.create_group(GroupName="Admins")
    admin.create_group(GroupName="Apps", Path="/onramp/")
    _person(aws, "ours", tags=ONRAMP_TAG, path="/onramp/")
    iam = _client(aws, _onramp_role(aws), "iam", region="us-east-1")
    iam.add_user_to_group(GroupName="Apps", UserName="ours")
    error = _error(lambda: iam.add_user_to_group(GroupName="Admins", UserName="ours"))
    assert error["Code"] == "AccessDenied" and "group/Admins" in error["Message"]


def test_point_1_the_roles_policy_arn_condition_allows_listed_policies_only(aws):
    """ArnLike iam:PolicyARN: a listed AWS managed policy is attached, another is refused."""
    _person(aws, "ours", tags=ONRAMP_TAG, path="/onramp/")
    iam = _client(aws, _onramp_role(aws), "iam", region="us-east-1")
    iam.attach_user_policy(UserName="ours", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    error = _error(lambda: iam.attach_user_policy(UserName="ours", PolicyArn="arn:aws:iam::aws:policy/IAMFullAccess"))
    assert error["Code"] == "AccessDenied" and "iam:AttachUserPolicy" in error["Message"]


def test_point_1_a_policy_arn_condition_on_an_action_that_carries_no_policy_arn_refuses(aws):
    """iam:PolicyARN is in the context of Attach/Detach calls only: conditioning DeleteUser on it refuses."""
    _person(aws, "ours", tags=ONRAMP_TAG)
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:DeleteUser",
                "Resource": "*",
                "Condition": {"ArnLike": {"iam:PolicyARN": "arn:aws:iam::*:policy/*"}},
            }
        ],
    }
    iam = _client(aws, _user_with(aws, document), "iam", region="us-east-1")
    assert _error(lambda: iam.delete_user(UserName="ours"))["Code"] == "AccessDenied"

    aws.configure(iam_decision=False)
    iam.delete_user(UserName="ours")


def test_point_1_the_trust_policys_external_id_allows_refuses_and_is_absent(aws):
    """StringEquals sts:ExternalId in the trust policy: the customer's id assumes the role; another id, or none
    (the key absent from the context), is refused."""
    _assume(aws, _portal(aws), ROLE, ExternalId=EXTERNAL_ID)
    assert _error(lambda: _assume(aws, _portal(aws), ROLE, ExternalId="someone-elses-id"))["Code"] == "AccessDenied"
    assert _error(lambda: _assume(aws, _portal(aws), ROLE))["Code"] == "AccessDenied"


def test_point_1_an_iam_call_is_checked_against_its_resources_arn_not_star(aws):
    """moto checks IAM calls against "*" unless they name a role: a policy naming the user a call acts on never
    matched, and AWS allows it. With the rule on, the user's ARN is the resource: alice yes, bob no."""
    _person(aws, "alice", login=True)
    _person(aws, "bob", login=True)
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:DeleteLoginProfile",
                "Resource": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/alice",
            }
        ],
    }
    iam = _client(aws, _user_with(aws, document), "iam", region="us-east-1")
    aws.configure(iam_decision=False)
    assert _error(lambda: iam.delete_login_profile(UserName="alice"))["Code"] == "AccessDenied"  # moto: "*"

    aws.configure(iam_decision=True)
    iam.delete_login_profile(UserName="alice")
    error = _error(lambda: iam.delete_login_profile(UserName="bob"))
    assert error["Code"] == "AccessDenied" and "user/bob because no identity-based policy" in error["Message"]


def test_point_1_an_explicit_deny_refuses_over_an_allow(aws):
    _person(aws, "alice")
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:DeleteUser", "Resource": "*"},
        ],
    }
    iam = _client(aws, _user_with(aws, document), "iam", region="us-east-1")
    iam.get_user(UserName="alice")
    error = _error(lambda: iam.delete_user(UserName="alice"))
    assert error["Code"] == "AccessDenied" and "with an explicit deny in an identity-based policy" in error["Message"]


def test_point_1_get_caller_identity_needs_no_permission_even_under_a_deny(aws):
    sts = _client(aws, _user_with(aws, NOTHING_ALLOWED), "sts")
    assert sts.get_caller_identity()["Account"] == CUSTOMER_ACCOUNT
