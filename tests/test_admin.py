"""The Django admin through the test client: Admins (dana) manage customers, tech leads (alice) look,
secrets never come back, every change is audited."""

import html
import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core import serializers
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from provisioning.admin import CustomerAdmin
from provisioning.audit.chain import audit_record
from provisioning.models import AuditEvent, Credential, Customer, Run
from provisioning.role import template as role_template
from provisioning.vault import decrypt
from tests.conftest import CUSTOMER_ACCOUNT, customer_make, customer_role_deploy, start_run, wait_for_run

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYKNOWNSECRET"  # 40 characters, the shape of a real one
NEW_SECRET = "9drTJvcXLB89EXAMPLEKEYreplacedSECRETvalue"
ADD = reverse("admin:provisioning_customer_add")
CHANGELIST = reverse("admin:provisioning_customer_changelist")


def _change(customer) -> str:
    return reverse("admin:provisioning_customer_change", args=[customer.pk])


def _form(**fields) -> dict:
    """A complete customer form as the browser posts it, with the runs inline's management form."""
    data = {
        "name": "Acme Corp",
        "slug": "acme-corp",
        "aws_account_id": CUSTOMER_ACCOUNT,
        "default_region": "us-west-2",
        "account_alias": "typed-alias",  # not a field of the form: the alias is what the account has
        "is_active": "on",
        "access": "role",
        "role_arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess",
        "access_key_id": "",
        "secret_access_key": "",
        "approval_rule": "risky",
        "contacts": "Jane Doe <jane@acme.example>",
        "notes": "",
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def _run(customer, user, status, days_ago=0) -> Run:
    run = Run.objects.create(customer=customer, started_by=user, spec={}, status=status)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return run


@pytest.fixture
def as_dana(client, dana):
    client.force_login(dana)
    return client


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


def test_an_admin_creates_edits_and_searches_customers(as_dana):
    response = as_dana.post(ADD, _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(aws_account_id=CUSTOMER_ACCOUNT)
    assert (customer.name, customer.account_alias, customer.access) == ("Acme Corp", "", "role")
    # A fresh external id, 40 hex characters, shown read-only with the trust policy that names it.
    assert len(customer.external_id) == 40 and int(customer.external_id, 16) >= 0
    page = as_dana.get(_change(customer)).content.decode()
    assert customer.external_id in page
    assert 'name="external_id"' not in page
    assert f"arn:aws:iam::{settings.PORTAL_AWS_ACCOUNT_ID}:root" in page
    assert "sts:ExternalId" in page
    # And the other half of AssumeRole: the policy Onramp's own identity needs, as generated.
    assert html.escape(json.dumps(role_template.portal_policy_document(), indent=2)) in page

    response = as_dana.post(_change(customer), _form(default_region="eu-west-1", notes="Prefers email."))
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.default_region, customer.notes) == ("eu-west-1", "Prefers email.")

    customer_make(name="Globex", slug="globex", aws_account_id="444455556666")
    for query, expected in (("Acme", "Acme Corp"), (CUSTOMER_ACCOUNT, "Acme Corp"), ("444455556666", "Globex")):
        page = as_dana.get(CHANGELIST, {"q": query}).content.decode()
        assert expected in page, query
        assert ("Globex" in page) == (expected == "Globex"), query
        assert "1 result" in page

    created, changed = AuditEvent.objects.filter(customer=customer).order_by("id")
    assert (created.action, created.actor_label) == ("customer.created", "dana")
    assert (changed.action, changed.details["fields"]) == ("customer.changed", ["default_region", "notes"])


def test_a_duplicate_account_id_is_refused_with_a_message(as_dana):
    customer_make()
    response = as_dana.post(ADD, _form(name="Acme again", slug="acme-again"))
    assert response.status_code == 200
    assert "A customer with this AWS account id already exists." in response.content.decode()
    assert Customer.objects.count() == 1
    assert not AuditEvent.objects.filter(action="customer.created").exists()


def test_a_tech_lead_views_a_customer_but_cannot_change_add_or_delete(as_alice):
    customer = customer_make()
    page = as_alice.get(_change(customer))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Acme Corp" in html and customer.external_id in html
    assert 'name="_save"' not in html
    assert 'name="secret_access_key"' not in html
    assert as_alice.get(CHANGELIST).status_code == 200

    assert as_alice.post(_change(customer), _form(name="Hijacked")).status_code == 403
    assert as_alice.get(ADD).status_code == 403
    assert as_alice.post(ADD, _form(aws_account_id="444455556666", slug="other")).status_code == 403
    delete = reverse("admin:provisioning_customer_delete", args=[customer.pk])
    assert as_alice.post(delete, {"post": "yes"}).status_code == 403
    customer.refresh_from_db()
    assert customer.name == "Acme Corp"
    assert Customer.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="customer.").exists()


