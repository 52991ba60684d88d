"""Writing to the append-only, hash-chained audit log, and redacting what it records."""

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from provisioning.audit.keys import AuditKeyMissing, audit_key, audit_key_current
from provisioning.models import AuditEvent, Customer, Run

GENESIS_HASH = "0" * 64
REDACTED = "***"
# Keys whose values are secret wherever they appear (request parameters, details, nested).
SECRET_KEYS = frozenset(
    k.lower()
    for k in (
        "SecretAccessKey",
        "Password",
        "NewPassword",
        "OldPassword",
        "SessionToken",
        "secret",
        "secret_access_key",
        "password",
        "ciphertext",
        "Credentials",
        "aws_secret_access_key",
        "token",
        "PrivateKey",
    )
)
# Error messages from AWS or our code may echo the input or quote a response; these shapes never
# reach the log: `name: value`, `name=value`, JSON's `"name": "value"` and XML's `<Name>value<`.
_SECRET_IN_TEXT = re.compile(
    r"(?i)((?:secret[_ ]?access[_ ]?key|password|session[_ ]?token)(?:[\"']?\s*[:=]\s*[\"']?|>))([^\s\"',;}<]+)"
)
# AWS validation errors put the value before the member: "Value 'hunter2' at 'password' failed to satisfy...".
_VALUE_AT_SECRET_MEMBER = re.compile(
    r"(?i)(value\s+')(.*?)('\s+at\s+'[^']*(?:password|secret|token|credentials)[^']*')", re.DOTALL
)
_AWS_SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
# One chain, one writer at a time: take the chain's advisory lock (any fixed number; held to the end
# of the transaction), then read its last hash. One round trip, two statements: the read is its own
# statement, so its snapshot is taken once the lock is held and sees what the last writer committed.
_LOCK_THEN_LAST_HASH = (
    "SELECT pg_advisory_xact_lock(7277001); SELECT hash FROM provisioning_auditevent ORDER BY id DESC LIMIT 1"
)


def redact_text(text: str) -> str:
    """Remove what looks like a secret from free text (an error message that echoes input)."""
    text = _SECRET_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)
    text = _VALUE_AT_SECRET_MEMBER.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return _AWS_SECRET_SHAPE.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of `value` with secret keys' values replaced, at any depth, and secret shapes removed."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in SECRET_KEYS and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


@dataclass
class PendingEvent:
    action: str
    actor_label: str = "system"
    actor_id: int | None = None
    customer_id: int | None = None
    run_id: UUID | str | None = None
    step_key: str = ""
    outcome: str = AuditEvent.Outcome.OK
    error_code: str = ""
    target: str = ""
    details: dict = field(default_factory=dict)
    created_at: datetime = field(default_factory=timezone.now)


@dataclass
class CallLog:
    """Events buffered to be written together, in the caller's transaction: the AWS calls a piece of
    work makes (the botocore hook appends them) and what the work itself records, all sharing who
    acted, for which customer, run and step."""

    actor_label: str
    actor_id: int | None = None
    customer_id: int | None = None
    run_id: UUID | str | None = None
    step_key: str = ""
    events: list[PendingEvent] = field(default_factory=list)

    def record(self, *, action: str, **fields) -> None:
        """Buffer one event in this log's context (see audit_record for the fields)."""
        context = {
            "actor_label": self.actor_label,
            "actor_id": self.actor_id,
            "customer": self.customer_id,
            "run": self.run_id,
            "step_key": self.step_key,
        }
        audit_record(action=action, **{**context, **fields}, into=self)

    def drain(self) -> list[PendingEvent]:
        events, self.events = self.events, []
        return events


