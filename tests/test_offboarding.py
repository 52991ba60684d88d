"""Offboarding a customer, end to end (the sandbox, the real worker, PostgreSQL, Redis): the agency leaves
(the team users go, the app's things stay and are handed over) or decommission (everything Onramp made goes,
what holds data only once its name is typed); then no run starts until an Admin reactivates the customer."""

import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from provisioning.customers import CustomerOffboarded
from provisioning.engine.runs import run_create
from provisioning.kinds.iam_user_removal.declaration import USER_REMOVAL
from provisioning.models import AccountRead, AuditEvent, Credential, Customer, Resource, Run
from provisioning.offboarding import OffboardRefused, offboard_confirm, offboard_start
from provisioning.plan import plan_registry, plan_run_steps
from provisioning.spec import spec_parse
from provisioning.vocabulary import OffboardMode
from tests.awsread import account_session
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    approved,
    customer_for,
    form_data,
    spec_data,
    start_run,
    team_customer_for,
    wait_for_run,
)
from tests.waiting import refreshed, wait_until

LEAVE, DECOMMISSION = OffboardMode.LEAVE, OffboardMode.DECOMMISSION


def _onboarded(user, **overrides) -> Customer:
    run = wait_for_run(start_run(user, **overrides))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    return run.customer


def _plan(customer: Customer, mode: str, user) -> AccountRead:
    read = offboard_start(customer=customer, mode=mode, user=user)
    ends = (AccountRead.Status.DONE, AccountRead.Status.FAILED)
    wait_until(lambda: refreshed(read).status in ends, timeout=60, message=lambda: f"the read is still {read.status}")
    assert read.status == AccountRead.Status.DONE, read.error_message
    return read


def _offboard(customer: Customer, mode: str, user, *, delete=(), typed=None) -> Run:
    read = _plan(customer, mode, user)
    run = wait_for_run(approved(offboard_confirm(read=read, user=user, delete=set(delete), typed=typed or {})))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    return run


def _account(sandbox) -> dict:
    """What is in the customer's account, read with boto3 (the role Onramp's template made is not Onramp's)."""
    aws = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2")
    iam = aws.iam
    users = {u["UserName"] for u in iam.list_users()["Users"]}
    return {
        "users": users,
        "keys": {user: len(iam.list_access_keys(UserName=user)["AccessKeyMetadata"]) for user in users},
        "groups": {g["GroupName"] for g in iam.list_groups()["Groups"]},
        "policies": {p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]},
        "aliases": iam.list_account_aliases()["AccountAliases"],
        "buckets": {b["Name"] for b in aws.s3.list_buckets()["Buckets"]},
        "repositories": {r["repositoryName"] for r in aws.ecr("us-west-2").describe_repositories()["repositories"]},
    }


def test_when_the_agency_leaves_the_team_users_go_and_the_apps_things_stay_handed_over(worker, alice, sandbox):
    customer = _onboarded(alice)
    read = _plan(customer, LEAVE, alice)
    actions = {item["key"]: item["action"] for item in read.items}
    assert actions["team.member:lead@agency.example"] == actions["team.member:dev@agency.example"] == "remove"
    assert {a for k, a in actions.items() if not k.startswith("team.member")} == {"keep"}

    run = wait_for_run(approved(offboard_confirm(read=read, user=alice, delete=set(), typed={})))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    account = _account(sandbox)
    assert account["users"] == {"acme-app"} and account["keys"] == {"acme-app": 1}
    assert account["buckets"] == {"acme-app-media"} and account["repositories"] == {"acme-app"}
    assert account["policies"] == {"MediaManagement-acme-app-media"} and account["groups"] == {"Apps"}
    calls = set(AuditEvent.objects.filter(run=run, action__startswith="aws.").values_list("action", flat=True))
    assert {"aws.iam.DeleteLoginProfile", "aws.iam.DetachUserPolicy", "aws.iam.DeleteUser"} <= calls
    assert not any(call.startswith(("aws.iam.Create", "aws.iam.Put", "aws.s3.Put")) for call in calls)

    handed = {row["name"]: row for row in run.summary["offboard"]["handed_over"]}
    assert {"acme-app", "acme-app-media", "MediaManagement-acme-app-media", "Apps", "acme-corp"} <= set(handed)
    assert handed["acme-app"]["arn"] == f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/onramp/acme-app"
    assert not any("agency.example" in name for name in handed)
    customer.refresh_from_db()
    assert (customer.offboard_mode, customer.offboarded_by) == (LEAVE, alice) and customer.offboarded_at
    assert Resource.objects.get(kind="team.member", identity="lead@agency.example").state == "removed"
    # The removed lead's console password is wiped unrevealed; the app's key, handed over, still waits to be revealed.
    secrets = dict(Credential.objects.filter(customer=customer).values_list("user_name", "state"))
    assert secrets == {"lead@agency.example": "expired", "acme-app": "sealed"}
    wiped = AuditEvent.objects.get(action="credential.expired", target="lead@agency.example")
    assert wiped.details["reason"] == "the offboarding removed the user"
    for action in ("offboard.requested", "offboard.read", "offboard.confirmed", "customer.offboarded"):
        assert AuditEvent.objects.filter(customer=customer, action=action).exists(), action

    client = Client()
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'id="handover"' in page and "acme-app-media" in page and "OnrampAccess" in page
    assert "deletes the CloudFormation stack" in page


