"""The audit history page: who may see it, filters, keyset pages, details, streamed exports."""

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.audit.chain import PendingEvent, audit_write
from provisioning.audit.history import AuditFilters, Cursor, audit_events_filter
from provisioning.models import AuditEvent, Customer
from tests.conftest import start_run

HISTORY = "/audit/"
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def acme(db):
    return Customer.objects.create(name="Acme Corp", slug="acme", aws_account_id="111122223333")


@pytest.fixture
def globex(db):
    return Customer.objects.create(name="Globex", slug="globex", aws_account_id="444455556666")


def _write(**fields) -> AuditEvent:
    fields.setdefault("action", "aws.iam.CreateUser")
    fields.setdefault("actor_label", "system")
    return audit_write([PendingEvent(**fields)])[0]


def _ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'href="/audit/(\d+)/"', response.content.decode())]


def _link(response, text: str) -> str | None:
    match = re.search(r'<a href="([^"]+)">' + re.escape(text), response.content.decode())
    if not match:
        return None
    href = match.group(1).replace("&amp;", "&")
    return HISTORY + href if href.startswith("?") else href


def test_charlie_is_refused_and_anonymous_is_sent_to_login(client, charlie, acme):
    event = _write(customer_id=acme.pk)
    client.force_login(charlie)
    for url in (HISTORY, f"/audit/{event.pk}/", "/audit/export.csv", "/audit/export.jsonl"):
        assert client.get(url).status_code == 403, url
    client.logout()
    response = client.get(HISTORY)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["alice", "dana"])
def test_tech_leads_and_admins_see_newest_first(client, request, who, acme):
    client.force_login(request.getfixturevalue(who))
    old = _write(created_at=T0, target="old-user", customer_id=acme.pk)
    new = _write(created_at=T0 + timedelta(hours=1), target="new-user")
    # Written last but happened first (a buffered AWS call): ordered by when it happened.
    earliest = _write(created_at=T0 - timedelta(hours=1), target="earliest-user")
    login = AuditEvent.objects.get(action="auth.login")  # force_login is audited too, and is the newest
    response = client.get(HISTORY)
    assert response.status_code == 200
    assert _ids(response) == [login.pk, new.pk, old.pk, earliest.pk]
    body = response.content.decode()
    assert "Acme Corp" in body and 'class="badge s-ok"' in body


def test_every_filter_field_has_a_label(client, alice):
    client.force_login(alice)
    body = client.get(HISTORY).content.decode()
    for name in ("customer", "actor", "action", "outcome", "since", "until", "q"):
        assert f'<label for="id_{name}">' in body, name
    assert "<script>" not in body and "style=" not in body  # the CSP forbids inline script and style


def test_filters(client, alice, bob, acme, globex):
    client.force_login(alice)
    run_id = uuid.uuid4()
    a = _write(customer_id=acme.pk, actor_id=alice.pk, action="aws.iam.CreateUser", target="acme-app", created_at=T0)
    b = _write(
        customer_id=globex.pk,
        actor_id=bob.pk,
        action="aws.s3.CreateBucket",
        target="globex-media",
        outcome="error",
        error_code="BucketAlreadyExists",
        created_at=T0 + timedelta(days=2),
        run_id=run_id,
    )
    c = _write(
        customer_id=acme.pk,
        actor_id=bob.pk,
        action="credential.reveal_refused",
        target="Acme-App-Deployer",
        outcome="refused",
        created_at=T0 + timedelta(days=5),
    )
    login = AuditEvent.objects.get(action="auth.login", actor_id=alice.pk)
    cases = {
        "": [login, c, b, a],
        "actor=alice": [login, a],
        "action=auth.login": [login],
        "customer=acme": [c, a],
        "customer=globex": [b],
        "actor=bob": [c, b],
        "action=aws.iam.CreateUser": [a],
        "action=aws.*": [b, a],
        "outcome=error": [b],
        "outcome=refused": [c],
        "since=2025-03-11": [login, c, b],
        "until=2025-03-12": [b, a],  # the "until" day is included
        "since=2025-03-11&until=2025-03-12": [b],
        "q=ACME-app": [c, a],  # case-insensitive, anywhere in the target
        "q=deployer": [c],
        f"run={run_id}": [b],
        "customer=acme&since=2025-03-14&until=2025-03-15": [c],
        "customer=acme&outcome=error": [],
    }
    for query, expected in cases.items():
        response = client.get(f"{HISTORY}?{query}")
        assert response.status_code == 200, query
        assert _ids(response) == [e.pk for e in expected], query
    body = client.get(f"{HISTORY}?customer=globex&actor=bob").content.decode()
    assert '<option value="globex" selected>' in body and '<option value="bob" selected>' in body  # kept on screen


