"""AWS's other refusals in the strict sandbox (sandbox/refusals.py, issue 28 section 2): each switch shown refusing
what AWS refuses and, switched off, moto letting it by."""

import json

import boto3
import pytest

from provisioning.aws.accounts import account_connect
from provisioning.aws.errors import OPT_IN_REGIONS
from provisioning.errors import StepFailed
from provisioning.kinds.iam_user_removal.aws import _USER_PARTS
from provisioning.models import StepRun
from provisioning.steps.base import StepContext
from provisioning.steps.tables import tables
from sandbox.refusals import OPT_IN_REGIONS as SANDBOX_OPT_IN_REGIONS
from tests.conftest import CUSTOMER_ACCOUNT, EXAMPLE_KEY_ID_2, finished_run
from tests.test_sandbox import OTHER_ACCOUNT, _client, _error, _user

pytestmark = pytest.mark.strict(
    consistency_window=0.0,
    session_max_age=0.0,
    login_profile_window=0.0,
    new_key_window=0.0,
    tag_window=0.0,
    delete_conflict_window=0.0,
    lifecycle_window=0.0,
)


def test_an_inactive_access_key_cannot_sign_a_request(aws):
    session = _user(aws, CUSTOMER_ACCOUNT, "iam:ListUsers")
    iam = _client(aws, session, "iam", region="us-east-1")
    iam.list_users()
    admin = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    key_id = session.get_credentials().access_key
    admin.update_access_key(UserName="tester", AccessKeyId=key_id, Status="Inactive")
    assert _error(iam.list_users)["Code"] == "InvalidClientTokenId"
    assert _error(_client(aws, session, "s3").list_buckets)["Code"] == "InvalidAccessKeyId"

    aws.configure(inactive_keys=False)
    iam.list_users()


def test_head_bucket_on_another_accounts_bucket_answers_403(aws):
    aws.admin(OTHER_ACCOUNT).client("s3", endpoint_url=aws.url, region_name="us-east-1").create_bucket(
        Bucket="theirs-bucket"
    )
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:*"), "s3", region="us-east-1")
    s3.create_bucket(Bucket="ours-bucket")
    s3.head_bucket(Bucket="ours-bucket")
    assert _error(lambda: s3.head_bucket(Bucket="theirs-bucket"))["Code"] == "403"

    aws.configure(foreign_bucket=False)
    s3.head_bucket(Bucket="theirs-bucket")  # moto: 200 for a bucket the caller cannot reach


MANAGED = [
    "ReadOnlyAccess",
    "AmazonS3FullAccess",
    "AmazonEC2ContainerRegistryPowerUser",
    "IAMUserChangePassword",
    "PowerUserAccess",
    "AdministratorAccess",
    "job-function/Billing",
    "job-function/ViewOnlyAccess",
    "AmazonS3ReadOnlyAccess",
    "AmazonEC2ReadOnlyAccess",
    "IAMReadOnlyAccess",
]


def test_a_user_takes_ten_managed_policies_at_most(aws):
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam", region="us-east-1")
    iam.create_user(UserName="member")
    for name in MANAGED[:10]:
        iam.attach_user_policy(UserName="member", PolicyArn=f"arn:aws:iam::aws:policy/{name}")
    iam.attach_user_policy(UserName="member", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")  # already there
    error = _error(
        lambda: iam.attach_user_policy(UserName="member", PolicyArn=f"arn:aws:iam::aws:policy/{MANAGED[10]}")
    )
    assert error["Code"] == "LimitExceeded" and "PoliciesPerUser: 10" in error["Message"]

    aws.configure(policy_quotas=False)
    iam.attach_user_policy(UserName="member", PolicyArn=f"arn:aws:iam::aws:policy/{MANAGED[10]}")


def _document(statements: int, indent: int | None = None) -> str:
    resources = [f"arn:aws:s3:::bucket-{n:04d}/*" for n in range(statements)]
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}]},
        indent=indent,
    )


