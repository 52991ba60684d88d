"""The tech lead's pages through the test client: home, form, preview, confirm, run page, credentials.

The runs that really run use the `worker` fixture (a real Celery worker) and the sandbox AWS.
"""

import html
import json
import re
from pathlib import Path

import pytest

from provisioning import documents, vault
from provisioning.models import AccountRead, AuditEvent, Credential, Customer, Run, StepRun
from provisioning.plan import plan_build
from provisioning.spec import spec_parse
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, EXAMPLE_KEYS, form_data, preview_read, start_run, wait_for_run

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")

ROOT = Path(__file__).resolve().parent.parent.parent


def login(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    return html.unescape(response.content.decode())


def pre_blocks(response, attribute: str) -> dict[str, str]:
    page = response.content.decode()
    return {
        name: html.unescape(body)
        for name, body in re.findall(rf'<pre class="doc" {attribute}="([^"]+)"[^>]*>(.*?)</pre>', page, re.S)
    }


def step_rows(response) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="step [^"]*" data-step="([^"]+)" data-state="([^"]+)">', response.content.decode())


# --- Home --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_home_asks_to_log_in_and_refuses_people_outside_the_groups(client, charlie):
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    login(client, charlie)
    assert client.get("/").status_code == 403
    assert client.get("/onboard/").status_code == 403


@pytest.mark.django_db
def test_home_lists_runs_newest_first_with_status_and_customer(client, alice, bob):
    older = start_run(alice)
    newer = start_run(bob, customer="Globex", account_id="444455556666")
    Run.objects.filter(pk=older.pk).update(status=Run.Status.SUCCEEDED)
    response = login(client, alice).get("/")
    page = text(response)
    assert page.index(f'data-run="{newer.pk}"') < page.index(f'data-run="{older.pk}"')
    older_row = page[page.index(f'data-run="{older.pk}"') :].split("</tr>")[0]
    assert "Acme Corp" in older_row and "Succeeded" in older_row and f"/runs/{older.pk}/" in older_row
    newer_row = page[page.index(f'data-run="{newer.pk}"') :].split("</tr>")[0]
    assert "Globex" in newer_row and "Pending" in newer_row and "bob" in newer_row
    assert 'href="/onboard/"' in page and "Onboard a customer" in page


@pytest.mark.django_db
def test_home_without_runs_invites_to_onboard_the_first_account(client, alice):
    page = text(login(client, alice).get("/"))
    assert "No onboarding yet" in page and "Onboard the first account" in page


# --- The form and the preview -------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_has_every_field_of_the_issue_each_with_a_label(client, alice):
    page = login(client, alice).get("/onboard/").content.decode()
    for name in (
        "customer",
        "new_customer_name",
        "account_id",
        "region",
        "role_arn",
        "external_id",
        "access_key_id",
        "secret_access_key",
        "account_alias",
        "app_name",
        "bucket",
        "app_origin",
        "ecr_repository",
        "team-0-email",
        "team-0-role",
        "team-0-policy",
        "team-0-console",
    ):
        assert f'name="{name}"' in page, name
        assert f'<label for="id_{name}">' in page or f'<label class="choice" for="id_{name}">' in page, name
    for name, values in (("access", ("role", "keys")), ("media_scope", ("bucket", "all"))):
        for value in values:
            assert f'name="{name}" value="{value}"' in page
    assert '<option value="eu-west-1">Europe (Ireland)</option>' in page
    assert 'id="member-template"' in page and "data-scope-warning" in page


@pytest.mark.django_db
def test_a_valid_form_leads_to_the_preview_of_every_step_in_order(client, alice, aws):
    login(client, alice)
    response = client.post("/onboard/", form_data(media_scope="all"))
    assert response.status_code == 302 and response["Location"] == "/onboard/preview/"
    assert "The plan appears here when the read is done" in text(
        client.get("/onboard/preview/")
    )  # every plan reads the account first
    response = preview_read(client)
    assert response.status_code == 200
    spec = spec_parse(client.session["onboarding_draft"]["spec"])
    planned = plan_build(spec)
    keys = re.findall(r'<li class="plan-item" data-item="([^"]+)" data-action="create">', response.content.decode())
    assert keys == [step.key for step in planned[1:]]  # an empty account: every resource created, in order
    page = text(response)
    assert "Summarise" not in page  # the run finishing is not a step
    assert "every bucket in the account" in page  # the scope warning
    assert "https://acme-corp.signin.aws.amazon.com/console" in page
    # The AWS CLI equivalent: first reaching the account as the run will (as alice), then every step's calls.
    commands = [line for line in pre_blocks(response, "id")["cli"].splitlines() if not line.startswith("#")]
    assert commands[0].startswith("aws sts assume-role --role-arn arn:aws:iam::111122223333:role/OnrampAccess")
    assert "--external-id acme-external-id-0123456789 --source-identity alice" in commands[0]
    assert commands[1] == "aws sts get-caller-identity --region us-west-2"
    assert commands[2:] == [line for step in planned for line in step.cli]
    assert any(
        c.startswith("aws s3api create-bucket --bucket acme-app-media --create-bucket-configuration") for c in commands
    )


