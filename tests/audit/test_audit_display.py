"""How the audit history shows its rows: the step's title (looked up for the whole page at once), long
ARNs shortened with the full value kept on hover and on the event's page."""

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.audit.chain import audit_record
from provisioning.models import AuditEvent
from provisioning.templatetags.onramp import arn_short, breakable_action
from tests.staged import staged_run

ROLE_ARN = "arn:aws:iam::111122223333:role/OnrampAccess"


def _rows(response) -> list[str]:
    return re.findall(r'<tr data-event="\d+">(.*?)</tr>', response.content.decode(), re.S)


def _events(run, count: int) -> None:
    steps = list(run.steps.order_by("position"))
    for n in range(count):
        step = steps[n % len(steps)]
        audit_record(action="aws.iam.GetUser", actor_label="worker for alice", run=run, step_key=step.key, target="x")


@pytest.mark.django_db
def test_an_audit_row_shows_its_steps_title_with_the_key_on_hover(client, alice):
    client.force_login(alice)  # itself an auth.login event, the oldest row
    run = staged_run(alice, status="succeeded", states={}, default="succeeded")
    audit_record(
        action="aws.iam.AttachUserPolicy",
        actor_label="worker for alice",
        customer=run.customer,
        run=run,
        step_key="team.member:lead@agency.example",
        target="lead@agency.example",
    )
    audit_record(action="auth.login", actor=alice, target="alice")  # no step
    rows = _rows(client.get("/audit/"))
    title = (
        "Team tech lead lead@agency.example (AdministratorAccess, job-function/Billing, IAMUserChangePassword), "
        "console access"
    )
    step_cell = re.search(r'<td class="step"[^>]*>(.*?)</td>', rows[1], re.S).group(1)
    assert html.unescape(step_cell) == f'<span title="team.member:lead@agency.example">{title}</span>'
    assert re.search(r'<td class="step">\s*</td>', rows[0])  # a login belongs to no step


@pytest.mark.django_db
def test_the_step_titles_cost_one_query_for_the_whole_page(client, alice):
    """Not one query per row: a page of 2 events and a page of 50 make the same number of queries."""
    client.force_login(alice)  # an auth.login row, then the steps' rows
    run = staged_run(alice, status="succeeded", states={}, default="succeeded")
    _events(run, 2)
    with CaptureQueriesContext(connection) as few:
        assert len(_rows(client.get("/audit/"))) == 3
    other = staged_run(alice, status="succeeded", states={}, default="succeeded", account_id="222233334444")
    _events(run, 24)
    _events(other, 24)
    with CaptureQueriesContext(connection) as many:
        rows = _rows(client.get("/audit/"))  # the 50 newest: every one of them a step's
    assert len(rows) == 50
    assert len(many.captured_queries) == len(few.captured_queries)
    assert all('<span title="' in re.search(r'<td class="step"[^>]*>(.*?)</td>', r, re.S).group(1) for r in rows)
    step_queries = [q["sql"] for q in many.captured_queries if 'FROM "provisioning_steprun"' in q["sql"]]
    assert len(step_queries) == 1


def test_an_arn_is_shortened_to_its_resource_and_anything_else_is_left_alone():
    assert arn_short(ROLE_ARN) == "arn:…:role/OnrampAccess"
    assert arn_short("arn:aws:iam::aws:policy/job-function/Billing") == "arn:…:policy/job-function/Billing"
    assert arn_short("arn:aws:s3:::acme-app-media") == "arn:…:acme-app-media"
    assert arn_short("acme-app-media") == "acme-app-media"
    assert arn_short("arn:not-quite") == "arn:not-quite"
    assert arn_short("") == ""


def test_an_action_name_may_break_at_its_dots_and_capitals_and_stays_escaped():
    assert str(breakable_action("aws.iam.ListAttachedUserPolicies")) == (
        "aws.<wbr>iam.<wbr>List<wbr>Attached<wbr>User<wbr>Policies"
    )
    assert str(breakable_action("<script>x</script>")) == "&lt;script&gt;x&lt;/script&gt;"


@pytest.mark.django_db
def test_a_long_arn_is_short_in_the_list_and_whole_on_hover_and_in_the_detail(client, alice):
    event = audit_record(action="aws.sts.AssumeRole", actor_label="worker for alice", target=ROLE_ARN)
    client.force_login(alice)
    (row,) = _rows(client.get("/audit/?action=aws.sts.AssumeRole"))
    target = re.search(r'<td class="target">(.*?)</td>', row, re.S).group(1)
    assert html.unescape(target) == f'<span title="{ROLE_ARN}">arn:…:role/OnrampAccess</span>'
    detail = client.get(f"/audit/{event.pk}/").content.decode()
    assert f'<dd class="target">{ROLE_ARN}</dd>' in detail


def test_an_already_there_answer_is_neutral_and_not_an_error(worker, alice, sandbox, client):
    """A create that finds its resource there (the step adopts it) is an expected answer, shown as such;
    "Outcome: error" finds only real failures."""
    from tests.awsread import account_session
    from tests.conftest import CUSTOMER_ACCOUNT, start_run, wait_for_run

    account_session(sandbox.url, CUSTOMER_ACCOUNT).iam.create_group(GroupName="Apps", Path="/onramp/")
    run = wait_for_run(start_run(alice, team=[]))
    create = AuditEvent.objects.get(run=run, action="aws.iam.CreateGroup")
    assert (create.outcome, create.error_code) == ("expected", "EntityAlreadyExists")
    assert run.steps.get(key="iam.group").state == "adopted"
    client.force_login(alice)
    page = client.get("/audit/", {"run": str(run.pk)}).content.decode()
    assert "already there → adopted" in html.unescape(page)
    errors = client.get("/audit/", {"run": str(run.pk), "outcome": "error"}).content.decode()
    assert "aws.<wbr>iam.<wbr>Create<wbr>Group" not in errors and "EntityAlreadyExists" not in errors
