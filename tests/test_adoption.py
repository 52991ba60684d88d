"""Adoption only with the customer's consent (#30 point 3), end to end in the strict sandbox through the pages and
a real worker: every plan reads the account first, a new customer's too; what the spec names and the account
already has is shown as "adopt" with what was found, never "create"; a user outside Onramp's path cannot be
adopted; an adoption starts only by an Admin who confirmed it; and what the run did is said truthfully."""

import io
import re

import pytest
from django.core.management import call_command

from provisioning.approvals import ApprovalRefused, approval_approve
from provisioning.models import AuditEvent, PlanApproval, Resource, Run, StepRun
from provisioning.notify import run_counts
from provisioning.teams import customer_team_join
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, form_data, preview_read, spec_data, wait_for_run
from tests.test_reach import ADMIN, CORS, _user_state
from tests.views.test_views import login, text

# The takeover: the app user named after the customer's admin, another admin as a team member.
TAKEOVER = {
    "app_name": "ops-admin",
    "team-TOTAL_FORMS": "1",
    "team-0-email": "admin@acme.example",
}
USERS = ("ops-admin", "admin@acme.example")


def _customers_account(sandbox):
    """The customer's account before Onramp: their two admins (a console password, a key of its own) and their
    bucket with its own CORS, made by the customer's administrator."""
    session = account_session(sandbox.url, CUSTOMER_ACCOUNT)
    iam, s3 = session.iam, session.client("s3", "us-west-2")
    iam.create_user(UserName="ops-admin")
    iam.attach_user_policy(UserName="ops-admin", PolicyArn=ADMIN)
    iam.create_login_profile(UserName="ops-admin", Password="Their-Own-Password-9!")
    iam.create_user(UserName="admin@acme.example")
    iam.attach_user_policy(UserName="admin@acme.example", PolicyArn=ADMIN)
    iam.create_access_key(UserName="admin@acme.example")
    s3.create_bucket(Bucket="acme-app-media", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_cors(Bucket="acme-app-media", CORSConfiguration=CORS)
    return iam, s3


def _rows(page: str, action: str) -> list[str]:
    return re.findall(rf'<li class="plan-item" data-item="([^"]+)" data-action="{action}">', page)


def _untouched(iam, s3, before: dict) -> None:
    assert {name: _user_state(iam, name) for name in USERS} == before
    assert s3.get_bucket_cors(Bucket="acme-app-media")["CORSRules"] == CORS["CORSRules"]


def test_the_takeover_fails_at_the_plan_and_succeeds_as_an_adoption_once_moved_and_approved_by_an_admin(
    client, worker, alice, bob, dana, sandbox
):
    iam, s3 = _customers_account(sandbox)
    before = {name: _user_state(iam, name) for name in USERS}

    # A tech lead plans it for a customer new to the ledger: the preview reads the account first.
    login(client, alice)
    client.post("/onboard/", form_data(**TAKEOVER))
    page = text(preview_read(client))
    adopted = _rows(page, "adopt")
    assert {"iam.app_user", "team.member:admin@acme.example", "s3.bucket", "s3.cors"} <= set(adopted), adopted
    assert "iam.app_user" not in _rows(page, "create") and "s3.bucket" not in _rows(page, "create")
    assert (
        "user ops-admin exists (path /): 0 access keys, a console password, in no group; "
        "attached AdministratorAccess." in page
    )
    assert "user admin@acme.example exists (path /): 1 access key, no console password" in page
    assert "The bucket has its own CORS configuration (1 rule)." in page
    # Blocked with the customer's command, for both users; Start disabled.
    assert "aws iam update-user --user-name ops-admin --new-path /onramp/" in page
    assert "aws iam update-user --user-name admin@acme.example --new-path /onramp/" in page
    assert re.search(r'<button type="submit" class="primary" id="start" disabled', page)
    refused = text(client.post("/onboard/preview/", follow=True))
    assert "The plan's checks found what would fail" in refused and not Run.objects.exists()
    _untouched(iam, s3, before)

    # The customer hands the users over: their administrator moves them into Onramp's path.
    for name in USERS:
        iam.update_user(UserName=name, NewPath="/onramp/")
    before = {name: _user_state(iam, name) for name in USERS}
    client.post("/onboard/preview/read-again/")
    page = text(preview_read(client))
    assert "update-user" not in page and 'data-reason="adopt"' in page and "an Admin must approve it" in page
    assert re.search(r'<button type="submit" class="primary" id="start"[^>]*>Ask for approval<', page)
    # The tech lead's start saves the plan as awaiting an Admin's approval: nothing runs, nothing changes.
    client.post("/onboard/preview/")
    approval = PlanApproval.objects.get()
    assert approval.state == PlanApproval.State.AWAITING and approval.admin_only and not Run.objects.exists()
    assert AuditEvent.objects.filter(action="plan.approval_requested", actor=alice).exists()
    _untouched(iam, s3, before)

    # Another tech lead of the customer's team may not approve an adoption; an Admin does, and the run adopts.
    customer_team_join(customer=approval.customer, user=bob, via="test")
    with pytest.raises(ApprovalRefused):
        approval_approve(approval_id=approval.pk, user=bob)
    assert not Run.objects.exists()
    _untouched(iam, s3, before)
    client.logout()
    login(client, dana)
    page = text(client.get(f"/approvals/{approval.pk}/"))
    assert "ops-admin" in page and 'id="approve"' in page
    client.post(f"/approvals/{approval.pk}/approve/", {"comment": "the customer handed both users over"})
    run = wait_for_run(Run.objects.get())
    assert run.started_by == alice and run.approved_by == dana

    assert run.status == Run.Status.SUCCEEDED, {s.key: s.error_message for s in run.steps.all() if s.error_message}
    states = dict(run.steps.values_list("key", "state"))
    for key in ("iam.app_user", "team.member:admin@acme.example", "s3.bucket", "s3.cors"):
        assert states[key] == StepRun.State.ADOPTED, (key, states[key])
    ledger = dict(Resource.objects.filter(customer=run.customer).values_list("identity", "origin"))
    assert ledger["ops-admin"] == ledger["admin@acme.example"] == ledger["acme-app-media"] == "adopted"
    assert ledger["Apps"] == "created"
    counts = run_counts(run=run, steps=list(run.steps.all()))
    adopted_rows = [i for i in run.plan if i["action"] == "adopt"]
    assert counts["adopted"] == len(adopted_rows) and counts["created"] == len(run.steps.all()) - 1 - len(adopted_rows)
    # Only now, confirmed, the bucket's CORS is Onramp's.
    assert s3.get_bucket_cors(Bucket="acme-app-media")["CORSRules"] != CORS["CORSRules"]


def test_a_new_customers_plan_creates_what_is_not_there_and_checks_it(client, worker, alice, sandbox, no_approvals):
    """A new customer's preview reads the account: an empty account is all "create", and the plan's checks show."""
    login(client, alice)
    client.post("/onboard/", form_data())
    page = text(preview_read(client))
    assert not _rows(page, "adopt") and "iam.app_user" in _rows(page, "create")
    assert 'data-check="path"' in page and 'data-check="bucket"' in page and 'data-check="billing"' in page
    client.post("/onboard/preview/")
    run = wait_for_run(Run.objects.get())
    assert run.status == Run.Status.SUCCEEDED
    counts = run_counts(run=run, steps=list(run.steps.all()))
    assert counts["adopted"] == 0 and counts["created"] == run.steps.count() - 1


def test_the_command_saves_an_adoption_as_awaiting_an_admins_approval(worker, alice, dana, sandbox, tmp_path):
    iam, s3 = _customers_account(sandbox)
    for name in USERS:
        iam.update_user(UserName=name, NewPath="/onramp/")
    before = {name: _user_state(iam, name) for name in USERS}
    team = [{"email": "admin@acme.example", "role": "tech_lead", "console": True}]
    spec = tmp_path / "spec.json"
    spec.write_text(__import__("json").dumps(spec_data(app_name="ops-admin", team=team)))

    out = io.StringIO()
    call_command("onboard", "--spec", str(spec), "--user", "alice", stdout=out)
    said = out.getvalue()
    assert "an Admin must approve it" in said and "nothing runs until an Admin approves it" in said, said
    approval = PlanApproval.objects.get()
    assert approval.admin_only and approval.state == PlanApproval.State.AWAITING
    assert not Run.objects.exists()
    _untouched(iam, s3, before)


# --- A new customer's plan is checked: each outcome of each check --------------------------------------------


def _read(user, data: dict):
    """A plan's read for a customer new to the ledger (on record, `user` on its team, nothing in its ledger)."""
    from provisioning.models import AccountRead
    from provisioning.reads import account_read_start
    from provisioning.spec import spec_parse
    from tests.conftest import team_customer_for
    from tests.waiting import refreshed, wait_until

    read = account_read_start(customer=team_customer_for(data, user), spec=spec_parse(data), user=user)
    finished = (AccountRead.Status.DONE, AccountRead.Status.FAILED)
    wait_until(lambda: refreshed(read).status in finished, timeout=60, message="the read did not finish")
    return read


def test_a_new_customers_plan_checks_each_outcome(worker, alice, sandbox):
    """Before #30 point 3, a customer new to the ledger got no read and its preview no check. Each outcome for a
    new customer (the customer on record, its ledger empty), from the sandbox as the customer made it."""
    from provisioning.checks import checks_blocking
    from tests.conftest import customer_make
    from tests.test_plan_checks import _checks, _outcomes
    from tests.test_sandbox import OTHER_ACCOUNT
    from tests.test_sandbox_refusals import MANAGED

    session = account_session(sandbox.url, CUSTOMER_ACCOUNT)
    iam = session.iam
    lead = [{"email": "lead@agency.example", "role": "tech_lead", "console": True}]
    # An empty account: every check passes, but Billing's reminder.
    read = _read(alice, spec_data(team=lead))
    assert not Resource.objects.exists() and read.status == "done", read.error_message
    assert _outcomes(read) == {
        "region": "pass",
        "path": "pass",
        "bucket": "pass",
        "alias": "pass",
        "access_keys": "pass",
        "policies": "pass",
        "billing": "warn",
    }
    # A bucket name another account has, and an alias another customer in the ledger has: blocked.
    account_session(sandbox.url, OTHER_ACCOUNT).s3.create_bucket(Bucket="theirs-media")
    other = customer_make(name="Globex", slug="globex", aws_account_id=OTHER_ACCOUNT)
    Resource.objects.create(customer=other, kind="account.alias", identity="globex", name="globex", origin="created")
    read = _read(alice, spec_data(team=lead, bucket="theirs-media", account_alias="globex"))
    assert _outcomes(read)["bucket"] == "block" and _outcomes(read)["alias"] == "block"
    # The account's own other alias warns; a user outside the path blocks with the customer's command.
    iam.create_account_alias(AccountAlias="made-by-hand")
    iam.create_user(UserName="acme-app")
    read = _read(alice, spec_data(team=lead))
    assert _outcomes(read)["alias"] == "warn"
    assert _outcomes(read)["path"] == "block"
    assert "aws iam update-user --user-name acme-app --new-path /onramp/" in _checks(read)["path"]["sentence"]
    # Handed over (in the path) with a key: adopted, its key too, so no key is made and the keys check has
    # nothing to say; the tech lead at the account's quota of managed policies blocks.
    iam.update_user(UserName="acme-app", NewPath="/onramp/")
    iam.create_access_key(UserName="acme-app")
    iam.create_user(UserName="lead@agency.example", Path="/onramp/")
    for name in [name for name in MANAGED if name not in ("AdministratorAccess", "job-function/Billing")][:9]:
        iam.attach_user_policy(UserName="lead@agency.example", PolicyArn=f"arn:aws:iam::aws:policy/{name}")
    read = _read(alice, spec_data(team=lead, account_alias=""))
    outcomes = _outcomes(read)
    assert outcomes["path"] == "pass" and "access_keys" not in outcomes and outcomes["policies"] == "block"
    actions = {item["key"]: item["action"] for item in read.items}
    assert actions["iam.app_user"] == actions["iam.access_key"] == actions["team.member:lead@agency.example"]
    assert actions["iam.app_user"] == "adopt"
    assert [check["name"] for check in checks_blocking(read.checks)] == ["policies"]


@pytest.mark.strict(enabled_regions="")
def test_a_new_customers_plan_in_an_opt_in_region_not_enabled_is_blocked(worker, alice, sandbox):
    from tests.test_plan_checks import _outcomes

    read = _read(alice, spec_data(team=[], region="af-south-1"))
    assert read.status == "failed" and read.error_code == "RegionNotEnabled"
    assert _outcomes(read) == {"region": "block"}


def test_a_plan_adopts_only_what_is_there_and_the_ledger_does_not_hold():
    """The difference itself (no I/O): found and not in the ledger is adopt, with what was found; not found is
    create; a key list with no key is nothing to adopt; what the ledger holds is kept or changed as before."""
    from provisioning.plan import Action, plan_difference
    from provisioning.spec import spec_parse

    spec = spec_parse(spec_data(team=[], account_alias=""))
    user = {"arn": "arn:aws:iam::111122223333:user/onramp/acme-app", "path": "/onramp/", "tagged": False}
    found = {"path": "/onramp/", "keys": 0, "console": False, "groups": ["Admins"], "attached": [], "inline": ["x"]}
    seen = {"iam.app_user": {**user, "groups": ["Admins"], "found": found}, "iam.access_key": {"keys": []}}
    items = {item.key: item for item in plan_difference(spec=spec, ledger=[], seen=seen)}
    assert items["iam.app_user"].action == Action.ADOPT
    assert items["iam.app_user"].note == (
        "user acme-app exists (path /onramp/): 0 access keys, no console password, in groups Admins; attached no "
        "managed policy; inline policies x."
    )
    assert {d["field"] for d in items["iam.app_user"].differences} == {"tag managed-by", "groups"}
    assert items["iam.access_key"].action == items["s3.bucket"].action == items["s3.cors"].action == Action.CREATE
    assert [key for key, item in items.items() if item.action == Action.ADOPT] == ["iam.app_user"]

    held = [{"id": 1, "kind": "iam.app_user", "identity": "acme-app", "name": "acme-app", "origin": "created",
             "params": {"user": "acme-app", "group": "Apps"}}]  # fmt: skip
    items = {item.key: item for item in plan_difference(spec=spec, ledger=held, seen=seen)}
    assert items["iam.app_user"].action == Action.CHANGE and not items["iam.app_user"].note