@pytest.mark.django_db
def test_the_preview_shows_each_document_exactly_as_the_builders_make_it(client, alice, aws):
    login(client, alice)
    client.post("/onboard/", form_data())
    shown = {name: json.loads(body) for name, body in pre_blocks(preview_read(client), "data-document").items()}
    assert shown == {
        "policy": documents.media_policy_document(scope="bucket", bucket="acme-app-media"),
        "public_access_block": documents.public_access_block_document(),
        "cors": documents.cors_document(app_origin="https://acme-app.herokuapp.com"),
        "lifecycle_policy": documents.lifecycle_policy_document(),
    }
    assert len(shown["lifecycle_policy"]["rules"]) == 19


@pytest.mark.django_db
def test_edit_goes_back_to_the_form_with_the_values_and_the_team_kept(client, alice):
    login(client, alice)
    client.post("/onboard/", form_data(**{"team-1-policy": "PowerUserAccess"}))
    page = client.get("/onboard/?edit=1").content.decode()
    assert 'name="new_customer_name" value="Acme Corp"' in page
    assert 'name="bucket" value="acme-app-media"' in page
    assert 'name="app_origin" value="https://acme-app.herokuapp.com"' in page
    assert 'name="team-0-email" value="lead@agency.example"' in page
    assert 'name="team-1-email" value="dev@agency.example"' in page
    assert '<option value="PowerUserAccess" selected>' in page
    assert 'name="team-TOTAL_FORMS" value="2"' in page
    assert 'class="error' not in page  # coming back is not a mistake


@pytest.mark.django_db
def test_edit_with_keys_keeps_the_secret_encrypted_and_does_not_ask_for_it_again(client, alice):
    login(client, alice)
    keys = {"access": "keys", "access_key_id": "AKIAEXAMPLEKEY000001", "secret_access_key": "k" * 40}
    client.post("/onboard/", form_data(**keys))
    page = client.get("/onboard/?edit=1").content.decode()
    assert "k" * 40 not in page and "AKIAEXAMPLEKEY000001" in page
    response = client.post("/onboard/", form_data(**{**keys, "secret_access_key": "", "bucket": "acme-other"}))
    assert response.status_code == 302
    assert client.session["onboarding_draft"]["keys"]["access_key_id"] == "AKIAEXAMPLEKEY000001"


@pytest.mark.django_db
def test_the_preview_without_a_draft_sends_back_to_the_form(client, alice):
    response = login(client, alice).get("/onboard/preview/")
    assert response.status_code == 302 and response["Location"] == "/onboard/"


@pytest.mark.django_db
def test_start_onboarding_creates_the_customer_and_the_run(client, alice, aws):
    login(client, alice)
    client.post("/onboard/", form_data())
    assert preview_read(client).status_code == 200
    assert Run.objects.count() == 0  # the preview runs nothing
    response = client.post("/onboard/preview/")
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.customer.name == "Acme Corp" and run.customer.aws_account_id == CUSTOMER_ACCOUNT
    assert run.customer.external_id == "acme-external-id-0123456789"
    assert run.started_by == alice and run.spec["bucket"] == "acme-app-media"
    assert [s.key for s in run.steps.order_by("position")] == [s.key for s in plan_build(spec_parse(run.spec))]
    assert run.read is not None and run.steps.get(key="preflight").flags["read"] == str(run.read.pk)
    assert "onboarding_draft" not in client.session
    # Made when the preview was asked for, so that its account could be read: audited then, once.
    created = AuditEvent.objects.get(action="customer.created", actor=alice, customer=run.customer)
    assert created.details["via"] == "onboarding preview"
    assert client.post("/onboard/preview/").status_code == 302  # nothing to confirm twice
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_an_admin_onboarding_a_customer_on_record_may_update_its_role(client, dana, aws):
    customer = Customer.objects.create(
        name="Acme Corp", slug="acme", aws_account_id=CUSTOMER_ACCOUNT, role_arn="", external_id="old-id-0000"
    )
    login(client, dana)
    client.post("/onboard/", form_data(customer=str(customer.pk), new_customer_name=""))
    preview_read(client)
    client.post("/onboard/preview/")
    customer.refresh_from_db()
    assert customer.role_arn == f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess"
    assert customer.external_id == "acme-external-id-0123456789"
    assert Run.objects.get().customer == customer and Customer.objects.count() == 1
    changed = AuditEvent.objects.get(action="customer.changed", customer=customer)
    assert changed.details["fields"] == ["external_id", "role_arn"]
    assert changed.actor == dana