def test_a_managed_policy_is_6144_characters_at_most_without_whitespace(aws):
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam", region="us-east-1")
    fits = _document(180, indent=8)  # ~5,900 characters without whitespace, far more with it
    assert len(fits) > 6144 > len("".join(fits.split()))
    iam.create_policy(PolicyName="fits", PolicyDocument=fits)
    error = _error(lambda: iam.create_policy(PolicyName="too-big", PolicyDocument=_document(230)))
    assert error["Code"] == "LimitExceeded" and "PolicySize: 6144" in error["Message"]

    aws.configure(policy_quotas=False)
    iam.create_policy(PolicyName="too-big", PolicyDocument=_document(230))


def test_an_opt_in_region_the_account_has_not_enabled_refuses_its_credentials(aws):
    session = _user(aws, CUSTOMER_ACCOUNT, "ecr:*", "sts:*")
    _client(aws, session, "ecr", region="eu-west-1").describe_repositories()
    ecr = _client(aws, session, "ecr", region="af-south-1")
    assert _error(ecr.describe_repositories)["Code"] == "UnrecognizedClientException"
    assert _error(_client(aws, session, "sts", region="af-south-1").get_caller_identity)["Code"] == (
        "InvalidClientTokenId"
    )

    aws.configure(enabled_regions="af-south-1")
    ecr.describe_repositories()
    aws.configure(enabled_regions="", opt_in_regions=False)
    ecr.describe_repositories()


def test_the_sandbox_and_onramp_name_the_same_opt_in_regions():
    assert SANDBOX_OPT_IN_REGIONS == OPT_IN_REGIONS


def test_list_buckets_answers_a_page_and_a_continuation_token(aws):
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:*"), "s3", region="us-east-1")
    names = [f"page-bucket-{n}" for n in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    aws.configure(list_buckets_page=2)
    first = s3.list_buckets()
    assert [b["Name"] for b in first["Buckets"]] == names[:2] and first["ContinuationToken"]
    pages = list(s3.get_paginator("list_buckets").paginate())
    assert [b["Name"] for page in pages for b in page["Buckets"]] == names and len(pages) == 3
    assert [b["Name"] for b in s3.list_buckets(Prefix="page-bucket-4")["Buckets"]] == ["page-bucket-4"]

    aws.configure(list_buckets_page=0)
    everything = s3.list_buckets()
    assert [b["Name"] for b in everything["Buckets"]] == names and "ContinuationToken" not in everything


TEMPLATE = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Group": {"Type": "AWS::IAM::Group"}}}


def test_cloudformation_reads_a_template_url_with_the_callers_own_access(aws):
    theirs = aws.admin(OTHER_ACCOUNT).client("s3", endpoint_url=aws.url, region_name="us-east-1")
    theirs.create_bucket(Bucket="their-templates")
    theirs.put_object(Bucket="their-templates", Key="role.json", Body=json.dumps(TEMPLATE).encode())
    session = _user(aws, CUSTOMER_ACCOUNT, "cloudformation:*", "iam:*", "s3:*")
    cfn = _client(aws, session, "cloudformation", region="us-east-1")
    url = "https://their-templates.s3.us-east-1.amazonaws.com/role.json"
    error = _error(lambda: cfn.create_stack(StackName="private", TemplateURL=url))
    assert error["Code"] == "ValidationError" and "to which you have access" in error["Message"]
    missing = "https://their-templates.s3.us-east-1.amazonaws.com/nothing.json"
    assert _error(lambda: cfn.create_stack(StackName="missing", TemplateURL=missing))["Code"] == "ValidationError"

    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:root"},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::their-templates/*",
            }
        ],
    }
    theirs.put_bucket_policy(Bucket="their-templates", Policy=json.dumps(grant))
    cfn.create_stack(StackName="shared", TemplateURL=url)

    theirs.delete_bucket_policy(Bucket="their-templates")
    aws.configure(template_url=False)
    cfn.create_stack(StackName="private", TemplateURL=url)  # moto reads any account's object


