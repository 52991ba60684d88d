"""provisioning.aws against what AWS enforces: the source identity's characters, sessions that renew
themselves, Onramp's own identity from the standard credential chain, and the sentences for AWS's refusals."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from provisioning.audit.chain import CallLog
from provisioning.aws.accounts import (
    RENEW_BEFORE_SECONDS,
    RoleSession,
    account_connect,
    account_for_run,
    portal_account,
)
from provisioning.aws.calls import current_call_log
from provisioning.aws.errors import error_translate
from provisioning.engine.runs import run_retry
from provisioning.models import AuditEvent, Run
from provisioning.registry import source_identity_for
from provisioning.spec import model_allows
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, PORTAL_USER, customer_make, start_run, wait_for_run


def _valid_source_identity(value: str) -> bool:
    """What STS accepts, from botocore's model (ASCII, the whole value, 2-64)."""
    return model_allows(value, service="sts", operation="AssumeRole", member="SourceIdentity")


# --- SourceIdentity (issue 13, point 5) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("alice", "alice"),
        ("josé.muñoz", "jose.munoz"),  # accents dropped, the rest kept
        ("Zoë_O'Brien", "Zoe_O-Brien"),  # a character STS refuses becomes "-"
        ("ﬁona", "fiona"),  # compatibility forms (a ligature) become their letters
    ],
)
def test_a_source_identity_is_the_username_in_the_characters_sts_allows(username, expected):
    assert source_identity_for(username) == expected
    assert _valid_source_identity(expected)


def test_a_name_without_an_ascii_form_gets_a_stable_distinct_fallback():
    ivan, olga = source_identity_for("Иван"), source_identity_for("Ольга")
    assert ivan.startswith("user-") and olga.startswith("user-") and ivan != olga
    assert source_identity_for("Иван") == ivan  # deterministic: the same person, the same CloudTrail name
    assert source_identity_for("李.wang").endswith(source_identity_for("李.wang")[-12:])
    assert source_identity_for("李.wang") != source_identity_for("王.wang")  # not both ".wang"
    assert source_identity_for("a") != "a" and _valid_source_identity(source_identity_for("a"))  # 2 at least
    assert len(source_identity_for("x" * 150)) == 64


@given(st.text(min_size=1, max_size=150))
def test_every_username_gives_a_source_identity_sts_accepts(username):
    value = source_identity_for(username)
    assert _valid_source_identity(value), value
    assert value == source_identity_for(username)


def test_a_run_by_a_person_with_an_accented_name_passes_preflight(worker, sandbox, db):
    from django.contrib.auth.models import Group, User

    from tests.conftest import PASSWORD, _groups_ensure

    _groups_ensure()
    jose = User.objects.create_user(username="josé.muñoz", password=PASSWORD)
    jose.groups.add(Group.objects.get(name="Tech leads"))
    run = wait_for_run(start_run(jose, team=[]))
    assert run.steps.get(key="preflight").state == "succeeded", run.steps.get(key="preflight").error_message
    assume = AuditEvent.objects.get(run=run, action="aws.sts.AssumeRole")
    assert assume.details["params"]["SourceIdentity"] == "jose.munoz"


# --- Sessions that renew themselves (issue 13, point 3) -----------------------------------------------------


def _fake_assume(expiries: list[timedelta]):
    """An `assume` for RoleSession that hands out sessions expiring after each of `expiries` in turn."""
    made = []

    def assume() -> dict:
        n = len(made)
        made.append(n)
        return {
            "access_key": f"ASIAFAKE{n:012d}",
            "secret_key": "s" * 40,
            "token": f"token-{n}",
            "expiry_time": (datetime.now(UTC) + expiries[min(n, len(expiries) - 1)]).isoformat(),
        }

    return assume, made


def test_a_session_with_less_than_fifteen_minutes_left_is_renewed_before_its_next_call():
    assume, made = _fake_assume([timedelta(seconds=RENEW_BEFORE_SECONDS - 60), timedelta(hours=1)])
    session = RoleSession(assume=assume)
    assert made == []  # nothing is sent before the first use (clients are made from it meanwhile)
    assert session.get_frozen_credentials().token == "token-0"  # the first use assumes the role: 14 minutes left
    assert session.get_frozen_credentials().token == "token-1"  # renewed before the next use
    assert session.get_frozen_credentials().token == "token-1"  # an hour left: kept
    assert made == [0, 1]


def test_a_session_aws_says_expired_is_renewed_even_with_time_left():
    assume, made = _fake_assume([timedelta(hours=1)])
    session = RoleSession(assume=assume)
    assert session.get_frozen_credentials().token == "token-0"
    session.expire()
    assert session.get_frozen_credentials().token == "token-1"
    assert session.get_frozen_credentials().token == "token-1"
    assert made == [0, 1]


