"""The plan's checks (issue 32 point 4): each outcome of each check, from a read of the account in the strict
sandbox (its rules foreign_bucket, policy_quotas and opt_in_regions reproduce the refusals the checks predict),
the run's preflight repeating the blocking ones, and the builders of the documents Onramp writes proving AWS's
size limits cannot be exceeded by any valid spec."""

import json

import pytest

from provisioning import documents
from provisioning.checks import checks_blocking
from provisioning.engine.runs import run_create
from provisioning.kinds.ecr_lifecycle.declaration import put_lifecycle_policy
from provisioning.kinds.iam_media_policy.declaration import create_policy
from provisioning.models import AccountRead, AuditEvent, Resource, Run
from provisioning.plan import plan_decide
from provisioning.reads import account_read_start
from provisioning.registry import CHANGE_PASSWORD_POLICY
from provisioning.spec import MediaScope, spec_parse
from tests.awsread import account_session
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    customer_for,
    customer_make,
    spec_data,
    start_run,
    team_customer_for,
    wait_for_run,
)
from tests.test_sandbox import OTHER_ACCOUNT
from tests.test_sandbox_refusals import MANAGED
from tests.waiting import refreshed, wait_until

# AWS's limits on what Onramp writes (IAM User Guide, "IAM and AWS STS quotas": a managed policy's document is
# 6,144 characters at most, whitespace not counted; a policy's name 128. ECR API reference, PutLifecyclePolicy:
# lifecyclePolicyText is 100 to 30,720 characters).
POLICY_SIZE, POLICY_NAME, LIFECYCLE_MIN, LIFECYCLE_MAX = 6144, 128, 100, 30720
LONGEST_BUCKET = "b" * 63  # a bucket name is 3 to 63 characters: the longest makes the longest policy


def plan_read(user, data: dict) -> AccountRead:
    """A plan's read of the account (a new customer's made now), once the worker has done it (its row is saved done
    or failed only after its calls' audit is written: provisioning.reads)."""
    read = account_read_start(customer=customer_for(data), spec=spec_parse(data), user=user)
    wait_until(
        lambda: refreshed(read).status in (AccountRead.Status.DONE, AccountRead.Status.FAILED),
        timeout=60,
        message=lambda: f"the read is still {refreshed(read).status}",
    )
    return refreshed(read)


def _checks(read: AccountRead) -> dict[str, dict]:
    return {check["name"]: check for check in read.checks}


def _outcomes(read: AccountRead) -> dict[str, str]:
    return {name: check["outcome"] for name, check in _checks(read).items()}


def _onboarded(user, **overrides) -> None:
    run = wait_for_run(start_run(user, **overrides))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "error_message"))


def _writes(run: Run) -> list[str]:
    actions = AuditEvent.objects.filter(run=run, action__startswith="aws.").values_list("action", flat=True)
    reads = ("Get", "List", "Describe", "Head", "AssumeRole")
    return [a for a in actions if not a.split(".")[2].startswith(reads)]


# --- The documents Onramp writes: no valid spec can exceed AWS's sizes -------------------------------------------


@pytest.mark.parametrize("scope", [MediaScope.BUCKET, MediaScope.ALL])
def test_the_media_policy_of_the_worst_case_spec_fits_aws_s_managed_policy_size(scope):
    spec = spec_parse(spec_data(bucket=LONGEST_BUCKET, media_scope=scope))
    assert spec.bucket == LONGEST_BUCKET
    name = documents.media_policy_name(scope=spec.media_scope, bucket=spec.bucket)
    call = create_policy(name, documents.media_policy_document(scope=spec.media_scope, bucket=spec.bucket))
    sent = call.params["PolicyDocument"]
    assert len("".join(sent.split())) <= POLICY_SIZE
    assert len(name) <= POLICY_NAME
    # The margin: even every S3 action under the longest name would not come near the limit.
    assert len(sent) < POLICY_SIZE / 4


def test_the_lifecycle_policy_does_not_depend_on_the_spec_and_fits_ecr_s_size():
    text = put_lifecycle_policy("r" * 256).params["lifecyclePolicyText"]
    assert LIFECYCLE_MIN <= len(text) <= LIFECYCLE_MAX
    assert json.loads(text) == documents.lifecycle_policy_document()


# --- Each check, each outcome -----------------------------------------------------------------------------------


