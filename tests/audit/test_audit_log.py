"""The audit log: append-only at every level, hash-chained, every AWS call and human action in it."""

import base64
import json
import os
import re
import tempfile
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from provisioning import vault
from provisioning.audit.chain import GENESIS_HASH, audit_hash, audit_record, audit_verify
from provisioning.kinds.ecr_repository_policy import declaration as repository_policy
from provisioning.models import AuditEvent, Run
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    EXAMPLE_KEYS,
    PASSWORD,
    customer_for,
    form_data,
    preview_read,
    seal_key,
    spec_data,
    start_run,
    wait_for_run,
)

# moto's server records every request it serves to this file once asked to (see the full-run test).
# Set before the session's sandbox starts, so each test session records to its own file.
os.environ.setdefault(
    "MOTO_RECORDER_FILEPATH", str(Path(tempfile.gettempdir()) / f"onramp-moto-recording-{os.getpid()}.jsonl")
)

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TRIGGER = "provisioning_auditevent_append_only"


def _all_audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


# --- Append-only -------------------------------------------------------------------------


def test_the_model_refuses_to_update_or_delete(db):
    event = audit_record(action="test.event", actor_label="tester", target="original")
    event.target = "forged"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(target="forged")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).delete()
    # bulk_update runs inside its own atomic block: give it a savepoint to roll back to.
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["target"])
    assert AuditEvent.objects.get(pk=event.pk).target == "original"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE provisioning_auditevent SET target = 'forged' WHERE id = %s",
        "UPDATE provisioning_auditevent SET hash = repeat('0', 64) WHERE id = %s",
        "DELETE FROM provisioning_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_update_and_delete_by_raw_sql(db, sql):
    event = audit_record(action="test.event", actor_label="tester", target="original")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.target, stored.hash) == ("original", event.hash)


# --- The hash chain ----------------------------------------------------------------------


def _chain(n: int) -> list[AuditEvent]:
    return [audit_record(action=f"test.event{i}", actor_label="tester", target=f"t{i}") for i in range(n)]


def test_each_event_is_chained_to_the_previous_one(db):
    events = _chain(4)
    assert events[0].prev_hash == GENESIS_HASH
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
        assert audit_hash(AuditEvent.objects.get(pk=event.pk)) == event.hash
    assert audit_verify() == (4, None)


def test_verify_audit_reports_an_intact_chain(db, capsys):
    _chain(3)
    call_command("verify_audit")
    assert "Audit chain intact: 3 event(s) verified." in capsys.readouterr().out


def _tamper(sql: str, params: list) -> None:
    """What someone with database access would do: switch the guard off, edit, switch it back on."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE provisioning_auditevent DISABLE TRIGGER {TRIGGER}")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE provisioning_auditevent ENABLE TRIGGER {TRIGGER}")


def _broken_at(event: AuditEvent, verified_before: int) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit")
    message = str(caught.value)
    assert f"Audit chain broken at event {event.pk} " in message
    assert event.action in message and f"{verified_before} event(s) before it verified" in message


def test_verify_audit_names_an_event_edited_by_hand(db):
    events = _chain(5)
    _tamper("UPDATE provisioning_auditevent SET target = 'someone-else' WHERE id = %s", [events[2].pk])
    assert AuditEvent.objects.get(pk=events[2].pk).target == "someone-else"  # the edit went through
    _broken_at(events[2], verified_before=2)


def test_verify_audit_names_the_event_after_one_deleted_by_hand(db):
    events = _chain(5)
    _tamper("DELETE FROM provisioning_auditevent WHERE id = %s", [events[1].pk])
    _broken_at(events[2], verified_before=1)


def test_verify_audit_catches_an_edit_whose_own_hash_was_recomputed(db):
    """A careful forger recomputes the edited row's hash: the next event's link still breaks."""
    events = _chain(5)
    forged = AuditEvent.objects.get(pk=events[3].pk)
    forged.details = {"note": "nothing happened here"}
    _tamper(
        "UPDATE provisioning_auditevent SET details = %s::jsonb, hash = %s WHERE id = %s",
        [json.dumps(forged.details), audit_hash(forged), forged.pk],
    )
    _broken_at(events[4], verified_before=4)


def test_verify_audit_names_the_last_event_edited_by_hand(db):
    events = _chain(3)
    _tamper("UPDATE provisioning_auditevent SET outcome = 'ok', error_code = '' WHERE id = %s", [events[2].pk])
    _tamper("UPDATE provisioning_auditevent SET actor_label = 'nobody' WHERE id = %s", [events[2].pk])
    _broken_at(events[2], verified_before=2)


# --- Human actions -----------------------------------------------------------------------


def _only(action: str, **filters) -> AuditEvent:
    return AuditEvent.objects.filter(action=action, **filters).get()


def test_login_failed_login_logout_and_lockout_are_recorded(client, alice):
    assert client.post("/login/", {"username": "alice", "password": "wrong-" + PASSWORD}).status_code == 200
    failed = _only("auth.login_failed")
    assert (failed.actor_label, failed.outcome, failed.error_code) == ("alice", "error", "BadCredentials")
    assert failed.details["ip"] == "127.0.0.1"

    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    login = _only("auth.login")
    assert (login.actor_id, login.actor_label, login.outcome) == (alice.pk, "alice", "ok")

    client.post("/logout/")
    assert _only("auth.logout").actor_id == alice.pk

    for _ in range(5):  # AXES_FAILURE_LIMIT in the test settings
        client.post("/login/", {"username": "mallory", "password": "guess-" + PASSWORD})
    locked = _only("auth.locked_out")
    # mallory is nobody's username: what a stranger typed is not written into the log.
    assert (locked.actor_label, locked.target, locked.outcome) == ("anonymous", "", "refused")
    assert PASSWORD not in _all_audit_text()  # neither the right password nor the guesses
    assert "mallory" not in _all_audit_text()


def _form() -> dict:
    """The onboarding form with the customer's own IAM user keys (the secret must stay out of the log)."""
    return form_data(access="keys", access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key=SECRET, role_arn="",
                     external_id="")  # fmt: skip


