"""The audit history page: filters, keyset pagination, one event's details, streamed export."""

import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from provisioning.audit.chain import audit_hash, audit_record
from provisioning.audit.history import (
    FIRST_DAY,
    KNOWN_ACTIONS,
    LAST_DAY,
    AuditFilters,
    Cursor,
    audit_events_filter,
    audit_export_csv,
    audit_export_jsonl,
    audit_page,
    audit_step_titles,
)
from provisioning.audit.keys import AuditKeyMissing
from provisioning.identity.permissions import PortalRequest, portal_user_required
from provisioning.models import AuditEvent, Customer
from provisioning.templatetags.onramp import arn_short

_DATE = forms.DateInput(attrs={"type": "date"})
_DAY_RANGE = [
    MinValueValidator(FIRST_DAY, f"Pick a day from {FIRST_DAY:%Y-%m-%d}."),
    MaxValueValidator(LAST_DAY, f"Pick a day up to {LAST_DAY:%Y-%m-%d}."),
]


class AuditFilterForm(forms.Form):
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.order_by("name"), to_field_name="slug", required=False, empty_label="Any customer"
    )
    actor = forms.ModelChoiceField(
        queryset=get_user_model().objects.order_by("username"),
        to_field_name="username",
        required=False,
        empty_label="Anyone",
        help_text="Includes the worker acting for this person.",
    )
    action = forms.CharField(
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"list": "audit-actions", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Exact, or a prefix ending in * (aws.iam.*).",
    )
    outcome = forms.ChoiceField(choices=[("", "Any outcome"), *AuditEvent.Outcome.choices], required=False)
    since = forms.DateField(label="From (UTC day)", required=False, widget=_DATE, validators=_DAY_RANGE)
    until = forms.DateField(label="To (UTC day, included)", required=False, widget=_DATE, validators=_DAY_RANGE)
    q = forms.CharField(
        label="Target contains",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
        help_text="User, bucket, repository, policy…",
    )
    run = forms.UUIDField(required=False, widget=forms.HiddenInput)
    before = forms.CharField(max_length=40, required=False, widget=forms.HiddenInput)
    after = forms.CharField(max_length=40, required=False, widget=forms.HiddenInput)

    def _clean_cursor(self, name: str) -> Cursor | None:
        text = self.cleaned_data.get(name, "")
        cursor = Cursor.parse(text) if text else None
        if text and cursor is None:
            raise forms.ValidationError("Not a position in the history.")
        return cursor

    def clean_before(self) -> Cursor | None:
        return self._clean_cursor("before")

    def clean_after(self) -> Cursor | None:
        return self._clean_cursor("after")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the range is before its start.")
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            customer_id=data["customer"].pk if data.get("customer") else None,
            actor_id=data["actor"].pk if data.get("actor") else None,
            action=data.get("action", "").strip(),
            outcome=data.get("outcome", ""),
            since=data.get("since"),
            until=data.get("until"),
            q=data.get("q", "").strip(),
            run_id=data.get("run"),
        )


def _filters_read(request) -> tuple[AuditFilterForm, AuditFilters | None]:
    form = AuditFilterForm(request.GET)
    return form, form.filters() if form.is_valid() else None


def _query_without(request, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _rows(page) -> list[tuple]:
    """(event, customer) for each event of the page. Each event also carries, worked out here rather
    than in the template (which costs more per row), its step's title when it has one and its target
    shortened when it is a long ARN (both empty otherwise)."""
    titles = audit_step_titles(events=page.events)
    for event in page.events:
        event.step_title = titles.get((str(event.run_id), event.step_key), "")
        short = arn_short(event.target)
        event.target_short = short if short != event.target else ""
    return [(e, page.customers.get(e.customer_id)) for e in page.events]


@portal_user_required
@require_GET
def audit_history(request: PortalRequest) -> HttpResponse:
    form, filters = _filters_read(request)
    page = None
    if filters is not None:
        page = audit_page(
            events=audit_events_filter(filters=filters),
            before=form.cleaned_data.get("before"),
            after=form.cleaned_data.get("after"),
        )
    return render(
        request,
        "provisioning/audit.html",
        {
            "form": form,
            "page": page,
            "rows": _rows(page) if page else [],
            "known_actions": KNOWN_ACTIONS,
            "customer_choices": Customer.objects.order_by("name").values_list("slug", "name"),
            "actor_choices": get_user_model().objects.order_by("username").values_list("username", flat=True),
            "selected_customer": request.GET.get("customer", ""),
            "selected_actor": request.GET.get("actor", ""),
            "query": _query_without(request, "before", "after"),
            "run_id": form.cleaned_data.get("run") if filters is not None else None,
        },
        status=200 if filters is not None else 400,
    )


@portal_user_required
@require_GET
def audit_event_detail(request: PortalRequest, event_id: int) -> HttpResponse:
    event = AuditEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise Http404("No such audit event.")
    customer = Customer.objects.filter(pk=event.customer_id).first() if event.customer_id else None
    return render(
        request,
        "provisioning/audit_event.html",
        {
            "event": event,
            "customer": customer,
            "step_title": audit_step_titles(events=[event]).get((str(event.run_id), event.step_key), ""),
            "details": json.dumps(event.details, indent=2, sort_keys=True),
            # Only this event's own hash is checked here; verify_audit walks the whole chain.
            "hash_matches": _hash_matches(event),
        },
    )


def _hash_matches(event: AuditEvent) -> bool:
    try:
        return audit_hash(event) == event.hash
    except AuditKeyMissing:  # signed with a key no longer configured: it cannot be checked here
        return False


# Format: (content type, the export, how many chunks it yields before the first event: CSV's header).
_EXPORTS = {
    "csv": ("text/csv; charset=utf-8", audit_export_csv, 1),
    "jsonl": ("application/x-ndjson; charset=utf-8", audit_export_jsonl, 0),
}


def _recorded_export(chunks, *, header: int, user, fmt: str, filters: AuditFilters):
    """Stream the export, then audit what was actually sent: the row is written once the stream has
    ended (or stopped), with the number of events it held and whether it was complete."""
    sent, complete = 0, False
    try:
        for chunk in chunks:
            sent += 1  # counted as it is handed to the server: a client leaving stops us at the yield
            yield chunk
        complete = True
    finally:
        audit_record(
            action="audit.exported",
            actor=user,
            outcome=AuditEvent.Outcome.OK if complete else AuditEvent.Outcome.ERROR,
            details={"format": fmt, **filters.as_details(), "events": max(sent - header, 0), "complete": complete},
        )


@portal_user_required
@require_GET
def audit_export(request: PortalRequest, fmt: str) -> HttpResponseBase:
    """The whole filtered set (pagination ignored), streamed as it is read."""
    if fmt not in _EXPORTS:
        raise Http404("No such export format.")
    form, filters = _filters_read(request)
    if filters is None:
        return HttpResponseBadRequest("Invalid filters: open the history page to see what is wrong.")
    content_type, export, header = _EXPORTS[fmt]
    # Reading the log in bulk is itself worth a line in it, written once the export has been sent.
    chunks = export(events=audit_events_filter(filters=filters))
    stream = _recorded_export(chunks, header=header, user=request.user, fmt=fmt, filters=filters)
    response = StreamingHttpResponse(stream, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="onramp-audit-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
