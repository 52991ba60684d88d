"""The strict sandbox itself (sandbox/strict.py): each correction of moto and each strict rule, switched
on and off on its own, against the real server. A rule that stopped working would let production code that
AWS refuses pass every other test, so each is shown refusing what AWS refuses and, switched off, letting it by."""

import json
import secrets
import string
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from sandbox.controller import session_make
from sandbox.strict import (
    Caller,
    Strictness,
    condition_holds,
    password_problem,
    principal_match,
    value_problem,
)
from tests.conftest import CUSTOMER_ACCOUNT, EXTERNAL_ID, PORTAL_KEYS, customer_role_deploy

# Each test here shows one rule: the others that could get in its way (a window after each create, sessions
# expiring) are off unless the test turns its own on, whatever conftest.STRICT (or ONRAMP_SANDBOX_STRICT) says.
pytestmark = pytest.mark.strict(
    consistency_window=0.0, session_max_age=0.0, login_profile_window=0.0, new_key_window=0.0
)

OTHER_ACCOUNT = "444455556666"
PORTAL_ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess"


def _policy(*actions: str, resource: str = "*") -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]}


def _keys() -> tuple[str, str]:
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)), secrets.token_hex(20)


def _user(sandbox, account_id: str, *actions: str, name: str = "tester") -> boto3.Session:
    """An IAM user in the account allowed exactly these actions, as a boto3 session."""
    keys = _keys()
    sandbox.user_make(account_id=account_id, user_name=name, policy_document=_policy(*actions), keys=keys)
    return session_make(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])


def _client(sandbox, session: boto3.Session, service: str, region: str = "us-west-2"):
    return session.client(service, endpoint_url=sandbox.url, region_name=region)


def _error(call) -> dict:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]


def _portal(sandbox) -> boto3.Session:
    """Onramp's own identity, as the `aws` fixture made it (docs/deploying.md's policy)."""
    return session_make(aws_access_key_id=PORTAL_KEYS[0], aws_secret_access_key=PORTAL_KEYS[1])


