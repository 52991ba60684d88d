"""The drift check, end to end: a customer onboarded in the strict sandbox by the real worker, their account
changed by hand with plain boto3 (as someone in the customer's team would), a check read as a task, each
difference in words; Repair's plan corrects exactly that, and its run brings the customer back In sync.
What Onramp did not make is reported and left; what cannot be repaired says so."""

import json
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db.models import F
from django.utils import timezone

from portal.celery import app as celery_app
from provisioning import drift
from provisioning.customers import customer_desired_spec
from provisioning.engine.runs import run_create
from provisioning.models import AccountRead, AuditEvent, DriftState, Run, StepRun
from provisioning.plan import plan_decide
from provisioning.reads import account_read_start
from provisioning.spec import spec_parse
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, customer_for, spec_data, start_run, wait_for_run
from tests.waiting import refreshed, wait_until

REGION = "us-west-2"
POLICY_ARN = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:policy/MediaManagement-acme-app-media"


def _onboarded(user) -> Run:
    run = wait_for_run(start_run(user))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    return run


def _long_after(customer, sandbox) -> None:
    """As if the customer's runs had ended long ago, on AWS's side (the sandbox's clock past every window after a
    change) and on Onramp's (their steps finished AWS_SETTLE_SECONDS earlier): a check then reads a lifecycle policy
    changed by hand once, as the nightly check would, instead of reading it again for AWS_SETTLE_SECONDS (30 s) in
    case it is the run's own change not yet shown (provisioning.steps.reading SETTLING_READS)."""
    sandbox.clock_advance(6)
    StepRun.objects.filter(run__customer=customer, finished_at__isnull=False).update(
        finished_at=F("finished_at") - timedelta(seconds=django_settings.AWS_SETTLE_SECONDS)
    )


def _check(customer, user=None, timeout: float = 60) -> DriftState:
    """Check now, and wait for the worker to record what the check found."""
    read = drift.drift_check_start(customer=customer, user=user)
    assert read is not None and read.purpose == AccountRead.Purpose.DRIFT
    return wait_until(
        lambda: DriftState.objects.filter(customer=customer, last_read=read).first(),
        timeout=timeout,
        message=lambda: f"the check is still {refreshed(read).status}",
    )


def _words(state: DriftState) -> list[str]:
    return [d["words"] for d in state.differences]


def _repair(user, customer) -> tuple[list[dict], Run]:
    """What Repair does once the tech lead confirms: the desired spec's plan, read afresh, run as planned."""
    data = customer_desired_spec(customer=customer, for_drift=True)
    read = account_read_start(customer=customer, spec=spec_parse(data), user=user)
    ends = (AccountRead.Status.DONE, AccountRead.Status.FAILED)
    wait_until(lambda: refreshed(read).status in ends, timeout=60, message=lambda: f"the read is {read.status}")
    assert read.status == AccountRead.Status.DONE, read.error_message
    items = plan_decide(read.items, delete=set(), typed={})
    run = wait_for_run(run_create(spec=spec_parse(data), customer=customer, user=user, read=read, items=items))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    return [item for item in items if item["action"] != "keep"], run


def _iam(sandbox):
    return account_session(sandbox.url, CUSTOMER_ACCOUNT).iam


def _s3(sandbox, region: str = REGION):
    return account_session(sandbox.url, CUSTOMER_ACCOUNT, region).s3


def test_an_untouched_account_is_in_sync_and_the_check_is_audited(worker, alice):
    customer = _onboarded(alice).customer
    state = _check(customer, alice)
    assert state.state == DriftState.State.IN_SYNC and state.differences == [], _words(state)
    assert AuditEvent.objects.filter(action="drift.read", customer=customer, outcome="ok").count() == 1
    assert AuditEvent.objects.filter(action="aws.iam.GetGroup", customer=customer).exists()  # every call audited
    assert AuditEvent.objects.filter(action="drift.checked", customer=customer, details__state="in_sync").exists()


