"""Four eyes on what can hurt: which plans need a second person, asking, approving, declining, withdrawing,
expiring, voiding, and an Admin's emergency start (break-glass).

A plan that needs approval is saved as a PlanApproval, awaiting: no run exists yet, so the one-active-run
lock is not taken and drift repairs and other runs go on. Approving starts the run as the requester's, with
the approver as `approved_by` (engine.runs.run_create): the lock is taken then, and the run's preflight still checks
that the account is as it was read. The rule is in one place: `approval_reasons` and
`approver_must_be_admin`.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from provisioning import notify
from provisioning.audit.chain import audit_record
from provisioning.customers import CustomerOffboarded
from provisioning.engine.runs import RunConflict, run_create
from provisioning.kinds import REGISTRY
from provisioning.kinds.team_member import declaration as team_member
from provisioning.kinds.team_member.declaration import member_policies
from provisioning.ledger import ledger_rows
from provisioning.models import AccountRead, ApprovalRule, AuditEvent, Customer, PlanApproval, Run
from provisioning.plan import Action, plan_build
from provisioning.spec import Spec, spec_from_json
from provisioning.teams import customer_may_change, customer_permission_check, is_admin, is_tech_lead
from provisioning.vocabulary import OffboardMode

ADMIN_POLICY = "AdministratorAccess"
# Reason codes: an adoption's approval is an Admin's.
OFFBOARD, ADOPT, REMOVE, GRANT_ADMIN, EVERY = "offboard", "adopt", "remove", "grant_admin", "every"
_VERBS = (Action.CREATE, Action.CHANGE, Action.ADOPT, Action.REMOVE, Action.RELEASE)
BREAK_GLASS_MIN = 10  # characters of the typed reason: a sentence, not "x"


class ApprovalRefused(Exception):
    """The approval cannot be asked for, decided or used as asked: a sentence saying why and what to do."""


@dataclass(frozen=True)
class Reason:
    code: str
    sentence: str

    def to_json(self) -> dict:
        return {"code": self.code, "sentence": self.sentence}


def _plan_items(spec: Spec, items: list[dict] | None) -> list[dict]:
    """A difference plan's items; for a plan without a read (a customer new to the ledger), every step it
    would create, as items."""
    if items is not None:
        return items
    return [
        {"kind": s.kind, "action": Action.CREATE, "params": s.params, "differences": []} for s in plan_build(spec)[1:]
    ]


def _grants_admin(item: dict) -> bool:
    """A team user who gets AdministratorAccess from this plan: made with it, or changed to have it."""
    if item["kind"] != team_member.KEY or item["action"] not in (Action.CREATE, Action.CHANGE, Action.ADOPT):
        return False
    if ADMIN_POLICY not in member_policies(item["params"]):
        return False
    if item["action"] != Action.CHANGE:
        return True
    return any(d["field"] == "policies" and ADMIN_POLICY not in d["actual"] for d in item.get("differences", []))


def _emails(items: list[dict]) -> str:
    return ", ".join(sorted(str(item["params"].get("email") or item.get("identity", "")) for item in items))


def approval_reasons(
    *, customer: Customer | None, spec: Spec, items: list[dict] | None, offboard: str = "", repair: bool = False
) -> list[Reason]:
    """Why this plan needs a second person's approval (none: it starts at once). Offboarding and adoptions
    always do; otherwise the customer's rule (a new customer's: APPROVAL_DEFAULT). `items`: the decided items
    of a difference plan, None for a plan without a read (it creates everything). `repair` changes nothing of
    the rule: a repair that removes or grants AdministratorAccess needs approval like any plan."""
    rule = customer.approval_rule if customer is not None else settings.APPROVAL_DEFAULT
    planned = _plan_items(spec, items)
    reasons = []
    if offboard:
        reasons.append(Reason(OFFBOARD, f"An offboarding ({OffboardMode(offboard).label.lower()}) always needs one."))
    adopted = [item for item in planned if item["action"] == Action.ADOPT]
    if adopted:
        names = ", ".join(sorted({str(item.get("identity") or item["kind"]) for item in adopted}))
        reasons.append(Reason(ADOPT, f"It adopts what Onramp did not make ({names}): an Admin must approve it."))
    if rule == ApprovalRule.EVERY and not reasons:
        reasons.append(Reason(EVERY, "Every plan for this customer needs one (its approval rule)."))
    if rule != ApprovalRule.RISKY or offboard:
        return reasons
    removed = [item for item in planned if item["action"] == Action.REMOVE]
    if removed:
        reasons.append(Reason(REMOVE, f"It removes or deletes {len(removed)} resource{'s' * (len(removed) != 1)}."))
    admins = [item for item in planned if _grants_admin(item)]
    if admins:
        reasons.append(Reason(GRANT_ADMIN, f"It grants AdministratorAccess to {_emails(admins)}."))
    return reasons


def approver_must_be_admin(reasons: list[Reason] | list[dict]) -> bool:
    """Only an Admin approves an adoption."""
    return any((r.code if isinstance(r, Reason) else r["code"]) == ADOPT for r in reasons)


def _plural(noun: str, n: int) -> str:
    if n == 1:
        return noun
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def plan_summary(*, customer_name: str, spec: Spec, items: list[dict] | None, offboard: str = "") -> str:
    """The plan in a line, for lists and notifications: "Acme: remove 1 user, release 1 bucket"."""
    planned = _plan_items(spec, items)
    parts = []
    for verb in _VERBS:
        counts: dict[str, int] = {}
        for item in planned:
            if item["action"] == verb:
                noun = REGISTRY.kind_of(item["kind"]).noun or "resource"
                counts[noun] = counts.get(noun, 0) + 1
        nouns = [f"{n} {_plural(noun, n)}" for noun, n in counts.items()]
        if nouns:
            parts.append(f"{verb} {', '.join(nouns)}")
    head = f"{customer_name}: offboard ({OffboardMode(offboard).label.lower()})" if offboard else customer_name
    what = ", ".join(parts) or "no changes"
    return f"{head}{', ' if offboard else ': '}{what}"[:300]


def ledger_fingerprint(*, customer_id: int | None) -> str:
    """A digest of what the customer's ledger holds now (an approval is void once another run changed it)."""
    rows = ledger_rows(customer_id=customer_id) if customer_id else []
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