CALLS = (("iam", "list_account_aliases"), ("s3", "list_buckets"), ("ecr", "describe_repositories"))


@pytest.mark.strict(session_max_age=30.0)
def test_an_expired_token_answer_renews_the_session_and_the_call_goes_through(aws, dana):
    customer = customer_make()
    log = CallLog(actor_label="dana", actor_id=dana.pk, customer_id=customer.pk)
    token = current_call_log.set(log)
    try:
        account = account_connect(
            customer=customer, region="us-west-2", source_identity="dana", session_name="onramp-check-test"
        )
        for service, call in (
            ("iam", "list_account_aliases"),
            ("s3", "list_buckets"),
            ("ecr", "describe_repositories"),
        ):
            getattr(account.client(service), call)()
        aws.clock_advance(31)  # every session of this test is now older than the sandbox allows
        for service, call in (
            ("iam", "list_account_aliases"),
            ("s3", "list_buckets"),
            ("ecr", "describe_repositories"),
        ):
            getattr(account.client(service), call)()  # ExpiredToken, renewed, retried: the caller never sees it
    finally:
        current_call_log.reset(token)
    actions = [event.action for event in log.events]
    assert actions.count("aws.sts.AssumeRole") >= 2
    assert all(event.outcome == "ok" for event in log.events), [(e.action, e.error_code) for e in log.events]


@pytest.mark.strict(session_max_age=30.0)
def test_a_retry_after_the_first_session_expired_completes_without_the_expiry_showing(worker, alice, sandbox):
    customer_iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    customer_iam.create_account_alias(AccountAlias="somebody-else")
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.FAILED and run.steps.get(key="account.alias").error_code == "AliasConflict"
    customer_iam.delete_account_alias(AccountAlias="somebody-else")
    # The run's account and session, as a worker process that took one of its steps still holds them (the one
    # that finished the run forgot its own); by the retry, the sandbox calls that session expired.
    account_for_run(run)
    sandbox.clock_advance(31)  # the sandbox's clock, not a sleep: the sessions made so far are now too old
    run = wait_for_run(run_retry(run=run, user=alice))
    assert run.status == Run.Status.SUCCEEDED, dict(run.steps.values_list("key", "error_message"))
    shown = " ".join(run.steps.values_list("error_message", flat=True))
    assert "expired" not in shown.lower()
    assert AuditEvent.objects.filter(run=run, action="aws.sts.AssumeRole").count() >= 2  # renewed


# --- Onramp's own identity (the standard credential chain) ----------------------------------------------------


def test_onramps_own_identity_on_the_sandbox_is_the_one_in_the_credential_chain(aws):
    identity = portal_account("us-east-1").client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::123456789012:user/{PORTAL_USER}"


def test_with_nothing_in_the_chain_onramp_invents_no_keys_even_on_the_sandbox():
    """Onramp's identity is the credential chain's, on the sandbox as on AWS: no sandbox key is built into
    provisioning/ (`make run` puts the sandbox's keys in its environment)."""
    script = (
        "import django; django.setup()\n"
        "from provisioning.aws.accounts import portal_account\n"
        "from botocore.exceptions import NoCredentialsError\n"
        "try:\n"
        "    print(portal_account('us-east-1').client('sts').get_caller_identity()['Arn'])\n"
        "except NoCredentialsError:\n"
        "    print('no credentials')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
    )
    root = Path(__file__).resolve().parent.parent
    bare = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert bare.stdout.strip().splitlines()[-1:] == ["no credentials"], bare.stdout + bare.stderr[-2000:]
    sources = list((root / "provisioning" / "aws").glob("*.py"))
    assert sources and not any("SANDBOX_KEY" in path.read_text() for path in sources)


# --- Sentences for AWS's refusals (issue 13, points 10 and 11) --------------------------------------------------


def _client_error(code: str, message: str, operation: str = "CreateUser", region: str = "us-west-2") -> ClientError:
    """The exception botocore raises for an AWS error answer (with the region Onramp's audit hook adds)."""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 403, "OnrampRegion": region},
    }
    return ClientError(response, operation)


def test_an_access_denied_names_the_action_and_the_customers_role_that_lacks_it():
    message = (
        "User: arn:aws:sts::111122223333:assumed-role/OnrampAccess/onramp-run-1 is not authorized to perform: "
        "iam:CreatePolicy on resource: arn:aws:iam::111122223333:policy/MediaManagement-acme because no "
        "identity-based policy allows the iam:CreatePolicy action"
    )
    text = str(error_translate(_client_error("AccessDenied", message)))
    assert "the customer's role lacks iam:CreatePolicy" in text and "CloudFormation template" in text
    keys = message.replace("sts::111122223333:assumed-role/OnrampAccess/onramp-run-1", "iam::111122223333:user/ops")
    assert "the IAM user whose keys Onramp uses lacks iam:CreatePolicy" in str(
        error_translate(_client_error("AccessDeniedException", keys))
    )