def test_a_login_profile_cannot_change_for_a_moment_after_it_is_made(aws):
    aws.configure(login_profile_window=30.0)
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam", region="us-east-1")
    iam.create_user(UserName="member")
    iam.create_login_profile(UserName="member", Password="Correct-Horse-9!")
    error = _error(lambda: iam.delete_login_profile(UserName="member"))
    assert error["Code"] == "EntityTemporarilyUnmodifiable"

    aws.clock_advance(31)  # the moment passes (the sandbox's clock)
    iam.delete_login_profile(UserName="member")


def test_a_new_access_key_cannot_sign_for_a_moment(aws):
    aws.configure(new_key_window=30.0)
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam", region="us-east-1")
    iam.list_users()  # the harness's own keys are never new
    iam.create_user(UserName="app")
    key = iam.create_access_key(UserName="app")["AccessKey"]
    admin = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    admin.put_user_policy(
        UserName="app",
        PolicyName="read",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}),
    )  # fmt: skip
    app = boto3.client(
        "iam",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    assert _error(app.list_users)["Code"] == "InvalidClientTokenId"

    aws.clock_advance(31)  # the moment passes (the sandbox's clock): the key signs
    app.list_users()


def test_point_2_removing_a_login_profile_made_moments_ago_waits_out_entity_temporarily_unmodifiable(aws):
    """The removal step's delete (provisioning/kinds/iam_user_removal/aws.py) right after an onboarding's
    CreateLoginProfile:
    AWS answers EntityTemporarilyUnmodifiable for a moment, and the step waits it out (bounded by
    AWS_SETTLE_SECONDS) instead of failing the decommission."""
    aws.configure(login_profile_window=3.0)
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam", region="us-east-1")
    iam.create_user(UserName="member")
    iam.create_login_profile(UserName="member", Password="Correct-Horse-9!")
    _listing, remove = _USER_PARTS["login_profile"]
    remove(iam, "member", "member")
    assert _error(lambda: iam.get_login_profile(UserName="member"))["Code"] == "NoSuchEntity"


def test_a_stack_update_changes_its_roles_trust_policy_inline_policy_and_tags_in_place(aws):
    """AWS::IAM::Role: AssumeRolePolicyDocument, Policies and Tags update with no interruption; moto's update
    kept only the description (cfn_role_update)."""

    def template(principal: str, action: str, version: str) -> str:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
                                                          "Action": "sts:AssumeRole"}]}  # fmt: skip
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
        role = {"RoleName": "Updated", "AssumeRolePolicyDocument": trust, "Tags": [{"Key": "v", "Value": version}],
                "Policies": [{"PolicyName": "p", "PolicyDocument": policy}]}  # fmt: skip
        return json.dumps({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": role}}})

    admin = aws.admin(CUSTOMER_ACCOUNT)
    cfn = admin.client("cloudformation", endpoint_url=aws.url, region_name="us-east-1")
    iam = admin.client("iam", endpoint_url=aws.url, region_name="us-east-1")
    cfn.create_stack(StackName="role", TemplateBody=template("111111111111", "s3:ListAllMyBuckets", "1"),
                     Capabilities=["CAPABILITY_NAMED_IAM"])  # fmt: skip
    cfn.update_stack(StackName="role", TemplateBody=template("222222222222", "iam:GetUser", "2"),
                     Capabilities=["CAPABILITY_NAMED_IAM"])  # fmt: skip
    role = iam.get_role(RoleName="Updated")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"]["AWS"] == "222222222222"
    assert iam.list_role_tags(RoleName="Updated")["Tags"] == [{"Key": "v", "Value": "2"}]
    document = iam.get_role_policy(RoleName="Updated", PolicyName="p")["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Action"] == "iam:GetUser"


def test_moving_a_user_or_group_into_a_path_keeps_its_tags_and_moves_the_group(aws):
    """UpdateUser and UpdateGroup with NewPath (IAM API reference): the user keeps its tags, the group moves;
    moto dropped a moved user's tags and ignored a group's NewPath without a new name (path_update)."""
    iam = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    iam.create_user(UserName="made-before", Tags=[{"Key": "managed-by", "Value": "onramp"}])
    iam.create_group(GroupName="made-before-group")
    iam.update_user(UserName="made-before", NewPath="/onramp/")
    iam.update_group(GroupName="made-before-group", NewPath="/onramp/")
    assert iam.get_user(UserName="made-before")["User"]["Arn"].endswith(":user/onramp/made-before")
    assert iam.list_user_tags(UserName="made-before")["Tags"] == [{"Key": "managed-by", "Value": "onramp"}]
    assert iam.get_group(GroupName="made-before-group")["Group"]["Arn"].endswith(":group/onramp/made-before-group")


# --- Windows after a change: tags, DeleteConflict, an ECR lifecycle policy (all three assumed) ---------------------

ONRAMPS_ONLY = {"StringEquals": {"aws:ResourceTag/managed-by": "onramp"}}


def test_a_tag_conditioned_call_sees_the_old_tags_for_a_moment_after_tag_user(aws):
    """IAM is eventually consistent ("Changes that I make are not always immediately visible"): for tag_window
    seconds after TagUser/UntagUser, IAM's decision still sees the tags from before the first change, and the
    window starts again at each change. UpdateUser here is allowed on users tagged managed-by=onramp only."""
    aws.configure(tag_window=30.0)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:CreateUser", "iam:TagUser", "iam:UntagUser"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:UpdateUser", "Resource": "*", "Condition": ONRAMPS_ONLY}]}  # fmt: skip
    keys = (EXAMPLE_KEY_ID_2, "tag-window-sandbox-only-secret-00000000")  # AWS's documented example id
    aws.user_make(account_id=CUSTOMER_ACCOUNT, user_name="tagger", policy_document=policy, keys=keys)
    iam = boto3.client(
        "iam", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id=keys[0], aws_secret_access_key=keys[1]
    )
    iam.create_user(UserName="member")
    iam.tag_user(UserName="member", Tags=[{"Key": "managed-by", "Value": "onramp"}])
    error = _error(lambda: iam.update_user(UserName="member", NewPath="/onramp/"))
    assert error["Code"] == "AccessDenied" and "iam:UpdateUser" in error["Message"]
    aws.clock_advance(20)
    iam.tag_user(UserName="member", Tags=[{"Key": "team", "Value": "a"}])  # a second change: the window goes on
    aws.clock_advance(20)
    assert _error(lambda: iam.update_user(UserName="member", NewPath="/onramp/"))["Code"] == "AccessDenied"

    aws.clock_advance(11)  # 31 s after the last change: the decision sees the tag
    iam.update_user(UserName="member", NewPath="/onramp/")

    iam.untag_user(UserName="member", TagKeys=["managed-by"])  # and an untagged user is Onramp's for a moment
    iam.update_user(UserName="member", NewPath="/")
    aws.clock_advance(31)
    assert _error(lambda: iam.update_user(UserName="member", NewPath="/onramp/"))["Code"] == "AccessDenied"

    aws.configure(tag_window=0.0)  # off: the new tags at once
    iam.tag_user(UserName="member", Tags=[{"Key": "managed-by", "Value": "onramp"}])
    iam.update_user(UserName="member", NewPath="/onramp/")