# Each field drifted by hand: what is done to the account, and the words the check must say.
DRIFTS = {
    "alias": (
        lambda sb: _iam(sb).delete_account_alias(AccountAlias="acme-corp"),
        "account.alias",
        "Set the sign-in alias acme-corp: sign-in alias: expected acme-corp, found none",
    ),
    "group membership": (
        lambda sb: _iam(sb).remove_user_from_group(GroupName="Apps", UserName="acme-app"),
        "iam.app_user",
        "App user acme-app in Apps: groups: expected Apps, found none",
    ),
    "policy attachment": (
        lambda sb: _iam(sb).detach_user_policy(UserName="acme-app", PolicyArn=POLICY_ARN),
        "iam.media_policy",
        "attached to acme-app: expected yes, found no",
    ),
    "policy document": (
        lambda sb: _iam(sb).create_policy_version(
            PolicyArn=POLICY_ARN,
            SetAsDefault=True,
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        ),
        "iam.media_policy",
        "policy document Statement[0].Action: expected s3:ListBucket",
    ),
    "Block Public Access": (
        lambda sb: _s3(sb).put_public_access_block(
            Bucket="acme-app-media",
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": False,
                "RestrictPublicBuckets": True,
            },
        ),
        "s3.public_access_block",
        "Block Public Access BlockPublicPolicy: expected yes, found no",
    ),
    "CORS rules": (
        lambda sb: _s3(sb).put_bucket_cors(
            Bucket="acme-app-media",
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*"]}]},
        ),
        "s3.cors",
        "CORS rules: expected",
    ),
    "object ownership": (
        lambda sb: _s3(sb).put_bucket_ownership_controls(
            Bucket="acme-app-media", OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
        ),
        "s3.bucket",
        "object ownership: expected BucketOwnerEnforced (ACLs off), found ObjectWriter",
    ),
    "repository": (
        lambda sb: (
            account_session(sb.url, CUSTOMER_ACCOUNT, REGION)
            .ecr(REGION)
            .delete_repository(repositoryName="acme-app", force=True)
        ),
        "ecr.repository ecr.lifecycle ecr.repository_policy",  # its settings go with it
        "ECR repository acme-app, scanned on push: resource: expected there, found missing",
    ),
    "lifecycle policy": (
        lambda sb: (
            account_session(sb.url, CUSTOMER_ACCOUNT, REGION)
            .ecr(REGION)
            .delete_lifecycle_policy(repositoryName="acme-app")
        ),
        "ecr.lifecycle",
        "lifecycle policy: expected set, found none",
    ),
    "team user's policies": (
        lambda sb: _iam(sb).detach_user_policy(
            UserName="dev@agency.example", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"
        ),
        "team.member:dev@agency.example",
        "policies: expected ReadOnlyAccess, found none",
    ),
    "team user's console access": (
        lambda sb: _iam(sb).delete_login_profile(UserName="lead@agency.example"),
        "team.member:lead@agency.example",
        "console access: expected yes, found no",
    ),
}


# Each field's compare is a unit case in tests/test_compare.py (one field at a time, against hand-made read-backs),
# where each names this test. Here the fields are drifted together through the worker in one onboarding, so each
# kind's reader still finds its field changed in the sandbox (reported) and Repair's steps put them all back
# (repaired), without an onboarding per field. Deleting the repository takes its lifecycle policy with it, so
# that one has an onboarding of its own.
TOGETHER = [field for field in DRIFTS if field != "repository"]