READER = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "iam:Get*",
                "iam:List*",
                "s3:ListAllMyBuckets",
                "s3:ListBucket",
                "s3:Get*",
                "ecr:Describe*",
                "ecr:Get*",
            ],
            "Resource": "*",
        }
    ],
}
RECORD_ROLE = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/RecordRole"


@pytest.mark.django_db
def test_a_tech_lead_sees_the_connection_of_a_customer_on_record_read_only_and_the_run_uses_it(client, alice, aws):
    customer = Customer.objects.create(
        name="Acme Corp", slug="acme", aws_account_id=CUSTOMER_ACCOUNT, role_arn=RECORD_ROLE, external_id="record-id-01"
    )
    customer.team.add(alice)  # an Admin put her on the customer's team
    login(client, alice)
    page = client.get(f"/onboard/?customer={customer.pk}").content.decode()
    assert re.search(r'<input type="text" name="role_arn" value="[^"]*RecordRole"[^>]* disabled', page), page
    assert re.search(r'name="external_id" value="record-id-01"[^>]* disabled', page)
    # What she types there is ignored: the run is made with the record's role and external id.
    other = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/Hijack"
    response = client.post(
        "/onboard/",
        form_data(customer=str(customer.pk), new_customer_name="", role_arn=other, external_id="attacker-id"),
    )
    assert response.status_code == 302, text(response)
    preview_read(client)
    # The plan's read reached for the record's role (which this sandbox account does not have: the read says so).
    read = AccountRead.objects.get()
    assert (read.spec["role_arn"], read.spec["external_id"]) == (RECORD_ROLE, "record-id-01")
    assert read.status == "failed" and "RecordRole" in read.error_message
    customer.refresh_from_db()
    assert (customer.role_arn, customer.external_id, customer.access) == (RECORD_ROLE, "record-id-01", "role")
    assert not AuditEvent.objects.filter(action="customer.changed").exists()


@pytest.mark.django_db
def test_a_tech_lead_cannot_store_keys_on_a_customer_on_record(client, alice, aws):
    customer = Customer.objects.create(
        name="Acme Corp", slug="acme", aws_account_id=CUSTOMER_ACCOUNT, role_arn=RECORD_ROLE, external_id="record-id-01"
    )
    customer.team.add(alice)  # an Admin put her on the customer's team
    login(client, alice)
    keys = {"access": "keys", "access_key_id": "AKIAEXAMPLEKEY000001", "secret_access_key": "x" * 40}
    client.post("/onboard/", form_data(customer=str(customer.pk), new_customer_name="", **keys))
    preview_read(client)
    client.post("/onboard/preview/")
    customer.refresh_from_db()
    assert (customer.access, customer.access_key_id, customer.secret_access_key_ciphertext) == ("role", "", "")
    assert AccountRead.objects.get().spec["access"] == "role" and not Run.objects.exists()


@pytest.mark.django_db
def test_an_external_id_as_long_as_aws_allows_is_stored(client, alice, aws):
    """AWS allows 2 to 1224 characters; so do the spec and the customer record (a 500 before)."""
    long_id = "x" * 1224
    login(client, alice)
    assert client.post("/onboard/", form_data(external_id=long_id)).status_code == 302
    preview_read(client)  # made when the preview was asked for; the sandbox's role has another external id
    assert Customer.objects.get().external_id == long_id
    refused = client.post("/onboard/", form_data(external_id=long_id + "x"))
    assert refused.status_code == 200 and "An external id is 2 to 1224 characters" in text(refused)


