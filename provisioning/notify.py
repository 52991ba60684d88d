"""Notifications: a run finished or failed, drift found on a customer, an unrevealed secret about to be wiped.

Each goes by email (Django's email framework: the console in development, SMTP in production) to the
people concerned, and to one Slack-compatible webhook ({"text": …}) when NOTIFY_WEBHOOK_URL is set. A
message says what happened in words and links to the page; it never holds a secret: no secret value, no
ciphertext (credentials are read without it), an access key id at most. Every delivery is audited:
`notify.sent` (channel, recipients) or `notify.failed` (channel, error; never the body). A failure is
logged and audited and never raised: a notification cannot fail a run or the check that found drift.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from provisioning.audit.chain import audit_record, redact_text
from provisioning.kinds import REGISTRY
from provisioning.models import AuditEvent, Credential, Customer, PlanApproval, Resource, Run, StepRun
from provisioning.plan import Action
from provisioning.vocabulary import ADMINS, TECH_LEADS, run_counts_words

logger = logging.getLogger(__name__)
ACTOR = "notifier"
EMAIL = "email"
WEBHOOK = "webhook"


@dataclass(frozen=True)
class Notice:
    """One notification, the same on every channel."""

    event: str  # run.succeeded, run.failed, drift.found, credential.expiring
    ref: str  # with the event, what makes this notice this one (audited; a run's notice is sent once)
    subject: str
    body: str  # the email's text
    link: str  # the page it is about
    recipients: tuple[str, ...]  # email addresses
    customer_id: int | None = None
    run_id: UUID | None = None

    @property
    def webhook_text(self) -> str:
        """Slack reads &, < and > as control characters (<!channel>, <url|label>): sent as the entities it
        asks for, a customer's name is shown as typed and pings or links nobody."""
        text = f"{self.subject}\n{self.link}"
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(path: str) -> str:
    return settings.PORTAL_URL + path


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _duration(seconds: float) -> str:
    hours, minutes = divmod(max(1, round(seconds / 60)), 60)
    parts = [f"{hours} hour{'s' * (hours != 1)}"] if hours else []
    return " ".join(parts + ([f"{minutes} minute{'s' * (minutes != 1)}"] if minutes or not hours else []))


def _addresses(users) -> tuple[str, ...]:
    return tuple(sorted({user.email for user in users if user.is_active and user.email}))


def _notice(*, template: str, event: str, ref: str, context: dict, link: str, recipients, **about) -> Notice:
    """Render templates/notify/<template>.txt: its first line is the subject, the rest the body."""
    subject, _, body = render_to_string(f"notify/{template}.txt", {**context, "link": link}).partition("\n")
    return Notice(
        event=event,
        ref=ref,
        subject=subject.strip(),
        body=body.strip() + "\n",
        link=link,
        recipients=_addresses(recipients),
        **about,
    )


def _error_text(exc: BaseException) -> str:
    """An error in words, without anything it may quote that looks like a secret."""
    return redact_text(f"{type(exc).__name__}: {exc}")[:300]


def _email_send(notice: Notice) -> dict[str, str | None]:
    """One message per recipient over one connection: each address, and the error that kept it from them."""
    outcome: dict[str, str | None] = {}
    try:
        with mail.get_connection(fail_silently=False) as connection:
            for address in notice.recipients:
                message = mail.EmailMessage(notice.subject, notice.body, to=[address], connection=connection)
                try:
                    message.send()
                    outcome[address] = None
                except Exception as exc:  # smtplib's errors are OSErrors; anything else is a failure too
                    outcome[address] = _error_text(exc)
    except Exception as exc:  # opening (or closing) the connection
        error = _error_text(exc)
        outcome = {address: outcome.get(address, error) for address in notice.recipients}
    return outcome