@pytest.mark.parametrize("fields", [TOGETHER, ["repository"]], ids=["every field at once", "repository"])
def test_fields_drifted_by_hand_are_reported_in_words_and_repair_corrects_exactly_them(worker, alice, sandbox, fields):
    keys = {key for field in fields for key in DRIFTS[field][1].split()}
    customer = _onboarded(alice).customer
    assert _check(customer).state == DriftState.State.IN_SYNC
    _long_after(customer, sandbox)
    for field in fields:
        DRIFTS[field][0](sandbox)

    state = _check(customer)
    assert state.state == DriftState.State.DRIFTED
    assert {d["key"] for d in state.differences} == keys, _words(state)
    for field in fields:
        assert any(DRIFTS[field][2] in text for text in _words(state)), (field, _words(state))
    assert all(d["repairable"] for d in state.differences)

    corrections, run = _repair(alice, customer)
    corrected = [item["key"] for item in corrections]
    assert sorted(corrected) == sorted(keys)
    assert [s.key for s in run.steps.all()] == ["preflight", *corrected]  # the plan's corrections, nothing more
    assert _check(customer).state == DriftState.State.IN_SYNC


def test_point_10_scan_on_push_switched_off_by_hand_is_drift_and_repair_switches_it_on(worker, alice, sandbox):
    customer = _onboarded(alice).customer
    ecr = account_session(sandbox.url, CUSTOMER_ACCOUNT, REGION).ecr(REGION)
    ecr.put_image_scanning_configuration(repositoryName="acme-app", imageScanningConfiguration={"scanOnPush": False})

    state = _check(customer)
    assert state.state == DriftState.State.DRIFTED
    assert _words(state) == ["ECR repository acme-app, scanned on push: scan on push: expected on, found off"]
    corrections, run = _repair(alice, customer)
    assert [item["key"] for item in corrections] == ["ecr.repository"]
    (repo,) = ecr.describe_repositories(repositoryNames=["acme-app"])["repositories"]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert _check(customer).state == DriftState.State.IN_SYNC


def test_a_difference_keeps_the_check_that_first_found_it_and_is_notified_once(worker, alice, sandbox, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core import mail

    customer = _onboarded(alice).customer
    _iam(sandbox).delete_login_profile(UserName="lead@agency.example")
    first = _check(customer)
    second = _check(customer)
    (difference,) = second.differences
    assert difference["since_read"] == str(first.last_read_id) != str(second.last_read_id)
    assert second.since == first.since and second.checked_at > first.checked_at
    drift_mails = [m for m in mail.outbox if "drifted" in m.subject]
    assert len(drift_mails) == 1 and drift_mails[0].to == ["alice@agency.example"]
    assert "console access: expected yes, found no" in drift_mails[0].body

    _s3(sandbox).delete_bucket_cors(Bucket="acme-app-media")  # a new difference: told again
    third = _check(customer)
    assert len(third.differences) == 2
    assert len([m for m in mail.outbox if "drifted" in m.subject]) == 2


def test_what_onramp_did_not_make_is_reported_and_repair_leaves_it(worker, alice, sandbox):
    customer = _onboarded(alice).customer
    iam = _iam(sandbox)
    extra = iam.create_access_key(UserName="acme-app")["AccessKey"]["AccessKeyId"]
    iam.create_user(UserName="eve")
    iam.add_user_to_group(GroupName="Apps", UserName="eve")
    iam.delete_login_profile(UserName="lead@agency.example")  # and one thing Repair does put back

    state = _check(customer)
    words = _words(state)
    assert any(f"access key {extra}: expected none besides Onramp's, found made by hand, not by Onramp" in w
               for w in words), words  # fmt: skip
    assert any("member eve: expected not in the group, found made by hand, not by Onramp" in w for w in words), words
    hand = [d for d in state.differences if d["key"] in ("iam.access_key", "iam.group")]
    assert len(hand) == 2 and not any(d["repairable"] for d in hand)

    corrections, run = _repair(alice, customer)
    assert [item["key"] for item in corrections] == ["team.member:lead@agency.example"]
    keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]]
    assert extra in keys and len(keys) == 2
    assert "eve" in [u["UserName"] for u in iam.get_group(GroupName="Apps")["Users"]]
    after = _check(customer)
    assert after.state == DriftState.State.DRIFTED and {d["key"] for d in after.differences} == {
        "iam.access_key",
        "iam.group",
    }


