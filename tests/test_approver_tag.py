"""The approver of a run in its AWS session (issue 32, point 2): the session tag onramp-approver on the run's
AssumeRole, where the customer's role allows sts:TagSession (template version 4); the approver on the run page and
in the run's audit. The approvals themselves (who may approve, when) are another branch's: these tests set
`approved_by` through run_create's keyword, as the approval does."""

import json
import re
import unicodedata

import pytest
from django.conf import settings
from django.test import Client

from provisioning.aws.accounts import AwsAccount, run_accounts
from provisioning.engine.runs import run_create
from provisioning.models import AuditEvent, Run
from provisioning.plan import plan_build, plan_transcript
from provisioning.registry import (
    APPROVER_TAG,
    ROLE_TRUST_ACTIONS,
    assume_role_call,
    role_allows_session_tags,
    session_tag_value,
)
from provisioning.role import template as role_template
from provisioning.spec import spec_parse
from tests.conftest import CUSTOMER_ACCOUNT, PORTAL_USER, finished_run, spec_data, team_customer_for, wait_for_run

# STS API reference, Tag: Value is 0-256 characters of [\p{L}\p{Z}\p{N}_.:/=+\-@]*.
_CATEGORIES = ("L", "Z", "N")


def _valid_tag_value(value: str) -> bool:
    return len(value) <= 256 and all(unicodedata.category(ch)[0] in _CATEGORIES or ch in "_.:/=+-@" for ch in value)


@pytest.mark.parametrize(
    ("username", "value"),
    [
        ("bob", "bob"),
        ("bob.smith@agency.example", "bob.smith@agency.example"),
        ("josé muñoz", "josé muñoz"),  # letters and spaces of any script are allowed as they are
        ("Дмитрий", "Дмитрий"),
        ("bob#1 (ops)", "bob-1 -ops-"),
        ("x" * 300, "x" * 256),
    ],
)
def test_an_approvers_name_becomes_a_tag_value_sts_allows(username, value):
    assert session_tag_value(username) == value
    assert _valid_tag_value(session_tag_value(username))


def test_the_assume_role_call_carries_tags_only_when_given():
    common = {"role_arn": "arn:aws:iam::111122223333:role/OnrampAccess", "external_id": "x", "session_name": "s"}
    assert "Tags" not in assume_role_call(**common, source_identity="alice").params
    call = assume_role_call(**common, source_identity="alice", tags={APPROVER_TAG: "bob"})
    assert call.params["Tags"] == [{"Key": "onramp-approver", "Value": "bob"}]


def test_the_transcript_names_the_approver_when_there_is_one():
    spec = spec_parse(spec_data())
    steps = plan_build(spec)
    plain = plan_transcript(spec, steps, source_identity="alice")
    approved = plan_transcript(spec, steps, source_identity="alice", approver="bob")
    assume = next(line for line in approved.splitlines() if line.startswith("aws sts assume-role "))
    assert """--tags '[{"Key":"onramp-approver","Value":"bob"}]'""" in assume
    plain_assume = next(line for line in plain.splitlines() if line.startswith("aws sts assume-role "))
    assert "--tags" not in plain_assume and "onramp-approver" not in plain


def test_only_roles_of_version_4_and_later_allow_the_tag():
    assert role_allows_session_tags(4) is True
    assert role_allows_session_tags(3) is False and role_allows_session_tags(0) is False
    assert role_allows_session_tags(None) is None  # not read yet: tried (account_for_run)
    assert "sts:TagSession" in ROLE_TRUST_ACTIONS[4] and "sts:TagSession" not in ROLE_TRUST_ACTIONS[3]


def test_a_runs_session_is_cached_by_its_tags():
    """A run approved by bob never reuses a session tagged for someone else, or an untagged one."""
    run_id = "00000000-0000-0000-0000-000000000001"
    untagged = AwsAccount({}, region="us-west-2", account_id=CUSTOMER_ACCOUNT, access="role")
    bobs = AwsAccount({}, region="us-west-2", account_id=CUSTOMER_ACCOUNT, access="role")
    try:
        run_accounts.put(run_id, untagged)
        run_accounts.put(run_id, bobs, {APPROVER_TAG: "bob"})
        assert run_accounts.get(run_id) is untagged
        assert run_accounts.get(run_id, {APPROVER_TAG: "bob"}) is bobs
        assert run_accounts.get(run_id, {APPROVER_TAG: "eve"}) is None
        run_accounts.forget(run_id)
        assert run_accounts.get(run_id) is None and run_accounts.get(run_id, {APPROVER_TAG: "bob"}) is None
    finally:
        run_accounts.forget(run_id)


