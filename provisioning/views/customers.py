"""The customers' pages: what Onramp keeps in each account, its runs and unrevealed secrets; and the ways
back into the onboarding form with a spec filled in (change the team or settings, edit a failed run and
start again). Thin: the selectors and services live in provisioning.customers and onboarding."""

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from provisioning.audit.chain import audit_record
from provisioning.customers import (
    CustomerOffboarded,
    customer_desired_spec,
    customer_offboarding_undone,
    customer_refuse_if_offboarded,
    customer_resources,
    customer_unrevealed,
    customers_find,
    roles_overview,
)
from provisioning.drift import drift_check_start, drift_in_progress, drift_overview
from provisioning.forms import CustomerSearchForm, onboarding_form_data
from provisioning.identity.permissions import (
    PortalRequest,
    customer_may_change,
    customer_permission_check,
    get_run_for_user,
    is_admin,
    portal_user_required,
)
from provisioning.models import Customer, DriftState, Run
from provisioning.registry import ROLE_TEMPLATE_VERSION
from provisioning.setup_links import setup_link_live
from provisioning.views.preview import DRAFT
from provisioning.vocabulary import run_kind_words

REPAIR = "repair drift"
# The Customers list's columns: the order each sorts by (provisioning.customers.CUSTOMER_SORTS), and its heading.
SORT_COLUMNS = [
    ("name", "Customer"),
    ("", "Account"),
    ("last_run", "Last run"),
    ("drift", "Drift"),
    ("role", "Role version"),
    ("offboarded", "Offboarded"),
]


@portal_user_required
@require_GET
def customer_list(request: PortalRequest) -> HttpResponse:
    """Every customer with their last run, drift state, role version and offboarding; searched and sorted."""
    form = CustomerSearchForm(request.GET)
    q, sort = (form.cleaned_data["q"].strip(), form.cleaned_data["sort"] or "name") if form.is_valid() else ("", "name")
    # Any: the rows carry customers_with_last_run's annotations, which the model's type does not know.
    customers: list[Any] = list(customers_find(q=q, sort=sort))
    for customer in customers:  # the last run's kind and status in words (annotated as their values)
        if customer.last_run_id:
            customer.last_run_kind_words = run_kind_words(customer.last_run_kind, customer.last_run_offboard)
            customer.last_run_status_words = Run.Status(customer.last_run_status).label
    context = {
        "customers": customers,
        "sort_columns": SORT_COLUMNS,
        "form": form,
        "q": q,
        "sort": sort,
        "role_current": ROLE_TEMPLATE_VERSION,
        "any_customer": Customer.objects.filter(is_active=True).exists(),
    }
    return render(request, "provisioning/customers.html", context)


@portal_user_required
@require_GET
def customer_detail(request: PortalRequest, slug: str) -> HttpResponse:
    customer = get_object_or_404(Customer, slug=slug)
    runs = list(customer.runs.select_related("started_by").order_by("-created_at")[:20])
    setup_link = setup_link_live(customer=customer)
    return render(
        request,
        "provisioning/customer.html",
        {
            "customer": customer,
            "resources": customer_resources(customer=customer),
            "setup_link": setup_link,
            "setup_openings": list(setup_link.openings.all()) if setup_link else [],
            "runs": runs,
            "unrevealed": customer_unrevealed(customer=customer, user=request.user, admin=is_admin(request.user)),
            "desired": customer_desired_spec(customer=customer),
            "team": list(customer.team.order_by("username")),
            **_drift_context(customer, request.user),
        },
    )


def _drift_context(customer: Customer, user) -> dict:
    # An offboarded customer's last drift state was about a desired state Onramp no longer keeps: not shown.
    drift = (
        None
        if customer.is_offboarded
        else DriftState.objects.filter(customer=customer).select_related("last_read").first()
    )
    return {
        # Read-only for anyone not on the customer's team (nor an Admin): no button that would be refused.
        "may_change": customer_may_change(user, customer),
        "drift": drift,
        "drift_checking": drift_in_progress(customer=customer),
        "drift_checkable": customer_desired_spec(customer=customer, for_drift=True) is not None,
    }


@portal_user_required
@require_GET
def customer_drift(request: PortalRequest, slug: str) -> HttpResponse:
    """The drift part of the customer's page, which htmx polls while a check is under way."""
    customer = get_object_or_404(Customer, slug=slug)
    return render(request, "provisioning/_drift.html", {"customer": customer, **_drift_context(customer, request.user)})


@portal_user_required
@require_POST
def customer_drift_check(request: PortalRequest, slug: str) -> HttpResponse:
    """Check now: read the account back against the desired state (nothing changes in it)."""
    customer = get_object_or_404(Customer, slug=slug, is_active=True)
    if drift_check_start(customer=customer, user=request.user) is None:
        messages.info(request, _nothing_to_compare(customer))
    return redirect(f"{reverse('customer_detail', args=[customer.slug])}#drift")


