"""The audit chain against someone who has the database but not the application's environment: rows are
signed with AUDIT_KEYS (HMAC), checkpoints outside the database catch the newest rows dropped, and the
application's database role cannot switch the guard off or empty the table."""

import hashlib
import json
import logging
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from portal.celery import app as celery_app
from provisioning.audit.anchor import audit_checkpoint, audit_checkpoint_task, checkpoint_latest
from provisioning.audit.chain import GENESIS_HASH, audit_hash, audit_record, audit_verify, audit_verify_chain
from provisioning.audit.keys import audit_key_id
from provisioning.models import AuditEvent
from tests.audit.test_audit_log import _tamper
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
KEY_A = "a" * 40
KEY_B = "b" * 40


def _chain(n: int, label: str = "tester") -> list[AuditEvent]:
    return [audit_record(action=f"test.event{i}", actor_label=label, target=f"t{i}") for i in range(n)]


def _plain_sha256(event: AuditEvent) -> str:
    """What a forger without the key can compute: the chain's hash as it was before it was keyed."""
    return hashlib.sha256((event.prev_hash + event.canonical()).encode()).hexdigest()


def _forge_from(events: list[AuditEvent], index: int, *, target: str, key_id: str | None = None) -> None:
    """Rewrite events[index] and recompute every later hash, as someone with the database would."""
    prev = events[index - 1].hash if index else GENESIS_HASH
    for position, stored in enumerate(events[index:]):
        event = AuditEvent.objects.get(pk=stored.pk)
        if position == 0:
            event.target = target
        event.prev_hash = prev
        event.key_id = event.key_id if key_id is None else key_id
        event.hash = _plain_sha256(event)
        _tamper(
            "UPDATE provisioning_auditevent SET target = %s, prev_hash = %s, hash = %s, key_id = %s WHERE id = %s",
            [event.target, event.prev_hash, event.hash, event.key_id, event.pk],
        )
        prev = event.hash


def _verify_fails() -> str:
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit")
    return str(caught.value)


def test_new_rows_are_signed_with_the_newest_audit_key(db):
    event = audit_record(action="test.event", actor_label="tester")
    assert event.key_id == audit_key_id(settings.AUDIT_KEYS[0])
    assert event.hash != _plain_sha256(event)  # not the unkeyed hash any more
    assert audit_hash(AuditEvent.objects.get(pk=event.pk)) == event.hash


def test_a_forger_without_the_key_cannot_recompute_the_chain(db):
    events = _chain(5)
    _forge_from(events, 2, target="someone-else")
    message = _verify_fails()
    assert f"Audit chain broken at event {events[2].pk} " in message
    assert "its hash does not match its content" in message


def test_a_forger_cannot_fall_back_to_unkeyed_rows_after_keyed_ones(db):
    events = _chain(5)
    _forge_from(events, 3, target="someone-else", key_id="")
    message = _verify_fails()
    assert f"Audit chain broken at event {events[3].pk} " in message
    assert "it is unkeyed after keyed events" in message


def test_rows_written_before_the_chain_was_keyed_still_verify_and_are_anchored_by_the_first_keyed_one(db):
    """Rows of the unkeyed era (key_id "") keep their plain SHA-256; the first keyed row signs the last of
    their hashes, so rewriting them breaks it."""
    legacy, prev = [], GENESIS_HASH
    for i in range(3):
        event = AuditEvent(created_at=timezone.now(), actor_label="old", action=f"legacy.event{i}", prev_hash=prev)
        event.hash = _plain_sha256(event)
        event.save(force_insert=True)
        legacy.append(event)
        prev = event.hash
    keyed = _chain(2)
    assert keyed[0].prev_hash == legacy[-1].hash
    result = audit_verify_chain()
    assert (result.checked, result.broken, result.unkeyed) == (5, None, 3)
    call_command("verify_audit")

    _forge_from(legacy, 1, target="rewritten", key_id="")  # the whole unkeyed era recomputed…
    for event in keyed:  # …and the keyed rows relinked, which needs the key for their hashes
        _tamper("UPDATE provisioning_auditevent SET prev_hash = %s WHERE id = %s", [prev, event.pk])
    assert audit_verify()[1] is not None
    assert audit_verify()[1].pk == keyed[0].pk


def test_audit_keys_rotate_newest_first_and_an_unknown_key_is_reported(db):
    with override_settings(AUDIT_KEYS=[KEY_A]):
        first = _chain(2, "before")
    with override_settings(AUDIT_KEYS=[KEY_B, KEY_A]):
        second = _chain(2, "after")
        assert {e.key_id for e in first} == {audit_key_id(KEY_A)}
        assert {e.key_id for e in second} == {audit_key_id(KEY_B)}
        assert audit_verify() == (4, None)
    with override_settings(AUDIT_KEYS=[KEY_B]):  # the old key dropped too early
        message = _verify_fails()
    assert f"Audit chain broken at event {first[0].pk} " in message
    assert f"signed with the key {audit_key_id(KEY_A)}, which AUDIT_KEYS does not hold" in message


