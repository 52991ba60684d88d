"""The customers' rules in their services (provisioning/customers.py): the one desired-spec function and its two
choices of what counts, and the refusal of a run for an offboarded customer."""

import pytest
from django.utils import timezone

from provisioning.customers import CustomerOffboarded, customer_desired_spec, customer_refuse_if_offboarded
from provisioning.models import AuditEvent, Run
from tests.conftest import customer_for, spec_data


def _run(customer, user, *, bucket: str, status: str = Run.Status.SUCCEEDED, offboard: str = "") -> Run:
    spec = spec_data(bucket=bucket)
    return Run.objects.create(
        customer=customer, started_by=user, spec=spec, status=status, offboard=offboard, finished_at=timezone.now()
    )


def _buckets(customer) -> tuple[str | None, str | None]:
    """The bucket of each choice's desired spec: (what the customer's page and the form start from, what drift
    compares with)."""
    shown, drifts = (customer_desired_spec(customer=customer, for_drift=choice) for choice in (False, True))
    return (shown or {}).get("bucket"), (drifts or {}).get("bucket")


@pytest.mark.django_db
def test_a_customer_with_only_a_failed_run_shows_what_was_tried_and_has_nothing_to_drift_from(alice):
    customer = customer_for(spec_data())
    _run(customer, alice, bucket="tried-media", status=Run.Status.FAILED)
    assert _buckets(customer) == ("tried-media", None)


@pytest.mark.django_db
def test_the_last_success_counts_for_both_and_a_later_failure_for_neither(alice):
    customer = customer_for(spec_data())
    _run(customer, alice, bucket="first-media")
    _run(customer, alice, bucket="kept-media")
    _run(customer, alice, bucket="failed-media", status=Run.Status.FAILED)
    assert _buckets(customer) == ("kept-media", "kept-media")


@pytest.mark.django_db
def test_an_offboarding_counts_for_the_form_but_not_for_drift_and_an_offboarded_customer_has_no_drift_state(alice):
    customer = customer_for(spec_data())
    _run(customer, alice, bucket="kept-media")
    _run(customer, alice, bucket="offboarded-from-media", offboard="leave")
    # Not yet marked offboarded (an Admin's reactivation ended it): the form opens on what the offboarding started
    # from; drift compares with the last state Onramp kept.
    assert _buckets(customer) == ("offboarded-from-media", "kept-media")
    customer.offboarded_at, customer.offboard_mode = timezone.now(), "leave"
    customer.save(update_fields=["offboarded_at", "offboard_mode"])
    assert _buckets(customer) == ("offboarded-from-media", None)


@pytest.mark.django_db
def test_an_offboarded_customer_refuses_a_run_audited_as_refused_and_one_still_ours_passes(alice):
    customer = customer_for(spec_data())
    customer_refuse_if_offboarded(customer=customer, user=alice, doing="change")  # still ours: no refusal
    customer.offboarded_at, customer.offboard_mode, customer.offboarded_by = timezone.now(), "leave", alice
    customer.save(update_fields=["offboarded_at", "offboard_mode", "offboarded_by"])
    with pytest.raises(CustomerOffboarded, match="until an Admin reactivates them") as refused:
        customer_refuse_if_offboarded(customer=customer, user=alice, doing="change")
    assert refused.value.customer.pk == customer.pk
    event = AuditEvent.objects.get(action="run.refused")
    assert (event.outcome, event.error_code, event.details["doing"]) == (
        AuditEvent.Outcome.REFUSED,
        "CustomerOffboarded",
        "change",
    )
