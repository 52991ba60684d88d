"""Anchors of the audit chain outside the database: checkpoints.

The chain's HMAC stops anyone without AUDIT_KEYS from rewriting a row and recomputing the hashes after
it, but not from deleting the newest rows: what is left is still a valid chain. So every
AUDIT_CHECKPOINT_EVERY seconds the beat service writes a checkpoint, (count, newest id, newest hash),
signed with the newest audit key, to the application log and as a line appended to a file of the day in
AUDIT_CHECKPOINT_DIR, both out of the database role's reach. `manage.py verify_audit` compares the chain
with the latest checkpoint: fewer rows up to its id, or its id gone, is a truncation; another hash at
its id is a rewrite.
"""

import hashlib
import hmac
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from celery import shared_task
from django.conf import settings

from provisioning.audit.keys import AuditKeyMissing, audit_key, audit_key_current
from provisioning.models import AuditEvent

log = logging.getLogger("provisioning.audit.checkpoint")
FILE_PATTERN = "audit-checkpoints-*.jsonl"


@dataclass(frozen=True)
class Checkpoint:
    at: str  # when it was taken, ISO 8601 UTC
    count: int  # events with an id up to `id`
    id: int  # the newest event's id
    hash: str  # the newest event's hash
    key_id: str = ""  # the AUDIT_KEYS key that signed it
    mac: str = ""

    def _message(self) -> bytes:
        return json.dumps([self.at, self.count, self.id, self.hash], separators=(",", ":")).encode()

    def signed(self) -> "Checkpoint":
        key_id, key = audit_key_current()
        mac = hmac.new(key, self._message(), hashlib.sha256).hexdigest()
        return Checkpoint(self.at, self.count, self.id, self.hash, key_id, mac)

    def signature_valid(self) -> bool:
        try:
            expected = hmac.new(audit_key(self.key_id), self._message(), hashlib.sha256).hexdigest()
        except AuditKeyMissing:
            return False
        return hmac.compare_digest(expected, self.mac)

    def line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def checkpoint_take() -> Checkpoint | None:
    """The chain's state now, signed; None while the log is empty. Writers append in id order under the
    chain's lock, so the rows up to the newest committed id are all committed: the count is exact."""
    newest = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    if newest is None:
        return None
    count = AuditEvent.objects.filter(id__lte=newest[0]).count()
    at = datetime.now(UTC).isoformat()
    return Checkpoint(at=at, count=count, id=newest[0], hash=newest[1]).signed()


def checkpoint_write(checkpoint: Checkpoint, *, directory: Path) -> Path:
    """Append the checkpoint to the day's file (created on first use, readable by its owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"audit-checkpoints-{checkpoint.at[:10]}.jsonl"
    with open(path, "a", encoding="utf-8", opener=lambda name, flags: os.open(name, flags, 0o600)) as handle:
        handle.write(checkpoint.line() + "\n")
    return path


def audit_checkpoint() -> Checkpoint | None:
    """Take a checkpoint and put it in the log and in AUDIT_CHECKPOINT_DIR."""
    checkpoint = checkpoint_take()
    if checkpoint is None:
        return None
    log.info("audit checkpoint %s", checkpoint.line())
    checkpoint_write(checkpoint, directory=Path(settings.AUDIT_CHECKPOINT_DIR))
    return checkpoint


@shared_task(name="provisioning.audit_checkpoint", ignore_result=True)
def audit_checkpoint_task() -> None:
    audit_checkpoint()


def checkpoint_latest(*, directory: Path) -> Checkpoint | None:
    """The checkpoint with the highest event id in the directory's files (a line that is not one is
    skipped: a checkpoint whose signature fails is reported by checkpoint_check, not hidden)."""
    latest = None
    for path in sorted(Path(directory).glob(FILE_PATTERN)):
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                checkpoint = Checkpoint(**json.loads(text))
            except (ValueError, TypeError):
                continue
            if latest is None or (checkpoint.id, checkpoint.at) >= (latest.id, latest.at):
                latest = checkpoint
    return latest


def checkpoint_check(checkpoint: Checkpoint) -> list[str]:
    """What the log has lost or changed since the checkpoint was taken; [] when it matches."""
    if not checkpoint.signature_valid():
        return [f"The checkpoint of {checkpoint.at} is not signed by a key of AUDIT_KEYS: it cannot be trusted."]
    problems = []
    stored = AuditEvent.objects.filter(id=checkpoint.id).values_list("hash", flat=True).first()
    count = AuditEvent.objects.filter(id__lte=checkpoint.id).count()
    where = f"the checkpoint of {checkpoint.at} counted {checkpoint.count} event(s) up to event {checkpoint.id}"
    if stored is None or count < checkpoint.count:
        gone = "" if stored is not None else f"; event {checkpoint.id} itself is gone"
        problems.append(f"Truncated: {where}, the log has {count}{gone}.")
    elif count > checkpoint.count:
        problems.append(f"Rewritten: {where}, the log has {count} (events were inserted before it).")
    if stored is not None and not hmac.compare_digest(stored, checkpoint.hash):
        problems.append(f"Rewritten: event {checkpoint.id}'s hash differs from {where.split(' counted')[0]}.")
    return problems
