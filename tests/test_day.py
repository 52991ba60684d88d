"""Issue #33, points 8 to 13: what a new tech lead met in a day, each point a test named after it that
fails on the code before its fix."""

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from provisioning.models import Customer, Resource, Run
from provisioning.plan import plan_build
from provisioning.runs import run_summary
from provisioning.spec import spec_parse
from tests.conftest import customer_make, finished_run, form_data, spec_data
from tests.staged import staged_run
from tests.test_views import login, text

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

    login(client, alice).post("/onboard/", form_data())  # with a team, nothing of the kind is said
    assert "No team" not in text(client.get("/onboard/preview/"))