def test_a_tech_lead_cannot_run_check_connection(as_alice):
    customer = customer_make()
    response = as_alice.post(CHANGELIST, {"action": "check_connection", "_selected_action": [customer.pk]})
    assert response.status_code in (200, 302)
    assert not AuditEvent.objects.filter(action="customer.connection_checked").exists()


def test_a_secret_set_in_the_admin_never_shows_in_its_pages_or_the_audit(as_dana, dana):
    keys = {"access": "keys", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "role_arn": ""}
    # A refused form comes back without the secret in it.
    refused = as_dana.post(ADD, _form(aws_account_id="12345", secret_access_key=SECRET, **keys))
    assert refused.status_code == 200 and "exactly 12 digits" in refused.content.decode()
    assert SECRET not in refused.content.decode()

    assert as_dana.post(ADD, _form(secret_access_key=SECRET, **keys)).status_code == 302
    customer = Customer.objects.get()
    assert decrypt(customer.secret_access_key_ciphertext) == SECRET  # stored, through the vault
    assert SECRET not in customer.secret_access_key_ciphertext

    # Leaving the field empty keeps the stored secret; typing a new one replaces it.
    assert as_dana.post(_change(customer), _form(notes="keys given", **keys)).status_code == 302
    customer.refresh_from_db()
    assert decrypt(customer.secret_access_key_ciphertext) == SECRET
    assert as_dana.post(_change(customer), _form(notes="keys given", **keys)).status_code == 302  # no change
    assert (
        as_dana.post(_change(customer), _form(notes="keys given", secret_access_key=NEW_SECRET, **keys)).status_code
        == 302
    )
    customer.refresh_from_db()
    assert decrypt(customer.secret_access_key_ciphertext) == NEW_SECRET

    pages = [
        CHANGELIST,
        _change(customer),
        reverse("admin:provisioning_customer_history", args=[customer.pk]),
        reverse("admin:provisioning_customer_cloudformation", args=[customer.pk]),
        reverse("admin:provisioning_auditevent_changelist"),
        *(
            reverse("admin:provisioning_auditevent_change", args=[pk])
            for pk in AuditEvent.objects.values_list("pk", flat=True)
        ),
        reverse("admin:index"),
    ]
    for url in pages:
        response = as_dana.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert SECRET not in body and NEW_SECRET not in body, url
        assert customer.secret_access_key_ciphertext not in body, url
    change_page = as_dana.get(_change(customer)).content.decode()
    assert "AKIAIOSFODNN7EXAMPLE" in change_page  # the key id may show
    assert "stored (encrypted)" in change_page
    assert 'name="secret_access_key" autocomplete="new-password"' in change_page  # an empty password box

    rows = serializers.serialize("json", AuditEvent.objects.all())
    assert SECRET not in rows and NEW_SECRET not in rows
    log_rows = serializers.serialize("json", LogEntry.objects.all())
    assert SECRET not in log_rows and NEW_SECRET not in log_rows
    fields = [e.details["fields"] for e in AuditEvent.objects.filter(customer=customer).order_by("id")]
    assert "secret_access_key (set)" in fields[0]
    assert fields[1] == ["notes"]
    assert fields[2] == ["secret_access_key (replaced)"]


