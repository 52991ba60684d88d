"""Each customer's team (#30 point 1): only the team and Admins plan, run, repair, offboard, rotate, reveal or
change settings for a customer; everyone else sees it read-only. alice onboarded Acme Corp and is on its team;
bob is a tech lead who is not; dana is an Admin. bob is refused at every entry, each tested on its own: the
pages, the services behind them (so that no other caller slips past) and the onboard command."""

import importlib
import json

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client

from provisioning import vault
from provisioning.engine.runs import run_cancel, run_create, run_retry
from provisioning.models import AccountRead, AuditEvent, Credential, Customer, Run
from provisioning.offboarding import offboard_start
from provisioning.onboarding import onboarding_customer
from provisioning.reads import account_read_now, account_read_start
from provisioning.rotation import access_key_rotate_finish, access_key_rotate_start
from provisioning.spec import spec_parse
from provisioning.teams import NotOnCustomerTeam, customer_may_change
from tests.conftest import EXAMPLE_KEY_ID_2, finished_run, form_data, seal_key, spec_data, start_run


@pytest.fixture
def acme(alice, bob):
    """Acme Corp, onboarded by alice (a succeeded run, alice on the team); bob is not on the team."""
    run = finished_run(alice)
    assert customer_may_change(alice, run.customer) and not customer_may_change(bob, run.customer)
    return run


def _refused(bob, customer: Customer, action: str) -> None:
    """The refusal was audited for bob, for this customer and action."""
    event = AuditEvent.objects.filter(action="customer.refused", actor=bob).order_by("-id").first()
    assert event is not None, action
    assert (event.customer_id, event.outcome, event.error_code) == (customer.pk, "refused", "NotOnCustomerTeam")
    assert event.details["doing"] == action


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _offboard_read(customer: Customer, alice) -> AccountRead:
    """An offboarding plan read as alice would have it (done, nothing to change)."""
    return AccountRead.objects.create(
        customer=customer,
        requested_by=alice,
        purpose=AccountRead.Purpose.OFFBOARD,
        offboard="leave",
        spec=spec_data(),
        status=AccountRead.Status.DONE,
    )


# --- Pages -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bob_sees_the_customers_page_read_only(acme, bob, alice):
    page = _client(bob).get(f"/customers/{acme.customer.slug}/").content.decode()
    assert 'id="change"' not in page and 'id="offboard"' not in page
    assert "You are not on it" in page and "alice" in page
    own = _client(alice).get(f"/customers/{acme.customer.slug}/").content.decode()
    assert 'id="change"' in own and 'id="offboard"' in own and "You are not on it" not in own


@pytest.mark.django_db
def test_page_change_team_or_settings_refuses_bob(acme, bob):
    assert _client(bob).post(f"/customers/{acme.customer.slug}/change/").status_code == 403
    _refused(bob, acme.customer, "settings")
    assert not AuditEvent.objects.filter(action="onboarding.reopened").exists()


@pytest.mark.django_db
def test_page_repair_refuses_bob(acme, bob):
    assert _client(bob).post(f"/customers/{acme.customer.slug}/repair/").status_code == 403
    _refused(bob, acme.customer, "repair")


@pytest.mark.django_db
def test_page_offboard_refuses_bob(acme, bob):
    client = _client(bob)
    assert client.get(f"/customers/{acme.customer.slug}/offboard/").status_code == 403
    assert client.post(f"/customers/{acme.customer.slug}/offboard/", {"mode": "leave"}).status_code == 403
    _refused(bob, acme.customer, "offboard")
    assert not AccountRead.objects.exists()


@pytest.mark.django_db
def test_page_offboard_plan_refuses_bob(acme, bob, alice):
    read = _offboard_read(acme.customer, alice)
    url = f"/customers/{acme.customer.slug}/offboard/{read.pk}/"
    assert _client(bob).get(url).status_code == 403
    assert _client(bob).post(url).status_code == 403
    _refused(bob, acme.customer, "offboard")
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_page_onboarding_form_for_a_customer_on_record_refuses_bob(acme, bob):
    response = _client(bob).post("/onboard/", form_data(customer=str(acme.customer.pk), new_customer_name=""))
    assert response.status_code == 403
    _refused(bob, acme.customer, "settings")