def test_an_access_key_older_than_the_limit_is_due_for_rotation(worker, alice, settings):
    customer = _onboarded(alice).customer
    key = Run.objects.get(customer=customer).steps.get(key="iam.access_key").outputs["access_key_id"]
    assert _check(customer).state == DriftState.State.IN_SYNC  # 90 days by default
    settings.DRIFT_KEY_MAX_AGE_DAYS = 0  # every key is then old enough: no clock is faked
    state = _check(customer)
    (difference,) = state.differences
    assert difference["words"] == (
        f"Access key for acme-app: access key {key}: expected younger than 0 days, found 0 days old: due for "
        "rotation (Issue a new key on the last run's page) (Repair does not change this)"
    )
    assert not difference["repairable"]


def test_a_bucket_in_another_region_is_reported_as_not_repairable(worker, alice, sandbox):
    customer = _onboarded(alice).customer
    _s3(sandbox).delete_bucket(Bucket="acme-app-media")
    _s3(sandbox, "eu-west-1").create_bucket(
        Bucket="acme-app-media", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    state = _check(customer)
    (region,) = [d for d in state.differences if d["field"] == "region"]
    assert region["words"] == (
        "Private bucket acme-app-media in us-west-2, ACLs off: region: expected us-west-2, found eu-west-1 "
        "(Repair does not change this)"
    )
    corrections, _ = _repair(alice, customer)
    assert "s3.bucket" not in [item["key"] for item in corrections]


def test_an_account_whose_role_was_deleted_is_unreachable_with_the_reason(worker, alice, sandbox):
    customer = _onboarded(alice).customer
    iam = _iam(sandbox)
    for name in iam.list_role_policies(RoleName="OnrampAccess")["PolicyNames"]:
        iam.delete_role_policy(RoleName="OnrampAccess", PolicyName=name)
    for policy in iam.list_attached_role_policies(RoleName="OnrampAccess")["AttachedPolicies"]:
        iam.detach_role_policy(RoleName="OnrampAccess", PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName="OnrampAccess")

    state = _check(customer)
    assert state.state == DriftState.State.UNREACHABLE
    expected = "Assuming the customer's role: AWS refused sts:AssumeRole on the customer's role."
    assert state.reason.startswith(expected), state.reason
    assert drift.drift_overview()[0] == customer


def test_the_schedule_checks_every_active_customer_with_a_desired_state_within_its_bounds(worker, alice, settings):
    entry = django_settings.CELERY_BEAT_SCHEDULE["drift-check"]
    assert entry["task"] == "provisioning.tasks.drift_checks_start" and entry["task"] in celery_app.tasks
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({2}, {30})  # nightly by default
    customer = _onboarded(alice).customer
    other = customer_for(spec_data(account_id="444455556666", customer="Never onboarded"))
    Run.objects.create(customer=other, started_by=alice, spec=spec_data(), status=Run.Status.FAILED)

    settings.DRIFT_CONCURRENCY = 1
    assert drift.drift_checks_start() == 1  # the customer with no successful run has nothing to compare with
    assert drift.drift_checks_start() == 0  # a check under way is not started twice
    assert AccountRead.objects.filter(purpose="drift", customer=customer).count() == 1
    assert not AccountRead.objects.filter(customer=other).exists()
    wait_until(DriftState.objects.filter(customer=customer).exists, timeout=60, message="the check did not end")
    assert DriftState.objects.get(customer=customer).state == DriftState.State.IN_SYNC
    assert AuditEvent.objects.filter(action="drift.scheduled", details__customers=1).count() == 1
    assert AuditEvent.objects.filter(action="drift.read", customer=customer, actor_label="drift check").count() == 1


def test_check_now_the_pages_and_the_admin_show_the_state_to_tech_leads_and_admins_only(
    worker, alice, charlie, dana, client
):
    from django.urls import reverse

    customer = _onboarded(alice).customer
    client.force_login(alice)
    response = client.post(reverse("customer_drift_check", args=[customer.slug]))
    assert response.status_code == 302
    read = AccountRead.objects.get(customer=customer, purpose="drift", requested_by=alice)
    assert AuditEvent.objects.filter(action="drift.read_requested", actor=alice, customer=customer).exists()
    wait_until(DriftState.objects.filter(last_read=read).exists, timeout=60, message="the check did not end")
    page = client.get(reverse("customer_detail", args=[customer.slug])).content.decode()
    assert 'id="drift-state">In sync<' in page and "Check now" in page
    assert "Acme Corp" in client.get(reverse("drift_list")).content.decode()
    # In sync: a repair would change nothing, so none is opened (tests/test_repair.py has a drifted one's).
    repair = client.post(reverse("customer_repair", args=[customer.slug]))
    assert repair.status_code == 302 and repair["Location"].endswith("#drift")
    assert "onboarding_draft" not in client.session

    client.force_login(dana)
    changelist = reverse("admin:provisioning_customer_changelist")
    assert "In sync" in client.get(changelist).content.decode()
    assert "Acme Corp" in client.get(changelist, {"drift": "in_sync"}).content.decode()
    assert "Acme Corp" not in client.get(changelist, {"drift": "drifted"}).content.decode()

    client.force_login(charlie)
    assert client.get(reverse("drift_list")).status_code == 403
    assert client.post(reverse("customer_drift_check", args=[customer.slug])).status_code == 403
    assert client.post(reverse("customer_repair", args=[customer.slug])).status_code == 403


@pytest.mark.django_db
def test_an_offboarded_customer_is_neither_checked_nor_listed_and_an_offboarding_is_no_desired_state(alice, client):
    onboarded = customer_for(spec_data(account_id="444455556666", customer="Still ours"))
    Run.objects.create(customer=onboarded, started_by=alice, spec=spec_data(), status=Run.Status.SUCCEEDED)
    gone = customer_for(spec_data(account_id="777788889999", customer="Gone"))
    Run.objects.create(customer=gone, started_by=alice, spec=spec_data(), status=Run.Status.SUCCEEDED)
    # Its offboarding run succeeded last: it wants less, so it is no desired state to compare with.
    Run.objects.create(customer=gone, started_by=alice, spec=spec_data(), status=Run.Status.SUCCEEDED, offboard="leave")
    assert customer_desired_spec(customer=gone, for_drift=True) is not None  # not yet offboarded: the onboarding's spec
    gone.offboarded_at, gone.offboard_mode = timezone.now(), "leave"
    gone.save(update_fields=["offboarded_at", "offboard_mode"])

    assert customer_desired_spec(customer=gone, for_drift=True) is None
    assert drift.drift_check_start(customer=gone, enqueue=False) is None
    assert [c.name for c in drift.drift_overview()] == ["Still ours"]
    assert drift.drift_checks_start() == 1
    assert set(AccountRead.objects.values_list("customer__name", flat=True)) == {"Still ours"}

    client.force_login(alice)
    answer = client.post(f"/customers/{gone.slug}/drift/check/", follow=True)
    assert "Gone is offboarded: Onramp no longer keeps their account in an agreed state." in answer.content.decode()
    assert AccountRead.objects.filter(customer=gone).count() == 0


@pytest.mark.django_db
def test_the_admins_customer_list_has_an_offboarded_column_and_filter(dana, client):
    customer_for(spec_data(account_id="444455556666", customer="Still ours"))
    gone = customer_for(spec_data(account_id="777788889999", customer="Gone"))
    gone.offboarded_at, gone.offboard_mode = timezone.now(), "decommission"
    gone.save(update_fields=["offboarded_at", "offboard_mode"])
    client.force_login(dana)
    offboarded = client.get("/admin/provisioning/customer/?offboarded=yes").content.decode()
    assert "Gone" in offboarded and "Still ours" not in offboarded
    assert f"Decommission, {timezone.localtime(gone.offboarded_at):%Y-%m-%d}" in offboarded
    ours = client.get("/admin/provisioning/customer/?offboarded=no").content.decode()
    assert "Still ours" in ours and ">Gone<" not in ours