# --- Starting, asking -------------------------------------------------------------------------------------


def _run_start(*, approval_like: dict, user, approved_by) -> Run:
    """Start the plan's run (run_create: the lock, then the preflight's checks); an offboarding audited as
    confirmed."""
    spec, read, items, offboard = (approval_like[k] for k in ("spec", "read", "items", "offboard"))
    customer = approval_like["customer"]
    run = run_create(
        spec=spec,
        customer=customer,
        user=user,
        read=read,
        items=items,
        offboard=offboard,
        repair=approval_like["repair"],
        approved_by=approved_by,
    )
    if offboard:
        audit_record(
            action="offboard.confirmed",
            actor=user,
            customer=customer,
            run=run,
            target=customer.name,
            details={
                "mode": offboard,
                "remove": sum(1 for item in items or [] if item["action"] == Action.REMOVE),
                "release": sum(1 for item in items or [] if item["action"] == Action.RELEASE),
                **({"approved_by": approved_by.get_username()} if approved_by else {}),
            },
        )
    return run


def plan_start(
    *,
    spec: Spec,
    customer: Customer,
    user: User,
    read: AccountRead | None = None,
    items: list[dict] | None = None,
    offboard: str = "",
    repair: bool = False,
    emergency: str = "",
) -> Run | PlanApproval:
    """Start a plan, or save it as awaiting approval when the rules ask for a second person (a PlanApproval,
    audited and notified). `emergency`: an Admin's typed reason to start it alone (break-glass, audited and
    notified to the team). RunConflict, CustomerOffboarded, NotOnCustomerTeam as run_create; ApprovalRefused."""
    customer_permission_check(user=user, customer=customer, action="offboard" if offboard else "run")
    reasons = approval_reasons(customer=customer, spec=spec, items=items, offboard=offboard, repair=repair)
    plan = {"spec": spec, "customer": customer, "read": read, "items": items, "offboard": offboard, "repair": repair}
    if not reasons:
        return _run_start(approval_like=plan, user=user, approved_by=None)
    if emergency.strip():
        return _break_glass(plan=plan, user=user, reasons=reasons, reason=emergency.strip())
    return approval_request(plan=plan, user=user, reasons=reasons)


def _break_glass(*, plan: dict, user, reasons: list[Reason], reason: str) -> Run:
    customer = plan["customer"]
    if not is_admin(user):
        _refuse(user=user, customer=customer, doing="break-glass", reason="not an Admin")
        raise ApprovalRefused("Only an Admin may start a plan without its approval (break-glass).")
    if len(reason) < BREAK_GLASS_MIN:
        raise ApprovalRefused("Say why this cannot wait for a second person: the reason is kept in the audit log.")
    run = _run_start(approval_like=plan, user=user, approved_by=user)
    summary = plan_summary(
        customer_name=customer.name, spec=plan["spec"], items=plan["items"], offboard=plan["offboard"]
    )
    audit_record(
        action="plan.break_glass",
        actor=user,
        customer=customer,
        run=run,
        target=summary,
        details={"reason": reason, "needed_approval_for": [r.sentence for r in reasons]},
    )
    notify.break_glass_notify(run=run, summary=summary, reason=reason)
    return run


