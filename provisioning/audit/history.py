"""Selectors of the audit history: filtering, keyset pagination and export rows.

Newest first means latest `created_at` first, ties broken by id. Pages are cut at a cursor, the
(created_at, id) of the last row shown (keyset), never by OFFSET, and nothing counts the table:
both cost time proportional to the whole log at a million rows. Each cursor comparison is a row
value comparison, which PostgreSQL answers from the (…, created_at DESC, id DESC) indexes of
migration 0003 by seeking straight to the cursor.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from provisioning.models import AuditEvent, Customer, StepRun

PAGE_SIZE = 50
NEWEST_FIRST = ("-created_at", "-id")
OLDEST_FIRST = ("created_at", "id")
EXPORT_BATCH = 2000
# Offered as suggestions in the action filter; any action, or a prefix ending in "*", is accepted.
KNOWN_ACTIONS = (
    "aws.*",
    "aws.iam.*",
    "aws.s3.*",
    "aws.ecr.*",
    "aws.sts.*",
    "auth.*",
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.locked_out",
    "onboarding.submitted",
    "run.*",
    "run.confirmed",
    "run.retried",
    "run.cancelled",
    "run.refused",
    "run.succeeded",
    "run.failed",
    "step.*",
    "credential.*",
    "credential.revealed",
    "credential.reveal_refused",
    "customer.*",
    "access.denied",
    "audit.exported",
)
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "actor_label",
    "actor_id",
    "customer_id",
    "run_id",
    "step_key",
    "action",
    "outcome",
    "error_code",
    "target",
    "details",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class AuditFilters:
    """What the history is narrowed to; every field optional."""

    customer_id: int | None = None
    actor_id: int | None = None
    action: str = ""
    outcome: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""
    run_id: UUID | str | None = None

    def as_details(self) -> dict:
        """The filters as plain JSON, for the audit record of an export."""
        return {
            name: str(value)
            for name, value in self.__dict__.items()
            if value not in (None, "")  # only what was asked for
        }


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_events_filter(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """The events matching the filters, newest first. Each filter maps to one indexed column."""
    events = AuditEvent.objects.order_by(*NEWEST_FIRST)
    if filters.customer_id is not None:
        events = events.filter(customer_id=filters.customer_id)
    if filters.actor_id is not None:
        # The worker acts on behalf of the user who started the run and carries their id.
        events = events.filter(actor_id=filters.actor_id)
    if filters.action:
        if filters.action.endswith("*"):
            events = events.filter(action__startswith=filters.action.rstrip("*"))
        else:
            events = events.filter(action=filters.action)
    if filters.outcome:
        events = events.filter(outcome=filters.outcome)
    if filters.since is not None:
        events = events.filter(created_at__gte=_day_start(filters.since))
    if filters.until is not None:
        # The "until" day is included: everything before the next midnight.
        events = events.filter(created_at__lt=_day_start(filters.until + timedelta(days=1)))
    if filters.q:
        # icontains on PostgreSQL is UPPER(target::text) LIKE UPPER(%s): the trigram index of 0003.
        events = events.filter(target__icontains=filters.q)
    if filters.run_id is not None:
        events = events.filter(run_id=filters.run_id)
    return events


@dataclass(frozen=True)
class Cursor:
    """A position in the history: the (created_at, id) of an event. Written in URLs as
    `<microseconds since the epoch>.<id>`."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, event: AuditEvent) -> "Cursor":
        return cls(created_at=event.created_at, id=event.id)

    @classmethod
    def parse(cls, text: str) -> "Cursor | None":
        """The cursor written in `text`, or None when it is not one."""
        micros, _, pk = (text or "").partition(".")
        if not (micros.isascii() and micros.isdigit() and pk.isascii() and pk.isdigit()):
            return None
        if len(micros) > 18 or int(pk) > _MAX_ID:
            return None
        try:
            when = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:  # past the last day a datetime can hold
            return None
        return cls(created_at=when, id=int(pk))

    def __str__(self) -> str:
        delta = self.created_at - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}.{self.id}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID = 2**63 - 1  # PostgreSQL's bigint
# The days a filter may name: a day's start and the next midnight must both be datetimes in any time zone.
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