@pytest.mark.django_db
def test_page_plan_again_refuses_bob(acme, bob):
    Run.objects.filter(pk=acme.pk).update(status=Run.Status.FAILED)
    assert _client(bob).post(f"/runs/{acme.pk}/reopen/", {"to": "preview"}).status_code == 403
    _refused(bob, acme.customer, "plan")


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "action"), [("retry", "run"), ("cancel", "run"), ("new-key", "rotate")])
def test_run_actions_refuse_bob(acme, bob, path, action):
    Run.objects.filter(pk=acme.pk).update(status=Run.Status.FAILED if path == "retry" else Run.Status.SUCCEEDED)
    assert _client(bob).post(f"/runs/{acme.pk}/{path}/").status_code == 403
    _refused(bob, acme.customer, action)
    assert not Credential.objects.exists()


@pytest.mark.django_db
def test_page_reveal_refuses_bob_once_off_the_team_even_for_a_secret_issued_to_him(acme, bob, alice):
    """bob was on the team when a run issued him a secret; an Admin took him off it: he no longer reveals it."""
    credential = seal_key(Run.objects.create(customer=acme.customer, started_by=bob, spec=acme.spec), secret="s3cr3t")
    client = _client(bob)
    assert client.get(f"/credentials/{credential.pk}/").status_code == 200  # it is his to see waiting
    assert client.post(f"/credentials/{credential.pk}/reveal/").status_code == 403
    _refused(bob, acme.customer, "reveal")
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED and vault.decrypt(credential.ciphertext) == "s3cr3t"


# --- Services: the same rule whoever calls them ---------------------------------------------------------------


@pytest.mark.django_db
def test_service_run_create_refuses_bob_for_a_run_a_repair_and_an_offboarding(acme, bob):
    spec = spec_parse(acme.spec)
    for kwargs, action in (({}, "run"), ({"repair": True}, "repair"), ({"offboard": "leave"}, "offboard")):
        with pytest.raises(NotOnCustomerTeam):
            run_create(spec=spec, customer=acme.customer, user=bob, **kwargs)
        _refused(bob, acme.customer, action)
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_service_retry_and_cancel_refuse_bob(alice, bob):
    run = start_run(alice)
    with pytest.raises(NotOnCustomerTeam):
        run_cancel(run=run, user=bob)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    run.refresh_from_db()
    with pytest.raises(NotOnCustomerTeam):
        run_retry(run=run, user=bob)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED


@pytest.mark.django_db
def test_service_plan_and_offboarding_reads_refuse_bob(acme, bob):
    spec = spec_parse(acme.spec)
    with pytest.raises(NotOnCustomerTeam):
        account_read_start(customer=acme.customer, spec=spec, user=bob)
    with pytest.raises(NotOnCustomerTeam):
        account_read_now(customer=acme.customer, spec=spec, user=bob)
    with pytest.raises(NotOnCustomerTeam):
        offboard_start(customer=acme.customer, mode="leave", user=bob)
    assert not AccountRead.objects.exists()
    # A drift check changes nothing in the account: anyone may ask for one.
    account_read_start(customer=acme.customer, spec=spec, user=bob, purpose=AccountRead.Purpose.DRIFT, enqueue=False)


@pytest.mark.django_db
def test_service_new_key_and_removing_the_old_key_refuse_bob(acme, bob, alice):
    with pytest.raises(NotOnCustomerTeam):
        access_key_rotate_start(run=acme, user=bob)
    credential = seal_key(acme, secret="new", replaces_access_key_id=EXAMPLE_KEY_ID_2)
    Credential.objects.filter(pk=credential.pk).update(state=Credential.State.REVEALED, ciphertext="")
    credential.refresh_from_db()
    with pytest.raises(NotOnCustomerTeam):
        access_key_rotate_finish(credential=credential, user=bob)
    _refused(bob, acme.customer, "rotate")