@pytest.mark.django_db
def test_start_onboarding_with_keys_stores_the_secret_encrypted_on_the_customer(client, alice, aws):
    # The customer's IAM user whose keys Onramp is given: allowed to read what a plan reads.
    key_id, secret = EXAMPLE_KEYS
    aws.user_make(account_id=CUSTOMER_ACCOUNT, user_name="ops", policy_document=READER, keys=EXAMPLE_KEYS)
    login(client, alice)
    client.post(
        "/onboard/",
        form_data(access="keys", role_arn="", access_key_id=key_id, secret_access_key=secret),
    )
    preview_read(client)
    customer = Customer.objects.get()  # made, keys stored, so that the plan could read the account with them
    assert customer.access == "keys" and customer.access_key_id == key_id
    read = AccountRead.objects.get()
    assert read.status == "done", read.error_message
    client.post("/onboard/preview/")
    assert Run.objects.get().customer == customer
    assert secret not in customer.secret_access_key_ciphertext
    assert vault.decrypt(customer.secret_access_key_ciphertext) == secret
    assert not AuditEvent.objects.filter(details__icontains=secret).exists()


@pytest.mark.django_db
def test_start_onboarding_while_a_run_is_active_shows_that_run(client, alice, bob, aws):
    active = start_run(bob)
    active.customer.team.add(alice)
    login(client, alice)
    client.post("/onboard/", form_data(customer=str(active.customer.pk), new_customer_name=""))
    preview_read(client)
    response = client.post("/onboard/preview/", follow=True)
    assert response.redirect_chain[-1][0] == f"/runs/{active.pk}/"
    assert "is still in progress" in text(response)
    assert Run.objects.count() == 1


# --- The run page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_active_run_polls_its_live_part_and_offers_cancel_to_its_starter(client, alice):
    run = start_run(alice)
    response = login(client, alice).get(f"/runs/{run.pk}/")
    page = response.content.decode()
    assert f'hx-get="/runs/{run.pk}/live/" hx-trigger="every 1s"' in page
    assert [key for key, _ in step_rows(response)] == list(run.steps.order_by("position").values_list("key", flat=True))
    assert {state for _, state in step_rows(response)} == {"pending"}
    assert 'id="cancel"' in page and 'id="retry"' not in page
    live = client.get(f"/runs/{run.pk}/live/", headers={"HX-Request": "true"})
    assert live.status_code == 200 and b'id="run-live"' in live.content and b"<html" not in live.content
    assert b"hx-swap-oob" not in live.content  # the actions stay while the run is active


@pytest.mark.django_db
def test_retry_and_cancel_are_for_the_customers_team_and_admins_only(client, alice, bob, dana):
    run = start_run(alice)
    assert 'id="cancel"' not in login(client, bob).get(f"/runs/{run.pk}/").content.decode()
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    assert client.post(f"/runs/{run.pk}/retry/").status_code == 403
    run.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert 'id="cancel"' in login(client, dana).get(f"/runs/{run.pk}/").content.decode()
    response = client.post(f"/runs/{run.pk}/cancel/", follow=True)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    page = text(response)
    assert "Run cancelled" in page and 'id="cancel"' not in page and "hx-trigger" not in page


