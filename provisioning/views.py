"""Function views: thin, they check who may act and call the services."""

import json
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.celery import app as celery_app
from provisioning import documents, vault
from provisioning.approvals import ApprovalRefused, approval_reasons, approver_must_be_admin
from provisioning.audit import audit_record
from provisioning.auth import fresh_auth_required
from provisioning.checks import checks_blocking
from provisioning.customers import customer_unrevealed, runs_find, runs_with_unrevealed
from provisioning.errors import OnrampError
from provisioning.forms import OnboardingForm, RunFilterForm, TeamFormSet, onboarding_validate
from provisioning.kinds import REGISTRY
from provisioning.kinds.team_member import declaration as team_member
from provisioning.models import AccountRead, Credential, Customer, PlanApproval, Run, StepRun
from provisioning.oidc import oidc_enabled
from provisioning.onboarding import (
    OnboardingRefused,
    onboarding_confirm,
    onboarding_draft_build,
    onboarding_draft_read,
    onboarding_draft_spec,
)
from provisioning.permissions import (
    PortalRequest,
    access_denied_record,
    customer_permission_check,
    get_credential_for_user,
    get_run_for_user,
    is_admin,
    is_portal_user,
    may_manage_run,
    portal_user_required,
)
from provisioning.plan import (
    Action,
    plan_branches,
    plan_build,
    plan_groups,
    plan_registry,
    plan_run_steps,
    plan_transcript,
)
from provisioning.registry import BRANCHES, source_identity_for
from provisioning.rotation import RotationError, access_key_rotate_finish, access_key_rotate_start
from provisioning.runs import (
    CustomerOffboarded,
    RunConflict,
    RunStateError,
    customer_refuse_if_offboarded,
    run_cancel,
    run_retry,
    run_summary_now,
    run_summary_rows,
)
from provisioning.spec import Spec, SpecError
from provisioning.timeline import duration_text, timeline_build

DRAFT = "onboarding_draft"


@login_not_required
@require_GET
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database and the broker answer, 503 naming the one that does not."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            conn.default_channel.client.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"down: {type(exc).__name__}"
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ok else "down", **checks}, status=200 if ok else 503)


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


@portal_user_required
@require_POST
def onboard_reread(request: PortalRequest) -> HttpResponse:
    """Read the account again for the same draft (after a failed read, or a stale plan)."""
    draft = request.session.get(DRAFT)
    if draft:
        draft.pop("read_id", None)
        request.session[DRAFT] = draft
    return redirect("onboard_preview")


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
    except (RunStateError, RunConflict) as exc:
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


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store, max-age=0"
    response["Pragma"] = "no-cache"
    return response


@portal_user_required
@require_GET
def credential_detail(request: PortalRequest, credential_id: UUID) -> HttpResponse:
    """GET never reveals: it offers the reveal button, or says who revealed it (410 Gone)."""
    credential = get_credential_for_user(request, credential_id)
    status = 200 if credential.state == Credential.State.SEALED else 410
    return _no_store(render(request, "provisioning/credential.html", {"credential": credential}, status=status))


@portal_user_required
@require_POST
@fresh_auth_required(back="credential_detail")
def credential_reveal_view(request: PortalRequest, credential_id: UUID) -> HttpResponse:
    credential = get_credential_for_user(request, credential_id)
    revealed = vault.credential_reveal(credential_id=credential.pk, user=request.user)
    credential = revealed.credential
    if revealed.secret is None:
        return _no_store(
            render(request, "provisioning/credential.html", {"credential": credential, "refused": True}, status=410)
        )
    env_block = ""
    if credential.kind == Credential.Kind.ACCESS_KEY:
        env_block = (
            f"AWS_ACCESS_KEY_ID={credential.access_key_id}\n"
            f"AWS_SECRET_ACCESS_KEY={revealed.secret}\n"
            f"AWS_REGION={credential.region}\n"
            f"AWS_S3_BUCKET={credential.bucket}\n"
        )
    return _no_store(
        render(
            request,
            "provisioning/credential_revealed.html",
            {
                "credential": credential,
                "secret": revealed.secret,
                "env_block": env_block,
                # Named after the app: a browser strips the leading dot of ".env" (and saves "env.txt").
                "env_filename": f"{credential.user_name}.env",
            },
        )
    )


@portal_user_required
@require_POST
@fresh_auth_required(back="run_detail")
def rotate_start_view(request: PortalRequest, run_id: UUID) -> HttpResponse:
    run = get_run_for_user(request, run_id, action="rotate")
    if run.status != Run.Status.SUCCEEDED:
        messages.error(request, "A new key can be issued once the run has succeeded.")
        return redirect("run_detail", run_id=run.pk)
    try:
        customer_refuse_if_offboarded(customer=run.customer, user=request.user, doing="issue a new key")
        credential = access_key_rotate_start(run=run, user=request.user)
    except (OnrampError, CustomerOffboarded) as exc:
        messages.error(request, str(exc))
        return redirect("run_detail", run_id=run.pk)
    messages.success(
        request, f"New key {credential.access_key_id} issued. Reveal it, put it in the app, then remove the old key."
    )
    return redirect("credential_detail", credential_id=credential.pk)


@portal_user_required
@require_POST
def rotate_finish_view(request: PortalRequest, credential_id: UUID) -> HttpResponse:
    credential = get_credential_for_user(request, credential_id)
    try:
        access_key_rotate_finish(credential=credential, user=request.user)
        messages.success(request, f"The old key {credential.replaces_access_key_id} was deactivated and deleted.")
    except (RotationError, OnrampError) as exc:
        messages.error(request, str(exc))
    return redirect("run_detail", run_id=credential.run_id)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    access_denied_record(user=request.user, path=request.path)
    context: dict[str, Any] = {"message": str(exception or "")}
    if request.user.is_authenticated and not is_portal_user(request.user):
        # Signed in but in no group: say how access is granted, naming nobody (break-glass accounts included).
        context["no_group"] = True
        if oidc_enabled() and settings.OIDC_GROUPS_CLAIM:
            context["provider_groups"] = sorted(settings.OIDC_GROUP_MAP.items())
    return render(request, "403.html", context, status=403)