def approval_request(*, plan: dict, user: User, reasons: list[Reason]) -> PlanApproval:
    """Save the plan as awaiting approval (no run, no lock), audited; the team and the Admins are told."""
    customer, spec = plan["customer"], plan["spec"]
    approval = PlanApproval.objects.create(
        customer=customer,
        requested_by=user,
        spec=spec.to_json(),
        read=plan["read"],
        items=plan["items"] or [],
        offboard=plan["offboard"],
        repair=plan["repair"],
        summary=plan_summary(customer_name=customer.name, spec=spec, items=plan["items"], offboard=plan["offboard"]),
        reasons=[r.to_json() for r in reasons],
        admin_only=approver_must_be_admin(reasons),
        ledger_fingerprint=ledger_fingerprint(customer_id=customer.pk),
        expires_at=timezone.now() + timedelta(seconds=settings.APPROVAL_TTL),
    )
    audit_record(
        action="plan.approval_requested",
        actor=user,
        customer=customer,
        target=approval.summary,
        details={
            "approval": str(approval.pk),
            "reasons": [r.sentence for r in reasons],
            "admin_only": approval.admin_only,
            "read": str(plan["read"].pk) if plan["read"] else None,
            "expires_at": approval.expires_at.isoformat(),
        },
    )
    notify.approval_requested_notify(approval=approval)
    return approval


# --- Deciding -----------------------------------------------------------------------------------------------


def _refuse(*, user, customer, doing: str, reason: str, approval: PlanApproval | None = None) -> None:
    audit_record(
        action="plan.approval_refused",
        actor=user,
        customer=customer,
        outcome=AuditEvent.Outcome.REFUSED,
        error_code="ApprovalRefused",
        target=approval.summary if approval else customer.name,
        details={"doing": doing, "reason": reason, **({"approval": str(approval.pk)} if approval else {})},
    )


def approval_refusal(approval: PlanApproval, user: User) -> str:
    """Why `user` may not approve or decline this plan, in a sentence; "" when they may."""
    if approval.state != PlanApproval.State.AWAITING:
        return f"This plan is no longer awaiting approval: it was {approval.get_state_display().lower()}."
    if user.pk == approval.requested_by_id:
        return "You asked for this plan: another person approves it (a member of the customer's team or an Admin)."
    if approval.admin_only and not is_admin(user):
        return "Only an Admin approves this plan: it adopts what Onramp did not make."
    if not customer_may_change(user, approval.customer):
        return (
            f"Only {approval.customer.name}'s team and Admins approve its plans: ask an Admin to add you to the team."
        )
    return ""


def _locked(approval_id) -> PlanApproval:
    return (
        PlanApproval.objects.select_for_update(of=("self",))
        .select_related("customer", "requested_by", "read")
        .get(pk=approval_id)
    )


def _end(approval: PlanApproval, *, state: str, action: str, user=None, reason: str = "", comment: str = "") -> None:
    """End an awaiting approval (declined, withdrawn, expired, voided), audited; the requester is told."""
    approval.state, approval.decided_at = state, timezone.now()
    approval.decided_by = user if state in (PlanApproval.State.DECLINED, PlanApproval.State.APPROVED) else None
    approval.comment, approval.ended_reason = comment or approval.comment, reason
    approval.save(update_fields=["state", "decided_at", "decided_by", "comment", "ended_reason"])
    audit_record(
        action=action,
        actor=user,
        actor_label=None if user else "approvals",
        customer=approval.customer,
        run=approval.run_id,
        target=approval.summary,
        details={
            "approval": str(approval.pk),
            **({"comment": comment} if comment else {}),
            **({"reason": reason} if reason else {}),
        },
    )
    if state != PlanApproval.State.WITHDRAWN:
        notify.approval_decided_notify(approval=approval)


def _void_reason(approval: PlanApproval) -> str:
    """Why the plan asked for is no longer the plan Onramp would run, in a sentence; "" when it still is."""
    customer, spec = approval.customer, spec_from_json(approval.spec)
    if ledger_fingerprint(customer_id=customer.pk) != approval.ledger_fingerprint:
        after = Run.objects.filter(customer=customer, created_at__gt=approval.created_at).exclude(approval=approval)
        by = after.select_related("started_by").order_by("-created_at").first()
        cause = f" (run {by.short_id} by {by.started_by.get_username()})" if by else ""
        return (
            f"What Onramp keeps in {customer.name}'s account changed since this plan was asked for{cause}: "
            "plan again and ask again."
        )
    wanted = {"access": spec.access, "role_arn": spec.role_arn, "external_id": spec.external_id}
    if any(value and getattr(customer, name) != value for name, value in wanted.items()):
        return (
            f"How Onramp reaches {customer.name}'s account changed since this plan was asked for: "
            "plan again and ask again."
        )
    return ""


