"""Issue #33, points 8 to 13: what a new tech lead met in a day, each point a test named after it that
fails on the code before its fix."""

import html
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone

from portal.celery import app as celery_app
from provisioning.engine.finish import run_summary
from provisioning.models import Credential, Customer, DriftState, Resource, Run
from provisioning.plan import plan_build, plan_groups
from provisioning.spec import spec_parse
from tests.awsread import account_session
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    EXAMPLE_KEY_ID_2,
    EXAMPLE_KEYS,
    customer_make,
    finished_run,
    form_data,
    seal_key,
    spec_data,
    start_run,
    wait_for_run,
)
from tests.staged import staged_run
from tests.test_desired_state import _apply, _read
from tests.test_drift import _check
from tests.views.test_views import login, text

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")

# --- Point 12: wrong statements ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_point_12_a_run_failed_at_preflight_shows_no_sign_in_url(alice, client):
    run = staged_run(alice, status="failed", states={"preflight": "failed"}, default="skipped")
    run.summary = run_summary(spec=spec_parse(run.spec), steps={}, resources=[])
    run.save(update_fields=["summary"])
    page = text(login(client, alice).get(f"/runs/{run.pk}/"))
    assert "What exists now" in page
    assert "Sign-in URL" not in page and "signin.aws.amazon.com" not in page.split("What exists now")[1]
    assert "Nothing Onramp made or adopted exists in the account yet." in page


def test_point_12_the_decommission_plan_gives_the_app_user_no_console_access():
    items = [
        {"key": "remove:1", "action": "remove", "kind": "iam.app_user", "title": "IAM user (app) acme-app"},
        {"key": "remove:2", "action": "remove", "kind": "team.member", "title": "IAM user (team) lead@agency.example"},
    ]
    page = render_to_string("provisioning/_plan_groups.html", {"groups": [("remove", "Removed", items)]})
    app, member = page.split('data-item="remove:2"')
    assert "console access" not in app.replace("has no console access", "")
    assert "has no console access" in app and "access keys stop working" in app
    assert "Their console access and access keys end" in member


def test_point_12_the_plans_words_for_a_tech_lead_name_iam_user_change_password():
    steps = {step.key: step for step in plan_build(spec_parse(spec_data()))}
    lead = steps["team.member:lead@agency.example"].title
    assert "AdministratorAccess, job-function/Billing, IAMUserChangePassword" in lead
    dev = steps["team.member:dev@agency.example"].title  # no console: no password to change
    assert "IAMUserChangePassword" not in dev


@pytest.mark.django_db
def test_point_12_an_offboarded_customer_is_not_offered_in_the_onboarding_form(alice, client):
    customer_make(offboarded_at=timezone.now(), offboard_mode="leave")
    customer_make(name="Beta Ltd", slug="beta-ltd", aws_account_id="222233334444")
    page = text(login(client, alice).get("/onboard/"))
    assert "Beta Ltd" in page
    assert "Acme Corp" not in page


@pytest.mark.django_db
def test_point_12_change_team_after_reactivate_says_the_removed_team_comes_back(alice, client):
    onboarded = finished_run(alice)
    customer = onboarded.customer
    offboarding = Run.objects.create(
        customer=customer, started_by=alice, spec=onboarded.spec, status=Run.Status.SUCCEEDED, offboard="leave"
    )
    for email in ("lead@agency.example", "dev@agency.example"):
        Resource.objects.create(
            customer=customer,
            kind="team.member",
            identity=email,
            name=email,
            origin=Resource.Origin.CREATED,
            state=Resource.State.REMOVED,
            removed_by_run=offboarding,
            ended_at=timezone.now(),
        )
    Customer.objects.filter(pk=customer.pk).update(offboarded_at=None)  # an Admin reactivated them
    login(client, alice)
    form = text(client.post(f"/customers/{customer.slug}/change/", follow=True))
    assert "reactivated after an offboarding that removed dev@agency.example, lead@agency.example" in form
    assert "starting it creates them again" in form


# --- Point 10: an empty team ------------------------------------------------------------------------------