# --- Checkpoints -------------------------------------------------------------------------


@pytest.fixture
def checkpoints(tmp_path):
    with override_settings(AUDIT_CHECKPOINT_DIR=tmp_path):
        yield tmp_path


def test_a_checkpoint_goes_to_the_log_and_to_a_file_outside_the_database(db, checkpoints, caplog):
    events = _chain(3)
    with caplog.at_level(logging.INFO, logger="provisioning.audit.checkpoint"):
        checkpoint = audit_checkpoint()
    assert (checkpoint.count, checkpoint.id, checkpoint.hash) == (3, events[-1].pk, events[-1].hash)
    logged = [r.getMessage() for r in caplog.records if r.name == "provisioning.audit.checkpoint"]
    assert logged == [f"audit checkpoint {checkpoint.line()}"]
    (path,) = checkpoints.glob("audit-checkpoints-*.jsonl")
    assert json.loads(path.read_text().splitlines()[-1]) == json.loads(checkpoint.line())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert checkpoint_latest(directory=checkpoints) == checkpoint
    _chain(2)
    later = audit_checkpoint()
    assert later.count == 5 and len(path.read_text().splitlines()) == 2  # appended, one file a day
    assert checkpoint_latest(directory=checkpoints) == later
    out = _verify_ok()
    assert f"It matches the checkpoint of {later.at}: 5 event(s) up to event {later.id}." in out


def _verify_ok() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def test_verify_audit_reports_the_newest_events_deleted_after_a_checkpoint(db, checkpoints):
    events = _chain(5)
    audit_checkpoint()
    _tamper("DELETE FROM provisioning_auditevent WHERE id >= %s", [events[3].pk])
    assert audit_verify() == (3, None)  # what is left is a valid chain: only the checkpoint sees it
    message = _verify_fails()
    assert "Truncated: the checkpoint of " in message
    assert f"counted 5 event(s) up to event {events[4].pk}, the log has 3; event {events[4].pk} itself is gone" in (
        message
    )


def test_verify_audit_reports_a_chain_rewritten_before_the_checkpoint(db, checkpoints):
    """Everything rewritten as an unkeyed chain links up again; the hash at the checkpoint's id differs."""
    events = _chain(4)
    audit_checkpoint()
    _forge_from(events, 0, target="rewritten", key_id="")
    assert audit_verify() == (4, None)
    message = _verify_fails()
    assert f"Rewritten: event {events[3].pk}'s hash differs from the checkpoint of " in message


def test_a_checkpoint_line_forged_without_the_key_is_refused(db, checkpoints):
    events = _chain(2)
    checkpoint = audit_checkpoint()
    forged = json.loads(checkpoint.line()) | {"count": 1, "id": events[0].pk, "hash": events[0].hash}
    forged["id"] = events[1].pk + 1  # the newest, so it is the one compared
    with (checkpoints / "audit-checkpoints-9999-12-31.jsonl").open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    assert "is not signed by a key of AUDIT_KEYS" in _verify_fails()


def test_verify_audit_without_a_checkpoint_says_what_it_could_not_check(db, checkpoints):
    _chain(2)
    out = _verify_ok()
    assert "Audit chain intact: 2 event(s) verified." in out
    assert f"No checkpoint in {checkpoints}" in out


def test_beat_runs_the_checkpoint_through_the_worker(worker, checkpoints):
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert schedule["task"] == audit_checkpoint_task.name == "provisioning.audit_checkpoint"
    assert schedule["schedule"] == float(settings.AUDIT_CHECKPOINT_EVERY)
    assert audit_checkpoint_task.name in celery_app.tasks
    events = _chain(2)
    audit_checkpoint_task.delay()
    wait_until(
        lambda: list(checkpoints.glob("audit-checkpoints-*.jsonl")), timeout=30, message="no checkpoint was written"
    )
    latest = checkpoint_latest(directory=checkpoints)
    assert latest is not None and (latest.count, latest.id) == (2, events[-1].pk)


def test_point_10_an_emptied_table_without_checkpoints_fails_in_production(db, tmp_path, settings):
    """Without a checkpoint an emptied table is a valid (empty) chain: production says so with exit 1, unless told
    explicitly to check the links alone."""
    settings.PRODUCTION = True
    events = _chain(3)
    _tamper("DELETE FROM provisioning_auditevent WHERE id >= %s", [events[0].pk])
    missing = tmp_path / "no-such-directory"
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit", checkpoints=str(missing))
    assert f"No checkpoint directory at {missing}: the chain's 0 event(s) link up" in str(caught.value)
    assert "--without-checkpoints" in str(caught.value)
    out = StringIO()
    call_command("verify_audit", checkpoints=str(missing), without_checkpoints=True, stdout=out)
    assert "Audit chain intact: 0 event(s) verified." in out.getvalue()
    assert f"No checkpoint in {missing}" in out.getvalue()