def test_an_offboarded_customer_refuses_every_new_run_until_an_admin_reactivates_them(worker, alice, dana, tmp_path):
    customer = _onboarded(alice, team=[])
    failed = Run.objects.create(customer=customer, started_by=alice, spec=spec_data(team=[]), status="failed")
    _offboard(customer, LEAVE, alice)
    sentence = "Acme Corp was offboarded (the agency leaves)"

    with pytest.raises(CustomerOffboarded, match=re.escape(sentence)):
        start_run(alice, team=[])
    with pytest.raises(CustomerOffboarded, match="until an Admin reactivates them"):
        offboard_start(customer=customer, mode=DECOMMISSION, user=alice)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_data(team=[])))
    with pytest.raises(CommandError, match=re.escape(sentence)):
        call_command("onboard", spec=str(spec_file), user="alice")

    client = Client()
    client.force_login(alice)
    for url, data in (
        (reverse("customer_change", args=[customer.slug]), {}),
        (reverse("run_reopen", args=[failed.pk]), {"to": "preview"}),
        (reverse("run_retry", args=[failed.pk]), {}),
        (reverse("customer_offboard", args=[customer.slug]), {"mode": "decommission"}),
        (reverse("onboard"), form_data(customer=str(customer.pk), new_customer_name="")),
    ):
        response = client.post(url, data, follow=True)
        assert sentence in response.content.decode(), url
    page = client.get(reverse("customer_detail", args=[customer.slug])).content.decode()
    assert 'id="offboarded"' in page and 'id="change"' not in page and 'id="offboard"' not in page
    listed = client.get(reverse("customer_list")).content.decode()
    assert '<td class="offboarded"><span class="badge" title="No run starts until an Admin reactivates them">' in listed
    assert Run.objects.filter(customer=customer).count() == 3  # the onboarding, the failed one, the offboarding
    assert (
        AuditEvent.objects.filter(customer=customer, action="run.refused", error_code="CustomerOffboarded").count()
        == 7  # each way in above but the offboard page, which refuses before asking
    )

    admin = Client()
    admin.force_login(dana)
    changelist = reverse("admin:provisioning_customer_changelist")
    response = admin.post(changelist, {"action": "reactivate", "_selected_action": [customer.pk]}, follow=True)
    assert "Acme Corp is reactivated" in response.content.decode()
    customer.refresh_from_db()
    assert customer.offboarded_at is None and customer.offboard_mode == ""
    event = AuditEvent.objects.get(customer=customer, action="customer.reactivated")
    assert event.actor == dana and event.details["mode"] == LEAVE and event.details["offboarded_by"] == "alice"
    assert wait_for_run(start_run(alice, team=[])).status == Run.Status.SUCCEEDED  # runs start again
    assert ">offboarded</span>" not in client.get(reverse("customer_list")).content.decode()


def test_a_tech_lead_cannot_reactivate_a_customer(worker, alice, bob):
    customer = _onboarded(alice, team=[])
    _offboard(customer, LEAVE, alice)
    client = Client()
    client.force_login(bob)
    client.post(
        reverse("admin:provisioning_customer_changelist"), {"action": "reactivate", "_selected_action": [customer.pk]}
    )
    customer.refresh_from_db()
    assert customer.is_offboarded and not AuditEvent.objects.filter(action="customer.reactivated").exists()