def _assume(sandbox, session: boto3.Session, role_arn: str = ROLE, **request) -> boto3.Session:
    sts = _client(sandbox, session, "sts")
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="sandbox-test", **request)["Credentials"]
    return session_make(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _onramp_role(sandbox) -> boto3.Session:
    return _assume(sandbox, _portal(sandbox), ExternalId=EXTERNAL_ID, SourceIdentity="alice")


# --- moto's IAM authorization ------------------------------------------------------------------------


@pytest.mark.strict(iam_decision=False)  # moto's gate, which iam_decision replaces
def test_authorization_refuses_an_action_the_callers_policy_lacks_and_lenient_mode_does_not(aws):
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:ListUsers"), "iam")
    iam.list_users()
    error = _error(lambda: iam.create_user(UserName="x"))
    assert error["Code"] == "AccessDenied" and "iam:CreateUser" in error["Message"]
    unknown = boto3.client("iam", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")  # fmt: skip
    assert _error(unknown.list_users)["Code"] == "InvalidClientTokenId"

    aws.configure(authorization=False)
    iam.create_user(UserName="x")
    unknown.list_users()


@pytest.mark.lenient
def test_the_lenient_mode_is_moto_as_it_is(aws):
    anyone = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # fmt: skip
    assert aws.configure() == {**vars(Strictness())}
    creds = anyone.assume_role(RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/Nobody", RoleSessionName="no-trust")
    assert creds["Credentials"]["AccessKeyId"].startswith("ASIA")  # no such role, no external id: moto says yes


# --- moto's mistakes, corrected ----------------------------------------------------------------------


@pytest.mark.strict(iam_decision=False)  # moto's gate, which iam_decision replaces
def test_a_role_made_by_cloudformation_is_evaluated_and_its_inline_policy_reads_as_json(aws):
    """moto stores the template's inline policy as a dict: its own evaluator then fails on every call of the
    role (KeyError 'policy_document', a 500), and GetRolePolicy answers with Python's repr."""
    iam = _client(aws, _onramp_role(aws), "iam")
    assert iam.list_account_aliases()["AccountAliases"] == []
    inline = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    document = inline.get_role_policy(RoleName="OnrampAccess", PolicyName="OnrampOnboarding")["PolicyDocument"]
    assert isinstance(document, dict) and document["Statement"]  # botocore decoded JSON

    aws.configure(cfn_inline_policy=False)
    customer_role_deploy(aws, OTHER_ACCOUNT)
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/OnrampAccess"
    broken = _client(aws, _assume(aws, _portal(aws), role, ExternalId=EXTERNAL_ID), "iam")
    with pytest.raises(ResponseParserError, match="500 Internal Server Error"):  # moto's own page
        broken.list_account_aliases()


@pytest.mark.parametrize(
    ("call", "action"),
    [
        (lambda s3: s3.get_public_access_block(Bucket="bpa-test"), "s3:GetBucketPublicAccessBlock"),
        (
            lambda s3: s3.put_public_access_block(
                Bucket="bpa-test",
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            ),
            "s3:PutBucketPublicAccessBlock",
        ),  # fmt: skip
        (lambda s3: s3.get_bucket_ownership_controls(Bucket="bpa-test"), "s3:GetBucketOwnershipControls"),
        (
            lambda s3: s3.put_bucket_ownership_controls(
                Bucket="bpa-test", OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
            ),
            "s3:PutBucketOwnershipControls",
        ),  # fmt: skip
    ],
)
@pytest.mark.strict(iam_decision=False)  # moto's gate, which iam_decision replaces
def test_s3_sub_resources_are_authorised_as_their_own_actions(aws, call, action):
    """moto's action map misses ?publicAccessBlock and ?ownershipControls: it authorises them as s3:ListBucket
    (GET) and s3:CreateBucket (PUT), so a policy without the real action passed."""
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:CreateBucket", "s3:ListBucket"), "s3", "us-east-1")
    s3.create_bucket(Bucket="bpa-test")
    error = _error(lambda: call(s3))
    assert error["Code"] == "AccessDenied"
    assert f"not authorized to perform: {action} on resource" in error["Message"]  # named as AWS names it

    aws.configure(s3_action_names=False)
    try:
        call(s3)
    except ClientError as exc:  # a Get of a configuration never set: moto's own answer, not a refusal
        assert exc.response["Error"]["Code"] != "AccessDenied"
    allowed = _client(aws, _user(aws, CUSTOMER_ACCOUNT, action, name="allowed"), "s3", "us-east-1")
    aws.configure(s3_action_names=True)
    try:
        call(allowed)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] != "AccessDenied"


def test_a_trust_policy_naming_the_account_root_lets_the_accounts_principals_in(aws):
    """moto compares the principal literally: arn:aws:iam::ACCOUNT:root never matched a user of ACCOUNT. With
    the layer's own trust rules off, this is moto's evaluator alone."""
    aws.configure(trust=False)
    admin = _client(aws, aws.admin(CUSTOMER_ACCOUNT), "iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:root"}}]}  # fmt: skip
    admin.create_role(RoleName="SameAccount", AssumeRolePolicyDocument=json.dumps(trust))
    user = _user(aws, CUSTOMER_ACCOUNT, "sts:AssumeRole")
    role = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/SameAccount"
    _assume(aws, user, role)

    aws.configure(root_principal=False)
    assert _error(lambda: _assume(aws, user, role))["Code"] == "AccessDenied"


# --- Where moto is lenient: the layer's rules -------------------------------------------------------------


def test_assume_role_needs_the_external_id_the_trust_policy_names(aws):
    portal = _portal(aws)
    for request in ({}, {"ExternalId": "wrong"}):
        error = _error(lambda request=request: _assume(aws, portal, **request))
        assert error["Code"] == "AccessDenied" and "sts:AssumeRole" in error["Message"]
    _assume(aws, portal, ExternalId=EXTERNAL_ID)

    aws.configure(trust=False)
    _assume(aws, portal)  # moto never evaluates a trust policy across accounts


