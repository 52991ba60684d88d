"""Each customer's account as a desired state: a run for a customer the ledger knows plans the
difference (create, change, keep, remove, release) from a read of the account, applies it, and cleans up
what an earlier spec left behind. End to end: the sandbox, the real worker, PostgreSQL, Redis."""

import json

import pytest

from provisioning.engine.runs import run_create
from provisioning.models import AccountRead, AuditEvent, Resource, Run
from provisioning.plan import plan_decide
from provisioning.reads import account_read_start
from provisioning.spec import spec_parse
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, customer_for, spec_data, start_run, wait_for_run
from tests.waiting import refreshed, wait_until

READS = ("Get", "List", "Describe", "Head")


def _read(user, data: dict) -> AccountRead:
    read = account_read_start(customer=customer_for(data), spec=spec_parse(data), user=user)
    ends = (AccountRead.Status.DONE, AccountRead.Status.FAILED)
    wait_until(lambda: refreshed(read).status in ends, timeout=60, message=lambda: f"the read is still {read.status}")
    assert read.status == AccountRead.Status.DONE, read.error_message
    return read


def _actions(read: AccountRead) -> dict[str, str]:
    return {item["key"]: item["action"] for item in read.items}


def _apply(user, data: dict, read: AccountRead, *, delete=(), typed=None) -> Run:
    items = plan_decide(read.items, delete=set(delete), typed=typed or {})
    run = run_create(spec=spec_parse(data), customer=customer_for(data), user=user, read=read, items=items)
    run = wait_for_run(run)
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    return run


def _writes(run: Run) -> list[str]:
    actions = AuditEvent.objects.filter(run=run, action__startswith="aws.").values_list("action", flat=True)
    return [a for a in actions if not a.split(".")[2].startswith(READS) and a.split(".")[2] not in ("AssumeRole",)]


def test_an_unchanged_spec_plans_no_changes_and_applies_with_no_write_call(worker, alice):
    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    read = _read(alice, spec_data())
    assert set(_actions(read).values()) == {"keep"}, _actions(read)
    run = _apply(alice, spec_data(), read)
    assert list(run.steps.values_list("key", flat=True)) == ["preflight"]
    assert _writes(run) == []
    # Every read of the plan and of the stale-plan check is in the audit log.
    assert AuditEvent.objects.filter(action="plan.read", customer=run.customer, outcome="ok").count() == 1
    assert AuditEvent.objects.filter(run=run, action="aws.iam.GetUser").exists()


def test_changing_only_the_cors_origin_changes_only_the_cors_configuration(worker, alice, sandbox):
    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    data = spec_data(app_origin="https://new.acme.example")
    read = _read(alice, data)
    changed = {key: action for key, action in _actions(read).items() if action != "keep"}
    assert changed == {"s3.cors": "change"}
    (cors,) = [item for item in read.items if item["key"] == "s3.cors"]
    assert any("https://new.acme.example" in d["expected"] and "acme-app.herokuapp.com" in d["actual"]
               for d in cors["differences"]), cors["differences"]  # fmt: skip
    run = _apply(alice, data, read)
    assert _writes(run) == ["aws.s3.PutBucketCors"]
    rules = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3.get_bucket_cors(Bucket="acme-app-media")
    assert rules["CORSRules"][1]["AllowedOrigins"] == ["https://new.acme.example"]


def test_a_member_removed_from_the_spec_loses_their_user_the_way_aws_requires_and_can_come_back(worker, alice, sandbox):
    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_access_key(UserName="dev@agency.example")  # made by hand since: it goes with the user
    lead_only = spec_data(team=[{"email": "lead@agency.example", "role": "tech_lead", "console": True}])
    read = _read(alice, lead_only)
    assert _actions(read)["team.member:dev@agency.example"] == "remove"
    run = _apply(alice, lead_only, read)
    users = {u["UserName"] for u in iam.list_users()["Users"]}
    assert "dev@agency.example" not in users and "lead@agency.example" in users
    removal = [s for s in run.steps.order_by("position") if s.key.startswith("remove.")]
    assert [s.key.split(":")[0] for s in removal][-1] == "remove.user" and len(removal) == 10
    calls = list(AuditEvent.objects.filter(run=run, action__startswith="aws.iam.").values_list("action", flat=True))
    for call in ("DetachUserPolicy", "DeleteAccessKey", "DeleteUser"):
        assert f"aws.iam.{call}" in calls
    member = Resource.objects.get(kind="team.member", identity="dev@agency.example")
    assert member.state == Resource.State.REMOVED and member.removed_by_run == run

    again = _read(alice, spec_data())
    assert _actions(again)["team.member:dev@agency.example"] == "create"
    _apply(alice, spec_data(), again)
    assert "dev@agency.example" in {u["UserName"] for u in iam.list_users()["Users"]}


