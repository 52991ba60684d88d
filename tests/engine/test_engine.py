"""The provisioning engine against the sandbox, with a real worker, Redis and PostgreSQL."""

import io
import json

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from provisioning import documents
from provisioning.aws.accounts import account_connect, process_session, run_accounts
from provisioning.engine.runs import RunConflict, run_create, run_retry
from provisioning.errors import StepFailed
from provisioning.kinds.preflight import aws as preflight
from provisioning.models import AuditEvent, Credential, Run, StepRun
from provisioning.spec import spec_parse
from provisioning.steps.base import StepContext
from tests.awsread import account_session
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    PORTAL_USER,
    customer_for,
    customer_keys_give,
    customer_role_deploy,
    spec_data,
    start_run,
    team_customer_for,
    wait_for_run,
)

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")


def _states(run: Run) -> dict[str, str]:
    return dict(run.steps.values_list("key", "state"))


def test_a_full_onboarding_creates_exactly_the_runbooks_resources(worker, alice, sandbox):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED, _states(run)
    assert set(_states(run).values()) == {"succeeded"}
    aws = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2")
    iam = aws.iam

    assert iam.list_account_aliases()["AccountAliases"] == ["acme-corp"]
    assert [g["GroupName"] for g in iam.list_groups()["Groups"]] == ["Apps"]
    users = sorted(u["UserName"] for u in iam.list_users()["Users"])
    assert users == ["acme-app", "dev@agency.example", "lead@agency.example"]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="acme-app")["Groups"]] == ["Apps"]

    local = iam.list_policies(Scope="Local")["Policies"]
    assert [p["PolicyName"] for p in local] == ["MediaManagement-acme-app-media"]
    policy = local[0]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document == documents.media_policy_document(scope="bucket", bucket="acme-app-media")
    attached = iam.list_attached_user_policies(UserName="acme-app")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [policy["Arn"]]

    keys = iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]
    assert len(keys) == 1
    credential = Credential.objects.get(run=run, kind=Credential.Kind.ACCESS_KEY)
    assert keys[0]["AccessKeyId"] == credential.access_key_id
    assert credential.ciphertext and credential.state == Credential.State.SEALED

    lead = {
        p["PolicyName"] for p in iam.list_attached_user_policies(UserName="lead@agency.example")["AttachedPolicies"]
    }
    # Every console user may change the password AWS makes them change at first sign-in.
    assert lead == {"AdministratorAccess", "Billing", "IAMUserChangePassword"}
    iam.get_login_profile(UserName="lead@agency.example")
    # One password write, asking for a reset at first sign-in (lenient moto ignores the flag on create).
    (create,) = AuditEvent.objects.filter(run=run, action="aws.iam.CreateLoginProfile")
    assert create.details["params"]["PasswordResetRequired"] is True
    assert not AuditEvent.objects.filter(run=run, action="aws.iam.UpdateLoginProfile").exists()
    dev = [p["PolicyName"] for p in iam.list_attached_user_policies(UserName="dev@agency.example")["AttachedPolicies"]]
    assert dev == ["ReadOnlyAccess"]
    with pytest.raises(ClientError):
        iam.get_login_profile(UserName="dev@agency.example")
    assert Credential.objects.filter(run=run, kind=Credential.Kind.CONSOLE_PASSWORD).count() == 1

    s3 = aws.s3
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["acme-app-media"]
    assert s3.get_bucket_location(Bucket="acme-app-media")["LocationConstraint"] == "us-west-2"
    grants = s3.get_bucket_acl(Bucket="acme-app-media")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]  # private: the owner only
    pab = s3.get_public_access_block(Bucket="acme-app-media")["PublicAccessBlockConfiguration"]
    assert pab == documents.public_access_block_document()
    cors = s3.get_bucket_cors(Bucket="acme-app-media")["CORSRules"]
    wanted = documents.cors_document(app_origin="https://acme-app.herokuapp.com")["CORSRules"]
    assert [{k: r[k] for k in w} for r, w in zip(cors, wanted, strict=True)] == wanted

    ecr = aws.ecr("us-west-2")
    repos = ecr.describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos] == ["acme-app"]
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName="acme-app")["lifecyclePolicyText"])
    assert lifecycle == documents.lifecycle_policy_document()

    assert run.summary["repository_uri"] == repos[0]["repositoryUri"]
    assert run.summary["sign_in_url"] == "https://acme-corp.signin.aws.amazon.com/console"
    assert any("Billing console" in r for r in run.summary["reminders"])