def _beyond(events: QuerySet[AuditEvent], cursor: Cursor, *, older: bool) -> QuerySet[AuditEvent]:
    """Events strictly older (or newer) than the cursor, as one row value comparison so the index
    seeks to the cursor instead of filtering from the top (an OR of two conditions would not)."""
    when = connection.ops.adapt_datetimefield_value(cursor.created_at)
    sign = "<" if older else ">"
    table = AuditEvent._meta.db_table
    # The SQL text is ours alone (table name and sign); the cursor's values go as parameters.
    condition = RawSQL(  # noqa: S611  # nosec B611
        f'("{table}"."created_at", "{table}"."id") {sign} (%s, %s)',
        (when, cursor.id),
        output_field=BooleanField(),
    )
    return events.filter(condition)


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    newer: Cursor | None  # for ?after=, when there are newer events than this page
    older: Cursor | None  # for ?before=, when there are older events than this page
    customers: dict[int, Customer]


def audit_page(
    *,
    events: QuerySet[AuditEvent],
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> AuditPage:
    """One page of `events` (ordered newest first): just older than `before`, or just newer than
    `after`, or the newest. One row more than the page is read to know whether another page
    exists, which is what lets the page do without a COUNT."""
    if after is not None:
        rows = list(_beyond(events, after, older=False).order_by(*OLDEST_FIRST)[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        more_older = bool(rows)  # the page we came from is older than this one
    else:
        if before is not None:
            events = _beyond(events, before, older=True)
        rows = list(events[: size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = before is not None and bool(rows)
    customer_ids = {e.customer_id for e in rows if e.customer_id}
    # A second small query by primary key rather than a join, so the page's query stays on one index.
    customers = Customer.objects.in_bulk(customer_ids) if customer_ids else {}
    return AuditPage(
        events=rows,
        newer=Cursor.of(rows[0]) if rows and more_newer else None,
        older=Cursor.of(rows[-1]) if rows and more_older else None,
        customers=customers,
    )


def audit_events_iter(*, events: QuerySet[AuditEvent], batch: int = EXPORT_BATCH) -> Iterator[AuditEvent]:
    """Every event of `events`, newest first, read in keyset batches: each batch is one short indexed
    query, so an export of the whole log neither holds a transaction open nor loads it into memory."""
    cursor = None
    while True:
        rows = list((_beyond(events, cursor, older=True) if cursor else events)[:batch])
        yield from rows
        if len(rows) < batch:
            return
        cursor = Cursor.of(rows[-1])


def audit_event_row(event: AuditEvent) -> dict:
    """One event as plain JSON types, in the export's column order."""
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(),
        "actor_label": event.actor_label,
        "actor_id": event.actor_id,
        "customer_id": event.customer_id,
        "run_id": str(event.run_id) if event.run_id else None,
        "step_key": event.step_key,
        "action": event.action,
        "outcome": event.outcome,
        "error_code": event.error_code,
        "target": event.target,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    value = str(value)
    # A failed login's username is typed by anyone: keep a spreadsheet from running it as a formula.
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def audit_export_csv(*, events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The header and one CSV line per event, as text chunks to stream."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(EXPORT_COLUMNS)
    for event in audit_events_iter(events=events):
        row = audit_event_row(event)
        yield line([_csv_cell(row[name]) for name in EXPORT_COLUMNS])


def audit_export_jsonl(*, events: QuerySet[AuditEvent]) -> Iterator[str]:
    """One JSON object per line per event, as text chunks to stream."""
    for event in audit_events_iter(events=events):
        yield json.dumps(audit_event_row(event), sort_keys=True, separators=(",", ":")) + "\n"


def audit_step_titles(*, events: list[AuditEvent]) -> dict[tuple[str, str], str]:
    """The titles of the steps these events belong to, by (run id, step key): one query for a whole
    page, on the (run, key) unique index, whatever the number of rows."""
    run_ids = {e.run_id for e in events if e.run_id and e.step_key}
    if not run_ids:
        return {}
    keys = {e.step_key for e in events if e.run_id and e.step_key}
    rows = StepRun.objects.filter(run_id__in=run_ids, key__in=keys).order_by().values_list("run_id", "key", "title")
    return {(str(run_id), key): title for run_id, key, title in rows}