def test_decommission_keeps_a_bucket_holding_data_unless_its_name_is_typed_then_leaves_nothing(
    worker, alice, dana, sandbox
):
    customer = _onboarded(alice)
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.put_object(Bucket="acme-app-media", Key="photo.jpg", Body=b"jpeg")
    read = _plan(customer, DECOMMISSION, alice)
    bucket = next(item for item in read.items if item["kind"] == "s3.bucket")
    assert bucket["action"] == "remove" and bucket["holds_data"] is True
    assert {item["action"] for item in read.items} == {"remove"}  # all of it was created by Onramp

    run = wait_for_run(
        approved(offboard_confirm(read=read, user=alice, delete=set(), typed={bucket["resource"]: "acme-app"}))
    )
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    account = _account(sandbox)
    assert account["buckets"] == {"acme-app-media"}  # kept: its name was not typed (a wrong one was)
    assert s3.list_objects_v2(Bucket="acme-app-media")["KeyCount"] == 1
    assert account["users"] == set() and account["groups"] == set() and account["policies"] == set()
    assert account["aliases"] == [] and account["repositories"] == set()
    assert [row["name"] for row in run.summary["offboard"]["handed_over"]] == ["acme-app-media"]
    assert set(Credential.objects.filter(customer=customer).values_list("state", flat=True)) == {"expired"}
    present = Resource.objects.filter(customer=customer, state=Resource.State.PRESENT)
    assert list(present.values_list("kind", flat=True)) == ["s3.bucket"]

    admin = Client()
    admin.force_login(dana)
    admin.post(
        reverse("admin:provisioning_customer_changelist"), {"action": "reactivate", "_selected_action": [customer.pk]}
    )
    read = _plan(customer, DECOMMISSION, alice)
    (bucket,) = [item for item in read.items if item["action"] == "remove"]
    run = _offboard_read(read, alice, typed={bucket["resource"]: "acme-app-media"})
    assert _account(sandbox)["buckets"] == set()
    assert not Resource.objects.filter(customer=customer, state=Resource.State.PRESENT).exists()
    assert run.summary["offboard"]["handed_over"] == []


def _offboard_read(read: AccountRead, user, *, typed) -> Run:
    run = wait_for_run(approved(offboard_confirm(read=read, user=user, delete=set(), typed=typed)))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    return run


def test_decommission_releases_what_was_there_before_onramp_unless_ticked(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="legacy@agency.example", Path="/onramp/")
    iam.create_user(UserName="old@agency.example", Path="/onramp/")
    team = [
        {"email": "legacy@agency.example", "role": "member", "policy": "ReadOnlyAccess", "console": False},
        {"email": "old@agency.example", "role": "member", "policy": "ReadOnlyAccess", "console": False},
    ]
    customer = _onboarded(alice, team=team)
    read = _plan(customer, DECOMMISSION, alice)
    by_key = {item["key"].split(":")[1]: item for item in read.items if item["kind"] == "team.member"}
    assert {item["action"] for item in by_key.values()} == {"release"}
    old = by_key["old@agency.example"]["resource"]
    run = wait_for_run(approved(offboard_confirm(read=read, user=alice, delete={old}, typed={})))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    assert _account(sandbox)["users"] == {"legacy@agency.example"}  # released, left; the ticked one deleted
    legacy = Resource.objects.get(kind="team.member", identity="legacy@agency.example")
    assert legacy.state == Resource.State.RELEASED
    assert [row["name"] for row in run.summary["offboard"]["handed_over"]] == ["legacy@agency.example"]


def test_an_offboarding_removes_a_user_before_its_group_and_its_policy_before_the_user():
    """Removed the other way round from making (the plan alone, no AWS): chains that would race each other
    otherwise (the group's removal takes members out while the user's removal leaves its groups)."""
    spec = spec_parse(spec_data(team=[]))
    rows = [
        ("iam.group", "Apps", {"name": "Apps"}),
        ("iam.app_user", "acme-app", {"name": "acme-app"}),
        ("iam.media_policy", "MediaManagement-acme-app-media", {"name": "MediaManagement-acme-app-media", "arn": "x"}),
        ("s3.bucket", "acme-app-media", {"name": "acme-app-media"}),
    ]
    items = [
        {"key": f"{kind}:{identity}", "kind": kind, "identity": identity, "action": "remove", "params": params,
         "resource": n, "holds_data": False}
        for n, (kind, identity, params) in enumerate(rows)
    ]  # fmt: skip
    steps = {
        s.key: s for s in plan_run_steps(spec=spec, items=items, read_id="r", registry=plan_registry(DECOMMISSION))
    }
    assert "remove.user:acme-app" in steps["remove.iam.group:Apps"].depends_on
    assert (
        "remove.iam.media_policy:MediaManagement-acme-app-media"
        in steps["remove.user.login_profile:acme-app"].depends_on
    )
    assert steps["remove.s3.bucket:acme-app-media"].depends_on == ("preflight",)