def approval_approve(*, approval_id: UUID | str, user: User, comment: str = "") -> Run:
    """Approve and start the run as the requester's, approved by `user`. ApprovalRefused (with a sentence) when
    `user` may not, when it expired or was voided (both recorded), or when the run cannot start now (another
    run in progress: the approval stays awaiting)."""
    refusal, run = None, None
    with transaction.atomic():
        approval = _locked(approval_id)
        if why := approval_refusal(approval, user):
            _refuse(user=user, customer=approval.customer, doing="approve", reason=why, approval=approval)
            refusal = ApprovalRefused(why)
        elif approval.expires_at <= timezone.now():
            refusal = ApprovalRefused(_expire(approval))
        elif why := _void_reason(approval):
            _end(approval, state=PlanApproval.State.VOIDED, action="plan.voided", user=user, reason=why)
            refusal = ApprovalRefused(why)
        else:
            plan = {
                "spec": spec_from_json(approval.spec),
                "customer": approval.customer,
                "read": approval.read,
                "items": approval.items if approval.read_id else None,
                "offboard": approval.offboard,
                "repair": approval.repair,
            }
            try:
                run = _run_start(approval_like=plan, user=approval.requested_by, approved_by=user)
            except RunConflict as exc:
                refusal = ApprovalRefused(f"{exc} The plan still awaits approval: approve it once that run has ended.")
            except (CustomerOffboarded, PermissionDenied) as exc:
                refusal = ApprovalRefused(f"{exc} The plan still awaits approval.")
            else:
                approval.run = run
                approval.save(update_fields=["run"])
                _end(approval, state=PlanApproval.State.APPROVED, action="plan.approved", user=user, comment=comment)
    if refusal is not None or run is None:
        raise refusal or ApprovalRefused("The plan could not be started.")
    return run


def approval_decline(*, approval_id: UUID | str, user: User, comment: str) -> PlanApproval:
    """Decline with a comment (required: the requester reads why), audited; nothing runs."""
    with transaction.atomic():
        approval = _locked(approval_id)
        why = approval_refusal(approval, user) or (
            "" if comment.strip() else "Say why you decline: the requester reads it."
        )
        if not why:
            _end(
                approval, state=PlanApproval.State.DECLINED, action="plan.declined", user=user, comment=comment.strip()
            )
            return approval
        _refuse(user=user, customer=approval.customer, doing="decline", reason=why, approval=approval)
    raise ApprovalRefused(why)


def approval_withdraw(*, approval_id: UUID | str, user: User) -> PlanApproval:
    """The requester takes the plan back, audited; nothing runs."""
    with transaction.atomic():
        approval = _locked(approval_id)
        why = ""
        if approval.requested_by_id != user.pk:
            why = f"Only {approval.requested_by.get_username()}, who asked for this plan, may withdraw it."
        elif approval.state != PlanApproval.State.AWAITING:
            why = f"This plan is no longer awaiting approval: it was {approval.get_state_display().lower()}."
        if not why:
            _end(approval, state=PlanApproval.State.WITHDRAWN, action="plan.withdrawn", user=user)
            return approval
        _refuse(user=user, customer=approval.customer, doing="withdraw", reason=why, approval=approval)
    raise ApprovalRefused(why)


def _expire(approval: PlanApproval) -> str:
    hours = round(settings.APPROVAL_TTL / 3600, 1)
    why = f"Nobody approved this plan within {hours:g} h (APPROVAL_TTL): it expired. Plan again and ask again."
    _end(approval, state=PlanApproval.State.EXPIRED, action="plan.expired", reason=why)
    return why


def approvals_expire(*, now: datetime | None = None) -> int:
    """The periodic sweep: every awaiting approval past its expiry ends expired, audited. How many."""
    now = now or timezone.now()
    expired = 0
    for approval_id in PlanApproval.objects.filter(state=PlanApproval.State.AWAITING, expires_at__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            approval = _locked(approval_id)
            if approval.state == PlanApproval.State.AWAITING and approval.expires_at <= now:
                _expire(approval)
                expired += 1
    return expired


# --- Selectors ----------------------------------------------------------------------------------------------


def approvals_for(user: User) -> tuple[list[PlanApproval], list[PlanApproval]]:
    """What waits for `user`, oldest first: the plans they may approve, and their own requests."""
    awaiting = PlanApproval.objects.filter(
        state=PlanApproval.State.AWAITING, expires_at__gt=timezone.now()
    ).select_related("customer", "requested_by")
    own = list(awaiting.filter(requested_by=user).order_by("created_at"))
    others = awaiting.exclude(requested_by=user)
    if not is_admin(user):
        others = others.filter(customer__team=user, admin_only=False) if is_tech_lead(user) else others.none()
    return list(others.order_by("created_at")), own


def approvals_waiting_count(user: User) -> int:
    """How many plans `user` may approve now (the menu's count)."""
    return len(approvals_for(user)[0])