def test_delete_conflict_lasts_a_moment_after_the_last_removal_of_what_hung_on_a_user_group_or_policy(aws):
    """DeleteUser right after the last DetachUserPolicy / DeleteAccessKey / RemoveUserFromGroup, DeleteGroup right
    after its last member left, DeletePolicy right after its last detach: DeleteConflict naming what was removed,
    for delete_conflict_window seconds after the last such removal (assumed)."""
    aws.configure(delete_conflict_window=30.0)
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam", region="us-east-1")
    iam.create_user(UserName="member")
    iam.create_group(GroupName="Apps")
    iam.add_user_to_group(GroupName="Apps", UserName="member")
    arn = iam.create_policy(PolicyName="MediaManagement-x", PolicyDocument=json.dumps(MEDIA))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="member", PolicyArn=arn)
    key = iam.create_access_key(UserName="member")["AccessKey"]["AccessKeyId"]

    iam.detach_user_policy(UserName="member", PolicyArn=arn)
    error = _error(lambda: iam.delete_policy(PolicyArn=arn))
    assert error["Code"] == "DeleteConflict" and error["Message"] == "Cannot delete a policy attached to entities."
    iam.remove_user_from_group(GroupName="Apps", UserName="member")
    assert "remove users from group" in _error(lambda: iam.delete_group(GroupName="Apps"))["Message"]
    aws.clock_advance(20)
    iam.delete_access_key(UserName="member", AccessKeyId=key)  # the last removal: the user's window starts again
    aws.clock_advance(20)
    error = _error(lambda: iam.delete_user(UserName="member"))
    assert (
        error["Code"] == "DeleteConflict" and error["Message"] == "Cannot delete entity, must delete access keys first."
    )
    iam.delete_group(GroupName="Apps")  # 40 s after its last member left
    iam.delete_policy(PolicyArn=arn)

    aws.clock_advance(11)
    iam.delete_user(UserName="member")
    assert _error(lambda: iam.get_user(UserName="member"))["Code"] == "NoSuchEntity"

    iam.create_user(UserName="other")
    iam.put_user_policy(UserName="other", PolicyName="inline", PolicyDocument=json.dumps(MEDIA))
    iam.delete_user_policy(UserName="other", PolicyName="inline")
    aws.configure(delete_conflict_window=0.0)  # off: deleted at once, as moto does
    iam.delete_user(UserName="other")