@pytest.mark.django_db
def test_the_run_page_names_the_approver(alice, bob):
    run = finished_run(alice)
    client = Client()
    client.force_login(alice)
    assert "run-approved-by" not in client.get(f"/runs/{run.pk}/").content.decode()
    Run.objects.filter(pk=run.pk).update(approved_by=bob)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert re.search(r'approved by <span id="run-approved-by">bob<', page)


def _session_of(aws, run: Run) -> dict:
    (session,) = [s for s in aws.sessions() if s["arn"].endswith(f"/onramp-run-{run.pk}")]
    return session


def test_an_approved_run_names_its_approver_in_its_aws_session(worker, aws, alice, bob):
    """End to end in the strict sandbox (its trust and identity rules on): the run's AssumeRole carries the tag,
    which the role's trust policy (version 4) and Onramp's own policy allow; a run without approver carries none."""
    data = spec_data()
    customer = team_customer_for(data, alice)
    run = wait_for_run(run_create(spec=spec_parse(data), customer=customer, user=alice, approved_by=bob))
    assert run.status == Run.Status.SUCCEEDED, [s.error_message for s in run.steps.all() if s.error_message]
    assert run.approved_by == bob
    session = _session_of(aws, run)
    assert session["tags"] == {APPROVER_TAG: "bob"} and session["source_identity"] == "alice"
    confirmed = AuditEvent.objects.get(run=run, action="run.confirmed")
    assert confirmed.details["approved_by"] == "bob" and confirmed.actor_id == alice.pk
    (assumed,) = AuditEvent.objects.filter(run=run, action="aws.sts.AssumeRole")
    assert assumed.details["params"]["Tags"] == [{"Key": APPROVER_TAG, "Value": "bob"}]
    assert not AuditEvent.objects.filter(run=run, action="run.approver_not_in_session").exists()

    plain = wait_for_run(run_create(spec=spec_parse(data), customer=customer, user=alice))
    assert plain.status == Run.Status.SUCCEEDED and plain.approved_by is None
    assert _session_of(aws, plain)["tags"] == {}
    assert "approved_by" not in AuditEvent.objects.get(run=plain, action="run.confirmed").details


def test_a_tag_refused_by_aws_is_dropped_and_the_audit_says_so(worker, aws, alice, bob):
    """Onramp's own identity without sts:TagSession (an operator who did not update its policy after this release):
    AWS refuses the tagged AssumeRole; the run assumes the role again without the tag, goes ahead, and its audit
    says why."""
    policy = role_template.portal_policy_document()
    policy["Statement"][0]["Action"].remove("sts:TagSession")
    iam = aws.admin(settings.PORTAL_AWS_ACCOUNT_ID).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    iam.put_user_policy(UserName=PORTAL_USER, PolicyName="access", PolicyDocument=json.dumps(policy))
    data = spec_data()
    customer = team_customer_for(data, alice)
    run = wait_for_run(run_create(spec=spec_parse(data), customer=customer, user=alice, approved_by=bob))
    assert run.status == Run.Status.SUCCEEDED, [s.error_message for s in run.steps.all() if s.error_message]
    assert _session_of(aws, run)["tags"] == {}
    refused = AuditEvent.objects.get(run=run, action="aws.sts.AssumeRole", outcome="error")
    assert refused.details["params"]["Tags"] == [{"Key": APPROVER_TAG, "Value": "bob"}]
    (note,) = AuditEvent.objects.filter(run=run, action="run.approver_not_in_session")
    assert note.details["approved_by"] == "bob" and "sts:TagSession" in note.details["reason"]
    assert note.step_key == "preflight" and note.target == "bob"