def test_the_role_session_names_the_run_and_the_source_identity_names_the_person(worker, alice):
    run = wait_for_run(start_run(alice))
    assume = AuditEvent.objects.get(run=run, action="aws.sts.AssumeRole")
    params = assume.details["params"]
    assert params["RoleSessionName"] == f"onramp-run-{run.pk}"
    assert params["SourceIdentity"] == "alice"
    assert params["ExternalId"] == "acme-external-id-0123456789"
    preflight = run.steps.get(key="preflight")
    assert preflight.outputs["arn"].endswith(f"assumed-role/OnrampAccess/onramp-run-{run.pk}")


def test_running_the_same_spec_again_adopts_everything_and_makes_no_second_key(worker, alice, sandbox):
    first = wait_for_run(start_run(alice))
    assert first.status == Run.Status.SUCCEEDED
    second = wait_for_run(start_run(alice))
    assert second.status == Run.Status.SUCCEEDED
    states = _states(second)
    assert states.pop("preflight") == "succeeded"
    assert set(states.values()) == {"adopted"}, states
    aws = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2")
    assert len(aws.iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]) == 1
    assert not Credential.objects.filter(run=second).exists()
    assert len(aws.iam.list_policy_versions(PolicyArn=first.summary["policy"])["Versions"]) == 1


def test_a_run_makes_one_client_per_service_in_the_worker_and_reuses_it_across_steps(worker, alice):
    """The hot path: no client per call or per step; one per service per run in a worker process."""
    assert wait_for_run(start_run(alice, team=[])).status == Run.Status.SUCCEEDED  # Onramp's own STS client now exists
    made = []

    def count(event_name=None, **kwargs):
        made.append(event_name.rsplit(".", 1)[-1])

    events = process_session().events
    events.register("creating-client-class", count)
    try:
        run = wait_for_run(start_run(alice))
    finally:
        events.unregister("creating-client-class", count)
    assert run.status == Run.Status.SUCCEEDED
    actions = list(AuditEvent.objects.filter(run=run, action__startswith="aws.").values_list("action", flat=True))
    assert sorted(made) == sorted({action.split(".")[1] for action in actions}) == ["ecr", "iam", "s3", "sts"]
    assert len(actions) >= 20  # every other call reused a client


def test_us_east_1_creates_the_bucket_without_a_location_constraint(worker, alice, sandbox):
    run = wait_for_run(start_run(alice, region="us-east-1", team=[]))
    assert run.status == Run.Status.SUCCEEDED, _states(run)
    create = AuditEvent.objects.get(run=run, action="aws.s3.CreateBucket")
    assert "CreateBucketConfiguration" not in create.details["params"]
    aws = account_session(sandbox.url, CUSTOMER_ACCOUNT)
    assert aws.s3.get_bucket_location(Bucket="acme-app-media")["LocationConstraint"] in (None, "")
    assert aws.ecr("us-east-1").describe_repositories()["repositories"][0]["repositoryName"] == "acme-app"
    # A second run in us-east-1 (where a repeated create succeeds) adopts the bucket after checking ownership.
    again = wait_for_run(start_run(alice, region="us-east-1", team=[]))
    assert again.steps.get(key="s3.bucket").state == "adopted"
    assert not AuditEvent.objects.filter(run=again, action="aws.s3.CreateBucket").exists()