MEDIA = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
LIFECYCLE = {"rules": [{"rulePriority": 1, "description": "Keep only one untagged image",
                        "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                        "action": {"type": "expire"}}]}  # fmt: skip


def test_get_lifecycle_policy_answers_the_previous_policy_for_a_moment_after_put_lifecycle_policy(aws):
    """For lifecycle_window seconds after PutLifecyclePolicy, GetLifecyclePolicy answers what was there before: no
    policy (LifecyclePolicyNotFoundException), or the previous text (assumed: AWS documents no such window). The
    repository's administrator (the harness) sees the world as it is."""
    aws.configure(lifecycle_window=30.0)
    ecr = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "ecr:*"), "ecr")
    ecr.create_repository(repositoryName="acme-app")
    first = json.dumps(LIFECYCLE)
    ecr.put_lifecycle_policy(repositoryName="acme-app", lifecyclePolicyText=first)
    assert _error(lambda: ecr.get_lifecycle_policy(repositoryName="acme-app"))["Code"] == (
        "LifecyclePolicyNotFoundException"
    )
    admin = aws.admin(CUSTOMER_ACCOUNT).client("ecr", endpoint_url=aws.url, region_name="us-west-2")
    assert json.loads(admin.get_lifecycle_policy(repositoryName="acme-app")["lifecyclePolicyText"]) == LIFECYCLE
    aws.clock_advance(31)
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="acme-app")["lifecyclePolicyText"]) == LIFECYCLE

    second = {"rules": [{**LIFECYCLE["rules"][0], "description": "Keep two", "selection": {
        **LIFECYCLE["rules"][0]["selection"], "countNumber": 2}}]}  # fmt: skip
    ecr.put_lifecycle_policy(repositoryName="acme-app", lifecyclePolicyText=json.dumps(second))
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="acme-app")["lifecyclePolicyText"]) == LIFECYCLE
    aws.clock_advance(31)
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="acme-app")["lifecyclePolicyText"]) == second

    aws.configure(lifecycle_window=0.0)
    ecr.put_lifecycle_policy(repositoryName="acme-app", lifecyclePolicyText=first)
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="acme-app")["lifecyclePolicyText"]) == LIFECYCLE


def _removal_ready(aws, alice, user: str = "acme-app"):
    """Onramp's user `user` (in its path, with one access key) and a finished run of alice's to hang removal steps
    on; the customer's role as Onramp reaches it, its IAM client, and the harness's."""
    harness = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    harness.create_user(UserName=user, Path="/onramp/", Tags=[{"Key": "managed-by", "Value": "onramp"}])
    harness.create_access_key(UserName=user)
    run = finished_run(alice)
    account = account_connect(
        customer=run.customer, region="us-west-2", session_name="removal", source_identity="alice"
    )
    return run, account, harness


