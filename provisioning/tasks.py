"""Thin Celery tasks: ids in, the services in provisioning/engine/ and vault do the work."""

import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from provisioning import approvals, customers, drift, notify, setup_links, vault
from provisioning.engine import execute, runs
from provisioning.models import Customer

# How long one task keeps taking its branch's next step itself, far under the soft time limit.
CHAIN_FOR_SECONDS = 30
# A task that survives the database restarting under a worker: acknowledged once done, retried with backoff.
DATABASE_RETRIED = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
}


@shared_task(bind=True, max_retries=20, retry_jitter=True, **DATABASE_RETRIED)
def step_run(self, step_id: int) -> None:
    """Run one step, then the next step of its branch in this same process while there is one and the
    task is young (the run's clients are warm here; no broker round trip). AWS retries (bounded by the
    step's attempts) are decided by the service."""
    started = time.monotonic()
    claimed = None  # the steps after the first were kept and claimed for this task by the dispatch
    next_id: int | None = step_id
    while next_id is not None:
        keep_next = time.monotonic() - started < CHAIN_FOR_SECONDS
        try:
            outcome = execute.step_execute(step_id=next_id, keep_next=keep_next, claimed=claimed)
        except SoftTimeLimitExceeded:
            # The sweeper will find the step still running and put it back.
            return
        if outcome.retry_in is not None:
            raise self.retry(args=(next_id,), countdown=outcome.retry_in)
        claimed = outcome.next_step
        next_id = claimed.pk if claimed is not None else None


@shared_task(max_retries=10, **DATABASE_RETRIED)
def account_read(read_id: str) -> None:
    """Read a customer's account back for a plan or a drift check (read-only, audited); a drift check's
    outcome is recorded on the customer's drift state."""
    drift.drift_check_execute(read_id=read_id)


@shared_task(max_retries=10, **DATABASE_RETRIED)
def drift_check_after_repair(customer_id: int) -> None:
    """A repair run succeeded: check that customer's account at once, so its drift state is not the stale
    one from before the repair until someone presses Check now."""
    drift.drift_check_after_run(customer_id=customer_id)


@shared_task(ignore_result=True)
def drift_checks_start() -> None:
    """The schedule's drift check of every customer (CELERY_BEAT_SCHEDULE "drift-check")."""
    drift.drift_checks_start()


@shared_task(max_retries=10, **DATABASE_RETRIED)
def drift_checks_work() -> None:
    """One of at most DRIFT_CONCURRENCY takers of pending drift checks."""
    drift.drift_checks_work()


@shared_task(ignore_result=True)
def runs_sweep() -> None:
    runs.runs_sweep()


@shared_task(ignore_result=True)
def approvals_expire() -> None:
    approvals.approvals_expire()


@shared_task(ignore_result=True)
def credentials_expire() -> None:
    vault.credentials_expire()


@shared_task(ignore_result=True)
def run_notify(run_id: str) -> None:
    """Tell the run's tech lead it finished; sent by engine.finish.run_finish once the run's end committed."""
    notify.run_notify(run_id=run_id)


@shared_task(ignore_result=True)
def credentials_warn() -> None:
    notify.credentials_warn()


@shared_task(ignore_result=False)
def ping(value: int) -> int:
    """A trivial task: proves the web → Redis → worker path (used by /healthz and a test)."""
    return value + 1


@shared_task(bind=True, max_retries=40, **DATABASE_RETRIED)
def setup_watch(self, link_id: int, watching: bool = True, role_arn: str = "") -> None:
    """Look for the customer's role once; while watching, again with backoff until it is found or the watch's
    time is over (setup_links.setup_detect decides both)."""
    found = setup_links.setup_detect(link_id=link_id, role_arn=role_arn, watching=watching)
    if found.retry_in is not None:
        raise self.retry(args=(link_id,), kwargs={"watching": True}, countdown=found.retry_in)


@shared_task(max_retries=10, **DATABASE_RETRIED)
def role_refresh(customer_id: int) -> None:
    """Read one customer's role version again."""
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is not None:
        customers.role_refresh(customer=customer)


@shared_task(ignore_result=True)
def roles_refresh() -> None:
    """The nightly read of every customer's role version, one task each (CELERY_BEAT_SCHEDULE "role-versions")."""
    for customer_id in customers.roles_to_refresh():
        role_refresh.delay(customer_id)