def test_assume_role_puts_the_resources_in_the_customers_account_not_the_portals(worker, alice, sandbox):
    other = "444455556666"
    customer_role_deploy(sandbox, other)  # Other Co deployed Onramp's template too
    run = wait_for_run(start_run(alice, account_id=other, customer="Other Co", team=[]))
    assert run.status == Run.Status.SUCCEEDED, _states(run)
    customer_iam = account_session(sandbox.url, other).iam
    assert [u["UserName"] for u in customer_iam.list_users()["Users"]] == ["acme-app"]
    portal_iam = account_session(sandbox.url, settings.PORTAL_AWS_ACCOUNT_ID).iam
    assert [u["UserName"] for u in portal_iam.list_users()["Users"]] == [PORTAL_USER]  # Onramp's own, only
    assert run.summary["app_user"] == f"arn:aws:iam::{other}:user/onramp/acme-app"


def test_a_bucket_owned_by_another_account_fails_that_step_while_the_other_branches_finish(worker, alice, sandbox):
    # Free when the plan's checks (and the preflight) look at it, taken by another account before the step creates
    # it: the step still handles BucketAlreadyExists.
    sandbox.configure(bucket_taken_at_create="acme-app-media")
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.FAILED
    states = _states(run)
    bucket = run.steps.get(key="s3.bucket")
    assert bucket.state == "failed"
    assert bucket.error_code == "BucketAlreadyExists"
    assert "taken by another AWS account" in bucket.error_message
    assert states["s3.public_access_block"] == states["s3.cors"] == "skipped"
    for key in ("iam.access_key", "ecr.lifecycle", "account.alias", "team.member:lead@agency.example"):
        assert states[key] == "succeeded", (key, states)
    assert "finalize" not in states  # the run finishing is the run's, not a step's


def test_the_accounts_own_bucket_in_another_region_is_neither_adopted_nor_moved(worker, alice, sandbox):
    own = account_session(sandbox.url, CUSTOMER_ACCOUNT, "eu-west-1").s3
    own.create_bucket(Bucket="acme-app-media", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    run = wait_for_run(start_run(alice, team=[]))  # the spec says us-west-2
    bucket = run.steps.get(key="s3.bucket")
    assert bucket.state == "failed" and bucket.error_code == "BucketInOtherRegion"
    assert "already in this account but in eu-west-1, not us-west-2" in bucket.error_message
    assert own.get_bucket_location(Bucket="acme-app-media")["LocationConstraint"] == "eu-west-1"
    assert [b["Name"] for b in own.list_buckets()["Buckets"]] == ["acme-app-media"]  # no second bucket
    # Outside us-east-1 the bucket step creates first: AWS itself says the bucket is ours (an expected answer).
    create = AuditEvent.objects.get(run=run, action="aws.s3.CreateBucket")
    assert create.outcome == "expected" and create.error_code == "BucketAlreadyOwnedByYou"
    # The bucket step lists nothing (the preflight's bucket-name check lists only names with the bucket's as prefix).
    assert not AuditEvent.objects.filter(run=run, action="aws.s3.ListBuckets").exclude(step_key="preflight").exists()


def test_a_failed_run_retries_only_its_failed_steps_and_completes(worker, alice, sandbox):
    customer_iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    customer_iam.create_account_alias(AccountAlias="somebody-else")
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.FAILED
    alias = run.steps.get(key="account.alias")
    assert alias.state == "failed" and alias.error_code == "AliasConflict"
    assert "never replaces an alias" in alias.error_message
    assert customer_iam.list_account_aliases()["AccountAliases"] == ["somebody-else"]  # not replaced
    done_before = {s.key: s.attempts for s in run.steps.exclude(key="account.alias")}

    customer_iam.delete_account_alias(AccountAlias="somebody-else")
    run_retry(run=run, user=alice)
    run = wait_for_run(run)
    assert run.status == Run.Status.SUCCEEDED, _states(run)
    assert run.steps.get(key="account.alias").attempts == 2
    done_after = {s.key: s.attempts for s in run.steps.exclude(key="account.alias")}
    assert done_after == done_before  # nothing else ran again
    assert len(customer_iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]) == 1
    assert AuditEvent.objects.filter(run=run, action="run.retried", actor=alice).exists()