def test_each_step_of_a_users_removal_waits_on_the_one_before_it():
    """AWS refuses DeleteUser while the user still has keys, a password, groups, policies… (DeleteConflict), and
    two removal steps of one user at once race each other: within one user's removal, each step waits on the
    step before it, in USER_REMOVAL's order, and the first waits for what comes before the removals."""
    spec = spec_parse(spec_data(team=[]))
    rows = [
        ("iam.app_user", "acme-app", {"name": "acme-app"}),
        ("team.member", "lead@agency.example", {"name": "lead@agency.example"}),
    ]
    items = [
        {"key": f"{kind}:{identity}", "kind": kind, "identity": identity, "action": "remove", "params": params,
         "resource": n, "holds_data": False}
        for n, (kind, identity, params) in enumerate(rows)
    ]  # fmt: skip
    steps = plan_run_steps(spec=spec, items=items, read_id="r", registry=plan_registry(DECOMMISSION))
    by_key = {s.key: s for s in steps}
    for user in ("acme-app", "lead@agency.example"):
        chain = [by_key[f"{kind}:{user}"] for kind in USER_REMOVAL]
        assert chain[0].depends_on == ("preflight",), chain[0].depends_on
        for before, step in zip(chain, chain[1:], strict=False):
            assert step.depends_on == (before.key,), (step.key, step.depends_on)
        # Listed in the order they run, too (the run page shows them so).
        positions = [steps.index(step) for step in chain]
        assert positions == sorted(positions)


@pytest.mark.django_db
def test_an_offboarding_needs_a_mode_and_an_onboarding(alice):
    customer = customer_for(spec_data())
    with pytest.raises(OffboardRefused, match="Choose how"):
        offboard_start(customer=customer, mode="vanish", user=alice)
    with pytest.raises(OffboardRefused, match="has no onboarding"):
        offboard_start(customer=customer, mode=LEAVE, user=alice)


@pytest.mark.django_db
def test_run_create_itself_refuses_an_offboarded_customer(alice):
    """The last word, whatever the way in (a drift repair, a script): run_create refuses, audited."""
    from django.utils import timezone

    customer = team_customer_for(spec_data(), alice)
    Customer.objects.filter(pk=customer.pk).update(offboarded_at=timezone.now(), offboard_mode=DECOMMISSION)
    with pytest.raises(CustomerOffboarded, match=r"offboarded \(decommission\) on .* by someone"):
        run_create(spec=spec_parse(spec_data()), customer=customer, user=alice)
    assert not Run.objects.exists()
    assert AuditEvent.objects.filter(action="run.refused", error_code="CustomerOffboarded").exists()


def test_a_stale_offboarding_is_planned_again_in_its_own_mode_not_as_an_onboarding(worker, alice, sandbox):
    customer = _onboarded(alice, team=[])
    read = _plan(customer, DECOMMISSION, alice)
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.put_object(Bucket="acme-app-media", Key="late.jpg", Body=b"jpeg")  # the account changes meanwhile
    run = wait_for_run(approved(offboard_confirm(read=read, user=alice, delete=set(), typed={})))
    assert run.status == Run.Status.FAILED and run.steps.get(key="preflight").error_code == "PlanStale"
    customer.refresh_from_db()
    assert not customer.is_offboarded and _account(sandbox)["users"] == {"acme-app"}  # nothing was removed

    client = Client()
    client.force_login(alice)
    response = client.post(reverse("run_reopen", args=[run.pk]), {"to": "preview"})
    assert response.url == f"{reverse('customer_offboard', args=[customer.slug])}?mode=decommission"
    page = client.get(response.url).content.decode()
    assert 'value="decommission" id="mode-decommission" checked' in page