@pytest.mark.django_db
def test_a_finished_run_stops_polling_and_the_last_poll_replaces_the_actions(client, alice):
    run = start_run(alice)
    StepRun.objects.filter(run=run, key="s3.bucket").update(
        state="failed",
        error_code="BucketAlreadyExists",
        error_message="This bucket name is taken by another AWS account. Choose another name and start again.",
    )
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    login(client, alice)
    live = client.get(f"/runs/{run.pk}/live/", headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in live
    oob = live.split('<div id="run-actions" hx-swap-oob="true">')[1].split('<div id="run-live"')[0]
    assert 'id="retry"' in oob and 'id="cancel"' not in oob


@pytest.mark.django_db
def test_nobody_outside_the_groups_sees_a_run(client, alice, charlie):
    run = start_run(alice)
    login(client, charlie)
    assert client.get(f"/runs/{run.pk}/").status_code == 403
    assert client.get(f"/runs/{run.pk}/live/").status_code == 403


def _default_account_s3(sandbox):
    """S3 in another account than the customer's: a real BucketAlreadyExists for them."""
    return account_session(sandbox.url, "999988887777").s3


def test_a_run_from_the_form_to_the_revealed_key(client, worker, alice):
    login(client, alice)
    client.post("/onboard/", form_data())
    preview_read(client)
    client.post("/onboard/preview/")
    run = wait_for_run(Run.objects.get())
    assert run.status == Run.Status.SUCCEEDED
    response = client.get(f"/runs/{run.pk}/")
    page = text(response)
    assert {state for _, state in step_rows(response)} == {"succeeded"}
    assert "hx-trigger" not in page and 'id="cancel"' not in page
    for key in ("sign_in_url", "app_user", "policy", "bucket", "repository_uri"):
        assert run.summary[key] and run.summary[key] in page, key
    assert f"arn:aws:iam::{CUSTOMER_ACCOUNT}:user/onramp/acme-app" in page  # made in Onramp's path
    assert f"{CUSTOMER_ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/acme-app" in page
    assert re.search(r"<td data-label=\"Started\">\d\d:\d\d:\d\d</td>", page)
    assert re.search(r"<td data-label=\"Duration\">(\d+ ms|\d+\.\d s)</td>", page)
    key = Credential.objects.get(run=run, kind=Credential.Kind.ACCESS_KEY)
    assert f'data-credential="{key.pk}" data-state="sealed"' in page and "Reveal once" in page
    revealed = client.post(f"/credentials/{key.pk}/reveal/")
    assert revealed.status_code == 200 and revealed["Cache-Control"] == "no-store, max-age=0"
    env = text(revealed)
    assert f"AWS_ACCESS_KEY_ID={key.access_key_id}" in env
    assert re.search(r"AWS_SECRET_ACCESS_KEY=\S{20,}", env)
    assert f'data-replace-url="/credentials/{key.pk}/"' in env  # a reload asks the GET page
    again = client.get(f"/credentials/{key.pk}/")
    assert (
        again.status_code == 410 and "Revealed by alice" in text(again) and "AWS_SECRET_ACCESS_KEY" not in text(again)
    )
    assert "revealed by alice" in text(client.get(f"/runs/{run.pk}/"))


def test_a_failed_step_shows_the_aws_code_and_what_to_do_then_retry_finishes_the_run(client, worker, aws, alice):
    aws.configure(bucket_taken_at_create="acme-app-media")  # taken after the preflight checked it
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.FAILED
    response = login(client, alice).get(f"/runs/{run.pk}/")
    rows = dict(step_rows(response))
    assert rows["s3.bucket"] == "failed"
    assert rows["s3.public_access_block"] == rows["s3.cors"] == "skipped"
    assert rows["ecr.lifecycle"] == "succeeded"
    page = text(response)
    failed_row = page[page.index('data-step="s3.bucket"') :].split("</tr>")[0]
    assert '<code class="error-code">BucketAlreadyExists</code>' in failed_row
    assert "taken by another AWS account" in failed_row and "choose another name" in failed_row
    assert 'id="retry"' in page and "hx-trigger" not in page
    assert "What exists now" in page  # what was made before the failure

    _default_account_s3(aws).delete_bucket(Bucket="acme-app-media")
    response = client.post(f"/runs/{run.pk}/retry/", follow=True)
    assert "Retrying the failed steps." in text(response)
    run = wait_for_run(run)
    assert run.status == Run.Status.SUCCEEDED
    response = client.get(f"/runs/{run.pk}/")
    assert {state for _, state in step_rows(response)} == {"succeeded"}
    assert 'id="retry"' not in response.content.decode()


# --- No asset from elsewhere --------------------------------------------------------------------


def test_no_template_or_static_file_loads_anything_from_another_host():
    offenders = []
    for folder in ("templates", "static"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".html", ".css", ".js"}:
                continue
            content = path.read_text(encoding="utf-8")
            for match in re.finditer(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", content):
                offenders.append(f"{path.relative_to(ROOT)}: {content[match.start() : match.end() + 40]}")
            for match in re.finditer(r"""(?:url\(|@import)\s*["']?\s*(?:https?:)?//""", content):
                offenders.append(f"{path.relative_to(ROOT)}: {content[match.start() : match.end() + 40]}")
    assert offenders == []


@pytest.mark.django_db
def test_the_rendered_pages_load_scripts_and_styles_from_this_server_only(client, alice):
    page = login(client, alice).get("/onboard/").content.decode()
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    assert "<script>" not in page and " style=" not in page  # the CSP forbids inline code and styles


@pytest.mark.django_db
def test_a_new_customer_is_on_record_from_its_first_preview_and_edit_shows_it_picked(client, alice, aws):
    """Its account is read for the preview, so the customer is made then: "Edit" comes back with it picked, and
    its connection is the record's from then on (an Admin changes it, as for any customer on record)."""
    login(client, alice)
    client.post("/onboard/", form_data())
    preview_read(client)
    customer = Customer.objects.get()
    assert customer.team.filter(pk=alice.pk).exists()
    page = client.get("/onboard/?edit=1").content.decode()
    assert re.search(rf'<option value="{customer.pk}" selected>', page), page
    assert re.search(r'name="external_id" value="acme-external-id-0123456789"[^>]* disabled', page)
    response = client.post("/onboard/", form_data(customer=str(customer.pk), new_customer_name="", bucket="acme-2"))
    assert response.status_code == 302 and Customer.objects.count() == 1