def test_a_source_identity_needs_sts_set_source_identity_in_the_trust_and_the_callers_policy(aws):
    admin = _client(aws, aws.admin(CUSTOMER_ACCOUNT), "iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": f"arn:aws:iam::{PORTAL_ACCOUNT}:root"}}]}  # fmt: skip
    admin.create_role(RoleName="NoSourceIdentity", AssumeRolePolicyDocument=json.dumps(trust))
    role = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/NoSourceIdentity"
    caller = _user(aws, PORTAL_ACCOUNT, "sts:AssumeRole", "sts:SetSourceIdentity", name="caller")
    _assume(aws, caller, role)  # no source identity: the trust policy is enough
    error = _error(lambda: _assume(aws, caller, role, SourceIdentity="alice"))
    assert error["Code"] == "AccessDenied" and "sts:SetSourceIdentity" in error["Message"]

    # The template's trust allows it; a caller whose own policy lacks it is refused across accounts.
    assume_only = _user(aws, PORTAL_ACCOUNT, "sts:AssumeRole", name="assume-only")
    _assume(aws, assume_only, ExternalId=EXTERNAL_ID)
    error = _error(lambda: _assume(aws, assume_only, ExternalId=EXTERNAL_ID, SourceIdentity="alice"))
    assert "sts:SetSourceIdentity" in error["Message"] and "no identity-based policy allows" in error["Message"]
    _assume(aws, _portal(aws), ExternalId=EXTERNAL_ID, SourceIdentity="alice")  # docs/deploying.md's policy has both

    aws.configure(trust=False)
    _assume(aws, caller, role, SourceIdentity="alice")


def test_a_role_that_does_not_exist_cannot_be_assumed(aws):
    missing = f"arn:aws:iam::{OTHER_ACCOUNT}:role/OnrampAccess"
    assert _error(lambda: _assume(aws, _portal(aws), missing, ExternalId=EXTERNAL_ID))["Code"] == "AccessDenied"
    aws.configure(trust=False)
    _assume(aws, _portal(aws), missing, ExternalId=EXTERNAL_ID)


def test_creating_with_tags_needs_the_tag_action_and_object_ownership_its_own(aws):
    session = _user(aws, CUSTOMER_ACCOUNT, "iam:CreateUser", "s3:CreateBucket")
    iam, s3 = _client(aws, session, "iam"), _client(aws, session, "s3", "us-east-1")
    iam.create_user(UserName="untagged")
    error = _error(lambda: iam.create_user(UserName="tagged", Tags=[{"Key": "managed-by", "Value": "onramp"}]))
    assert error["Code"] == "AccessDenied" and "iam:TagUser" in error["Message"]
    s3.create_bucket(Bucket="plain-bucket", ACL="private")
    error = _error(lambda: s3.create_bucket(Bucket="owned-bucket", ObjectOwnership="BucketOwnerEnforced"))
    assert error["Code"] == "AccessDenied" and "s3:PutBucketOwnershipControls" in error["Message"]

    aws.configure(dependent_actions=False)
    iam.create_user(UserName="tagged", Tags=[{"Key": "managed-by", "Value": "onramp"}])
    s3.create_bucket(Bucket="owned-bucket", ObjectOwnership="BucketOwnerEnforced")


