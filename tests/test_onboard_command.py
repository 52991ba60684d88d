"""`manage.py onboard` keeps to what the person may change: a tech lead's spec cannot replace a customer's
connection or merge into another customer's account; a spec nested without end is one clear error."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from provisioning.models import AuditEvent, Customer, Run
from tests.conftest import CUSTOMER_ACCOUNT, customer_make, spec_data

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")
RECORD_ROLE = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess"


def _onboard(tmp_path, user: str, **overrides):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_data(**overrides)))
    call_command("onboard", spec=str(path), user=user, stdout=open("/dev/null", "w"))  # noqa: SIM115


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"role_arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/Hijack"},
        {"external_id": "another-external-id"},
    ],
)
def test_a_tech_leads_spec_cannot_change_a_customers_connection(tmp_path, alice, change):
    customer = customer_make(external_id="acme-external-id-0123456789")
    customer.team.add(alice)
    with pytest.raises(CommandError) as refused:
        _onboard(tmp_path, "alice", **change)
    assert "Only an Admin changes how Onramp reaches Acme Corp" in str(refused.value)
    customer.refresh_from_db()
    assert (customer.role_arn, customer.external_id) == (RECORD_ROLE, "acme-external-id-0123456789")
    assert not Run.objects.exists() and not AuditEvent.objects.filter(action="customer.changed").exists()


@pytest.mark.django_db
def test_a_tech_lead_onboards_a_customer_on_record_with_the_records_values(tmp_path, alice, aws):
    customer_make(external_id="acme-external-id-0123456789").team.add(alice)
    _onboard(tmp_path, "alice")
    assert Run.objects.get().customer.name == "Acme Corp"


@pytest.mark.django_db
def test_an_admins_spec_may_change_the_connection_audited(tmp_path, dana, aws):
    customer = customer_make(external_id="old-external-id")
    _onboard(tmp_path, "dana")
    customer.refresh_from_db()
    assert customer.external_id == "acme-external-id-0123456789"
    changed = AuditEvent.objects.get(action="customer.changed")
    assert (changed.actor, changed.details) == (dana, {"fields": ["external_id"], "via": "onboard command"})


@pytest.mark.django_db
@pytest.mark.parametrize("user", ["alice", "dana"])
def test_a_spec_naming_another_customer_on_an_existing_account_is_refused_with_a_pointer(tmp_path, alice, dana, user):
    customer_make(external_id="acme-external-id-0123456789").team.add(alice)
    with pytest.raises(CommandError) as refused:
        _onboard(tmp_path, user, customer="Globex")
    message = str(refused.value)
    assert f"Account {CUSTOMER_ACCOUNT} belongs to the customer 'Acme Corp', not 'Globex'" in message
    assert Customer.objects.get().name == "Acme Corp" and not Run.objects.exists()


@pytest.mark.django_db
def test_a_deeply_nested_spec_file_is_one_clear_error(tmp_path, alice):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CommandError) as refused:
        call_command("onboard", spec=str(path), user="alice")
    assert str(refused.value) == f"{path} is nested too deeply to be a spec (a spec is one flat object)."


@pytest.mark.django_db
def test_point_2_a_spec_without_the_connection_takes_the_records_role_and_external_id(tmp_path, alice, aws):
    customer = customer_make(external_id="acme-external-id-0123456789")
    customer.team.add(alice)
    path = tmp_path / "spec.json"
    data = {k: v for k, v in spec_data().items() if k not in ("role_arn", "external_id")}
    path.write_text(json.dumps(data))
    call_command("onboard", spec=str(path), stdout=open("/dev/null", "w"))  # noqa: SIM115 (alice: the only tech lead)
    run = Run.objects.get()
    assert (run.customer, run.started_by) == (customer, alice)
    assert (run.spec["role_arn"], run.spec["external_id"]) == (RECORD_ROLE, "acme-external-id-0123456789")


@pytest.mark.django_db
def test_a_spec_without_the_connection_for_an_account_not_on_record_asks_for_it(tmp_path, alice):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({k: v for k, v in spec_data().items() if k not in ("role_arn", "external_id")}))
    with pytest.raises(CommandError) as refused:
        call_command("onboard", spec=str(path), user="alice", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert "role_arn: Enter the role Onramp assumes" in str(refused.value) and not Run.objects.exists()


@pytest.mark.django_db
def test_point_2_the_demo_example_names_demo_co_and_its_account():
    example = json.loads((Path(__file__).resolve().parent.parent / "examples" / "demo.json").read_text())
    assert (example["customer"], example["account_id"]) == ("Demo Co", "111122223333")
    assert "role_arn" not in example and "external_id" not in example  # Demo Co's record has them


@pytest.mark.django_db
def test_point_18_onboard_refuses_a_starter_in_no_group(tmp_path, charlie):
    with pytest.raises(CommandError) as refused:
        _onboard(tmp_path, "charlie")
    assert "charlie is in neither of Onramp's groups (Tech leads, Admins), so cannot start a run" in str(refused.value)
    assert not Run.objects.exists() and not Customer.objects.exists()
