"""Onramp's reach in a customer's account is its IAM path /onramp/ (#30 point 2), end to end in the strict sandbox:
a spec naming the customer's own admins takes nothing over, a user Onramp made before the path moves into it
once, and a group Onramp made before the path waits for the customer's one command."""

from provisioning.models import AuditEvent, Run
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, start_run, wait_for_run

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
ONRAMP_TAG = [{"Key": "managed-by", "Value": "onramp"}]


def _user_state(iam, name: str) -> dict:
    """Everything a takeover would change on a user."""
    user = iam.get_user(UserName=name)["User"]
    try:
        login = iam.get_login_profile(UserName=name)["LoginProfile"]["CreateDate"]
    except iam.exceptions.NoSuchEntityException:
        login = None
    return {
        "arn": user["Arn"],
        "tags": iam.list_user_tags(UserName=name)["Tags"],
        "keys": sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]),
        "login": login,
        "policies": sorted(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]),
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
    }


def test_point_2_a_spec_naming_the_customers_admins_outside_the_path_changes_nothing_on_them(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="ops-admin")
    iam.attach_user_policy(UserName="ops-admin", PolicyArn=ADMIN)
    iam.create_login_profile(UserName="ops-admin", Password="Their-Own-Password-9!")
    # The other admin carries Onramp's tag (as the old takeover left it, or anyone set it): the tag alone hands
    # nothing over.
    iam.create_user(UserName="admin@acme.example", Tags=ONRAMP_TAG)
    iam.attach_user_policy(UserName="admin@acme.example", PolicyArn=ADMIN)
    iam.create_access_key(UserName="admin@acme.example")
    before = {name: _user_state(iam, name) for name in ("ops-admin", "admin@acme.example")}

    team = [{"email": "admin@acme.example", "role": "tech_lead", "console": True}]
    run = wait_for_run(start_run(alice, app_name="ops-admin", team=team))

    assert run.status == Run.Status.FAILED
    # The plan's path check, repeated by the preflight (#30 point 3), stops the run before any step.
    failed = {step.key.split(":")[0]: step.error_message for step in run.steps.filter(state="failed")}
    assert set(failed) == {"preflight"}, failed
    assert "The IAM user ops-admin exists outside Onramp's path /onramp/" in failed["preflight"]
    assert "aws iam update-user --user-name ops-admin --new-path /onramp/" in failed["preflight"]
    assert "aws iam update-user --user-name admin@acme.example" in failed["preflight"]
    assert {name: _user_state(iam, name) for name in before} == before
    assert not AuditEvent.objects.filter(
        run=run, action__in=["aws.iam.UpdateUser", "aws.iam.TagUser", "aws.iam.CreateAccessKey"]
    ).exists()


def test_point_2_a_user_onramp_made_before_the_path_is_moved_into_it_once(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    team = [{"email": "lead@agency.example", "role": "tech_lead", "console": False}]
    assert wait_for_run(start_run(alice, team=team)).status == Run.Status.SUCCEEDED
    assert iam.get_user(UserName="acme-app")["User"]["Arn"].endswith(":user/onramp/acme-app")
    assert iam.get_group(GroupName="Apps")["Group"]["Arn"].endswith(":group/onramp/Apps")
    # As a user made before the path existed: at the root, tagged, in the ledger.
    iam.update_user(UserName="acme-app", NewPath="/")
    iam.update_user(UserName="lead@agency.example", NewPath="/")

    run = wait_for_run(start_run(alice, team=team))

    assert run.status == Run.Status.SUCCEEDED, {s.key: s.error_message for s in run.steps.all() if s.error_message}
    for name in ("acme-app", "lead@agency.example"):
        state = _user_state(iam, name)
        assert state["arn"].endswith(f":user/onramp/{name}") and state["tags"] == ONRAMP_TAG
    moves = AuditEvent.objects.filter(run=run, action="aws.iam.UpdateUser")
    assert moves.count() == 2
    assert wait_for_run(start_run(alice, team=team)).status == Run.Status.SUCCEEDED
    assert AuditEvent.objects.filter(action="aws.iam.UpdateUser").count() == 2  # once


def test_point_2_a_group_outside_the_path_stops_the_run_with_the_customers_command(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_group(GroupName="Apps")  # the customer's, or Onramp's of before the path: no tag tells them apart

    run = wait_for_run(start_run(alice, team=[]))

    assert run.status == Run.Status.FAILED
    error = run.steps.get(key__startswith="iam.group").error_message
    assert "aws iam update-group --group-name Apps --new-path /onramp/" in error
    assert iam.get_group(GroupName="Apps")["Users"] == []


CORS = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://theirs.example"]}]}


def test_point_3_a_takeover_of_the_customers_admin_and_bucket_is_refused_before_any_write(worker, alice, sandbox):
    """The issue's takeover: the app user named after the customer's admin, their bucket with its own CORS. The
    run's preflight repeats the plan's path check and stops with the customer's command before any step: the
    bucket step, which would replace the CORS, never runs."""
    session = account_session(sandbox.url, CUSTOMER_ACCOUNT)
    iam, s3 = session.iam, session.client("s3", "us-west-2")
    iam.create_user(UserName="ops-admin")
    iam.attach_user_policy(UserName="ops-admin", PolicyArn=ADMIN)
    iam.create_login_profile(UserName="ops-admin", Password="Their-Own-Password-9!")
    s3.create_bucket(Bucket="acme-app-media", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_cors(Bucket="acme-app-media", CORSConfiguration=CORS)
    before = _user_state(iam, "ops-admin")

    run = wait_for_run(start_run(alice, app_name="ops-admin", team=[]))

    assert run.status == Run.Status.FAILED
    preflight = run.steps.get(key__startswith="preflight")
    assert preflight.state == "failed"
    assert "aws iam update-user --user-name ops-admin --new-path /onramp/" in preflight.error_message
    assert not run.steps.exclude(key__startswith="preflight").filter(state__in=["succeeded", "failed"]).exists()
    assert _user_state(iam, "ops-admin") == before
    assert s3.get_bucket_cors(Bucket="acme-app-media")["CORSRules"] == CORS["CORSRules"]