def test_the_failed_bucket_story_ends_with_one_media_policy_for_the_bucket_in_use(worker, alice, sandbox):
    """A run fails on a bucket name taken by another account; the tech lead edits the spec and starts
    again with another bucket. The plan removes the policy Onramp made for the first name."""
    sandbox.configure(bucket_taken_at_create="taken-media")  # taken after the preflight checked it
    failed = wait_for_run(start_run(alice, bucket="taken-media"))
    assert failed.status == Run.Status.FAILED
    assert failed.steps.get(key="s3.bucket").error_code == "BucketAlreadyExists"

    data = spec_data(bucket="acme-app-media-2")
    read = _read(alice, data)
    actions = _actions(read)
    assert (
        actions["iam.media_policy"] == "create" and actions["iam.media_policy:MediaManagement-taken-media"] == "remove"
    )
    assert actions["iam.access_key"] == "keep"  # the failed run's key stays: its secret waits there
    _apply(alice, data, read)

    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    local = [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]
    assert local == ["MediaManagement-acme-app-media-2"]
    attached = [p["PolicyName"] for p in iam.list_attached_user_policies(UserName="acme-app")["AttachedPolicies"]]
    assert attached == ["MediaManagement-acme-app-media-2"]
    policy = local[0]
    arn = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:policy/{policy}"
    document = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert "arn:aws:s3:::acme-app-media-2" in document["Statement"][0]["Resource"]
    assert len(iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]) == 1


def test_an_adopted_user_left_out_is_released_not_deleted(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="legacy@agency.example", Path="/onramp/")
    team = [{"email": "legacy@agency.example", "role": "member", "policy": "ReadOnlyAccess", "console": False}]
    first = wait_for_run(start_run(alice, team=team))
    assert first.status == Run.Status.SUCCEEDED
    legacy = Resource.objects.get(kind="team.member", identity="legacy@agency.example")
    assert legacy.origin == Resource.Origin.ADOPTED and legacy.created_by_run is None

    read = _read(alice, spec_data(team=[]))
    assert _actions(read)["team.member:legacy@agency.example"] == "release"
    _apply(alice, spec_data(team=[]), read)
    assert "legacy@agency.example" in {u["UserName"] for u in iam.list_users()["Users"]}
    legacy.refresh_from_db()
    assert legacy.state == Resource.State.RELEASED


def test_a_bucket_holding_an_object_is_kept_unless_its_name_is_typed(worker, alice, sandbox):
    assert wait_for_run(start_run(alice, team=[])).status == Run.Status.SUCCEEDED
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.put_object(Bucket="acme-app-media", Key="photo.jpg", Body=b"jpeg")
    data = spec_data(team=[], bucket="acme-app-media-2")

    read = _read(alice, data)
    (old,) = [item for item in read.items if item["key"] == "s3.bucket:acme-app-media"]
    assert old["action"] == "remove" and old["holds_data"] is True
    _apply(alice, data, read, typed={old["resource"]: "acme-app-media-typo"})
    assert "acme-app-media" in {b["Name"] for b in s3.list_buckets()["Buckets"]}  # kept: the name was not typed
    # Kept, it is released: no longer Onramp's, and no later plan offers to delete it.
    assert Resource.objects.get(kind="s3.bucket", name="acme-app-media").state == Resource.State.RELEASED
    assert "s3.bucket:acme-app-media" not in _actions(_read(alice, data))

    s3.put_object(Bucket="acme-app-media-2", Key="photo.jpg", Body=b"jpeg")
    renamed = spec_data(team=[], bucket="acme-app-media-3")
    read = _read(alice, renamed)
    (old,) = [item for item in read.items if item["key"] == "s3.bucket:acme-app-media-2"]
    _apply(alice, renamed, read, typed={old["resource"]: "acme-app-media-2"})
    assert "acme-app-media-2" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert Resource.objects.get(kind="s3.bucket", name="acme-app-media-2").state == Resource.State.REMOVED