def test_a_known_customers_plan_passes_every_check_and_warns_for_billing(worker, alice):
    _onboarded(alice)
    read = plan_read(alice, spec_data(bucket="acme-app-media-2"))
    assert read.status == AccountRead.Status.DONE, read.error_message
    assert _outcomes(read) == {
        "region": "pass",
        "path": "pass",
        "bucket": "pass",
        "alias": "pass",
        "policies": "pass",
        "billing": "warn",
    }
    assert "free" in _checks(read)["bucket"]["sentence"]  # HeadBucket answered 404
    assert "No API can do it" in _checks(read)["billing"]["sentence"]
    # The checks' calls are audited like every call of the read.
    for operation in ("s3.ListBuckets", "s3.HeadBucket", "iam.GetAccountSummary"):
        assert AuditEvent.objects.filter(action=f"aws.{operation}", customer=read.customer).exists(), operation


def test_the_account_s_own_bucket_passes_without_asking_s3_about_the_name(worker, alice):
    _onboarded(alice, team=[])
    read = plan_read(alice, spec_data(team=[]))
    assert _outcomes(read) == {"region": "pass", "path": "pass", "bucket": "pass", "alias": "pass", "policies": "pass"}
    assert "already this account's" in _checks(read)["bucket"]["sentence"]


def test_a_bucket_name_another_account_has_blocks_the_plan_and_the_run(worker, alice, sandbox):
    _onboarded(alice, team=[])
    admin = account_session(sandbox.url, OTHER_ACCOUNT).s3
    admin.create_bucket(Bucket="theirs-media")
    data = spec_data(team=[], bucket="theirs-media")
    read = plan_read(alice, data)
    bucket = _checks(read)["bucket"]
    assert bucket["outcome"] == "block" and "Another AWS account" in bucket["sentence"]
    assert checks_blocking(read.checks) == [bucket]
    # Started anyway (the page refuses; a direct start is refused by the preflight): nothing is written.
    items = plan_decide(read.items, delete=set(), typed={})
    run = wait_for_run(
        run_create(spec=spec_parse(data), customer=customer_for(data), user=alice, read=read, items=items)
    )
    preflight = run.steps.get(key="preflight")
    assert run.status == Run.Status.FAILED and preflight.error_code == "PlanCheckFailed"
    assert "theirs-media" in preflight.error_message and _writes(run) == []


def test_a_new_customer_s_run_stops_at_preflight_when_its_bucket_name_is_taken(worker, alice, sandbox):
    account_session(sandbox.url, OTHER_ACCOUNT).s3.create_bucket(Bucket="acme-app-media")
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.FAILED
    assert run.steps.get(key="preflight").error_code == "PlanCheckFailed"
    assert _writes(run) == []


def test_a_stale_plan_whose_check_blocks_too_is_refused_as_stale_with_every_check_s_call_audited(
    worker, alice, sandbox
):
    """The preflight reads the account again and repeats the checks side by side: when the plan is stale and a check
    blocks too, the stale plan is what the run says (plan again), nothing is written, and the checks' calls, made
    all the same, are in the preflight's audit."""
    data = spec_data(team=[])
    team_customer_for(data, alice)
    read = plan_read(alice, data)  # a new customer's: the bucket name is free when the plan is read
    assert checks_blocking(read.checks) == []
    account_session(sandbox.url, OTHER_ACCOUNT).s3.create_bucket(Bucket="acme-app-media")  # then taken: blocks
    account_session(sandbox.url, CUSTOMER_ACCOUNT).iam.create_group(GroupName="Apps")  # and the account changed
    items = plan_decide(read.items, delete=set(), typed={})
    run = wait_for_run(
        run_create(spec=spec_parse(data), customer=customer_for(data), user=alice, read=read, items=items)
    )
    preflight = run.steps.get(key="preflight")
    assert run.status == Run.Status.FAILED and preflight.error_code == "PlanStale", preflight.error_message
    assert "iam.group" in preflight.error_message and _writes(run) == []
    audited = set(AuditEvent.objects.filter(run=run, step_key="preflight").values_list("action", flat=True))
    assert {"aws.iam.GetAccountSummary", "aws.s3.HeadBucket", "aws.iam.GetGroup"} <= audited


