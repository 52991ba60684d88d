"""The plan previews every view shows: a plan's stages, documents and CLI transcript, its difference
with what the account holds, its approval, and the form's decisions. No view of its own: the view modules
import this one, never one another."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render

from provisioning import documents
from provisioning.approvals import approval_reasons, approver_must_be_admin
from provisioning.checks import checks_blocking
from provisioning.identity.permissions import PortalRequest, is_admin
from provisioning.kinds import REGISTRY
from provisioning.kinds.team_member import declaration as team_member
from provisioning.models import AccountRead, Customer, PlanApproval, Run
from provisioning.plan import (
    Action,
    plan_branches,
    plan_build,
    plan_groups,
    plan_registry,
    plan_run_steps,
    plan_transcript,
)
from provisioning.registry import source_identity_for
from provisioning.spec import Spec

DRAFT = "onboarding_draft"


def plan_full_context(spec: Spec, *, username: str) -> dict:
    """A plan without a read (everything created; an approval saved before every plan read first): its stages,
    documents and CLI transcript."""
    steps = plan_build(spec)
    branches = plan_branches(steps)
    return {
        "spec": spec,
        "first": branches[0],
        "parallel": branches[1:],
        "step_count": len(steps),
        "documents": [
            (step, name, REGISTRY.document_titles().get(name, name), json.dumps(document, indent=2))
            for step in steps
            for name, document in step.documents.items()
        ],
        "sign_in_url": documents.sign_in_url(account_id=spec.account_id, alias=spec.account_alias),
        "cli": plan_transcript(spec, steps, source_identity=source_identity_for(username)),
    }


def approval_hint(
    user: User, *, customer: Customer | None, spec: Spec, items: list[dict] | None, offboard: str = ""
) -> dict:
    """What the preview says of approval: why this plan needs a second person (empty: none), and whether the
    viewer may start it alone in an emergency (an Admin)."""
    reasons = approval_reasons(customer=customer, spec=spec, items=items, offboard=offboard)
    return {"reasons": reasons, "admin_only": approver_must_be_admin(reasons), "break_glass": is_admin(user)}


def plan_started(request: PortalRequest, started: Run | PlanApproval) -> HttpResponse:
    """After a plan's Start: its run's page, or, when it awaits approval, its approval's page."""
    if isinstance(started, PlanApproval):
        messages.success(
            request, "Saved as awaiting approval: nothing runs until a second person approves it. They were told."
        )
        return redirect("approval_detail", approval_id=started.pk)
    return redirect("run_detail", run_id=started.pk)


def plan_decisions(post: QueryDict) -> tuple[set[int], dict[int, str]]:
    """A difference plan's form: the ledger rows ticked for deletion, and the names typed to delete what holds data."""
    delete = {int(value) for value in post.getlist("delete") if value.isdigit()}
    typed = {
        int(name.removeprefix("typed-")): str(value)
        for name, value in post.items()
        if name.startswith("typed-") and name.removeprefix("typed-").isdigit()
    }
    return delete, typed


def preview_difference(
    request: PortalRequest,
    spec: Spec,
    read: AccountRead,
    *,
    template: str = "provisioning/preview_diff.html",
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """Every plan: what the account read back says to create, adopt, change, keep, remove or release (an
    onboarding's, or an offboarding's). While the read is under way the page polls;
    once it is done, htmx reloads it."""
    if read.status in (AccountRead.Status.PENDING, AccountRead.Status.RUNNING):
        if request.htmx:
            return render(request, "provisioning/_reading.html", {"read": read})
        return render(request, template, {"spec": spec, "read": read, "reading": True, **(extra or {})})
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    context = {"spec": spec, "read": read, **(extra or {})}
    if read.status == AccountRead.Status.DONE:
        context |= plan_difference_context(spec, read, read.items, username=request.user.get_username())
        context["approval"] = approval_hint(
            request.user, customer=read.customer, spec=spec, items=read.items, offboard=read.offboard
        )
    return render(request, template, context)


def plan_difference_context(spec: Spec, read: AccountRead, items: list[dict], *, username: str) -> dict:
    """A difference plan's groups, checks, documents and CLI transcript: `items` as read, or as decided."""
    registry = plan_registry(read.offboard)
    steps = plan_run_steps(spec=spec, items=items, read_id=str(read.pk), registry=registry)
    return {
        "groups": plan_groups(items, offboard=read.offboard),
        "changes": sum(1 for item in items if item["action"] != Action.KEEP),
        "blocked": checks_blocking(read.checks),
        "sign_in_url": documents.sign_in_url(account_id=spec.account_id, alias=spec.account_alias),
        "removing_team": any(i["action"] == Action.REMOVE and i["kind"] == team_member.KEY for i in items),
        "documents": [
            (step, name, REGISTRY.document_titles().get(name, name), json.dumps(document, indent=2))
            for step in steps
            for name, document in step.documents.items()
        ],
        "cli": plan_transcript(spec, steps, source_identity=source_identity_for(username)),
    }