def test_a_plan_refuses_to_run_on_an_account_that_changed_since_it_was_read(worker, alice, sandbox):
    assert wait_for_run(start_run(alice, team=[])).status == Run.Status.SUCCEEDED
    data = spec_data(team=[], app_origin="https://new.acme.example")
    read = _read(alice, data)
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.delete_public_access_block(Bucket="acme-app-media")  # someone changes the account meanwhile
    items = plan_decide(read.items, delete=set(), typed={})
    run = wait_for_run(
        run_create(spec=spec_parse(data), customer=customer_for(data), user=alice, read=read, items=items)
    )
    assert run.status == Run.Status.FAILED
    preflight = run.steps.get(key="preflight")
    assert preflight.error_code == "PlanStale" and "s3.public_access_block" in preflight.error_message
    assert _writes(run) == []


@pytest.mark.django_db
def test_customers_onboarded_before_the_ledger_get_one_from_their_runs_outcomes():
    """The data migration's own function, on runs recorded the old way (no ledger)."""
    import importlib

    from django.apps import apps as django_apps

    from provisioning.models import StepRun
    from tests.conftest import _user

    migration = importlib.import_module("provisioning.migrations.0007_ledger")
    user = _user("erin", "Tech leads")
    data = spec_data()
    customer = customer_for(data)
    first = Run.objects.create(customer=customer, started_by=user, spec=data, status="succeeded")
    second = Run.objects.create(customer=customer, started_by=user, spec=data, status="succeeded")
    for run, state in ((first, "succeeded"), (second, "adopted")):
        StepRun.objects.create(run=run, key="iam.group", title="g", branch="iam", position=1, state=state,
                               outputs={"group": "Apps", "arn": "arn:aws:iam::111122223333:group/Apps"})  # fmt: skip
    StepRun.objects.create(run=second, key="team.member:lead@agency.example", title="m", branch="team", position=2,
                           state="adopted", outputs={"user": "lead@agency.example", "arn": "x"})  # fmt: skip
    migration.ledger_fill(django_apps, None)
    group = Resource.objects.get(kind="iam.group")
    assert (group.origin, group.created_by_run, group.adopted_by) == ("created", first, [str(second.pk)])
    lead = Resource.objects.get(kind="team.member")
    assert (lead.origin, lead.params["role"], lead.params["console"]) == ("adopted", "tech_lead", True)


def test_a_member_who_changes_role_has_the_attachments_swapped_and_keeps_what_was_attached_by_hand(
    worker, alice, sandbox
):
    lead = {"email": "lead@agency.example", "role": "tech_lead", "console": True}
    assert wait_for_run(start_run(alice, team=[lead])).status == Run.Status.SUCCEEDED
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.attach_user_policy(UserName="lead@agency.example", PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    member = {**lead, "role": "member", "policy": "ReadOnlyAccess"}
    read = _read(alice, spec_data(team=[member]))
    (item,) = [i for i in read.items if i["key"] == "team.member:lead@agency.example"]
    assert item["action"] == "change" and item["differences"][0]["field"] == "policies"
    run = _apply(alice, spec_data(team=[member]), read)
    attached = {
        p["PolicyName"] for p in iam.list_attached_user_policies(UserName="lead@agency.example")["AttachedPolicies"]
    }
    assert attached == {"ReadOnlyAccess", "IAMUserChangePassword", "AmazonS3ReadOnlyAccess"}
    assert sorted(_writes(run)) == ["aws.iam.AttachUserPolicy", "aws.iam.DetachUserPolicy", "aws.iam.DetachUserPolicy"]
