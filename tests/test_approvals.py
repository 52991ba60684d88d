"""Approvals (issue #32 points 1, 2, 3, 5): four eyes on what can hurt. alice is on Acme Corp's team and asks;
bob is on the team too and approves; erin is a tech lead off the team; dana is an Admin. The end-to-end tests
run the real worker against the strict sandbox; the rule, the page and the command are tested beside them."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning import tasks
from provisioning.approvals import (
    ApprovalRefused,
    approval_approve,
    approval_decline,
    approval_reasons,
    approval_withdraw,
    approver_must_be_admin,
    plan_start,
    plan_summary,
)
from provisioning.models import AccountRead, ApprovalRule, AuditEvent, Customer, PlanApproval, Run
from provisioning.offboarding import offboard_confirm
from provisioning.plan import Action, plan_decide
from provisioning.reads import account_read_start
from provisioning.registry import APPROVER_TAG
from provisioning.spec import spec_parse
from provisioning.views.preview import DRAFT
from tests.conftest import _user, customer_make, form_data, preview_read, spec_data, start_run, wait_for_run
from tests.test_drift import _iam, _s3
from tests.test_notify import _assert_no_secret, _sealed_secrets, smtp, webhook  # noqa: F401 (fixtures)
from tests.test_offboarding import _plan
from tests.waiting import refreshed, wait_until

LEAD, DEV = "lead@agency.example", "dev@agency.example"
WITHOUT_DEV = [{"email": LEAD, "role": "tech_lead", "console": True}]


@pytest.fixture
def erin(db):
    return _user("erin", "Tech leads", is_staff=True)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _onboarded(alice, bob) -> Run:
    """Acme Corp onboarded (the set-up: run_create, below the rules), alice and bob on its team."""
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    run.customer.team.add(bob)
    return run


def _read(customer: Customer, user, **overrides) -> AccountRead:
    read = account_read_start(customer=customer, spec=spec_parse(spec_data(**overrides)), user=user)
    wait_until(lambda: refreshed(read).status in ("done", "failed"), timeout=60, message="the read did not end")
    assert read.status == AccountRead.Status.DONE, read.error_message
    return read


def _ask_removal(customer: Customer, alice) -> PlanApproval:
    """alice plans to take dev off the team: a removal, saved as awaiting approval."""
    read = _read(customer, alice, team=WITHOUT_DEV)
    items = plan_decide(read.items, delete=set(), typed={})
    asked = plan_start(spec=spec_parse(read.spec), customer=customer, user=alice, read=read, items=items)
    assert isinstance(asked, PlanApproval) and asked.state == PlanApproval.State.AWAITING
    return asked


def _actions(**where) -> list[str]:
    return list(AuditEvent.objects.filter(**where).order_by("id").values_list("action", flat=True))


# --- The rule (one function) --------------------------------------------------------------------------------


def _item(kind: str, action: str, **params) -> dict:
    return {"kind": kind, "action": action, "identity": params.get("email", kind), "params": params, "differences": []}


MEMBER = {"email": DEV, "role": "member", "policy": "ReadOnlyAccess", "console": False}
LEAD_PARAMS = {"email": LEAD, "role": "tech_lead", "policy": "", "console": True}


@pytest.mark.django_db
def test_the_risky_rule_asks_for_removals_and_administrator_access_and_nothing_else():
    customer = customer_make()
    assert customer.approval_rule == ApprovalRule.RISKY  # APPROVAL_DEFAULT's default
    spec = spec_parse(spec_data())
    codes = lambda items: [r.code for r in approval_reasons(customer=customer, spec=spec, items=items)]  # noqa: E731
    assert codes([_item("team.member", Action.REMOVE, **MEMBER)]) == ["remove"]
    assert codes([_item("team.member", Action.CREATE, **LEAD_PARAMS)]) == ["grant_admin"]
    assert codes([_item("team.member", Action.CREATE, **MEMBER), _item("s3.cors", Action.CHANGE)]) == []
    assert codes([_item("s3.bucket", Action.RELEASE)]) == []  # left in the account: nothing is deleted
    # A lead whose policies already hold AdministratorAccess is not granted it again by a console change.
    kept = _item("team.member", Action.CHANGE, **LEAD_PARAMS)
    kept["differences"] = [{"field": "console access", "expected": "yes", "actual": "no", "repairable": True}]
    assert codes([kept]) == []
    kept["differences"] = [
        {"field": "policies", "expected": "AdministratorAccess", "actual": "none", "repairable": True}
    ]
    assert codes([kept]) == ["grant_admin"]


@pytest.mark.django_db
def test_a_plan_without_a_read_is_judged_too_a_tech_lead_in_the_spec_is_administrator_access(settings):
    reasons = approval_reasons(customer=None, spec=spec_parse(spec_data()), items=None)
    assert [r.code for r in reasons] == ["grant_admin"] and LEAD in reasons[0].sentence
    assert approval_reasons(customer=None, spec=spec_parse(spec_data(team=[])), items=None) == []
    settings.APPROVAL_DEFAULT = "nothing"  # a new customer takes the setting's rule
    assert approval_reasons(customer=None, spec=spec_parse(spec_data()), items=None) == []


@pytest.mark.django_db
def test_offboarding_and_adoption_always_ask_and_only_an_admin_approves_an_adoption():
    customer = customer_make(approval_rule=ApprovalRule.NOTHING)
    spec = spec_parse(spec_data())
    assert approval_reasons(customer=customer, spec=spec, items=[_item("team.member", Action.REMOVE, **MEMBER)]) == []
    offboard = approval_reasons(customer=customer, spec=spec, items=[], offboard="leave")
    assert [r.code for r in offboard] == ["offboard"] and not approver_must_be_admin(offboard)
    adopt = approval_reasons(customer=customer, spec=spec, items=[_item("s3.bucket", Action.ADOPT)])
    assert [r.code for r in adopt] == ["adopt"] and approver_must_be_admin(adopt)
    assert approver_must_be_admin([r.to_json() for r in adopt])  # as stored on the approval
    every = customer_make(name="Every Co", slug="every", aws_account_id="444455556666", approval_rule="every")
    assert [r.code for r in approval_reasons(customer=every, spec=spec, items=[])] == ["every"]


def test_the_summary_line_says_the_plan_in_words():
    spec = spec_parse(spec_data())
    items = [_item("team.member", Action.REMOVE, **MEMBER), _item("s3.bucket", Action.RELEASE)]
    assert plan_summary(customer_name="Acme", spec=spec, items=items) == "Acme: remove 1 user, release 1 bucket"
    everything = plan_summary(customer_name="Acme", spec=spec, items=None)
    assert everything.startswith("Acme: create ") and "3 users" in everything and "1 repository" in everything
    offboard = plan_summary(customer_name="Acme", spec=spec, items=items[:1], offboard="leave")
    assert offboard == "Acme: offboard (the agency leaves), remove 1 user"


# --- End to end: asking, approving, the lock, voiding --------------------------------------------------------


def test_a_removal_awaits_approval_a_repair_still_runs_and_another_team_member_approves_it(
    worker,
    alice,
    bob,
    erin,
    dana,
    sandbox,
    smtp,  # noqa: F811
    webhook,  # noqa: F811
):
    onboarding = _onboarded(alice, bob)
    customer = onboarding.customer
    asked = _ask_removal(customer, alice)
    assert asked.summary == "Acme Corp: remove 1 user" and [r["code"] for r in asked.reasons] == ["remove"]
    assert Run.objects.filter(customer=customer).count() == 1  # nothing ran, no lock taken
    requested = AuditEvent.objects.get(action="plan.approval_requested", actor=alice)
    assert requested.details["approval"] == str(asked.pk) and requested.target == asked.summary

    # The plan waits outside the lock: a drift repair of the same customer starts and finishes meanwhile.
    _s3(sandbox).delete_bucket_cors(Bucket="acme-app-media")
    repair_read = _read(customer, alice)
    repair_items = plan_decide(repair_read.items, delete=set(), typed={})
    repair = plan_start(
        spec=spec_parse(repair_read.spec),
        customer=customer,
        user=alice,
        read=repair_read,
        items=repair_items,
        repair=True,
    )
    assert isinstance(repair, Run) and wait_for_run(repair).status == Run.Status.SUCCEEDED

    # Never the requester; never someone off the team; each refusal a sentence, audited.
    for person, words in ((alice, "another person approves it"), (erin, "Only Acme Corp's team and Admins")):
        with pytest.raises(ApprovalRefused, match=words):
            approval_approve(approval_id=asked.pk, user=person)
        assert AuditEvent.objects.filter(action="plan.approval_refused", actor=person, outcome="refused").exists()
    assert refreshed(asked).state == PlanApproval.State.AWAITING

    run = wait_for_run(approval_approve(approval_id=asked.pk, user=bob, comment="dev left the project"))
    assert run.status == Run.Status.SUCCEEDED, list(run.steps.values_list("key", "state", "error_message"))
    assert (run.started_by, run.approved_by) == (alice, bob)
    asked.refresh_from_db()
    assert (asked.state, asked.decided_by, asked.run, asked.comment) == ("approved", bob, run, "dev left the project")
    confirmed = AuditEvent.objects.get(action="run.confirmed", run=run)
    assert (confirmed.actor_label, confirmed.details["approved_by"]) == ("alice", "bob")
    # The approver is in the run's AWS session as the tag onramp-approver (the role is the template's version 4).
    (session,) = [s for s in sandbox.sessions() if s["arn"].endswith(f"/onramp-run-{run.pk}")]
    assert session["tags"] == {APPROVER_TAG: "bob"} and session["source_identity"] == "alice"
    approved = AuditEvent.objects.get(action="plan.approved")
    assert (approved.actor_label, approved.run_id, approved.details["comment"]) == (
        "bob",
        run.pk,
        "dev left the project",
    )
    assert DEV not in {u["UserName"] for u in _iam(sandbox).list_users(PathPrefix="/onramp/")["Users"]}

    page = _client(alice).get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'id="run-started-by">alice<' in page and 'id="run-approved-by">bob<' in page
    assert reverse("approval_detail", args=[asked.pk]) in page

    # The team and the Admins were told (not the requester): the summary line and a link; no secret anywhere.
    wait_until(lambda: len(smtp.received) >= 3, timeout=30, message="the approval's emails did not arrive")
    asked_to = sorted(rcpt for rcpts, raw in smtp.received if b"Approval asked" in raw for rcpt in rcpts)
    assert asked_to == ["bob@agency.example", "dana@agency.example"]
    link = f"https://onramp.agency.example/approvals/{asked.pk}/"
    assert any(link in text and asked.summary in text for text in webhook.texts())
    _assert_no_secret(_sealed_secrets(onboarding), *smtp.texts(), *webhook.texts())


def test_declined_withdrawn_and_expired_plans_end_so_audited_and_nothing_runs(worker, alice, bob, sandbox):
    customer = _onboarded(alice, bob).customer
    declined, withdrawn, expired = (_ask_removal(customer, alice) for _ in range(3))

    with pytest.raises(ApprovalRefused, match="Say why you decline"):
        approval_decline(approval_id=declined.pk, user=bob, comment=" ")
    approval_decline(approval_id=declined.pk, user=bob, comment="dev still needs read access")
    with pytest.raises(ApprovalRefused, match="Only alice, who asked for this plan, may withdraw it"):
        approval_withdraw(approval_id=withdrawn.pk, user=bob)
    approval_withdraw(approval_id=withdrawn.pk, user=alice)
    PlanApproval.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "provisioning.tasks.approvals_expire" in schedule
    tasks.approvals_expire.delay()  # the beat's sweep, through the worker
    wait_until(lambda: refreshed(expired).state == "expired", timeout=30, message="the sweep did not expire it")

    states = dict(PlanApproval.objects.values_list("pk", "state"))
    assert states == {declined.pk: "declined", withdrawn.pk: "withdrawn", expired.pk: "expired"}
    assert _actions(action__in=["plan.declined", "plan.withdrawn", "plan.expired"]) == [
        "plan.declined",
        "plan.withdrawn",
        "plan.expired",
    ]
    assert AuditEvent.objects.get(action="plan.declined").details["comment"] == "dev still needs read access"
    for ended in (declined, withdrawn, expired):
        with pytest.raises(ApprovalRefused, match="no longer awaiting approval"):
            approval_approve(approval_id=ended.pk, user=bob)
    assert Run.objects.filter(customer=customer).count() == 1
    assert DEV in {u["UserName"] for u in _iam(sandbox).list_users(PathPrefix="/onramp/")["Users"]}


def test_an_approval_is_voided_when_another_run_changed_the_ledger_or_the_account_changed(worker, alice, bob, sandbox):
    customer = _onboarded(alice, bob).customer
    # Another run changes what Onramp keeps (a member added, no approval needed): the plan asked for is void.
    first = _ask_removal(customer, alice)
    team = [*spec_data()["team"], {"email": "new@agency.example", "role": "member", "console": False}]
    read = _read(customer, alice, team=team)
    added = plan_start(spec=spec_parse(read.spec), customer=customer, user=alice, read=read, items=read.items)
    assert isinstance(added, Run) and wait_for_run(added).status == Run.Status.SUCCEEDED
    with pytest.raises(
        ApprovalRefused, match=f"changed since this plan was asked for \\(run {added.short_id} by alice\\)"
    ):
        approval_approve(approval_id=first.pk, user=bob)
    assert refreshed(first).state == PlanApproval.State.VOIDED and "plan again" in first.ended_reason
    assert AuditEvent.objects.filter(action="plan.voided", actor=bob, details__approval=str(first.pk)).exists()

    # The account changes by hand after the plan was read: the run's preflight finds it stale, changes
    # nothing, and the approval it started from is void too.
    second = _ask_removal(customer, alice)
    _s3(sandbox).delete_bucket_cors(Bucket="acme-app-media")
    run = wait_for_run(approval_approve(approval_id=second.pk, user=bob))
    assert run.status == Run.Status.FAILED and run.steps.filter(error_code="PlanStale").exists()
    assert refreshed(second).state == PlanApproval.State.VOIDED and "account changed" in second.ended_reason
    voided = AuditEvent.objects.get(action="plan.voided", run=run)
    assert voided.details["approval"] == str(second.pk)
    assert "new@agency.example" in {u["UserName"] for u in _iam(sandbox).list_users(PathPrefix="/onramp/")["Users"]}
    assert DEV in {u["UserName"] for u in _iam(sandbox).list_users(PathPrefix="/onramp/")["Users"]}


def test_an_offboarding_always_asks_even_when_the_rule_asks_for_nothing(worker, alice, bob, dana, sandbox):
    customer = _onboarded(alice, bob).customer
    Customer.objects.filter(pk=customer.pk).update(approval_rule=ApprovalRule.NOTHING)
    customer.refresh_from_db()
    read = _plan(customer, "leave", alice)
    asked = offboard_confirm(read=read, user=alice, delete=set(), typed={})
    assert isinstance(asked, PlanApproval) and [r["code"] for r in asked.reasons] == ["offboard"]
    assert asked.summary == "Acme Corp: offboard (the agency leaves), remove 2 users"
    assert not Run.objects.filter(customer=customer, offboard="leave").exists()

    run = wait_for_run(approval_approve(approval_id=asked.pk, user=dana))  # an Admin needs no team
    assert run.status == Run.Status.SUCCEEDED and (run.started_by, run.approved_by, run.offboard) == (
        alice,
        dana,
        "leave",
    )
    confirmed = AuditEvent.objects.get(action="offboard.confirmed", run=run)
    assert (confirmed.actor_label, confirmed.details["approved_by"]) == ("alice", "dana")
    assert refreshed(customer).offboarded_by == alice


def test_an_admins_emergency_start_is_audited_as_break_glass_and_the_team_is_told(worker, alice, bob, dana, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core import mail

    customer = _onboarded(alice, bob).customer
    read = _read(customer, dana, team=WITHOUT_DEV)
    items = plan_decide(read.items, delete=set(), typed={})
    spec = spec_parse(read.spec)
    with pytest.raises(ApprovalRefused, match="Only an Admin"):
        plan_start(spec=spec, customer=customer, user=alice, read=read, items=items, emergency="the customer asked")
    with pytest.raises(ApprovalRefused, match="Say why"):
        plan_start(spec=spec, customer=customer, user=dana, read=read, items=items, emergency="now")

    reason = "dev's laptop was stolen: their access goes now"
    run = plan_start(spec=spec, customer=customer, user=dana, read=read, items=items, emergency=reason)
    assert isinstance(run, Run) and (run.started_by, run.approved_by) == (dana, dana)
    assert wait_for_run(run).status == Run.Status.SUCCEEDED
    glass = AuditEvent.objects.get(action="plan.break_glass")
    assert (glass.actor_label, glass.run_id, glass.details["reason"]) == ("dana", run.pk, reason)
    assert glass.details["needed_approval_for"] == ["It removes or deletes 1 resource."]
    told = [m for m in mail.outbox if "Break-glass" in m.subject]
    assert sorted(m.to[0] for m in told) == ["alice@agency.example", "bob@agency.example", "dana@agency.example"]
    assert reason in told[0].body and "Acme Corp: remove 1 user" in told[0].subject
    page = _client(bob).get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'id="run-break-glass"' in page


# --- The lock, the page, the preview, the command (no AWS call needed) ----------------------------------------


def _asked_without_read(customer: Customer, user) -> PlanApproval:
    """A plan for a customer new to the ledger (no read: it creates everything), asked for by `user`."""
    asked = plan_start(spec=spec_parse(spec_data()), customer=customer, user=user)
    assert isinstance(asked, PlanApproval)
    return asked


@pytest.mark.django_db
def test_approving_while_another_run_is_in_progress_leaves_the_plan_awaiting(alice, bob):
    customer = customer_make()
    customer.team.add(alice, bob)
    asked = _asked_without_read(customer, alice)
    active = Run.objects.create(customer=customer, started_by=alice, spec=spec_data(), status=Run.Status.RUNNING)
    with pytest.raises(ApprovalRefused, match=f"Run {active.short_id} .* still in progress.*still awaits approval"):
        approval_approve(approval_id=asked.pk, user=bob)
    assert refreshed(asked).state == PlanApproval.State.AWAITING and asked.run is None
    assert AuditEvent.objects.filter(action="run.refused", error_code="RunInProgress").exists()


@pytest.mark.django_db
def test_an_expired_plan_is_refused_at_approval_time_before_the_sweep(alice, bob, settings):
    settings.APPROVAL_TTL = 60
    customer = customer_make()
    customer.team.add(alice, bob)
    asked = _asked_without_read(customer, alice)
    assert abs((asked.expires_at - asked.created_at).total_seconds() - 60) < 5
    PlanApproval.objects.filter(pk=asked.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApprovalRefused, match="it expired"):
        approval_approve(approval_id=asked.pk, user=bob)
    assert refreshed(asked).state == "expired" and not Run.objects.exists()
    assert _actions(action="plan.expired") == ["plan.expired"]


@pytest.mark.django_db
def test_the_approvals_page_lists_what_waits_for_each_person_with_a_count_in_the_menu(alice, bob, erin, dana):
    customer = customer_make()
    customer.team.add(alice, bob)
    asked = _asked_without_read(customer, alice)

    page = _client(bob).get(reverse("approval_list")).content.decode()
    assert asked.summary in page and 'aria-label="1 waiting for you"' in page
    assert reverse("approval_detail", args=[asked.pk]) in page
    own = _client(alice).get(reverse("approval_list")).content.decode()
    assert 'id="nothing-to-decide"' in own and "waiting for you" not in own  # 0 shows nothing
    assert reverse("approval_withdraw", args=[asked.pk]) in own
    assert 'id="nothing-to-decide"' in _client(erin).get(reverse("approval_list")).content.decode()
    assert asked.summary in _client(dana).get(reverse("approval_list")).content.decode()

    # The same preview alice saw, with Approve and Decline for bob; a sentence instead for alice.
    detail = _client(bob).get(reverse("approval_detail", args=[asked.pk])).content.decode()
    assert 'id="approve"' in detail and 'id="decline"' in detail and "Then in parallel" in detail
    mine = _client(alice).get(reverse("approval_detail", args=[asked.pk])).content.decode()
    assert 'id="approve"' not in mine and "another person approves it" in mine and 'id="withdraw"' in mine

    refused = _client(alice).post(reverse("approval_approve", args=[asked.pk]), follow=True)
    assert "another person approves it" in refused.content.decode()
    response = _client(bob).post(reverse("approval_decline", args=[asked.pk]), {"comment": "not this week"})
    assert response.status_code == 302 and refreshed(asked).state == "declined" and asked.decided_by == bob
    assert _client(bob).get(reverse("approval_approve", args=[asked.pk])).status_code == 405  # POST only


@pytest.mark.django_db
def test_the_preview_saves_a_plan_needing_approval_and_says_why(alice, dana, settings, aws):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = _client(alice)
    assert client.post(reverse("onboard"), form_data()).status_code == 302
    preview = preview_read(client).content.decode()
    assert 'id="approval-needed"' in preview and "It grants AdministratorAccess to lead@agency.example" in preview
    assert "Ask for approval" in preview and 'id="break-glass"' not in preview  # alice is no Admin
    response = client.post(reverse("onboard_preview"))
    asked = PlanApproval.objects.get()
    assert response["Location"] == reverse("approval_detail", args=[asked.pk]) and DRAFT not in client.session
    assert asked.requested_by == alice and asked.read is not None and not Run.objects.exists()


@pytest.mark.django_db
def test_an_admin_may_break_glass_from_the_preview(dana, settings, aws):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = _client(dana)
    client.post(reverse("onboard"), form_data())
    assert 'id="break-glass"' in preview_read(client).content.decode()
    response = client.post(
        reverse("onboard_preview"), {"break_glass": "1", "emergency": "the customer's launch is today"}
    )
    run = Run.objects.get()
    assert response["Location"] == reverse("run_detail", args=[run.pk]) and run.approved_by == dana
    assert AuditEvent.objects.get(action="plan.break_glass").details["reason"] == "the customer's launch is today"


@pytest.mark.django_db
def test_the_approval_rule_is_set_by_an_admin_in_the_admin_audited(dana):
    from tests.test_admin import _form

    customer = customer_make()
    url = reverse("admin:provisioning_customer_change", args=[customer.pk])
    assert 'name="approval_rule"' in _client(dana).get(url).content.decode()
    response = _client(dana).post(
        url, _form(slug=customer.slug, approval_rule="every", contacts="", account_alias=None)
    )
    assert response.status_code == 302 and refreshed(customer).approval_rule == ApprovalRule.EVERY
    event = AuditEvent.objects.get(action="customer.changed", actor=dana)
    assert event.details["fields"] == ["approval_rule"] and event.details["approval_rule"] == "every"


def _spec_file(tmp_path, **overrides) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_data(**overrides)))
    return str(path)


@pytest.mark.django_db
def test_the_command_saves_the_plan_as_awaiting_and_says_where_to_approve(aws, alice, tmp_path, settings, capsys):
    settings.PORTAL_URL = "https://onramp.agency.example"
    call_command("onboard", spec=_spec_file(tmp_path), user="alice")
    asked = PlanApproval.objects.get()
    out = capsys.readouterr().out
    assert f"https://onramp.agency.example/approvals/{asked.pk}/" in out and "awaiting approval" in out
    assert "It grants AdministratorAccess to lead@agency.example" in out and not Run.objects.exists()
    with pytest.raises(CommandError, match="Nothing to wait for") as waited:
        call_command("onboard", spec=_spec_file(tmp_path), user="alice", wait=True)
    assert waited.value.returncode == 3


@pytest.mark.django_db
def test_the_command_accepts_approved_by_only_as_an_admins_own_break_glass(aws, alice, bob, dana, tmp_path):
    spec = _spec_file(tmp_path)
    for user, approver in (("alice", "bob"), ("alice", "alice"), ("dana", "bob")):
        with pytest.raises(CommandError, match="--approved-by is an Admin's self-approval") as refused:
            call_command("onboard", spec=spec, user=user, approved_by=approver, reason="the customer asked today")
        assert refused.value.returncode == 2
    assert AuditEvent.objects.filter(action="plan.approval_refused").count() == 3
    with pytest.raises(CommandError, match="--reason") as no_reason:
        call_command("onboard", spec=spec, user="dana", approved_by="dana")
    assert no_reason.value.returncode == 2
    assert not Run.objects.exists() and not PlanApproval.objects.exists()

    call_command("onboard", spec=spec, user="dana", approved_by="dana", reason="the customer's launch is today")
    run = Run.objects.get()
    assert (run.started_by, run.approved_by) == (dana, dana)
    assert AuditEvent.objects.get(action="plan.break_glass").details["reason"] == "the customer's launch is today"