@pytest.mark.django_db
def test_service_reveal_refuses_bob(acme, bob):
    credential = seal_key(acme, secret="alice-only")
    with pytest.raises(NotOnCustomerTeam):
        vault.credential_reveal(credential_id=credential.pk, user=bob)
    credential.refresh_from_db()
    assert credential.state == Credential.State.SEALED


@pytest.mark.django_db
def test_service_onboarding_a_customer_on_record_refuses_bob(acme, bob):
    with pytest.raises(NotOnCustomerTeam):
        onboarding_customer(spec=spec_parse(acme.spec), user=bob, via="onboarding form")
    _refused(bob, acme.customer, "settings")


# --- The command ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_command_onboard_with_user_bob_is_refused_for_a_customer_whose_team_he_is_not_on(acme, bob, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_data()))
    with pytest.raises(CommandError) as refused:
        call_command("onboard", spec=str(path), user="bob", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert "Only Acme Corp's team and Admins" in str(refused.value) and "bob is not on it" in str(refused.value)
    assert Run.objects.count() == 1
    _refused(bob, acme.customer, "run")  # audited although the command failed


# --- Who is on a team --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_whoever_onboards_a_new_customer_joins_its_team_audited(alice, bob):
    customer = onboarding_customer(spec=spec_parse(spec_data()), user=alice, via="onboarding form")
    assert list(customer.team.all()) == [alice]
    joined = AuditEvent.objects.get(action="customer.team_changed")
    assert (joined.actor, joined.details["added"], joined.details["via"]) == (alice, ["alice"], "onboarding form")
    assert customer_may_change(alice, customer) and not customer_may_change(bob, customer)


@pytest.mark.django_db
def test_admins_act_on_every_customer_without_a_team(acme, dana):
    assert customer_may_change(dana, acme.customer)
    assert _client(dana).post(f"/customers/{acme.customer.slug}/change/").status_code == 302


@pytest.mark.django_db
def test_an_admin_puts_bob_on_the_team_in_the_admin_audited_then_bob_may_act(acme, bob, dana, alice):
    from tests.test_admin import _form

    url = f"/admin/provisioning/customer/{acme.customer.pk}/change/"
    assert 'name="team"' in _client(dana).get(url).content.decode()
    response = _client(dana).post(url, _form(slug=acme.customer.slug, team=[alice.pk, bob.pk]))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert set(acme.customer.team.all()) == {alice, bob}
    changed = AuditEvent.objects.get(action="customer.team_changed")
    assert (changed.actor, changed.details) == (dana, {"added": ["bob"], "removed": [], "via": "admin"})
    assert _client(bob).post(f"/customers/{acme.customer.slug}/change/").status_code == 302


@pytest.mark.django_db
def test_migration_0016_puts_the_tech_leads_who_ran_each_customer_on_its_team(acme, alice, bob, dana):
    other = finished_run(bob, account_id="222233334444", customer="Globex")
    Run.objects.create(customer=other.customer, started_by=dana, spec=other.spec)  # an Admin needs no team
    for customer in Customer.objects.all():
        customer.team.clear()
    importlib.import_module("provisioning.migrations.0016_customer_team").teams_from_runs(apps, None)
    assert list(acme.customer.team.all()) == [alice]
    assert list(other.customer.team.all()) == [bob]


@pytest.mark.django_db
def test_the_demo_tech_lead_is_on_demo_cos_team_so_make_runs_demo_may_run_it(settings):
    """make run creates Demo Co before its tech lead onboards it: the tech lead is put on its team."""
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:1"  # the sandbox's: ensure_demo_user makes Demo Co only there
    call_command("ensure_demo_user", "--demo-customer", stdout=open("/dev/null", "w"))  # noqa: SIM115
    demo = Customer.objects.get(slug="demo-co")
    techlead = demo.team.get()
    assert techlead.username == "techlead" and customer_may_change(techlead, demo)
    assert demo.approval_rule == "nothing"  # the demo's one tech lead onboards it with no second person
    joined = AuditEvent.objects.get(action="customer.team_changed")
    assert joined.details == {"added": ["techlead"], "removed": [], "via": "manage.py ensure_demo_user"}
