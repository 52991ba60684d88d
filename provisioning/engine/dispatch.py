"""Dispatch: the run's row lock, enqueue every step whose dependencies are done (longest chain first), keep
one for the worker that finished the last, and the publisher thread that sends the rest.

The database is the source of truth and the broker only a nudge: every task carries a step id, the step's
row says what to do, and anything lost on the broker is found again by the sweeper (engine/runs.py)."""

import logging
import os
import queue
import threading
from datetime import datetime
from uuid import UUID

from celery import current_app
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from provisioning.audit.chain import CallLog
from provisioning.engine.finish import run_finish
from provisioning.models import Run, StepRun

logger = logging.getLogger(__name__)
State = StepRun.State


# The task that runs a step, by name: tasks call runs, and runs only names the task.
STEP_TASK = "provisioning.tasks.step_run"
# What claiming a step sets (besides its start): the conditional UPDATE from pending makes it one worker's.
CLAIM = {"state": State.RUNNING, "finished_at": None, "attempts": F("attempts") + 1, "queued_at": None}


def step_tasks_send(step_ids: list[int]) -> None:
    for step_id in step_ids:
        current_app.send_task(STEP_TASK, args=[step_id])


class _Publisher:
    """Sends step tasks from a thread of its own, for a dispatch whose thread goes on to run the step it kept:
    that thread makes its next AWS call at once instead of after publishing its siblings (~2 ms each on a busy
    worker). A message this loses (the process dies first) is a step queued in the database and in no message,
    which the sweeper sends again, as any message lost on the broker (runs_sweep). One thread per process,
    started on first use (after a worker forks)."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: tuple[int, threading.Thread] | None = None  # (the process that started it, the thread)
        self._lock = threading.Lock()

    def _running(self) -> bool:
        """Whether this process's thread is sending (a forked child has its parent's record, not its thread)."""
        return self._thread is not None and self._thread[0] == os.getpid() and self._thread[1].is_alive()

    def put(self, step_ids: list[int]) -> None:
        with self._lock:
            if not self._running():
                thread = threading.Thread(target=self._loop, name="onramp-publisher", daemon=True)
                self._thread = (os.getpid(), thread)
                thread.start()
        self._queue.put(step_ids)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()  # everything put before it is sent
                continue
            try:
                step_tasks_send(item)
            except Exception:  # the broker is away: the sweeper sends these again
                logger.exception("Could not send step tasks %s; the sweeper will", item)

    def drain(self, timeout: float = 10) -> bool:
        """Wait until everything put so far is sent (a worker's shutdown); False if that took over `timeout`."""
        with self._lock:
            if not self._running():
                return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)


publisher = _Publisher()


def run_lock(run_id: UUID | str, now: datetime) -> bool:
    """Mark the run's progress, which takes its row lock until the transaction ends; False when the
    run is no longer active. Every writer takes the run's row before the audit chain's lock
    (run_cancel and run_retry update the run, then audit), so none waits on the other in a cycle."""
    return bool(Run.objects.filter(pk=run_id, status__in=Run.ACTIVE).update(progressed_at=now))


def run_dispatch(
    *, run_id: UUID | str, after: StepRun | None = None, run_locked: bool = False, log: CallLog | None = None
) -> StepRun | None:
    """Enqueue every pending step whose dependencies are done; skip those whose dependencies
    failed; finish the run when nothing is left. Safe to call any number of times.

    With `after` (the step this process just finished), one step that waited on it is kept
    instead of enqueued, claimed, and returned as the claim left it: the caller runs it next in the
    same process, with the clients it already has, and skips a broker round trip and a read. The
    longest remaining branch is the one kept, so the critical path never waits on the broker.
    `run_locked`: the caller's transaction already holds the run's lock (see run_lock); `log`: the
    caller writes the audit events buffered on it (the run's end among them) when its transaction is
    done with everything else."""
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        if not run_locked and not run_lock(run_id, now):  # one dispatch at a time per run
            return None
        steps = {s.key: s for s in StepRun.objects.filter(run_id=run_id)}
        ready, skipped = [], []
        changed = True
        while changed:  # a skip can make more skips down the chain
            changed = False
            for step in steps.values():
                if step.state != State.PENDING:
                    continue
                deps = [steps[key].state for key in step.depends_on]
                if any(d in (State.FAILED, State.SKIPPED, State.CANCELLED) for d in deps):
                    step.state = State.SKIPPED
                    skipped.append(step.pk)
                    changed = True
                elif all(d in StepRun.DONE for d in deps) and step.queued_at is None:
                    step.queued_at = now  # once per dispatch, however many passes the loop makes
                    ready.append(step)
        if skipped:
            StepRun.objects.filter(pk__in=skipped, state=State.PENDING).update(
                state=State.SKIPPED, error_message="Skipped: a step it depends on did not finish.", finished_at=now
            )
        chain = chain_lengths(steps)
        keep = _step_to_keep(after, ready, chain) if after is not None else None
        enqueue = [s.pk for s in longest_first(ready, chain) if s is not keep]
        if enqueue:
            # ready_at: the first time the step could run (a re-drive by the sweeper keeps it), for the timeline.
            StepRun.objects.filter(pk__in=enqueue, queued_at__isnull=True).update(
                queued_at=now, ready_at=Coalesce(F("ready_at"), Value(now))
            )
        # The kept step is claimed here, in the transaction that recorded the step before it: one commit, not two.
        if keep is not None:
            keep = _claim_kept(keep, now)
        if enqueue:
            # This thread goes on with the kept step: its siblings are sent beside it (see _Publisher).
            send = (lambda: publisher.put(enqueue)) if keep is not None else (lambda: step_tasks_send(enqueue))
            transaction.on_commit(send, robust=True)
        if all(s.state in StepRun.FINISHED for s in steps.values()):
            run_finish(Run.objects.select_related("started_by").get(pk=run_id), steps, log=log)
    return keep


def _claim_kept(step: StepRun, now) -> StepRun | None:
    """Claim a kept step (read in this transaction, under the run's lock, pending and in no broker message:
    no one else can claim it) and set on it what the claim wrote; None if it was not pending after all."""
    if not StepRun.objects.filter(pk=step.pk, state=State.PENDING).update(
        **CLAIM, started_at=now, ready_at=Coalesce(F("ready_at"), Value(now))
    ):
        return None
    for name, value in CLAIM.items():
        setattr(step, name, value if name != "attempts" else step.attempts + 1)  # F("attempts") + 1, in memory
    step.started_at, step.ready_at = now, step.ready_at or now
    return step


def chain_lengths(steps: dict[str, StepRun]) -> dict[str, int]:
    """For each step, how many pending steps (itself included) its chain still holds."""
    waiting_on: dict[str, list[str]] = {key: [] for key in steps}
    for step in steps.values():
        if step.state == State.PENDING:
            for dep in step.depends_on:
                waiting_on[dep].append(step.key)

    def length(key: str) -> int:
        return 1 + max((length(k) for k in waiting_on[key]), default=0)

    return {key: length(key) for key in steps}


def longest_first(steps: list[StepRun], chain: dict[str, int]) -> list[StepRun]:
    """The order to send ready steps in: with fewer free slots than branches, the critical path starts first."""
    return sorted(steps, key=lambda s: -chain[s.key])


def _step_to_keep(after: StepRun, ready: list[StepRun], chain: dict[str, int]) -> StepRun | None:
    followers = [s for s in ready if after.key in s.depends_on]
    if not followers:
        return None
    return max(followers, key=lambda s: (chain[s.key], s.branch == after.branch))