def test_a_changed_policy_gets_a_new_default_version_keeping_at_most_five(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    old = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    arn = iam.create_policy(PolicyName="MediaManagement-acme-app-media", PolicyDocument=json.dumps(old))["Policy"][
        "Arn"
    ]
    for n in range(4):
        old["Statement"][0]["Resource"] = f"arn:aws:s3:::b{n}"
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(old), SetAsDefault=False)
    assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 5
    run = wait_for_run(start_run(alice, team=[]))
    assert run.steps.get(key="iam.media_policy").state == "succeeded"
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5
    default = next(v for v in versions if v["IsDefaultVersion"])
    assert "v1" in {v["VersionId"] for v in versions}  # the old default is kept; the oldest other one went
    assert "v2" not in {v["VersionId"] for v in versions}
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=default["VersionId"])["PolicyVersion"]["Document"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert doc == documents.media_policy_document(scope="bucket", bucket="acme-app-media")


def test_one_run_at_a_time_per_account(db, alice, bob):
    first = start_run(alice)  # not dispatched: this test's transaction never commits
    with pytest.raises(RunConflict) as refused:
        start_run(bob)
    assert first.short_id in str(refused.value)
    assert "still in progress" in str(refused.value)
    assert Run.objects.count() == 1
    assert AuditEvent.objects.filter(action="run.refused", actor=bob, outcome="refused").exists()


def _stubbed_run(alice, stub) -> Run:
    """Start a run whose customer-account clients are opened now, so a test can stub them at the
    boto3 boundary before the worker takes the first step."""
    data = spec_data(team=[])
    customer = team_customer_for(data, alice)
    with transaction.atomic():
        run = run_create(spec=spec_parse(data), customer=customer, user=alice)
        account = account_connect(
            customer=customer, region="us-west-2", session_name=f"onramp-run-{run.pk}", source_identity="alice"
        )
        stub(account)
        run_accounts.put(run.pk, account)
    return run


def test_root_credentials_are_refused_and_nothing_else_runs(worker, alice):
    def root_identity(account):
        stubber = Stubber(account.client("sts"))
        stubber.add_response(
            "get_caller_identity",
            {"UserId": CUSTOMER_ACCOUNT, "Account": CUSTOMER_ACCOUNT, "Arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:root"},
        )
        stubber.activate()

    run = wait_for_run(_stubbed_run(alice, root_identity))
    assert run.status == Run.Status.FAILED
    preflight = run.steps.get(key="preflight")
    assert preflight.error_code == "RootCredentials"
    assert "never uses root" in preflight.error_message
    others = run.steps.exclude(key="preflight")
    assert set(others.values_list("state", flat=True)) == {"skipped"}
    # Nothing else is sent, but the read of the role's version beside the identity check (one round trip for
    # both): under a role, the session is the role's, which AssumeRole never makes root's (here a stub says so).
    iam = AuditEvent.objects.filter(run=run, action__startswith="aws.iam").values_list("action", flat=True)
    assert list(iam) == ["aws.iam.GetRole"]


def test_access_denied_fails_the_step_at_once_with_the_reason(worker, alice, settings):
    def deny_create_group(account):
        def deny(**kwargs):
            from botocore.awsrequest import AWSResponse

            body = (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                b"<Message>User is not authorized to perform: iam:CreateGroup</Message></Error>"
                b"<RequestId>stub</RequestId></ErrorResponse>"
            )
            response = AWSResponse("https://iam.amazonaws.com/", 403, {}, None)
            return response, {
                "Error": {"Code": "AccessDenied", "Message": "User is not authorized to perform: iam:CreateGroup"},
                "ResponseMetadata": {"HTTPStatusCode": 403, "RequestId": "stub"},
                "_body": body,
            }

        account.client("iam").meta.events.register_first("before-call.iam.CreateGroup", deny)

    run = wait_for_run(_stubbed_run(alice, deny_create_group))
    group = run.steps.get(key="iam.group")
    assert group.state == "failed"
    assert group.attempts == 1  # not retried
    assert group.error_code == "AccessDenied"
    assert "not allowed to do this" in group.error_message
    assert run.steps.get(key="iam.app_user").state == "skipped"
    assert run.steps.get(key="s3.cors").state == "succeeded"


def test_wrong_account_is_refused_by_preflight(db, alice, aws):
    """Keys that reach another account than the one on record: preflight stops."""
    data = spec_data(access="keys", team=[])
    spec = spec_parse(data)
    customer = customer_for(data)
    customer_keys_give(aws, customer, account_id="444455556666")  # an IAM user's, in another account
    account = account_connect(customer=customer, region="us-west-2", session_name="unused", source_identity="alice")
    step = StepRun(key="preflight")
    params = {"account_id": spec.account_id}
    with pytest.raises(StepFailed) as refused:
        preflight.execute(StepContext(run=None, step=step, account=account, params=params), params)
    assert refused.value.code == "WrongAccount"
    assert "not the customer's account 111122223333" in str(refused.value)


def test_onboard_command_uses_the_same_schema_and_waits_for_the_run(worker, alice, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec_data(bucket="Bad_Bucket", account_id="12")))
    with pytest.raises(CommandError) as invalid:
        call_command("onboard", spec=str(bad), user="alice")
    assert "bucket: A bucket name uses lowercase letters" in str(invalid.value)
    assert "account_id: An AWS account id is exactly 12 digits." in str(invalid.value)

    not_json = tmp_path / "not.json"
    not_json.write_text("{customer: acme")
    with pytest.raises(CommandError) as garbled:
        call_command("onboard", spec=str(not_json), user="alice")
    assert str(garbled.value).startswith(f"{not_json} is not valid JSON")
    assert "\n" not in str(garbled.value)

    good = tmp_path / "good.json"
    good.write_text(json.dumps(spec_data(team=[])))
    out = io.StringIO()
    call_command("onboard", spec=str(good), user="alice", wait=True, stdout=out)
    printed = out.getvalue()
    run = Run.objects.get()
    assert f"/runs/{run.pk}/" in printed
    assert "succeeded  Private bucket acme-app-media in us-west-2" in printed
    summary = json.loads(printed[printed.index("{") :])
    assert summary["status"] == "succeeded"
    assert summary["bucket"] == "arn:aws:s3:::acme-app-media"
    secret_free = json.dumps(summary)
    assert "SecretAccessKey" not in secret_free and "password" not in secret_free.lower()