def _removal_step(run, account, key: str, params: dict):
    """Run one removal step as the engine would, its outcome recorded on the run (what later steps read)."""
    step = StepRun.objects.create(run=run, key=key, title=key, branch="iam", position=run.steps.count(), params=params)
    result = tables().executors[key.split(":", 1)[0]](
        StepContext(run=run, step=step, account=account, params=params), params
    )
    StepRun.objects.filter(pk=step.pk).update(state=StepRun.State.SUCCEEDED, outputs=result.outputs)
    return step


def _delete_users_counted(account) -> list[dict]:
    """Every DeleteUser the role's IAM client sends, seen at the client's boundary (a listener, nothing changed)."""
    sent: list[dict] = []
    account.client("iam").meta.events.register("before-call.iam.DeleteUser", lambda **kw: sent.append(kw["params"]))
    return sent


@pytest.mark.strict(delete_conflict_window=2.0)
def test_point_2_deleting_a_user_right_after_its_last_key_went_waits_out_delete_conflict(aws, alice):
    """DeleteUser right after the run's own DeleteAccessKey answers DeleteConflict for a moment (AWS has not caught
    up): the removal waits it out, bounded by AWS_SETTLE_SECONDS, because the run itself just removed the key."""
    run, account, harness = _removal_ready(aws, alice)
    params = {"name": "acme-app"}
    _removal_step(run, account, "remove.user.access_keys:acme-app", params)
    iam = account.client("iam")
    assert _error(lambda: iam.delete_user(UserName="acme-app"))["Code"] == "DeleteConflict"  # the window, now
    sent = _delete_users_counted(account)

    _removal_step(run, account, "remove.user:acme-app", params)

    assert _error(lambda: harness.get_user(UserName="acme-app"))["Code"] == "NoSuchEntity"
    assert len(sent) >= 2  # refused, then accepted once AWS caught up


@pytest.mark.strict(delete_conflict_window=2.0)
def test_point_2_a_key_the_customer_added_after_the_keys_went_fails_the_removal_at_once_with_its_sentence(aws, alice):
    """A genuine DeleteConflict: a key someone added by hand after Onramp removed the user's keys (Onramp holds no
    such key). No waiting: one DeleteUser, and a sentence naming the key."""
    run, account, harness = _removal_ready(aws, alice)
    params = {"name": "acme-app"}
    _removal_step(run, account, "remove.user.access_keys:acme-app", params)
    added = harness.create_access_key(UserName="acme-app")["AccessKey"]["AccessKeyId"]
    sent = _delete_users_counted(account)

    with pytest.raises(StepFailed) as refused:
        _removal_step(run, account, "remove.user:acme-app", params)

    assert refused.value.code == "UserInUse"
    assert f"access keys ({added})" in str(refused.value) and "Onramp did not remove" in str(refused.value)
    assert len(sent) == 1
    assert harness.get_user(UserName="acme-app")["User"]["UserName"] == "acme-app"


@pytest.mark.strict(delete_conflict_window=2.0)
def test_point_2_the_media_policy_detached_moments_ago_is_deleted_once_aws_catches_up(aws, alice):
    """The policy's removal detaches it from its user and deletes it in one step: DeletePolicy answers DeleteConflict
    for a moment after the detach, and the step waits it out (it detached it itself)."""
    run, account, harness = _removal_ready(aws, alice)
    arn = harness.create_policy(PolicyName="MediaManagement-acme-app-media", PolicyDocument=json.dumps(MEDIA))[
        "Policy"
    ]["Arn"]
    harness.attach_user_policy(UserName="acme-app", PolicyArn=arn)
    sent: list[dict] = []
    account.client("iam").meta.events.register("before-call.iam.DeletePolicy", lambda **kw: sent.append(kw["params"]))

    _removal_step(run, account, "remove.iam.media_policy:MediaManagement-acme-app-media",
                  {"name": "MediaManagement-acme-app-media", "arn": arn})  # fmt: skip

    assert _error(lambda: harness.get_policy(PolicyArn=arn))["Code"] == "NoSuchEntity"
    assert len(sent) >= 2  # refused while AWS still saw the attachment, then deleted
