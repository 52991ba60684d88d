"""The onboarding form and its preview: a checked draft in the session, the account read, then confirm."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from provisioning.approvals import ApprovalRefused
from provisioning.audit.chain import audit_record
from provisioning.customers import CustomerOffboarded, customer_refuse_if_offboarded
from provisioning.engine.runs import RunConflict
from provisioning.forms import OnboardingForm, TeamFormSet, onboarding_validate
from provisioning.identity.permissions import PortalRequest, customer_permission_check, is_admin, portal_user_required
from provisioning.models import Customer, Run
from provisioning.onboarding import (
    OnboardingRefused,
    onboarding_confirm,
    onboarding_draft_build,
    onboarding_draft_read,
    onboarding_draft_spec,
)
from provisioning.spec import Spec, SpecError
from provisioning.views.preview import DRAFT, plan_decisions, plan_started, preview_difference


def _customer_defaults() -> list[dict]:
    return [
        {
            "id": c.pk,
            "slug": c.slug,
            "account_id": c.aws_account_id,
            "region": c.default_region,
            "alias": c.account_alias,
            "access": c.access,
            "role_arn": c.role_arn,
            "external_id": c.external_id,
        }
        for c in Customer.objects.filter(is_active=True, offboarded_at__isnull=True)
    ]


@portal_user_required
@require_http_methods(["GET", "POST"])
def onboard(request: PortalRequest) -> HttpResponse:
    draft = request.session.get(DRAFT)
    kept_key_id = ((draft or {}).get("keys") or {}).get("access_key_id", "")
    lock = not is_admin(request.user)  # only Admins change a customer's connection here
    if request.method == "POST":
        form = OnboardingForm(request.POST, lock_connection=lock)
        formset = TeamFormSet(request.POST, prefix="team")
        spec = onboarding_validate(form, formset, kept_key_id=kept_key_id)
        if spec is not None:
            return _onboard_submitted(request, form, spec=spec, draft=draft)
    elif request.GET.get("edit") and draft:
        # Back from the preview: the values as typed, team members included (the secret stays encrypted).
        form = OnboardingForm(draft["form"], lock_connection=lock)
        formset = TeamFormSet(draft["form"], prefix="team")
        form.is_valid(), formset.is_valid()
    else:
        form = OnboardingForm(initial=_customer_initial(request.GET.get("customer", "")), lock_connection=lock)
        formset = TeamFormSet(prefix="team")
    picked = request.POST.get("customer", "") if request.method == "POST" else ""
    if request.method != "POST" and request.GET.get("edit") and draft:
        picked = str(draft.get("customer_id") or "")
    return render(
        request,
        "provisioning/onboard.html",
        {
            "form": form,
            "formset": formset,
            "changing": _customer_changing(picked),
            "customers": _customer_defaults(),
            "lock_connection": lock,
            # Mentioned only when the form is this draft's (edited or posted again), not on a fresh form.
            "kept_key_id": kept_key_id if request.method == "POST" or request.GET.get("edit") else "",
        },
    )


def _onboard_submitted(request, form: OnboardingForm, *, spec: Spec, draft: dict | None) -> HttpResponse:
    """A valid form: refused for a customer on record whose team the user is not on (403, audited) or who was
    offboarded; else kept in the session as the draft, audited, and on to the preview."""
    customer = form.cleaned_data.get("customer")
    known = customer or Customer.objects.filter(aws_account_id=spec.account_id).first()
    if known is not None:  # a customer on record: only its team and Admins go on (else 403, audited)
        customer_permission_check(user=request.user, customer=known, action="settings")
    if customer is not None:
        try:
            customer_refuse_if_offboarded(customer=customer, user=request.user, doing="onboarding form")
        except CustomerOffboarded as exc:
            messages.error(request, str(exc))
            return redirect("customer_detail", slug=exc.customer.slug)
    locked = form.connection_locked is not None  # the record's keys, none typed here
    request.session[DRAFT] = onboarding_draft_build(
        spec=spec,
        customer=customer,
        posted=request.POST.dict(),
        access_key_id="" if locked else form.cleaned_data.get("access_key_id", ""),
        secret="" if locked else form.cleaned_data.get("secret_access_key", ""),
        previous=draft,
    )
    audit_record(
        action="onboarding.submitted",
        actor=request.user,
        customer=customer,
        target=spec.app_name,
        details={"spec": spec.to_json()},
    )
    return redirect("onboard_preview")


def _customer_changing(customer_id: str) -> Customer | None:
    """The customer whose team and settings the form changes (one with a successful run), or None: a first
    onboarding."""
    if not customer_id.isdigit():
        return None
    runs = Run.objects.filter(customer_id=customer_id, status=Run.Status.SUCCEEDED, offboard="")
    return Customer.objects.filter(pk=customer_id).first() if runs.exists() else None


def _customer_initial(customer_id: str) -> dict:
    offered = Customer.objects.filter(is_active=True, offboarded_at__isnull=True)
    customer = offered.filter(pk=customer_id).first() if customer_id.isdigit() else None
    if customer is None:
        return {}
    return {
        "customer": customer,
        "account_id": customer.aws_account_id,
        "region": customer.default_region,
        "account_alias": customer.account_alias,
        "access": customer.access,
        "role_arn": customer.role_arn,
        "external_id": customer.external_id,
    }


@portal_user_required
@require_http_methods(["GET", "POST"])
def onboard_preview(request: PortalRequest) -> HttpResponse:
    draft = request.session.get(DRAFT)
    if not draft:
        messages.info(request, "Fill the onboarding form first.")
        return redirect("onboard")
    if request.method == "POST":
        delete, typed = plan_decisions(request.POST)
        emergency = request.POST.get("emergency", "") if "break_glass" in request.POST else ""
        try:
            run = onboarding_confirm(draft=draft, user=request.user, delete=delete, typed=typed, emergency=emergency)
        except ApprovalRefused as exc:
            messages.error(request, str(exc))
            return redirect("onboard_preview")
        except OnboardingRefused as exc:
            messages.error(request, str(exc))
            return redirect(f"{reverse('onboard')}?edit=1")
        except CustomerOffboarded as exc:
            messages.error(request, str(exc))
            return redirect("customer_detail", slug=exc.customer.slug)
        except RunConflict as exc:
            messages.error(request, str(exc))
            return redirect("run_detail", run_id=exc.active.pk)
        del request.session[DRAFT]
        return plan_started(request, run)
    try:
        spec = onboarding_draft_spec(draft=draft)
    except SpecError:
        # A draft saved before the rules changed: send the user back to the form with the values.
        messages.error(request, "The rules changed since this draft was checked: check the form again.")
        return redirect(f"{reverse('onboard')}?edit=1")
    try:
        read = onboarding_draft_read(draft=draft, user=request.user)
    except OnboardingRefused as exc:
        messages.error(request, str(exc))
        return redirect(f"{reverse('onboard')}?edit=1")
    request.session[DRAFT] = draft  # it now names its customer and its read
    return preview_difference(request, spec, read)


@portal_user_required
@require_POST
def onboard_reread(request: PortalRequest) -> HttpResponse:
    """Read the account again for the same draft (after a failed read, or a stale plan)."""
    draft = request.session.get(DRAFT)
    if draft:
        draft.pop("read_id", None)
        request.session[DRAFT] = draft
    return redirect("onboard_preview")