def test_the_example_spec_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent.parent / "examples" / "demo.json"
    # Demo Co's role ARN and external id come from its record (the onboard command fills them in).
    role = {"role_arn": "arn:aws:iam::111122223333:role/OnrampAccess", "external_id": "e" * 40}
    spec = spec_parse({**json.loads(example.read_text()), **role})
    assert spec.team and spec.bucket


def test_tasks_carry_step_ids_only_and_a_branch_runs_on_in_the_process_that_started_it(worker, alice):
    from celery.signals import before_task_publish

    published = []

    def capture(sender=None, body=None, **kwargs):
        published.append((sender, body))

    before_task_publish.connect(capture, weak=False)
    try:
        run = wait_for_run(start_run(alice))
    finally:
        before_task_publish.disconnect(capture)
    assert run.status == Run.Status.SUCCEEDED
    steps = [body for sender, body in published if sender == "provisioning.tasks.step_run"]
    keys = dict(run.steps.values_list("pk", "key"))
    sent = []
    for args, kwargs, _embed in steps:
        assert kwargs == {}
        assert len(args) == 1 and isinstance(args[0], int) and args[0] in keys
        sent.append(keys[args[0]])
    # Preflight and the heads of the parallel branches go through the broker; the longest branch (iam)
    # and the rest of each chain continue in the process that finished the step before.
    heads = {"preflight", "account.alias", "s3.bucket", "ecr.repository"}
    heads |= {k for k in keys.values() if k.startswith("team.member:")}
    assert heads <= set(sent)
    attempts = dict(run.steps.values_list("key", "attempts"))
    for key in ("iam.group", "iam.app_user", "iam.media_policy", "iam.access_key", "s3.cors", "ecr.lifecycle"):
        # Only a retry (a passing AWS or database error) would put a chained step on the broker.
        assert key not in sent or attempts[key] > 1, (key, sent)