def test_onboarding_submitted_and_plan_confirmed_are_recorded_without_the_customer_secret(client, alice, aws):
    """The runs of this test are not executed: confirming only enqueues once the transaction commits. The plan's
    read reaches the account with the customer's IAM user's keys (allowed to read what a plan reads)."""
    from tests.views.test_views import READER

    aws.user_make(account_id=CUSTOMER_ACCOUNT, user_name="ops", policy_document=READER, keys=EXAMPLE_KEYS)
    client.force_login(alice)
    response = client.post("/onboard/", _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    submitted = _only("onboarding.submitted")
    assert (submitted.actor_id, submitted.target) == (alice.pk, "acme-app")
    assert submitted.details["spec"]["bucket"] == "acme-app-media"

    preview_read(client)
    assert client.post("/onboard/preview/").status_code == 302
    run = Run.objects.get()
    confirmed = _only("run.confirmed")
    assert (confirmed.actor_id, confirmed.run_id, confirmed.customer_id) == (alice.pk, run.pk, run.customer_id)
    created = _only("customer.created")
    assert created.customer_id == run.customer_id
    keys = _only("customer.changed")
    assert "access_key_id" in keys.details["fields"]
    assert SECRET not in _all_audit_text()


def test_run_cancelled_and_retried_are_recorded(client, alice, bob):
    run = start_run(alice)
    client.force_login(bob)  # not his run: refused without a trace of an action
    client.post(f"/runs/{run.pk}/cancel/")
    assert not AuditEvent.objects.filter(action="run.cancelled").exists()

    client.force_login(alice)
    client.post(f"/runs/{run.pk}/cancel/")
    cancelled = _only("run.cancelled")
    assert (cancelled.actor_id, cancelled.run_id) == (alice.pk, run.pk)

    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)  # as if a step had failed
    client.post(f"/runs/{run.pk}/retry/")
    retried = _only("run.retried")
    assert (retried.actor_id, retried.run_id) == (alice.pk, run.pk)


def test_credential_revealed_then_refused_is_recorded(client, alice):
    run = start_run(alice)
    credential = seal_key(run, secret=SECRET)
    client.force_login(alice)
    first = client.post(f"/credentials/{credential.pk}/reveal/")
    assert first.status_code == 200 and SECRET in first.content.decode()
    assert client.post(f"/credentials/{credential.pk}/reveal/").status_code == 410
    revealed = _only("credential.revealed")
    assert (revealed.actor_id, revealed.target, revealed.run_id) == (alice.pk, "acme-app", run.pk)
    refused = _only("credential.reveal_refused")
    assert (refused.outcome, refused.error_code) == ("refused", "already_revealed")
    assert SECRET not in _all_audit_text()