def _no_team() -> dict:
    data = form_data(**{"team-TOTAL_FORMS": "0"})
    return {name: value for name, value in data.items() if not name.startswith("team-") or "FORMS" in name}


@pytest.mark.django_db
def test_point_10_an_empty_team_is_said_plainly_in_the_plan(alice, client):
    login(client, alice)
    response = client.post("/onboard/", _no_team())
    assert response.status_code == 302 and response["Location"] == "/onboard/preview/"
    page = text(client.get("/onboard/preview/"))
    assert "No team: nobody gets an IAM user or a console sign-in in this account." in page
    assert "Only the app's own user <code>acme-app</code> is Onramp's there." in page

    # With a team, nothing of the kind is said (the customer is on record since its first preview).
    login(client, alice).post("/onboard/", form_data(customer=str(Customer.objects.get().pk), new_customer_name=""))
    assert "No team" not in text(client.get("/onboard/preview/"))


# --- Point 9: renaming the bucket -------------------------------------------------------------------------


def test_point_9_renaming_the_bucket_is_explained_and_the_kept_old_bucket_is_released_not_drift(
    worker, alice, client, sandbox
):
    customer = wait_for_run(start_run(alice, team=[])).customer
    s3 = account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3
    s3.put_object(Bucket="acme-app-media", Key="a.jpg", Body=b"jpeg")
    s3.put_object(Bucket="acme-app-media", Key="b.png", Body=b"png-01")
    renamed = spec_data(team=[], bucket="acme-app-media-2")

    read = _read(alice, renamed)
    (old,) = [item for item in read.items if item["key"] == "s3.bucket:acme-app-media"]
    assert old["action"] == "remove" and old["holdings"] == {"objects": 2, "bytes": 10, "more": False}
    assert "acme-app-media-2 is a new, empty bucket. Onramp copies no object from acme-app-media." in old["note"]
    assert (
        "bucket setting (its environment variable naming the bucket) must change from acme-app-media to"
        in (old["note"])
    )
    plan = render_to_string("provisioning/_plan_groups.html", {"groups": plan_groups(read.items), "read": read})
    assert "It holds data (2 objects, 10\xa0bytes)" in html.unescape(plan)
    assert "Onramp copies no object from acme-app-media" in plan
    assert "it is then released: left in the account, no longer Onramp's, and not reported as drift" in plan

    run = _apply(alice, renamed, read)  # the old bucket's name not typed: kept
    assert "acme-app-media" in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert Resource.objects.get(kind="s3.bucket", name="acme-app-media").state == Resource.State.RELEASED
    page = text(login(client, alice).get(f"/runs/{run.pk}/"))
    notes = page.split('id="plan-notes"')[1]
    assert "kept in the account, released (no longer Onramp's), holding 2 objects, 10\xa0bytes." in notes
    assert "Onramp copies no object from acme-app-media" in notes

    state = _check(customer, alice)
    assert state.state == DriftState.State.IN_SYNC, state.differences


# --- Point 13: cosmetics ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_point_13_the_retry_flash_goes_when_the_run_ends(alice, client):
    run = staged_run(alice, status="succeeded", states={}, default="succeeded")
    login(client, alice)
    assert '<div id="messages">' in text(client.get(f"/runs/{run.pk}/"))
    live = text(client.get(f"/runs/{run.pk}/live/", HTTP_HX_REQUEST="true"))
    assert '<div id="messages" hx-swap-oob="true"></div>' in live  # the flash of its start is swapped out


@pytest.mark.django_db
def test_point_13_the_overall_status_reads_running_once_its_first_step_runs(alice, client):
    run = staged_run(alice, status="pending", states={"preflight": "running"})
    page = text(login(client, alice).get(f"/runs/{run.pk}/"))
    assert '<span class="badge s-running" id="run-status">Running</span>' in page


@pytest.mark.django_db
def test_point_13_the_ledgers_last_run_links_name_their_run(alice, client):
    run = finished_run(alice)
    Resource.objects.create(
        customer=run.customer,
        kind="s3.bucket",
        identity="acme-app-media",
        name="acme-app-media",
        origin=Resource.Origin.CREATED,
        created_by_run=run,
        last_run=run,
    )
    page = text(login(client, alice).get(f"/customers/{run.customer.slug}/"))
    assert f'class="last-run">{run.short_id}</a>' in page
    assert f">run {run.short_id}</a>)" in page
    assert ">run</a>" not in page