def test_the_list_shows_the_last_run_and_filters_by_its_status_in_a_fixed_number_of_queries(as_dana, alice):
    acme = customer_make()
    globex = customer_make(name="Globex", slug="globex", aws_account_id="444455556666", account_alias="globex")
    customer_make(name="Initech", slug="initech", aws_account_id="777788889999", account_alias="initech")
    _run(acme, alice, Run.Status.FAILED, days_ago=3)
    _run(acme, alice, Run.Status.SUCCEEDED, days_ago=1)
    _run(globex, alice, Run.Status.FAILED, days_ago=2)

    def names(params) -> set[str]:
        page = as_dana.get(CHANGELIST, params).content.decode()
        return {n for n in ("Acme Corp", "Globex", "Initech") if n in page}

    acme_last = formats.date_format(timezone.localtime(timezone.now() - timedelta(days=1)).date())
    assert acme_last in as_dana.get(CHANGELIST).content.decode()  # the date of the last run
    assert names({"last_run": "succeeded"}) == {"Acme Corp"}  # its last run, not its earlier failure
    assert names({"last_run": "failed"}) == {"Globex"}
    assert names({"last_run": "never"}) == {"Initech"}
    assert names({"is_active__exact": "1", "default_region": "us-west-2"}) == {"Acme Corp", "Globex", "Initech"}
    column = CustomerAdmin.list_display.index("last_run_at") + 1  # 0 is the checkbox column
    ordered = as_dana.get(CHANGELIST, {"o": str(column)}).context["cl"].result_list
    assert [c.name for c in ordered][:2] == ["Globex", "Acme Corp"]  # by last run date, oldest first
    assert ordered[1].last_run_status == "succeeded"

    with CaptureQueriesContext(connection) as few:
        as_dana.get(CHANGELIST)
    for n in range(6):
        extra = customer_make(name=f"Extra {n}", slug=f"extra-{n}", aws_account_id=f"90000000000{n}")
        _run(extra, alice, Run.Status.SUCCEEDED)
    with CaptureQueriesContext(connection) as many:
        as_dana.get(CHANGELIST)
    assert len(many) == len(few)  # no query per customer


def test_check_connection_action_reports_and_audits(aws, as_dana):
    customer_role_deploy(aws, "777788889999")  # Onramp's role, but in an account that is not Globex's
    ok = customer_make()
    wrong = customer_make(
        name="Globex",
        slug="globex",
        aws_account_id="444455556666",
        role_arn="arn:aws:iam::777788889999:role/OnrampAccess",
    )
    response = as_dana.post(
        CHANGELIST, {"action": "check_connection", "_selected_action": [ok.pk, wrong.pk]}, follow=True
    )
    text = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("Acme Corp: Onramp reaches account 111122223333") for m in text), text
    assert any("Globex: These credentials reach account 777788889999" in m for m in text), text
    checked = dict(
        AuditEvent.objects.filter(action="customer.connection_checked").values_list("customer_id", "outcome")
    )
    assert checked == {ok.pk: "ok", wrong.pk: "error"}


def test_start_onboarding_opens_the_prefilled_form(as_dana):
    customer = customer_make(account_alias="acme-corp")
    response = as_dana.post(CHANGELIST, {"action": "start_onboarding", "_selected_action": [customer.pk]})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('onboard')}?customer={customer.pk}"
    form = as_dana.get(response["Location"]).content.decode()
    assert CUSTOMER_ACCOUNT in form and customer.role_arn in form