def test_an_access_denied_on_assume_role_points_at_onramps_own_policy_and_the_trust_policy():
    message = (
        "User: arn:aws:iam::123456789012:user/onramp-portal is not authorized to perform: sts:SetSourceIdentity "
        "on resource: arn:aws:iam::111122223333:role/OnrampAccess"
    )
    text = str(error_translate(_client_error("AccessDenied", message, operation="AssumeRole")))
    assert "AWS refused sts:SetSourceIdentity" in text
    assert "Onramp's own identity lacks it" in text and "trust policy" in text


def test_an_unknown_key_in_an_opt_in_region_says_the_region_must_be_enabled():
    invalid = "The security token included in the request is invalid."
    opt_in = str(error_translate(_client_error("InvalidClientTokenId", invalid, region="af-south-1")))
    assert "af-south-1, an opt-in region" in opt_in and "Enable it" in opt_in
    plain = str(error_translate(_client_error("InvalidClientTokenId", invalid, region="eu-west-1")))
    assert "Replace it in the admin" in plain
    own = str(error_translate(_client_error("InvalidClientTokenId", invalid, operation="AssumeRole")))
    assert "Onramp's own AWS identity is not valid" in own


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("ExpiredToken", "even after Onramp renewed it"),
        ("ExpiredTokenException", "even after Onramp renewed it"),
        ("NoSuchBucket", "The bucket is not in the customer's account"),
        ("PasswordPolicyViolation", "The account's password policy refused"),
    ],
)
def test_these_refusals_have_a_sentence(code, words):
    error = error_translate(_client_error(code, "AWS's own words"))
    assert words in str(error) and "(AWS said: AWS's own words)" in str(error)
    assert not error.retryable


def test_a_run_whose_portal_identity_lacks_set_source_identity_fails_at_preflight_saying_so(worker, alice, sandbox):
    narrow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
    portal_iam = sandbox.admin("123456789012").client("iam", endpoint_url=sandbox.url, region_name="us-east-1")
    portal_iam.put_user_policy(UserName=PORTAL_USER, PolicyName="access", PolicyDocument=json.dumps(narrow))
    run = wait_for_run(start_run(alice, team=[]))
    preflight = run.steps.get(key="preflight")
    assert preflight.state == "failed" and preflight.error_code == "AccessDenied"
    assert "AWS refused sts:SetSourceIdentity on the customer's role" in preflight.error_message
    assert preflight.attempts == 1  # not retried


def _denied_to_role(action: str, resource: str) -> str:
    message = (
        "User: arn:aws:sts::111122223333:assumed-role/OnrampAccess/onramp-run-1 is not authorized to perform: "
        f"{action} on resource: {resource} because no identity-based policy allows the {action} action"
    )
    return str(error_translate(_client_error("AccessDenied", message)))


def test_point_4_a_user_outside_onramps_path_is_named_with_the_resource_not_called_a_missing_action():
    text = _denied_to_role("iam:DeleteUser", "arn:aws:iam::111122223333:user/bob")
    assert "a condition of the customer's role refused iam:DeleteUser on arn:aws:iam::111122223333:user/bob" in text
    assert "only when it is arn:aws:iam::*:user/onramp/*" in text and "outside it" in text
    assert "lacks" not in text


def test_point_2_moving_a_user_not_tagged_as_onramps_names_the_tag_condition():
    text = _denied_to_role("iam:UpdateUser", "arn:aws:iam::111122223333:user/ops-admin")
    assert "only when the resource is tagged managed-by=onramp" in text


def test_point_4_a_policy_arn_condition_is_named():
    text = _denied_to_role("iam:AttachUserPolicy", "arn:aws:iam::111122223333:user/dev")
    assert "a condition of the customer's role refused iam:AttachUserPolicy" in text
    assert "iam:PolicyARN is arn:aws:iam::*:policy/MediaManagement*" in text


def test_point_4_an_action_the_template_grants_without_condition_is_one_the_role_lacks():
    text = _denied_to_role("s3:PutBucketCORS", "arn:aws:s3:::acme-app-media")
    assert "the customer's role lacks s3:PutBucketCORS on arn:aws:s3:::acme-app-media" in text
    assert "without a condition" in text and "condition of the customer's role" not in text
    unknown = _denied_to_role("ec2:RunInstances", "*")
    assert "does not grant it either" in unknown