@portal_user_required
@require_POST
def customer_repair(request: PortalRequest, slug: str) -> HttpResponse:
    """Repair: the plan that brings the account back to its desired state, read afresh and previewed; nothing
    changes until a tech lead starts it."""
    customer = get_object_or_404(Customer, slug=slug, is_active=True)
    customer_permission_check(user=request.user, customer=customer, action="repair")
    spec = customer_desired_spec(customer=customer, for_drift=True)
    if spec is None:
        messages.info(request, _nothing_to_compare(customer))
        return redirect("customer_detail", slug=customer.slug)
    drift = DriftState.objects.filter(customer=customer).first()
    if drift is not None and not drift.repairable:
        messages.info(request, f"A repair would change nothing in {customer.name}'s account: check it again first.")
        return redirect(f"{reverse('customer_detail', args=[customer.slug])}#drift")
    return _draft_from(request, spec=spec, customer=customer, why=REPAIR, to="preview")


def _nothing_to_compare(customer: Customer) -> str:
    if customer.is_offboarded:
        return f"{customer.name} is offboarded: Onramp no longer keeps their account in an agreed state."
    return f"{customer.name} has no successful run yet: there is nothing to compare with."


@portal_user_required
@require_GET
def drift_list(request: PortalRequest) -> HttpResponse:
    """Every customer's drift state, worst first."""
    return render(request, "provisioning/drift.html", {"customers": drift_overview()})


def _draft_from(request, *, spec: dict, customer: Customer, why: str, to: str):
    """Open the onboarding form (or its preview) on `spec`, as if the tech lead had typed it."""
    request.session[DRAFT] = {
        "spec": spec,
        "customer_id": customer.pk,
        "keys": None,
        "form": onboarding_form_data(spec=spec, customer=customer),
        "repair": why == REPAIR,
    }
    audit_record(action="onboarding.reopened", actor=request.user, customer=customer, details={"from": why})
    if to == "preview":
        return redirect("onboard_preview")
    return redirect(f"{reverse('onboard')}?edit=1")


def _refused_offboarded(request, customer: Customer, doing: str):
    """The customer's page with the reason, when the customer is offboarded (no run starts for them)."""
    try:
        customer_refuse_if_offboarded(customer=customer, user=request.user, doing=doing)
    except CustomerOffboarded as exc:
        messages.error(request, str(exc))
        return redirect("customer_detail", slug=customer.slug)
    return None


@portal_user_required
@require_POST
def customer_change(request: PortalRequest, slug: str) -> HttpResponse:
    """Change team / settings: the form with the customer's current desired state (their last good spec)."""
    customer = get_object_or_404(Customer, slug=slug, is_active=True)
    customer_permission_check(user=request.user, customer=customer, action="settings")
    if refused := _refused_offboarded(request, customer, "change team / settings"):
        return refused
    spec = customer_desired_spec(customer=customer)
    if spec is None:
        messages.info(request, f"{customer.name} has no onboarding yet: start one.")
        return redirect(f"{reverse('onboard')}?customer={customer.pk}")
    back = customer_offboarding_undone(customer=customer)
    if back:
        messages.warning(
            request,
            f"{customer.name} was reactivated after an offboarding that removed {', '.join(back)}. This form has "
            "the team from before it: starting it creates them again. Remove anyone who should not come back.",
        )
    return _draft_from(request, spec=spec, customer=customer, why="change team / settings", to="form")


@portal_user_required
@require_POST
def run_reopen(request: PortalRequest, run_id: UUID) -> HttpResponse:
    """Edit and start again (the form, from a failed or cancelled run's spec), or plan again (the preview of
    the same spec, read afresh: after the account changed under a plan)."""
    run = get_run_for_user(request, run_id, action="plan")
    if run.is_active:
        messages.error(request, "This run is still in progress.")
        return redirect("run_detail", run_id=run.pk)
    if run.offboard:  # an offboarding is planned again from its own page, in the same mode
        return redirect(f"{reverse('customer_offboard', args=[run.customer.slug])}?mode={run.offboard}")
    to = "preview" if request.POST.get("to") == "preview" else "form"
    if refused := _refused_offboarded(
        request, run.customer, "plan again" if to == "preview" else "edit and start again"
    ):
        return refused
    why = f"{'plan again' if to == 'preview' else 'edit and start again'} from run {run.short_id}"
    return _draft_from(request, spec=run.spec, customer=run.customer, why=why, to=to)


@portal_user_required
@require_GET
def roles_list(request: PortalRequest) -> HttpResponse:
    """Every customer's Onramp role: the template version deployed, the current one, when last seen, and what
    an update brings to the outdated ones."""
    return render(request, "provisioning/roles.html", {"rows": roles_overview(), "role_current": ROLE_TEMPLATE_VERSION})
