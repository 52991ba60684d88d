"""Issue 33, points 3 and 4: the Runs page tells runs apart (kind shown; filters by customer, kind, status,
person; search by customer name) and the Customers list shows each customer's last run, drift state, role
version and offboarding, sorted and searched. PostgreSQL, the test client; the browser tests are in
tests/test_lists_browser.py."""

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning.models import DriftState, Run
from provisioning.vocabulary import OffboardMode, RunKind
from tests.conftest import customer_make, finished_run


def _runs(alice, bob) -> dict[str, Run]:
    """Acme: an onboarding, a repair (failed), an offboarding by bob; Beta: a change by bob."""
    acme_onboarding = finished_run(alice)
    acme = acme_onboarding.customer
    beta = customer_make(name="Beta Ltd", slug="beta", aws_account_id="444455556666")
    made = {
        "acme_onboarding": acme_onboarding,
        "acme_repair": Run.objects.create(customer=acme, started_by=alice, spec=acme_onboarding.spec,
                                          kind=RunKind.REPAIR, status=Run.Status.FAILED),
        "acme_offboarding": Run.objects.create(customer=acme, started_by=bob, spec=acme_onboarding.spec,
                                               kind=RunKind.OFFBOARDING, offboard=OffboardMode.LEAVE,
                                               status=Run.Status.SUCCEEDED),
        "beta_change": Run.objects.create(customer=beta, started_by=bob, spec={"app_name": "beta-app"},
                                          kind=RunKind.CHANGE, status=Run.Status.SUCCEEDED),
    }  # fmt: skip
    return made


def _listed(client: Client, **query) -> list[str]:
    page = client.get(reverse("home"), query)
    assert page.status_code == 200
    return [str(run.pk) for run in page.context["runs"]]


def test_point_3_the_runs_page_shows_each_runs_kind_and_filters_and_searches(alice, bob):
    runs = _runs(alice, bob)
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("home")).content.decode()
    assert "<h1>Runs</h1>" in page and "Onboarding runs" not in page
    for run, words in (
        (runs["acme_onboarding"], "Onboarding"),
        (runs["acme_repair"], "Repair"),
        (runs["acme_offboarding"], "Offboarding (the agency leaves)"),
        (runs["beta_change"], "Change"),
    ):
        assert f'data-run="{run.pk}" data-kind="{run.kind}"' in page
        assert f'<span class="kind k-{run.kind}">{words}</span>' in page

    ids = {name: str(run.pk) for name, run in runs.items()}
    assert set(_listed(client)) == set(ids.values())
    assert _listed(client, kind="repair") == [ids["acme_repair"]]
    assert _listed(client, status="failed") == [ids["acme_repair"]]
    assert set(_listed(client, person="bob")) == {ids["acme_offboarding"], ids["beta_change"]}
    assert set(_listed(client, customer="beta")) == {ids["beta_change"]}
    assert _listed(client, q="beta") == [ids["beta_change"]]  # the customer's name, any case
    assert _listed(client, q="acme", person="bob", kind="offboarding") == [ids["acme_offboarding"]]
    nothing = client.get(reverse("home"), {"q": "gamma"}).content.decode()
    assert 'id="no-match"' in nothing and "Clear filters" in nothing


def test_point_4_the_customers_list_shows_last_run_drift_role_and_offboarding_sorted_and_searched(alice, bob):
    runs = _runs(alice, bob)
    acme, beta = runs["acme_onboarding"].customer, runs["beta_change"].customer
    now = timezone.now()
    acme.role_version, beta.role_version = 1, None
    acme.offboarded_at, acme.offboard_mode, acme.offboarded_by = now, OffboardMode.LEAVE, bob
    acme.save()
    beta.save()
    gamma = customer_make(name="Gamma GmbH", slug="gamma", aws_account_id="777788889999", role_version=99)
    DriftState.objects.create(customer=beta, state=DriftState.State.DRIFTED, since=now, checked_at=now)
    DriftState.objects.create(customer=gamma, state=DriftState.State.IN_SYNC, since=now, checked_at=now)
    Run.objects.filter(pk=runs["beta_change"].pk).update(created_at=now + timedelta(minutes=5))

    client = Client()
    client.force_login(alice)
    page = client.get(reverse("customer_list")).content.decode()
    beta_row = page.split('data-customer="beta"')[1].split("</tr>")[0]
    assert (
        f'href="/runs/{runs["beta_change"].pk}/">Change</a> <span class="badge s-succeeded">Succeeded</span>'
        in beta_row
    )
    assert '<span class="badge d-drifted">Drifted</span>' in beta_row and "Unknown" in beta_row
    acme_row = page.split(f'data-customer="{acme.slug}"')[1].split("</tr>")[0]
    assert "Offboarding (the agency leaves)</a>" in acme_row  # its last run
    assert "Not checked (offboarded)" in acme_row and "The agency leaves</span>" in acme_row
    assert "v1, out of date" in acme_row
    gamma_row = page.split('data-customer="gamma"')[1].split("</tr>")[0]
    assert "No run yet" in gamma_row and '<span class="badge d-in_sync">In sync</span>' in gamma_row
    assert "v99<" in gamma_row

    def order(**query) -> list[str]:
        return [c.slug for c in client.get(reverse("customer_list"), query).context["customers"]]

    assert order() == [acme.slug, "beta", "gamma"]
    assert order(sort="last_run") == ["beta", acme.slug, "gamma"]  # newest run first, none last
    assert order(sort="drift") == ["beta", "gamma", acme.slug]  # drifted, in sync, never checked
    assert order(sort="role") == ["beta", acme.slug, "gamma"]  # unknown, then oldest
    assert order(sort="offboarded")[0] == acme.slug
    assert order(q="GAMMA") == ["gamma"] and order(q="4444") == ["beta"]
    assert order(sort="nonsense") == [acme.slug, "beta", "gamma"]  # an unknown order is the default
    assert 'id="no-match"' in client.get(reverse("customer_list"), {"q": "delta"}).content.decode()
