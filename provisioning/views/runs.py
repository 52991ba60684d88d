"""The Runs page, one run's page and its live part, retry and cancel."""

from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from provisioning.customers import CustomerOffboarded, customer_unrevealed, runs_find, runs_with_unrevealed
from provisioning.engine.finish import run_summary_now, run_summary_rows
from provisioning.engine.runs import RunConflict, RunStateError, run_cancel, run_retry
from provisioning.forms import RunFilterForm
from provisioning.identity.permissions import (
    PortalRequest,
    get_run_for_user,
    is_admin,
    may_manage_run,
    portal_user_required,
)
from provisioning.models import Credential, PlanApproval, Run, StepRun
from provisioning.registry import BRANCHES
from provisioning.timeline import duration_text, timeline_build


@portal_user_required
def home(request: PortalRequest) -> HttpResponse:
    """The Runs page: every kind of run, newest first, filtered and searched."""
    form = RunFilterForm(request.GET)
    runs = runs_find(filters=form.filters()) if form.is_valid() else []
    waiting = runs_with_unrevealed(runs=runs, user=request.user, admin=is_admin(request.user))
    filtered = any(request.GET.get(name) for name in form.fields)
    any_run = bool(runs) or Run.objects.exists()
    return render(
        request,
        "provisioning/home.html",
        {"runs": runs, "waiting": waiting, "form": form, "filtered": filtered, "any_run": any_run},
    )


def _run_context(request, run: Run) -> dict:
    steps = list(run.steps.all())
    for step in steps:
        step.duration_text = duration_text(step.duration_ms)  # type: ignore[attr-defined]  # for the template
    manage = may_manage_run(request.user, run)
    credentials = list(run.credentials.select_related("revealed_by").order_by("created_at")) if manage else []
    # The run is marked running just after its first step is claimed, and this page reads the run before its
    # steps: a step already under way means the run is, whatever the run row said a moment earlier.
    started = run.status == Run.Status.PENDING and any(s.state != "pending" for s in steps)
    return {
        "run": run,
        "approval": PlanApproval.objects.filter(run=run).first(),
        "status_shown": Run.Status.RUNNING if started else Run.Status(run.status),
        "steps": steps,
        # What exists now, as the ledger knows it (a key rotated since the run shows as the new key).
        "summary_rows": run_summary_rows(run_summary_now(run)) if run.summary else [],
        "earlier_unrevealed": [
            c
            for c in customer_unrevealed(customer=run.customer, user=request.user, admin=is_admin(request.user))
            if c.run_id != run.pk
        ],
        # What the plan said of what it removes or leaves behind (a renamed bucket, one kept and released).
        "plan_notes": [item for item in run.plan if item.get("note") and item["action"] in ("remove", "release")],
        "done_count": sum(1 for s in steps if s.state in StepRun.DONE),
        "manage": manage,
        "credentials": credentials,
        "refused": [c for c in credentials if c.refused_attempts],
        "timeline": timeline_build(steps=steps, now=timezone.now(), branch_names=BRANCHES),
        "plan_stale": any(s.error_code == "PlanStale" for s in steps),
        "can_rotate": manage
        and run.status == Run.Status.SUCCEEDED
        and not run.customer.is_offboarded
        and not any(c.kind == Credential.Kind.ACCESS_KEY and c.state == Credential.State.SEALED for c in credentials),
    }


@portal_user_required
@require_GET
def run_detail(request: PortalRequest, run_id: UUID) -> HttpResponse:
    run = get_run_for_user(request, run_id)
    return render(request, "provisioning/run.html", _run_context(request, run))


@portal_user_required
@require_GET
def run_live(request: PortalRequest, run_id: UUID) -> HttpResponse:
    """The part of the run page that htmx polls while the run is in progress."""
    run = get_run_for_user(request, run_id)
    return render(request, "provisioning/_run_live.html", _run_context(request, run))


def _run_action(request, run_id, action, done: str):
    """Retry or cancel: only the customer's team or an Admin; the outcome said in a message."""
    run = get_run_for_user(request, run_id, action="run")
    try:
        action(run=run, user=request.user)
        messages.success(request, done)
    except (RunStateError, RunConflict, CustomerOffboarded) as exc:
        messages.error(request, str(exc))
    return redirect("run_detail", run_id=run.pk)


@portal_user_required
@require_POST
def run_retry_view(request: PortalRequest, run_id: UUID) -> HttpResponse:
    return _run_action(request, run_id, run_retry, "Retrying the failed steps.")


@portal_user_required
@require_POST
def run_cancel_view(request: PortalRequest, run_id: UUID) -> HttpResponse:
    return _run_action(
        request, run_id, run_cancel, "Run cancelled. Steps already running finish their current AWS call."
    )
