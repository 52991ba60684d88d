"""Offboarding from the customer's page: choose the mode, check the plan (the account read back against the
desired state that wants less), confirm, then the run page as usual. Thin: provisioning.offboarding does it."""

from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from provisioning.approvals import ApprovalRefused
from provisioning.customers import CustomerOffboarded
from provisioning.engine.runs import RunConflict
from provisioning.identity.permissions import PortalRequest, customer_permission_check, portal_user_required
from provisioning.models import Customer
from provisioning.offboarding import MODE_WORDS, OffboardRefused, offboard_confirm, offboard_read, offboard_start
from provisioning.spec import spec_parse
from provisioning.views.preview import plan_decisions, plan_started, preview_difference
from provisioning.vocabulary import OffboardMode


def _modes() -> list[tuple[str, str, str]]:
    return [(mode.value, mode.label, MODE_WORDS[mode]) for mode in OffboardMode]


@portal_user_required
@require_http_methods(["GET", "POST"])
def customer_offboard(request: PortalRequest, slug: str) -> HttpResponse:
    """Choose how the customer is offboarded (the agency leaves, by default); posting reads the account."""
    customer = get_object_or_404(Customer.objects.select_related("offboarded_by"), slug=slug, is_active=True)
    customer_permission_check(user=request.user, customer=customer, action="offboard")
    if customer.is_offboarded:
        messages.error(request, str(CustomerOffboarded(customer)))
        return redirect("customer_detail", slug=customer.slug)
    chosen = request.POST.get("mode") or request.GET.get("mode") or OffboardMode.LEAVE
    if request.method == "POST":
        try:
            read = offboard_start(customer=customer, mode=chosen, user=request.user)
            return redirect("customer_offboard_plan", slug=customer.slug, read_id=read.pk)
        except OffboardRefused as exc:
            messages.error(request, str(exc))
        except CustomerOffboarded as exc:
            messages.error(request, str(exc))
            return redirect("customer_detail", slug=customer.slug)
    return render(request, "provisioning/offboard.html", {"customer": customer, "modes": _modes(), "chosen": chosen})


@portal_user_required
@require_http_methods(["GET", "POST"])
def customer_offboard_plan(request: PortalRequest, slug: str, read_id: UUID) -> HttpResponse:
    """The offboarding's plan, as any difference plan: what goes, what stays; confirming starts the run."""
    customer = get_object_or_404(Customer, slug=slug, is_active=True)
    customer_permission_check(user=request.user, customer=customer, action="offboard")
    read = offboard_read(customer=customer, read_id=read_id)
    if read is None:
        raise Http404("No such offboarding plan.")
    if request.method == "POST":
        delete, typed = plan_decisions(request.POST)
        emergency = request.POST.get("emergency", "") if "break_glass" in request.POST else ""
        try:
            started = offboard_confirm(read=read, user=request.user, delete=delete, typed=typed, emergency=emergency)
        except (OffboardRefused, ApprovalRefused) as exc:
            messages.error(request, str(exc))
            return redirect("customer_offboard_plan", slug=customer.slug, read_id=read.pk)
        except CustomerOffboarded as exc:
            messages.error(request, str(exc))
            return redirect("customer_detail", slug=customer.slug)
        except RunConflict as exc:
            messages.error(request, str(exc))
            return redirect("run_detail", run_id=exc.active.pk)
        return plan_started(request, started)
    mode = OffboardMode(read.offboard)
    extra = {"customer": customer, "mode": mode, "mode_words": MODE_WORDS[mode]}
    return preview_difference(
        request, spec_parse(read.spec), read, template="provisioning/offboard_preview.html", extra=extra
    )