@pytest.mark.django_db
def test_point_13_one_date_format_with_its_zone_everywhere_the_admin_included(alice, dana, client):
    when = timezone.make_aware(timezone.datetime(2026, 12, 7, 9, 5))
    customer = customer_make(offboarded_at=when, offboarded_by=alice, offboard_mode="leave")
    Customer.objects.filter(pk=customer.pk).update(created_at=when)
    page = text(login(client, alice).get(f"/customers/{customer.slug}/"))
    assert "on 2026-12-07 09:05 UTC by alice" in page
    admin = text(login(client, dana).get(f"/admin/provisioning/customer/{customer.pk}/change/"))
    assert "2026-12-07 09:05 UTC" in admin  # created at, offboarded
    assert "a.m." not in admin and "Dec. 7, 2026" not in admin


@pytest.mark.django_db
def test_point_13_the_change_forms_heading_names_the_change(alice, client):
    run = finished_run(alice)
    login(client, alice)
    client.post(f"/customers/{run.customer.slug}/change/")
    page = text(client.get("/onboard/?edit=1"))
    assert "<h1>Change Acme Corp's team and settings</h1>" in page
    assert "<h1>Onboard a customer's AWS account</h1>" in text(client.get("/onboard/"))


def test_point_13_the_timelines_legend_has_the_adopted_bars():
    timeline = {"total_text": "2 s", "ticks": [], "branches": []}
    legend = render_to_string("provisioning/_timeline.html", {"timeline": timeline})
    assert '<rect class="tl-work s-adopted" width="14" height="10"/></svg> adopted' in legend


@pytest.mark.django_db
def test_point_13_favicon_is_served(alice, client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg")
    assert '<link rel="icon" href="/static/favicon.svg"' in text(login(client, alice).get("/"))


@pytest.mark.django_db
def test_point_13_removing_the_old_key_asks_first(alice, client):
    run = finished_run(alice)
    new = seal_key(run, secret="x" * 40, access_key_id=EXAMPLE_KEY_ID_2, replaces_access_key_id=EXAMPLE_KEYS[0])
    Credential.objects.filter(pk=new.pk).update(
        state=Credential.State.REVEALED, revealed_by=alice, revealed_at=timezone.now()
    )
    page = text(login(client, alice).get(f"/runs/{run.pk}/"))
    form = page.split(f'action="/credentials/{new.pk}/remove-old-key/"')[1].split(">")[0]
    assert f'data-confirm="Delete the old access key {EXAMPLE_KEYS[0]} now?' in form
    script = Path(finders.find("js/onramp.js")).read_text()
    assert 'getAttribute("data-confirm")' in script and "window.confirm(question)" in script


def test_point_13_emails_are_not_printed_as_celery_redirected_warnings():
    assert celery_app.conf.worker_redirect_stdouts is False


@pytest.mark.django_db
def test_point_13_the_drift_tables_prose_is_not_monospace_and_urls_break_between_their_parts(alice, client):
    customer = finished_run(alice).customer
    since = "2026-12-07T01:00:00+00:00"
    differences = [
        {"key": "s3.cors", "field": "allowed origin", "title": "S3 CORS", "expected": "https://acme-app.example.com",
         "actual": "https://old.example.com", "repairable": True, "since": since},
        {"key": "iam.group", "field": "member x", "title": "IAM group", "expected": "not in the group",
         "actual": "made by hand", "repairable": False, "since": since},
    ]  # fmt: skip
    now = timezone.now()
    DriftState.objects.create(customer=customer, state="drifted", differences=differences, since=now, checked_at=now)
    page = login(client, alice).get(f"/customers/{customer.slug}/").content.decode()
    assert '<code class="wrap">https://<wbr>acme-<wbr>app.<wbr>example.<wbr>com</code>' in page
    group = page.split('data-difference="iam.group|member x"')[1].split("</tr>")[0]
    assert "<td>not in the group</td>" in group and "<code" not in group
