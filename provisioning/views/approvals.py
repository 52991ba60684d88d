"""The Approvals page and one plan awaiting approval: the same preview the requester saw, with Approve,
Decline and Withdraw. Thin: provisioning.approvals decides."""

from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from provisioning.approvals import (
    ApprovalRefused,
    approval_approve,
    approval_decline,
    approval_refusal,
    approval_withdraw,
    approvals_for,
)
from provisioning.identity.permissions import PortalRequest, portal_user_required
from provisioning.models import PlanApproval
from provisioning.spec import spec_from_json
from provisioning.views.preview import plan_difference_context, plan_full_context


@portal_user_required
@require_GET
def approval_list(request: PortalRequest) -> HttpResponse:
    """What waits for the signed-in person, oldest first: what they may approve, and their own requests."""
    to_decide, own = approvals_for(request.user)
    return render(request, "provisioning/approvals.html", {"to_decide": to_decide, "own": own})


def _get_approval(approval_id) -> PlanApproval:
    """Any portal user may look at a plan awaiting approval (as at a run); deciding is checked by the service."""
    related = ("customer", "requested_by", "decided_by", "read", "run")
    return get_object_or_404(PlanApproval.objects.select_related(*related), pk=approval_id)


@portal_user_required
@require_GET
def approval_detail(request: PortalRequest, approval_id: UUID) -> HttpResponse:
    """The plan as the requester saw it (from the stored read and decided items), and what the viewer may do."""
    approval = _get_approval(approval_id)
    spec = spec_from_json(approval.spec)
    username = approval.requested_by.get_username()
    if approval.read is not None:
        context = plan_difference_context(spec, approval.read, approval.items, username=username)
        context["read"] = approval.read
    else:
        context = plan_full_context(spec, username=username)
    refusal = approval_refusal(approval, request.user)
    context |= {
        "approval": approval,
        "spec": spec,
        "decided": True,
        "may_decide": not refusal,
        "refusal": refusal,
        "may_withdraw": approval.state == PlanApproval.State.AWAITING and approval.requested_by_id == request.user.pk,
    }
    return render(request, "provisioning/approval.html", context)


def _decide(request, approval_id, act, done: str):
    _get_approval(approval_id)  # 404 for an id that is none
    try:
        result = act()
    except ApprovalRefused as exc:
        messages.error(request, str(exc))
        return redirect("approval_detail", approval_id=approval_id)
    messages.success(request, done)
    if isinstance(result, PlanApproval):
        return redirect("approval_list")
    return redirect("run_detail", run_id=result.pk)


@portal_user_required
@require_POST
def approval_approve_view(request: PortalRequest, approval_id: UUID) -> HttpResponse:
    comment = request.POST.get("comment", "").strip()[:2000]
    act = lambda: approval_approve(approval_id=approval_id, user=request.user, comment=comment)  # noqa: E731
    return _decide(request, approval_id, act, "Approved: the run started, as the requester's run.")


@portal_user_required
@require_POST
def approval_decline_view(request: PortalRequest, approval_id: UUID) -> HttpResponse:
    comment = request.POST.get("comment", "").strip()[:2000]
    act = lambda: approval_decline(approval_id=approval_id, user=request.user, comment=comment)  # noqa: E731
    return _decide(request, approval_id, act, "Declined: nothing runs. The requester was told why.")


@portal_user_required
@require_POST
def approval_withdraw_view(request: PortalRequest, approval_id: UUID) -> HttpResponse:
    act = lambda: approval_withdraw(approval_id=approval_id, user=request.user)  # noqa: E731
    return _decide(request, approval_id, act, "Withdrawn: nothing runs.")