# --- Every AWS call of a run -------------------------------------------------------------

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def _moto(sandbox, path: str) -> str:
    request = urllib.request.Request(sandbox.url + "/moto-api/recorder/" + path, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.read().decode()


def _served(sandbox) -> list[dict]:
    """The requests moto's server served while recording: region, service and, where the protocol
    names it, the operation."""
    served = []
    for line in _moto(sandbox, "download-recording").splitlines():
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        region, service = _SCOPE.search(headers["authorization"]).groups()
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        operation = None
        if "x-amz-target" in headers:  # JSON protocol (ECR)
            operation = headers["x-amz-target"].rsplit(".", 1)[-1]
        elif service in ("iam", "sts"):  # query protocol
            operation = parse_qs(body).get("Action", [None])[0]
        served.append({"region": region, "service": service, "operation": operation})
    return served


@pytest.mark.strict(consistency_window=0.0)  # the layer's "not there yet" answers never reach moto's recorder
def test_every_aws_call_of_a_run_is_one_audit_event(worker, aws, alice):
    """A full onboarding with the real worker, counted at moto's server, independently of the hook."""
    customer_for(spec_data())
    _moto(aws, "reset-recording")
    _moto(aws, "start-recording")
    try:
        run = wait_for_run(start_run(alice))
    finally:
        _moto(aws, "stop-recording")
    assert run.status == Run.Status.SUCCEEDED
    served = _served(aws)
    Path(os.environ["MOTO_RECORDER_FILEPATH"]).unlink(missing_ok=True)
    events = list(AuditEvent.objects.filter(action__startswith="aws.").order_by("id"))
    assert len(served) > 20  # a full onboarding: STS, IAM, S3, ECR
    assert len(events) == len(served)
    assert all(e.run_id == run.pk and e.customer_id == run.customer_id for e in events)
    assert Counter((e.details["service"], e.details["region"]) for e in events) == Counter(
        (s["service"], s["region"]) for s in served
    )
    named = Counter((s["service"], s["operation"]) for s in served if s["operation"])
    assert named == Counter(
        (e.details["service"], e.details["operation"]) for e in events if e.details["service"] in ("iam", "sts", "ecr")
    )
    for event in events:
        d = event.details
        assert event.action == f"aws.{d['service']}.{d['operation']}"
        assert event.actor_id == alice.pk and event.actor_label == "worker for alice"
        assert event.step_key and d["region"] and isinstance(d["params"], dict)
        assert 200 <= d["http_status"] < 500 and d["request_id"], event.action
        assert isinstance(d["duration_ms"], float) and d["duration_ms"] >= 0
        assert (event.outcome == "ok") == (d["http_status"] < 300)
    assert audit_verify()[1] is None

    # The generated secrets, revealed here, appear nowhere in the log.
    secrets = [vault.credential_reveal(credential_id=c.pk, user=alice).secret for c in run.credentials.all()]
    assert secrets and all(secrets)
    text = _all_audit_text()
    assert not [s for s in secrets if s in text]
    assert CUSTOMER_ACCOUNT in text


def test_a_steps_aws_calls_are_written_in_the_transaction_that_records_its_outcome(worker, alice):
    """PostgreSQL stamps each row with the transaction that wrote it (xmin): every audit row of a
    step, its AWS calls and its step.* event, shares the transaction of the step's final state."""
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.key, s.xmin::text, array_agg(DISTINCT a.xmin::text), count(*) "
            "FROM provisioning_steprun s JOIN provisioning_auditevent a "
            "ON a.run_id = s.run_id AND a.step_key = s.key AND (a.action LIKE 'aws.%%' OR a.action LIKE 'step.%%') "
            "WHERE s.run_id = %s AND s.attempts = 1 GROUP BY s.key, s.xmin::text",  # a retry spans two
            [run.pk],
        )
        rows = cursor.fetchall()
    assert len(rows) >= 10 and run.steps.count() == 14  # a sandbox hiccup may retry one
    for key, step_xid, audit_xids, events in rows:
        assert audit_xids == [step_xid], key
        # At least one AWS call and the step's own event; but a repository this run created has no policy, so the
        # step keeping it so sends nothing (kinds/ecr_repository_policy/aws.py) and writes its own event alone.
        assert events >= (1 if key == repository_policy.KEY else 2), key


def test_concurrent_writers_keep_one_unbroken_chain(transactional_db):
    """Eight threads, each with its own connection, append 25 events at once: the chain's lock and
    the read of its last hash (one round trip) leave no fork, verify_audit passes."""
    errors = []

    def write(n: int) -> None:
        try:
            for i in range(25):
                audit_record(action="test.concurrent", actor_label=f"writer-{n}", details={"i": i})
        except Exception as exc:  # reported below, with the thread that raised it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    events = list(AuditEvent.objects.order_by("id").values_list("prev_hash", "hash"))
    assert len(events) == 200
    assert len({prev for prev, _ in events}) == 200  # no two events chained onto the same one
    assert all(events[i][0] == events[i - 1][1] for i in range(1, len(events)))
    assert audit_verify() == (200, None)