@pytest.mark.parametrize(
    "query",
    [
        "since=yesterday",
        "since=2025-03-12&until=2025-03-11",
        "before=12;drop",
        "after=abc",
        "run=nope",
        # Values that parse but overflow: the datetime, PostgreSQL's bigint, the day after the last one.
        "before=999999999999999999.1",
        "after=999999999999999999.1",
        "before=1.99999999999999999999",
        "after=%D9%A1%D9%A2.3",  # Arabic-Indic digits are digits to Python, not to a cursor
        "until=9999-12-31",
        "since=9999-12-31",
        "since=0001-01-01",
    ],
)
def test_invalid_filters_are_a_400_not_a_500(client, alice, query):
    client.force_login(alice)
    assert client.get(f"{HISTORY}?{query}").status_code == 400
    assert client.get(f"/audit/export.csv?{query}").status_code == 400
    assert client.get(f"/audit/export.jsonl?{query}").status_code == 400
    assert not AuditEvent.objects.filter(action="audit.exported").exists()  # nothing exported, nothing claimed


def test_an_export_is_audited_after_it_was_sent_with_what_it_held(client, alice, acme):
    """The audit row of an export is written once the stream ends: it counts the events sent, and the
    export does not contain its own row."""
    client.force_login(alice)
    written = [_write(customer_id=acme.pk, target=f"acme-{i}") for i in range(3)]
    response = client.get("/audit/export.csv", {"customer": "acme"})
    assert not AuditEvent.objects.filter(action="audit.exported").exists()  # nothing sent yet
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == [e.pk for e in reversed(written)]
    exported = AuditEvent.objects.get(action="audit.exported")
    assert (exported.actor_id, exported.outcome) == (alice.pk, "ok")
    assert exported.details == {"format": "csv", "customer_id": str(acme.pk), "events": 3, "complete": True}


@pytest.mark.django_db(transaction=True)  # closing a response ends the request: its connection too
def test_an_export_the_client_left_is_audited_as_incomplete(client, alice):
    acme = Customer.objects.create(name="Acme", slug="acme", aws_account_id="111122223333")
    client.force_login(alice)
    written = [_write(customer_id=acme.pk, target=f"acme-{i}") for i in range(3)]
    stopped = client.get("/audit/export.jsonl", {"customer": "acme"})
    first = next(iter(stopped.streaming_content))
    stopped.close()  # what the server does when the client goes away after one line
    assert json.loads(first)["id"] == written[-1].pk
    partial = AuditEvent.objects.filter(action="audit.exported").order_by("-id").first()
    assert (partial.outcome, partial.details["events"], partial.details["complete"]) == ("error", 1, False)