def test_the_cloudformation_download_is_the_template_for_thiscustomer_make(as_alice):
    customer = customer_make()
    response = as_alice.get(reverse("admin:provisioning_customer_cloudformation", args=[customer.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="onramp-access-acme-corp.json"'
    assert json.loads(response.content) == role_template.cloudformation_template(
        customer_name="Acme Corp", portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID, external_id=customer.external_id
    )


def test_runs_steps_credentials_and_audit_are_read_only_for_everyone(as_dana, dana):
    customer = customer_make()
    run = _run(customer, dana, Run.Status.SUCCEEDED)
    step = run.steps.create(key="preflight", title="Preflight", branch="preflight", position=0)
    credential = Credential.objects.create(
        run=run,
        customer=customer,
        issued_to=dana,
        kind=Credential.Kind.ACCESS_KEY,
        user_name="acme-app",
        access_key_id="AKIAEXAMPLEKEYID0001",
        ciphertext="gAAAAABknownCiphertextThatMustNeverShow",
        expires_at=timezone.now() + timedelta(days=1),
    )
    event = AuditEvent.objects.first() or audit_record(action="test.event", actor=dana)
    for model, pk in (("run", run.pk), ("steprun", step.pk), ("credential", credential.pk), ("auditevent", event.pk)):
        assert as_dana.get(reverse(f"admin:provisioning_{model}_changelist")).status_code == 200, model
        change = reverse(f"admin:provisioning_{model}_change", args=[pk])
        page = as_dana.get(change)
        assert page.status_code == 200, model
        assert 'name="_save"' not in page.content.decode(), model
        assert as_dana.post(change, {}).status_code == 403, model
        assert as_dana.get(reverse(f"admin:provisioning_{model}_add")).status_code == 403, model
        assert (
            as_dana.post(reverse(f"admin:provisioning_{model}_delete", args=[pk]), {"post": "yes"}).status_code == 403
        )
    credential_page = as_dana.get(reverse("admin:provisioning_credential_change", args=[credential.pk])).content
    assert b"gAAAAABknownCiphertext" not in credential_page
    assert b"AKIAEXAMPLEKEYID0001" in credential_page
    assert Run.objects.filter(pk=run.pk, status=Run.Status.SUCCEEDED).exists()


def test_the_customer_page_lists_its_runs_resources_and_audit_link(worker, alice, dana, client):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    client.force_login(dana)
    page = client.get(_change(run.customer)).content.decode()
    assert reverse("run_detail", args=[run.pk]) in page  # the run, read-only in the inline
    assert "Succeeded" in page and "alice" in page
    assert 'name="runs-0-status"' not in page
    for name in ("acme-app-media", "acme-app", "MediaManagement-acme-app-media", "lead@agency.example", "Apps"):
        assert name in page, name
    assert f"arn:aws:iam::{CUSTOMER_ACCOUNT}:policy/MediaManagement-acme-app-media" in page
    link = f"{reverse('audit_history')}?customer={run.customer.slug}"
    assert link in page
    history = client.get(link)  # the link really filters the history to this customer
    assert history.status_code == 200
    assert history.context["form"].is_valid() and history.context["form"].cleaned_data["customer"] == run.customer
    assert history.context["rows"] and all(event.customer_id == run.customer.pk for event, _ in history.context["rows"])
    sealed = [c.ciphertext for c in Credential.objects.filter(run=run) if c.ciphertext]
    assert sealed and not any(ciphertext in page for ciphertext in sealed)


def test_the_customer_page_shows_the_alias_the_account_has_not_a_typed_one(as_dana, dana):
    """After a run set the alias, the admin shows it (from the ledger); nobody types it there."""
    from provisioning.models import Resource

    customer = customer_make(account_alias="")
    run = _run(customer, dana, "succeeded")
    Resource.objects.create(customer=customer, kind="account.alias", identity="acme-corp", name="acme-corp",
                            origin="created", created_by_run=run, last_run=run)  # fmt: skip
    page = as_dana.get(_change(customer)).content.decode()
    assert re.search(r"sign-in alias.*?acme-corp", page, re.S | re.I)
    assert 'name="account_alias"' not in page
    listing = as_dana.get(CHANGELIST).content.decode()
    assert "acme-corp" in listing