def test_an_alias_another_customer_has_blocks_and_the_account_s_other_alias_warns(worker, alice, sandbox):
    _onboarded(alice, team=[], account_alias="")
    other = customer_make(name="Globex", slug="globex", aws_account_id=OTHER_ACCOUNT)
    Resource.objects.create(
        customer=other, kind="account.alias", identity="globex-corp", name="globex-corp", origin="created"
    )
    blocked = plan_read(alice, spec_data(team=[], account_alias="globex-corp"))
    alias = _checks(blocked)["alias"]
    assert alias["outcome"] == "block" and "Globex" in alias["sentence"]

    account_session(sandbox.url, CUSTOMER_ACCOUNT).iam.create_account_alias(AccountAlias="made-by-hand")
    warned = plan_read(alice, spec_data(team=[], account_alias="acme-corp"))
    alias = _checks(warned)["alias"]
    assert alias["outcome"] == "warn" and "made-by-hand" in alias["sentence"]
    assert checks_blocking(warned.checks) == []


def test_a_user_given_two_keys_by_hand_stops_a_plan_that_makes_them_a_third(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="acme-app", Path="/onramp/")  # the customer handed it over: in the path
    iam.create_access_key(UserName="acme-app")
    iam.create_access_key(UserName="acme-app")
    run = wait_for_run(start_run(alice, team=[]))  # a new customer's plan makes the app user's key
    preflight = run.steps.get(key="preflight")
    assert run.status == Run.Status.FAILED and preflight.error_code == "PlanCheckFailed"
    assert "2 access keys" in preflight.error_message and _writes(run) == []


def test_one_key_by_hand_passes_the_access_keys_check(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="acme-app", Path="/onramp/")  # the customer handed it over: in the path
    iam.create_access_key(UserName="acme-app")
    run = wait_for_run(start_run(alice, team=[]))
    # Past the checks: the run goes on to its steps (the user, not Onramp's, is then adopted or refused there).
    assert run.steps.get(key="preflight").state == "succeeded"


@pytest.mark.parametrize(("by_hand", "outcome"), [(6, "pass"), (7, "warn"), (9, "block")])
def test_managed_policies_given_by_hand_against_the_account_s_quota(worker, alice, sandbox, by_hand, outcome):
    _onboarded(alice, team=[])
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="lead@agency.example", Path="/onramp/")
    # The tech lead's plan attaches AdministratorAccess, Billing and IAMUserChangePassword: the hand-made ones are
    # others, the password one among them (attached once, counted once).
    hand = [name for name in MANAGED if name not in ("AdministratorAccess", "job-function/Billing")][:by_hand]
    assert CHANGE_PASSWORD_POLICY in hand and len(hand) == by_hand
    for name in hand:
        iam.attach_user_policy(UserName="lead@agency.example", PolicyArn=f"arn:aws:iam::aws:policy/{name}")
    lead = [{"email": "lead@agency.example", "role": "tech_lead", "console": True}]
    read = plan_read(alice, spec_data(team=lead))
    assert read.status == AccountRead.Status.DONE, read.error_message
    policies = _checks(read)["policies"]
    assert policies["outcome"] == outcome, policies
    after = by_hand + 2
    if outcome == "pass":
        assert "under the account's 10" in policies["sentence"]
    elif outcome == "warn":
        assert f"lead@agency.example will have {after} managed policies of the 10" in policies["sentence"]
    else:
        assert f"lead@agency.example would have {after} managed policies" in policies["sentence"]
        assert checks_blocking(read.checks) == [policies]


@pytest.mark.strict(enabled_regions="")
def test_an_opt_in_region_the_account_has_not_enabled_blocks_the_plan(worker, alice, sandbox):
    _onboarded(alice, team=[])
    read = plan_read(alice, spec_data(team=[], region="af-south-1"))
    assert read.status == AccountRead.Status.FAILED and read.error_code == "RegionNotEnabled"
    assert _outcomes(read) == {"region": "block"}
    assert "af-south-1" in _checks(read)["region"]["sentence"]
    assert AuditEvent.objects.filter(action="aws.ec2.DescribeRegions", customer=read.customer).exists()


@pytest.mark.strict(enabled_regions="af-south-1")
def test_an_opt_in_region_the_account_enabled_passes(worker, alice, sandbox):
    _onboarded(alice, team=[])
    read = plan_read(alice, spec_data(team=[], region="af-south-1", bucket="acme-app-media-af"))
    assert read.status == AccountRead.Status.DONE, read.error_message
    assert _outcomes(read)["region"] == "pass"