def _webhook_send(notice: Notice) -> dict[str, str | None]:
    """POST the text to the webhook: its host, and the error in words (never the URL: it holds a token)."""
    url, timeout = settings.NOTIFY_WEBHOOK_URL, settings.NOTIFY_WEBHOOK_TIMEOUT
    host = urlsplit(url).hostname or "webhook"
    try:
        response = requests.post(url, json={"text": notice.webhook_text}, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        return {host: f"{type(exc).__name__}: no answer within {timeout:g} s"}
    except requests.RequestException as exc:  # its message names the URL: the class says enough
        return {host: f"{type(exc).__name__}: could not reach the webhook"}
    if 200 <= response.status_code < 300:
        return {host: None}
    return {host: f"HTTP {response.status_code} from the webhook"}


def _audit(notice: Notice, channel: str, outcome: dict[str, str | None]) -> None:
    """One `notify.sent` row for who got it, one `notify.failed` row per distinct error."""
    by_error: dict[str | None, list[str]] = {}
    for recipient, error in outcome.items():
        by_error.setdefault(error, []).append(recipient)
    for error, recipients in by_error.items():
        if error is not None:
            logger.warning("Notification %s by %s to %s failed: %s", notice.event, channel, recipients, error)
        audit_record(
            action="notify.failed" if error else "notify.sent",
            actor_label=ACTOR,
            customer=notice.customer_id,
            run=notice.run_id,
            outcome=AuditEvent.Outcome.ERROR if error else AuditEvent.Outcome.OK,
            error_code="NotificationFailed" if error else "",
            target=", ".join(recipients),
            details={
                "channel": channel,
                "event": notice.event,
                "ref": notice.ref,
                "recipients": recipients,
                **({"error": error} if error else {}),
            },
        )


def notice_deliver(notice: Notice, *, skip: frozenset[str] = frozenset()) -> None:
    """Send a notice on every configured channel (but those in `skip`) and audit each outcome. Never raises."""
    channels = {EMAIL: _email_send if notice.recipients else None}
    channels[WEBHOOK] = _webhook_send if settings.NOTIFY_WEBHOOK_URL else None
    for channel, send in channels.items():
        if send is None or channel in skip:
            continue
        try:
            _audit(notice, channel, send(notice))
        except Exception:  # the audit itself (the database): logged, never raised into the caller
            logger.exception("Notification %s by %s could not be recorded", notice.event, channel)


def _channels_sent(notice: Notice) -> frozenset[str]:
    """The channels a run's notice already went out on (a task delivered twice sends once)."""
    sent = AuditEvent.objects.filter(
        run=notice.run_id, action="notify.sent", details__event=notice.event, details__ref=notice.ref
    )
    return frozenset(sent.values_list("details__channel", flat=True))


def _sealed_context(credentials) -> list[dict]:
    """What a message may say about credentials waiting to be revealed: never their ciphertext."""
    return [
        {
            "kind": credential.get_kind_display(),
            "user_name": credential.user_name,
            "access_key_id": credential.access_key_id,
            "expires": _when(credential.expires_at),
        }
        for credential in credentials
    ]


def _step_count(step: StepRun, action: str) -> str:
    """Which count a done step adds to: what the plan adopted is adopted, what it changed is changed; a resource
    is created only when its step made it (its outputs say so), whatever else the step changed on it."""
    if action in (Action.ADOPT, Action.CHANGE):
        return "adopted" if action == Action.ADOPT else "changed"
    if REGISTRY.kind_of(step.key).resource is not None:
        return "created" if (step.outputs or {}).get("created") else "adopted"
    return "adopted" if step.state == StepRun.State.ADOPTED else "created"


def run_counts(*, run: Run, steps: list[StepRun]) -> dict[str, int]:
    """What a run did, counted: resources and settings created, found already there (adopted) or changed by
    its steps; resources the ledger says it removed or released; what an offboarding handed over."""
    planned = {item["key"]: item["action"] for item in run.plan}
    removals = {key for kind in REGISTRY.kinds for key in kind.removal}
    counts = dict.fromkeys(("created", "adopted", "changed", "removed", "released", "handed_over"), 0)
    for step in steps:
        kind = REGISTRY.kind_of(step.key)
        if kind.always or kind.key in removals or step.state not in StepRun.DONE:
            continue
        counts[_step_count(step, planned.get(step.key, ""))] += 1
    ended = Resource.objects.filter(removed_by_run=run)
    counts["removed"] = ended.filter(state=Resource.State.REMOVED).count()
    counts["released"] = ended.filter(state=Resource.State.RELEASED).count()
    counts["handed_over"] = len(((run.summary or {}).get("offboard") or {}).get("handed_over", []))
    return counts


def run_notify(*, run_id: UUID | str) -> Notice | None:
    """Tell the tech lead who started a run that it succeeded or failed, with what failed and why."""
    run = Run.objects.select_related("customer", "started_by").filter(pk=run_id).first()
    if run is None or run.status not in (Run.Status.SUCCEEDED, Run.Status.FAILED):
        return None
    steps = list(run.steps.all())
    sealed = run.credentials.filter(state=Credential.State.SEALED).defer("ciphertext").order_by("created_at")
    removed_users = Resource.objects.filter(
        removed_by_run=run, state=Resource.State.REMOVED, kind__in=REGISTRY.user_kinds()
    )
    context = {
        "kind": run.kind_words,
        "run": run.short_id,
        "customer": run.customer.name,
        "account_id": run.customer.aws_account_id,
        "region": run.spec.get("region", ""),
        "person": run.started_by.get_username(),
        "steps": len(steps),
        "counts": run_counts_words(run.kind, run_counts(run=run, steps=steps)),
        "removed_users": list(removed_users.order_by("name").values_list("name", flat=True)),
        "skipped": sum(s.state == StepRun.State.SKIPPED for s in steps),
        "failed": [
            {"title": s.title, "code": s.error_code, "message": redact_text(s.error_message)}
            for s in steps
            if s.state == StepRun.State.FAILED
        ],
        "credentials": _sealed_context(sealed),
        "reminders": (run.summary or {}).get("reminders", []),
    }
    notice = _notice(
        template=f"run_{run.status}",
        event=f"run.{run.status}",
        ref=run.finished_at.isoformat() if run.finished_at else "",
        context=context,
        link=_link(reverse("run_detail", args=[run.pk])),
        recipients=[run.started_by],
        customer_id=run.customer_id,
        run_id=run.pk,
    )
    notice_deliver(notice, skip=_channels_sent(notice))
    return notice


def drift_recipients(*, customer: Customer) -> list:
    """The tech leads who ran this customer's runs, and the Admins (superusers count as Admins)."""
    ran = Run.objects.filter(customer=customer).values("started_by")
    people = get_user_model().objects.filter(
        Q(is_superuser=True) | Q(groups__name=ADMINS) | Q(groups__name=TECH_LEADS, pk__in=ran), is_active=True
    )
    return list(people.exclude(email="").distinct().order_by("username"))


def drift_notify(
    *, customer: Customer, differences: list[str], checked_at: datetime, repairable: bool = True
) -> Notice:
    """Tell the customer's tech leads and the Admins that a check found the account drifted.

    For the drift check: call it when a check finds differences (deciding whether the same differences
    were already reported is the caller's). Each difference is one sentence in words (expected, found);
    `repairable`: whether a repair would change any of them (else the message offers none).
    Inside a transaction it sends once that transaction commits; outside one, at once. Never raises."""
    notice = _notice(
        template="drift",
        event="drift.found",
        ref=checked_at.isoformat(),
        context={
            "customer": customer.name,
            "account_id": customer.aws_account_id,
            "differences": [redact_text(difference) for difference in differences],
            "checked": _when(checked_at),
            "repairable": repairable,
        },
        link=_link(reverse("customer_detail", args=[customer.slug]) + "#drift"),
        recipients=drift_recipients(customer=customer),
        customer_id=customer.pk,
    )
    transaction.on_commit(lambda: notice_deliver(notice), robust=True)
    return notice


def _credential_notice(credential: Credential, now: datetime) -> Notice:
    run = credential.run
    return _notice(
        template="credential_expiring",
        event="credential.expiring",
        ref=str(credential.pk),
        context={
            "credential": _sealed_context([credential])[0],
            "customer": credential.customer.name,
            "run": run.short_id if run else "",
            "person": credential.issued_to.get_username(),
            "left": _duration((credential.expires_at - now).total_seconds()),
        },
        link=_link(reverse("credential_detail", args=[credential.pk])),
        recipients=[credential.issued_to],
        customer_id=credential.customer_id,
        run_id=credential.run_id,
    )


def credentials_warn(*, now: datetime | None = None) -> int:
    """Tell the person each unrevealed secret was issued to, once, NOTIFY_SECRET_WARNING seconds before the
    vault wipes it. Returns how many were warned. Each is claimed before sending, so two beats never warn
    twice; a failed send is audited and not tried again (the wipe comes first)."""
    now = now or timezone.now()
    horizon = now + timedelta(seconds=settings.NOTIFY_SECRET_WARNING)
    sealed = Credential.objects.filter(state=Credential.State.SEALED, warned_at__isnull=True)
    warned = 0
    for credential_id in sealed.filter(expires_at__gt=now, expires_at__lte=horizon).values_list("pk", flat=True):
        if not sealed.filter(pk=credential_id).update(warned_at=now):
            continue  # revealed, expired or warned meanwhile
        credential = (
            Credential.objects.select_related("customer", "run", "issued_to").defer("ciphertext").get(pk=credential_id)
        )
        notice_deliver(_credential_notice(credential, now))
        warned += 1
    return warned


def setup_recipients(*, customer: Customer) -> list:
    """The customer's team and the Admins."""
    people = get_user_model().objects.filter(
        Q(is_superuser=True) | Q(groups__name=ADMINS) | Q(pk__in=customer.team.values("pk")), is_active=True
    )
    return list(people.exclude(email="").distinct().order_by("username"))


def _setup_notify(*, customer: Customer, template: str, at: datetime, **context) -> Notice:
    """A set-up notice to the customer's team and the Admins, linking the customer's page, sent after the commit."""
    notice = _notice(
        template=template,
        event=template.replace("_", "."),
        ref=at.isoformat(),
        context={"customer": customer.name, "account_id": customer.aws_account_id, "when": _when(at), **context},
        link=_link(reverse("customer_detail", args=[customer.slug])),
        recipients=setup_recipients(customer=customer),
        customer_id=customer.pk,
    )
    transaction.on_commit(lambda: notice_deliver(notice), robust=True)
    return notice


def setup_connected_notify(*, customer: Customer, role_arn: str, version: int, connected_at: datetime) -> Notice:
    """Tell the team that Onramp found the customer's role by itself (after the transaction commits)."""
    return _setup_notify(
        customer=customer, template="setup_connected", at=connected_at, role_arn=role_arn, version=version
    )


def setup_mismatch_notify(*, customer: Customer, role_arn: str, given_at: datetime) -> Notice:
    """Tell the team that the customer gave a role in another account than the one set (nothing applied)."""
    return _setup_notify(
        customer=customer, template="setup_mismatch", at=given_at, role_arn=redact_text(role_arn[:300])
    )


def _approval_link(approval) -> str:
    return _link(reverse("approval_detail", args=[approval.pk]))


def approval_requested_notify(*, approval: PlanApproval) -> Notice:
    """Tell the customer's team and the Admins (not the requester) that a plan awaits their approval: its
    summary line and a link, after the transaction commits."""
    customer = approval.customer
    people = [person for person in setup_recipients(customer=customer) if person.pk != approval.requested_by_id]
    notice = _notice(
        template="approval_requested",
        event="plan.approval_requested",
        ref=str(approval.pk),
        context={
            "summary": approval.summary,
            "customer": customer.name,
            "account_id": customer.aws_account_id,
            "person": approval.requested_by.get_username(),
            "reasons": [reason["sentence"] for reason in approval.reasons],
            "admin_only": approval.admin_only,
            "expires": _when(approval.expires_at),
        },
        link=_approval_link(approval),
        recipients=people,
        customer_id=customer.pk,
    )
    transaction.on_commit(lambda: notice_deliver(notice), robust=True)
    return notice


def approval_decided_notify(*, approval: PlanApproval) -> Notice:
    """Tell the requester that their plan was approved, declined, expired or voided (after the commit)."""
    notice = _notice(
        template="approval_decided",
        event=f"plan.{approval.state}",
        ref=str(approval.pk),
        context={
            "state": approval.get_state_display(),
            "summary": approval.summary,
            "customer": approval.customer.name,
            "decider": approval.decided_by.get_username() if approval.decided_by else "",
            "comment": redact_text(approval.comment),
            "reason": approval.ended_reason,
        },
        link=_link(reverse("run_detail", args=[approval.run_id])) if approval.run_id else _approval_link(approval),
        recipients=[approval.requested_by],
        customer_id=approval.customer_id,  # about the approval (its ref), not the run: that one has its own notice
    )
    transaction.on_commit(lambda: notice_deliver(notice), robust=True)
    return notice


def break_glass_notify(*, run: Run, summary: str, reason: str) -> Notice:
    """Tell the customer's team and the Admins that an Admin started a plan without its approval."""
    notice = _notice(
        template="break_glass",
        event="plan.break_glass",
        ref=str(run.pk),
        context={
            "summary": summary,
            "customer": run.customer.name,
            "account_id": run.customer.aws_account_id,
            "person": run.started_by.get_username(),
            "when": _when(run.created_at),
            "reason": redact_text(reason),
        },
        link=_link(reverse("run_detail", args=[run.pk])),
        recipients=setup_recipients(customer=run.customer),
        customer_id=run.customer_id,
        run_id=run.pk,
    )
    transaction.on_commit(lambda: notice_deliver(notice), robust=True)
    return notice
