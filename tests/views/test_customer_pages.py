"""The customer's page, the ways back into the form (change team / settings, edit and start again), the
difference preview's read as htmx polls it, and the onboard command for a customer the ledger knows."""

import io
import json

import pytest
from django.core.management import call_command

from provisioning.models import AccountRead, Run
from tests.conftest import finished_run, start_run, wait_for_run
from tests.views.test_views import login, text
from tests.waiting import wait_until

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")


def _wait_read(client) -> str:
    """Poll the preview as htmx does until the read is done; the page that loads then."""

    def polled():
        poll = client.get("/onboard/preview/", HTTP_HX_REQUEST="true")
        if poll.status_code != 204:
            assert "reading the account back" in text(poll)
        return poll if poll.status_code == 204 else None

    poll = wait_until(polled, timeout=60, interval=0.2, message="the read did not finish")
    assert poll["HX-Refresh"] == "true"  # htmx reloads the whole page into the plan
    return text(client.get("/onboard/preview/"))


def test_change_team_opens_the_form_with_the_current_spec_and_previews_a_difference(worker, alice, client):
    run = wait_for_run(start_run(alice))
    login(client, alice)
    page = text(client.get(f"/customers/{run.customer.slug}/"))
    assert "Change team / settings" in page and "MediaManagement-acme-app-media" in page

    response = client.post(f"/customers/{run.customer.slug}/change/")
    assert response.status_code == 302 and response["Location"] == "/onboard/?edit=1"
    form = text(client.get("/onboard/?edit=1"))
    assert 'value="lead@agency.example"' in form and 'value="acme-app-media"' in form

    draft = client.session["onboarding_draft"]["form"]
    draft["team-1-email"] = ""  # dev leaves the team
    assert client.post("/onboard/", draft).status_code == 302
    first = text(client.get("/onboard/preview/"))
    assert "reading the account back" in first
    plan = _wait_read(client)
    assert "Remove" in plan and "IAM user (team) dev@agency.example" in plan
    assert "Their console access and access keys end, then the IAM user is deleted." in plan
    assert "aws iam delete-user --user-name dev@agency.example" in plan  # the transcript shows the removal


@pytest.mark.django_db
def test_edit_and_start_again_is_for_the_customers_team_or_an_admin(client, alice, bob, dana):
    failed = finished_run(alice)
    Run.objects.filter(pk=failed.pk).update(status=Run.Status.FAILED)
    login(client, bob)
    assert client.post(f"/runs/{failed.pk}/reopen/").status_code == 403  # bob, not on the team, may look, not act
    login(client, dana)
    assert client.post(f"/runs/{failed.pk}/reopen/", {"to": "form"})["Location"] == "/onboard/?edit=1"


@pytest.mark.django_db
def test_people_in_no_group_see_no_customer(client, charlie):
    login(client, charlie)
    assert client.get("/customers/").status_code == 403


def test_the_onboard_command_prints_and_applies_the_difference_for_a_known_customer(worker, alice, tmp_path):
    from tests.conftest import spec_data

    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_data(app_origin="https://other.acme.example")))
    out = io.StringIO()
    call_command("onboard", spec=str(path), user="alice", wait=True, stdout=out)
    printed = out.getvalue()
    assert "Change:" in printed and "CORS" in printed and "kept as they are" in printed
    run = Run.objects.order_by("-created_at").first()
    assert run.status == Run.Status.SUCCEEDED and run.read.status == AccountRead.Status.DONE
    assert list(run.steps.values_list("key", flat=True)) == ["preflight", "s3.cors"]