def test_keyset_pages_walk_the_filtered_log_without_offset_or_count(client, alice, acme, globex):
    client.force_login(alice)
    mine = []
    for i in range(120):
        # Same timestamp for runs of 7 events: ties are broken by id without losing or repeating one.
        when = T0 + timedelta(minutes=i // 7)
        mine.append(_write(customer_id=acme.pk, created_at=when, target=f"user-{i}"))
        _write(customer_id=globex.pk, created_at=when, target=f"other-{i}")
    expected = [e.pk for e in sorted(mine, key=lambda e: (e.created_at, e.pk), reverse=True)]

    sql: list[str] = []

    def get(url):
        # One capture per request: Django empties the query log when a request starts.
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        sql.extend(q["sql"].upper() for q in queries.captured_queries)
        return response

    seen, pages, url = [], [], f"{HISTORY}?customer=acme"
    while url:
        response = get(url)
        pages.append(_ids(response))
        seen += pages[-1]
        url = _link(response, "Older")
    assert [len(p) for p in pages] == [50, 50, 20]
    assert seen == expected
    # Back from the last page with the "Newer" links.
    back, url = [], _link(response, "&larr; Newer")
    while url:
        response = get(url)
        back.insert(0, _ids(response))
        url = _link(response, "&larr; Newer")
    assert back == pages[:2]

    page_queries = [s for s in sql if "PROVISIONING_AUDITEVENT" in s]
    assert page_queries
    assert not [s for s in sql if " OFFSET " in s or "COUNT(" in s]
    assert all("LIMIT 51" in s for s in page_queries if "ORDER BY" in s), [
        s for s in page_queries if "ORDER BY" in s and "LIMIT 51" not in s
    ]


def test_a_row_opens_its_details(client, alice, acme):
    client.force_login(alice)
    run_id = uuid.uuid4()
    event = _write(
        customer_id=acme.pk,
        run_id=run_id,
        step_key="iam.app_user",
        action="aws.iam.CreateUser",
        target="acme-app",
        details={"service": "iam", "operation": "CreateUser", "params": {"UserName": "acme-app"}, "http_status": 200},
    )
    page = client.get(HISTORY)
    assert f'href="/audit/{event.pk}/"' in page.content.decode()
    response = client.get(f"/audit/{event.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("Acme Corp", "iam.app_user", str(run_id), event.hash, event.prev_hash, "matches its content"):
        assert text in body
    assert "&quot;UserName&quot;: &quot;acme-app&quot;" in body  # the details, pretty-printed and escaped
    assert f"/audit/?run={run_id}" in body
    assert client.get("/audit/999999999/").status_code == 404


def _export(client, fmt: str, query: str = "") -> tuple[object, str]:
    response = client.get(f"/audit/export.{fmt}?{query}")
    assert response.status_code == 200
    assert response.streaming  # streamed, never built in memory
    return response, b"".join(response.streaming_content).decode()


def test_csv_export_is_the_filtered_set_streamed(client, alice, acme, globex):
    client.force_login(alice)
    wanted = [_write(customer_id=acme.pk, target=f"acme-{i}", created_at=T0 + timedelta(seconds=i)) for i in range(5)]
    _write(customer_id=globex.pk, target="globex-1")
    # Anyone can type a username at the login form: it must not become a spreadsheet formula.
    hostile = _write(
        customer_id=acme.pk, actor_label='=HYPERLINK("http://evil")', target="-2+3", created_at=T0 + timedelta(hours=1)
    )
    response, text = _export(client, "csv", "customer=acme")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in rows] == [hostile.pk, *(e.pk for e in reversed(wanted))]
    assert rows[0]["actor_label"] == '\'=HYPERLINK("http://evil")' and rows[0]["target"] == "'-2+3"
    assert rows[1]["hash"] == wanted[-1].hash and rows[1]["prev_hash"] == wanted[-1].prev_hash
    exported = AuditEvent.objects.filter(action="audit.exported").get()
    assert exported.actor_id == alice.pk and exported.details["format"] == "csv"


def test_jsonl_export_reads_past_one_batch(client, dana, acme):
    client.force_login(dana)
    events = audit_write(
        PendingEvent(action="aws.s3.PutObject", customer_id=acme.pk, created_at=T0 + timedelta(milliseconds=i))
        for i in range(2105)  # more than one keyset batch of the export (2000)
    )
    response, text = _export(client, "jsonl", "action=aws.s3.PutObject")
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["id"] for line in lines] == [e.pk for e in reversed(events)]
    assert lines[0]["action"] == "aws.s3.PutObject" and lines[0]["hash"] == events[-1].hash


def test_run_page_links_to_its_own_slice(client, alice, bob):
    client.force_login(alice)
    run = start_run(alice)  # the run is confirmed and audited; its steps are not run here
    start_run(bob, account_id="999988887777", customer="Other")
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    link = re.search(r'href="(/audit/\?run=[^"]+)"', page).group(1)
    response = client.get(link)
    body = response.content.decode()
    listed = _ids(response)
    assert listed == list(
        AuditEvent.objects.filter(run_id=run.pk).order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    assert listed and "run.confirmed" in body and str(run.pk) in body


def test_cursor_round_trips():
    cursor = Cursor(created_at=datetime(2025, 3, 10, 12, 0, 0, 123456, tzinfo=UTC), id=42)
    assert Cursor.parse(str(cursor)) == cursor
    assert Cursor.parse("12.x") is None and Cursor.parse("") is None


def test_search_and_date_range_queries_can_use_the_indexes_of_0003(db, acme):
    """The planner picks a sequential scan on a small table, so forbid it and check that the
    indexes built by the migration match the SQL the page sends (an expression index that does
    not match would never be used)."""
    events = audit_events_filter(filters=AuditFilters(q="acme"))
    sql, params = events[:51].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "audit_target_trgm" in plan