def test_creating_a_user_in_a_path_is_tagged_on_the_arn_with_the_path(aws):
    # A user's ARN holds its path: a policy allowing TagUser only on user/onramp/* allows creating a tagged user
    # in /onramp/, and refuses one outside it (AWS's service authorization reference: TagUser's resource is
    # arn:${Partition}:iam::${Account}:user/${UserNameWithPath}).
    keys = _keys()
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:TagUser", "Resource": "arn:aws:iam::*:user/onramp/*"},
    ]}  # fmt: skip
    aws.user_make(account_id=CUSTOMER_ACCOUNT, user_name="path-tester", policy_document=policy, keys=keys)
    iam = _client(aws, session_make(aws_access_key_id=keys[0], aws_secret_access_key=keys[1]), "iam")
    tags = [{"Key": "managed-by", "Value": "onramp"}]
    made = iam.create_user(UserName="in-path", Path="/onramp/", Tags=tags)["User"]
    assert made["Arn"].endswith(":user/onramp/in-path")
    error = _error(lambda: iam.create_user(UserName="outside", Tags=tags))
    assert error["Code"] == "AccessDenied" and "iam:TagUser" in error["Message"]


@pytest.mark.strict(consistency_window=30.0)
def test_for_a_while_after_a_create_dependent_calls_do_not_see_the_new_entity(aws):
    session = _user(aws, CUSTOMER_ACCOUNT, "iam:*", "s3:*")
    iam, s3 = _client(aws, session, "iam"), _client(aws, session, "s3", "us-east-1")
    iam.create_user(UserName="new-user")
    iam.create_group(GroupName="NewGroup")
    s3.create_bucket(Bucket="new-bucket")
    error = _error(lambda: iam.add_user_to_group(UserName="new-user", GroupName="NewGroup"))
    assert (error["Code"], error["Message"]) == ("NoSuchEntity", "The user with name new-user cannot be found.")
    assert _error(lambda: iam.create_login_profile(UserName="new-user", Password="Aa1!" * 4))["Code"] == "NoSuchEntity"
    assert _error(lambda: s3.get_bucket_location(Bucket="new-bucket"))["Code"] == "NoSuchBucket"
    reader = _client(aws, aws.admin(CUSTOMER_ACCOUNT), "iam")
    assert reader.get_user(UserName="new-user")  # the harness reads the world as it is
    aws.clock_advance(31)  # the window passes (the sandbox's clock, not a sleep)
    iam.add_user_to_group(UserName="new-user", GroupName="NewGroup")
    s3.get_bucket_location(Bucket="new-bucket")


@pytest.mark.strict(session_max_age=30.0)
def test_an_old_session_answers_expired_token_in_each_protocol(aws):
    role = _onramp_role(aws)
    iam, s3, ecr = _client(aws, role, "iam"), _client(aws, role, "s3"), _client(aws, role, "ecr")
    iam.list_account_aliases()
    aws.clock_advance(31)  # the session is now older than the sandbox allows (its clock, not a sleep)
    assert _error(iam.list_account_aliases)["Code"] == "ExpiredToken"
    assert _error(s3.list_buckets)["Code"] == "ExpiredToken"
    assert _error(ecr.describe_repositories)["Code"] == "ExpiredTokenException"
    _client(aws, _onramp_role(aws), "iam").list_account_aliases()  # a new session is fine
    aws.configure(session_max_age=0)
    iam.list_account_aliases()


def test_a_login_profile_must_meet_the_accounts_password_policy(aws):
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam")
    iam.create_user(UserName="member")
    error = _error(lambda: iam.create_login_profile(UserName="member", Password="password"))
    assert error["Code"] == "PasswordPolicyViolation"  # AWS's default policy: three kinds of character
    iam.update_account_password_policy(MinimumPasswordLength=30, RequireSymbols=True, PasswordReusePrevention=3)
    error = _error(lambda: iam.create_login_profile(UserName="member", Password="Aa1!" * 5))
    assert (error["Code"], error["Message"]) == (
        "PasswordPolicyViolation",
        "Password should have a minimum length of 30",
    )
    iam.create_login_profile(UserName="member", Password="Aa1!" * 8)
    error = _error(lambda: iam.update_login_profile(UserName="member", Password="Aa1!" * 8))
    assert error["Code"] == "PasswordPolicyViolation" and "reusing" in error["Message"]

    aws.configure(password_policy=False)
    iam.update_login_profile(UserName="member", Password="short")


def test_names_aws_refuses_are_refused_by_botocores_own_patterns(aws):
    session = _user(aws, CUSTOMER_ACCOUNT, "iam:*", "ecr:*")
    iam, ecr = _client(aws, session, "iam"), _client(aws, session, "ecr")
    error = _error(lambda: iam.create_user(UserName="josé"))
    assert error["Code"] == "ValidationError" and "at 'userName'" in error["Message"]
    assert _error(lambda: iam.create_account_alias(AccountAlias="acme--corp"))["Code"] == "ValidationError"
    assert _error(lambda: ecr.create_repository(repositoryName="Acme"))["Code"] == "InvalidParameterException"
    iam.create_user(UserName="jose.munoz@example.com")

    aws.configure(names=False)
    iam.create_user(UserName="josé")


def test_an_alias_another_account_has_is_taken(aws):
    _client(aws, aws.admin(OTHER_ACCOUNT), "iam").create_account_alias(AccountAlias="acme-corp")
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:CreateAccountAlias"), "iam")
    error = _error(lambda: iam.create_account_alias(AccountAlias="acme-corp"))
    assert (error["Code"], error["Message"]) == ("EntityAlreadyExists", "The account alias acme-corp already exists.")
    aws.configure(alias_global=False)
    iam.create_account_alias(AccountAlias="acme-corp")


def test_create_login_profile_honours_password_reset_required(aws):
    iam = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "iam:*"), "iam")
    for name, on in (("with-reset", True), ("without-reset", False)):
        aws.configure(reset_required_on_create=on)
        iam.create_user(UserName=name)
        iam.create_login_profile(UserName=name, Password="Aa1!" * 6, PasswordResetRequired=True)
        assert iam.get_login_profile(UserName=name)["LoginProfile"]["PasswordResetRequired"] is on


def test_the_control_api_refuses_an_unknown_switch(aws):
    with pytest.raises(Exception, match="400"):
        aws.configure(no_such_rule=True)


# --- The rules' pieces, as data -----------------------------------------------------------------------


def test_conditions_follow_iams_rules_for_missing_keys_operators_and_values():
    context = {"sts:ExternalId": "abc"}
    assert condition_holds({"StringEquals": {"sts:externalid": ["x", "abc"]}}, context)  # keys ignore case
    assert not condition_holds({"StringEquals": {"sts:SourceIdentity": "alice"}}, context)  # missing: false
    assert condition_holds({"StringNotEquals": {"sts:SourceIdentity": "alice"}}, context)  # missing, negated: true
    assert condition_holds({"StringEqualsIfExists": {"sts:SourceIdentity": "alice"}}, context)
    assert condition_holds({"StringLike": {"sts:ExternalId": "a*"}}, context)
    assert condition_holds({"Null": {"sts:SourceIdentity": "true"}}, context)
    assert not condition_holds({"StringEquals": {"sts:ExternalId": "abc"}, "Null": {"sts:ExternalId": "true"}}, context)


def test_principals_name_a_user_a_role_or_an_account():
    user = Caller(
        "123456789012", "arn:aws:iam::123456789012:user/onramp", "arn:aws:iam::123456789012:user/onramp", None
    )
    assert principal_match({"AWS": "arn:aws:iam::123456789012:root"}, user) == "account"
    assert principal_match({"AWS": ["123456789012"]}, user) == "account"
    assert principal_match({"AWS": "arn:aws:iam::123456789012:user/onramp"}, user) == "specific"
    assert principal_match({"AWS": "arn:aws:iam::999999999999:root"}, user) is None
    assert principal_match({"Service": "ec2.amazonaws.com"}, user) is None


def test_model_patterns_apply_to_the_whole_value_in_ascii():
    user_name = {"min": 1, "max": 64, "pattern": r"[\w+=,.@-]+"}
    assert value_problem("acme-app", user_name) == ""
    assert "pattern" in value_problem("josé", user_name)  # \w is ASCII for AWS
    assert "pattern" in value_problem("a b", user_name)  # the whole value, not a prefix
    assert "length less than or equal to 64" in value_problem("a" * 65, user_name)


def test_awss_default_password_policy_wants_eight_characters_of_three_kinds():
    assert password_problem("Abcdefg1", None) == ""
    assert password_problem("abcdefg1", None)  # two kinds
    assert password_problem("Ab1!", None)  # too short


# --- DeleteConflict: what still hangs on a user, a group or a policy ----------------------------------------------

MEDIA = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}


def _attachments() -> dict:
    """One way each to leave something on a user that AWS's DeleteUser refuses to delete it with: how to make
    it (by the harness, in the account), and how to take it off again (as the tester)."""

    def mfa(iam):
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="tester-mfa")["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(UserName="tester", SerialNumber=serial, AuthenticationCode1="123456",
                              AuthenticationCode2="654321")  # fmt: skip
        return serial

    return {
        "login profile": (
            lambda iam: iam.create_login_profile(UserName="tester", Password="Correct-Horse-9-Battery"),
            lambda iam, _: iam.delete_login_profile(UserName="tester"),
        ),
        "access keys": (
            lambda iam: iam.create_access_key(UserName="tester")["AccessKey"]["AccessKeyId"],
            lambda iam, key: iam.delete_access_key(UserName="tester", AccessKeyId=key),
        ),
        "signing certificates": (
            lambda iam: iam.upload_signing_certificate(UserName="tester", CertificateBody=_certificate())[
                "Certificate"
            ]["CertificateId"],
            lambda iam, cert: iam.delete_signing_certificate(UserName="tester", CertificateId=cert),
        ),
        "SSH public keys": (
            lambda iam: iam.upload_ssh_public_key(UserName="tester", SSHPublicKeyBody=SSH_KEY)["SSHPublicKey"][
                "SSHPublicKeyId"
            ],
            lambda iam, key: iam.delete_ssh_public_key(UserName="tester", SSHPublicKeyId=key),
        ),
        "MFA devices": (mfa, lambda iam, serial: iam.deactivate_mfa_device(UserName="tester", SerialNumber=serial)),
        "policies": (
            lambda iam: iam.put_user_policy(UserName="tester", PolicyName="inline", PolicyDocument=json.dumps(MEDIA)),
            lambda iam, _: iam.delete_user_policy(UserName="tester", PolicyName="inline"),
        ),
        "detach all policies": (
            lambda iam: iam.attach_user_policy(UserName="tester", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"),
            lambda iam, _: iam.detach_user_policy(
                UserName="tester", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"
            ),
        ),
        "groups": (
            lambda iam: (
                iam.create_group(GroupName="Apps"),
                iam.add_user_to_group(GroupName="Apps", UserName="tester"),
            ),
            lambda iam, _: iam.remove_user_from_group(GroupName="Apps", UserName="tester"),
        ),
    }


def _certificate() -> str:
    """A self-signed certificate made for this test (its key thrown away): what UploadSigningCertificate takes."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox-test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


SSH_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC3 sandbox-test"


def _deleter(aws) -> boto3.Session:
    """A caller allowed to delete users, groups and policies: what refuses it below is the conflict, not IAM."""
    return _user(aws, CUSTOMER_ACCOUNT, "iam:DeleteUser", "iam:DeleteGroup", "iam:DeletePolicy", name="deleter")


@pytest.mark.parametrize("what", list(_attachments()))
def test_delete_user_is_refused_while_anything_hangs_on_the_user_as_aws_does(aws, what):
    make, take_off = _attachments()[what]
    harness = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    harness.create_user(UserName="tester")
    made = make(harness)
    iam = _client(aws, _deleter(aws), "iam")
    error = _error(lambda: iam.delete_user(UserName="tester"))
    assert error["Code"] == "DeleteConflict", error
    assert what.split()[0].lower() in error["Message"].lower(), error["Message"]
    take_off(harness, made)
    iam.delete_user(UserName="tester")
    assert _error(lambda: harness.get_user(UserName="tester"))["Code"] == "NoSuchEntity"


def test_delete_group_and_delete_policy_are_refused_while_in_use_and_allowed_once_free(aws):
    harness = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    harness.create_user(UserName="tester")
    harness.create_group(GroupName="Apps")
    harness.add_user_to_group(GroupName="Apps", UserName="tester")
    arn = harness.create_policy(PolicyName="MediaManagement-x", PolicyDocument=json.dumps(MEDIA))["Policy"]["Arn"]
    harness.attach_group_policy(GroupName="Apps", PolicyArn=arn)
    harness.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(MEDIA), SetAsDefault=True)
    iam = _client(aws, _deleter(aws), "iam")

    assert "remove users from group" in _error(lambda: iam.delete_group(GroupName="Apps"))["Message"]
    harness.remove_user_from_group(GroupName="Apps", UserName="tester")
    assert "detach all policies" in _error(lambda: iam.delete_group(GroupName="Apps"))["Message"]
    assert _error(lambda: iam.delete_policy(PolicyArn=arn))["Message"] == "Cannot delete a policy attached to entities."
    harness.detach_group_policy(GroupName="Apps", PolicyArn=arn)
    iam.delete_group(GroupName="Apps")
    error = _error(lambda: iam.delete_policy(PolicyArn=arn))
    assert error["Code"] == "DeleteConflict" and "versions" in error["Message"]
    harness.delete_policy_version(PolicyArn=arn, VersionId="v1")
    iam.delete_policy(PolicyArn=arn)

    aws.configure(delete_conflicts=False)  # moto as it is: a user with access keys is deleted, keys and all
    harness.create_access_key(UserName="tester")
    iam.delete_user(UserName="tester")


# --- Snapshots: what the `aws` fixture restores before each test ------------------------------------------------


def test_a_restored_snapshot_has_the_role_and_onramps_identity_and_nothing_a_test_left(aws):
    harness = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    harness.create_user(UserName="left-behind")
    aws.snapshot_take("test-snapshot")
    harness.create_user(UserName="after-the-snapshot")
    harness.delete_user(UserName="left-behind")

    assert aws.snapshot_restore("test-snapshot", **aws.configure())
    users = {u["UserName"] for u in harness.list_users()["Users"]}
    assert "left-behind" in users and "after-the-snapshot" not in users
    assert harness.get_role(RoleName="OnrampAccess")["Role"]["Arn"] == ROLE
    _client(aws, _onramp_role(aws), "iam").list_account_aliases()  # Onramp's identity assumes the role as before
    harness.delete_user(UserName="left-behind")
    assert aws.snapshot_restore("test-snapshot", **aws.configure())  # fresh objects each time, not the same ones
    assert "left-behind" in {u["UserName"] for u in harness.list_users()["Users"]}
    assert not aws.snapshot_restore("no-such-snapshot")