def _last_hash() -> str:
    """Take the chain's lock (held to the end of the transaction) and read the chain's last hash."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_THEN_LAST_HASH)
            if not cursor.nextset():  # never chain onto the lock's empty result
                raise DatabaseError("The audit chain's last hash could not be read.")
            row = cursor.fetchone()
        return row[0] if row else GENESIS_HASH
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    return last or GENESIS_HASH


def audit_hash(event: AuditEvent) -> str:
    """HMAC-SHA256 of the previous hash and the event, with the AUDIT_KEYS key the row names (AuditKeyMissing
    if AUDIT_KEYS no longer holds it); plain SHA-256 for a row written before the chain was keyed."""
    message = (event.prev_hash + event.canonical()).encode()
    if not event.key_id:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(audit_key(event.key_id), message, hashlib.sha256).hexdigest()


def audit_write(events: Iterable[PendingEvent]) -> list[AuditEvent]:
    """Append events to the chain in one transaction (one lock, one bulk insert)."""
    events = list(events)
    if not events:
        return []
    key_id, _ = audit_key_current()
    with transaction.atomic(savepoint=False):  # inside a caller's transaction, no savepoint round trips
        prev = _last_hash()
        rows = []
        for pending in events:
            row = AuditEvent(
                created_at=pending.created_at,
                actor_id=pending.actor_id,
                actor_label=pending.actor_label[:200],
                customer_id=pending.customer_id,
                run_id=pending.run_id,
                step_key=pending.step_key[:200],
                action=pending.action[:100],
                outcome=pending.outcome,
                error_code=(pending.error_code or "")[:128],
                target=(pending.target or "")[:500],
                details=redact(pending.details),
                prev_hash=prev,
                key_id=key_id,
            )
            row.hash = audit_hash(row)
            prev = row.hash
            rows.append(row)
        return AuditEvent.objects.bulk_create(rows)


def _pk(value: Any) -> Any:
    """A model's primary key, or the value itself when it is one already."""
    return getattr(value, "pk", value)


def audit_record(
    *,
    action: str,
    actor: User | AnonymousUser | None = None,
    actor_label: str | None = None,
    actor_id: int | None = None,
    customer: Customer | int | None = None,
    run: Run | UUID | str | None = None,
    step_key: str = "",
    outcome: str = AuditEvent.Outcome.OK,
    error_code: str = "",
    target: str = "",
    details: dict | None = None,
    into: CallLog | None = None,
) -> AuditEvent | None:
    """Record one human or system action: written now, or buffered `into` a log its owner writes later
    (in the same transaction as the outcome it belongs to). The one way an event is made."""
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if actor is not None:
        actor_id = actor.pk
    label = actor_label or (actor.get_username() if actor is not None else "anonymous")
    event = PendingEvent(
        action=action,
        actor_label=label,
        actor_id=actor_id,
        customer_id=_pk(customer),
        run_id=_pk(run),
        step_key=step_key,
        outcome=outcome,
        error_code=error_code,
        target=target,
        details=details or {},
    )
    if into is not None:
        into.events.append(event)
        return None
    return audit_write([event])[0]


@dataclass(frozen=True)
class ChainCheck:
    checked: int  # events verified, in id order, before the first broken one
    broken: AuditEvent | None
    reason: str = ""
    unkeyed: int = 0  # rows from before the chain was keyed (plain SHA-256), all at its start


def _break_reason(event: AuditEvent, prev: str, keyed: bool) -> str:
    """Why `event` does not continue the chain, or "" when it does."""
    if event.prev_hash != prev:
        return "it does not follow the previous event (one was deleted, inserted or rewritten)"
    if keyed and not event.key_id:
        # A forger without the key could only write unkeyed rows; keyed rows never go back to unkeyed.
        return "it is unkeyed after keyed events"
    try:
        matches = audit_hash(event) == event.hash
    except AuditKeyMissing:
        return f"it is signed with the key {event.key_id}, which AUDIT_KEYS does not hold"
    return "" if matches else "its hash does not match its content"


def audit_verify_chain(batch_size: int = 5000) -> ChainCheck:
    """Walk the chain in id order and stop at the first event that does not continue it."""
    prev, checked, unkeyed, keyed = GENESIS_HASH, 0, 0, False
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=batch_size):
        reason = _break_reason(event, prev, keyed)
        if reason:
            return ChainCheck(checked, event, reason, unkeyed)
        keyed = keyed or bool(event.key_id)
        unkeyed += not event.key_id
        prev = event.hash
        checked += 1
    return ChainCheck(checked, None, "", unkeyed)


def audit_verify(batch_size: int = 5000) -> tuple[int, AuditEvent | None]:
    """Walk the chain in id order; return (events checked, first broken event or None)."""
    result = audit_verify_chain(batch_size)
    return result.checked, result.broken
