"""Soak: real `celery worker --pool prefork` processes, a private Redis, the sandbox behind a proxy
that can hold or refuse calls, and faults: SIGKILL mid-step (five steps in turn), the broker
restarted, the database connections cut, AWS down, AWS throttling. Each scenario counts what
exists in the account and searches the database, the broker and every log for every generated secret."""

import io
import logging
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from provisioning.engine.runs import run_retry, runs_sweep
from provisioning.models import AuditEvent, Run, StepRun
from sandbox.proxy import Rule, SandboxProxy
from tests.conftest import SANDBOX_LOG, spec_data, start_run
from tests.soak.conftest import REPORT
from tests.soak.harness import (
    WorkerProcess,
    database_dump,
    duplicates,
    leaks,
    redis_dump,
    resource_counts,
    sealed_secrets,
)
from tests.waiting import wait_until

# Real worker processes: end-to-end, like every test that needs a worker.
pytestmark = [pytest.mark.soak, pytest.mark.e2e]
STALE_AFTER = 8  # seconds without progress before the sweeper steps in (300 in production)
State = StepRun.State


class Scene:
    """One scenario's moving parts, and its line in the report."""

    def __init__(self, name: str, sandbox, redis, tmp_path: Path):
        # `sandbox` is the `aws` fixture's: reset strict, with Onramp's identity and the customer's role deployed.
        self.name = name
        self.sandbox = sandbox
        self.redis = redis
        self.tmp_path = tmp_path
        self.proxy = SandboxProxy(sandbox.url).start()
        self.workers: list[WorkerProcess] = []
        self.old_proxies: list[SandboxProxy] = []
        self.secrets: set[str] = set()
        self.log = io.StringIO()
        self._handler = logging.StreamHandler(self.log)
        logging.getLogger().addHandler(self._handler)
        self.row = {"scenario": name, "attempted": 0, "completed": 0, "duplicates": 0, "leaked": 0}
        REPORT.append(self.row)

    def worker(self, concurrency: int = 2, **env) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.workers) + 1}.log"
        worker = WorkerProcess(
            broker_url=self.redis.url, aws_url=self.proxy.url, log=log, concurrency=concurrency, **env
        ).start()
        self.workers.append(worker)
        return worker

    def aws_down(self) -> None:
        """Nothing listens on the sandbox's address any more (calls in flight still finish)."""
        self.proxy.stop()
        self.old_proxies.append(self.proxy)

    def aws_back(self) -> None:
        self.proxy = SandboxProxy(self.sandbox.url, port=self.proxy.port).start()

    def drive(self, run: Run, timeout: float = 240, sweep: bool = True) -> Run:
        """Wait for the run to end, sweeping every second as beat would (with a short stale time)."""

        def ended() -> bool:
            run.refresh_from_db()
            if run.is_active and sweep:
                runs_sweep(stale_after=STALE_AFTER)
            return not run.is_active

        wait_until(
            ended,
            timeout=timeout,
            interval=1,
            message=lambda: f"run still {run.status} after {timeout} s: { {s.key: s.state for s in run.steps.all()} }",
        )
        return run

    def account(self, runs: list[Run]) -> None:
        """Count the resources, search every place for every secret, write the report line."""
        self.row["attempted"] = len(runs)
        self.row["completed"] = sum(1 for r in runs if Run.objects.get(pk=r.pk).status == Run.Status.SUCCEEDED)
        counts = resource_counts(self.sandbox.url, spec_data())
        self.row["duplicates"] = duplicates(counts)
        for worker in self.workers:
            worker.stop()
        for proxy in [*self.old_proxies, self.proxy]:
            self.secrets |= proxy.secrets
        sealed = sealed_secrets()
        assert sealed and sealed <= self.secrets, "the proxy saw every sealed secret go by"
        places = {
            "database dump": database_dump(),
            "broker": redis_dump(self.redis.url),
            "test process log": self.log.getvalue(),
            "sandbox log": SANDBOX_LOG.read_text(errors="replace"),
        }
        places.update({w.log.name: w.log.read_text(errors="replace") for w in self.workers})
        found = leaks(self.secrets, places)
        self.row["leaked"] = sum(found.values())
        assert self.row["completed"] == self.row["attempted"], self.row
        assert self.row["duplicates"] == 0, counts
        assert not found, found

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.proxy.stop()
        logging.getLogger().removeHandler(self._handler)


@pytest.fixture
def scene(request, transactional_db, aws, soak_redis, tmp_path):
    """The sandbox as every end-to-end test has it (`aws`: strict, Onramp's identity, the customer's role), a
    private Redis, and the scenario's proxy and worker processes."""
    made: list[Scene] = []

    def make(name: str) -> Scene:
        made.append(Scene(name, aws, soak_redis, tmp_path))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _wait(event, what: str, timeout: float = 120) -> None:
    assert event.wait(timeout), f"{what} did not happen within {timeout} s"


KILL_POINTS = [
    # (step, the AWS call after which the worker dies: it happened in AWS, the worker never heard back)
    pytest.param("iam.app_user", Rule("CreateUser", body_has=b"UserName=acme-app&", hold_response=True)),
    pytest.param("iam.media_policy", Rule("CreatePolicy", hold_response=True)),
    # The short scenario `make test` runs too: a secret made by the killed attempt is never sealed, its key is
    # deleted and made again; the harness's every part (proxy, workers, sweeper, leak search) takes part.
    pytest.param("iam.access_key", Rule("CreateAccessKey", hold_response=True), marks=pytest.mark.soak_short),
    pytest.param("s3.bucket", Rule("CreateBucket", hold_response=True)),
    pytest.param("ecr.repository", Rule("CreateRepository", hold_response=True)),
]


@pytest.mark.parametrize(("step_key", "rule"), KILL_POINTS, ids=[p.values[0] for p in KILL_POINTS])
def test_worker_killed_mid_step(scene, alice, step_key, rule):
    s = scene(f"worker SIGKILL in {step_key}")
    s.proxy.add(rule)
    first = s.worker()
    run = start_run(alice)
    _wait(rule.seen, f"{rule.operation} for {step_key}")
    assert run.steps.get(key=step_key).state == State.RUNNING
    first.kill()
    s.proxy.release_all()
    s.worker()
    run = s.drive(run)
    assert run.status == Run.Status.SUCCEEDED
    interrupted = AuditEvent.objects.filter(action="step.interrupted", run=run, step_key=step_key)
    assert interrupted.exists()
    assert run.steps.get(key=step_key).attempts >= 2
    if step_key == "iam.access_key":
        # The key made by the killed attempt (its secret never sealed) was deleted, then made again.
        assert AuditEvent.objects.filter(action="aws.iam.DeleteAccessKey", run=run, outcome="ok").count() == 1
    s.account([run])


def test_broker_restarted_mid_run(scene, alice, soak_redis):
    import redis

    s = scene("broker (Redis) restarted")
    hold = s.proxy.add(Rule("CreateAccountAlias", hold_response=True))
    s.worker(concurrency=1)  # one step at a time: the others wait on the broker
    run = start_run(alice)
    _wait(hold.seen, "CreateAccountAlias")
    queue = settings.CELERY_TASK_DEFAULT_QUEUE  # "celery", or a session's own (CELERY_QUEUE)
    broker = redis.Redis.from_url(soak_redis.url)
    waiting = broker.llen(queue)
    assert waiting >= 1
    soak_redis.restart()  # --save "" --appendonly no: every message is gone
    assert redis.Redis.from_url(soak_redis.url).llen(queue) == 0
    lost = list(run.steps.filter(state=State.PENDING, queued_at__isnull=False).values_list("key", flat=True))
    assert len(lost) >= waiting
    s.proxy.release_all()
    run = s.drive(run)
    assert run.status == Run.Status.SUCCEEDED
    for key in lost:
        assert run.steps.get(key=key).state in StepRun.DONE
    s.account([run])


def test_database_connections_cut_mid_step(scene, alice):
    """pg_terminate_backend on every connection of the worker while it creates the access key:
    what a database restart does to the processes using it."""
    s = scene("database connections cut")
    hold = s.proxy.add(Rule("CreateAccessKey", hold_response=True))
    s.worker()
    run = start_run(alice)
    _wait(hold.seen, "CreateAccessKey")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        cut = cursor.fetchone()[0]
    assert cut >= 1
    s.proxy.release_all()
    run = s.drive(run)
    assert run.status == Run.Status.SUCCEEDED
    access_key = run.steps.get(key="iam.access_key")
    assert access_key.attempts >= 2
    assert AuditEvent.objects.filter(action="step.interrupted", run=run, step_key="iam.access_key").exists()
    s.account([run])


def test_aws_down_mid_run_then_back(scene, alice):
    s = scene("AWS unreachable, then retried")
    hold = s.proxy.add(Rule("CreateBucket", hold_response=True))
    s.worker(STEP_RETRY_BACKOFF=0.2, AWS_MAX_ATTEMPTS=2, AWS_CONNECT_TIMEOUT=1)
    run = start_run(alice)
    _wait(hold.seen, "CreateBucket")
    s.aws_down()
    run = s.drive(run, sweep=False)
    assert run.status == Run.Status.FAILED
    failed = run.steps.filter(state=State.FAILED)
    assert failed.exists()
    for step in failed:
        assert "Cannot reach AWS" in step.error_message, (step.key, step.error_message)
        assert step.attempts == 4  # STEP_MAX_RETRIES + 1: bounded
    s.aws_back()
    run = s.drive(run_retry(run=run, user=alice))
    assert run.status == Run.Status.SUCCEEDED
    s.account([run])


def test_aws_throttling(scene, alice):
    s = scene("AWS throttling (CreateGroup x3)")
    throttle = s.proxy.add(Rule("CreateGroup", refuse_with="Throttling", times=3))
    s.worker(STEP_RETRY_BACKOFF=0.2, AWS_MAX_ATTEMPTS=2)
    run = s.drive(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    assert throttle.matched == 3
    group = run.steps.get(key="iam.group")
    assert group.attempts == 2  # botocore retried once inside each attempt, the step once more
    assert AuditEvent.objects.filter(action="step.retrying", run=run, step_key="iam.group").count() == 1
    s.account([run])
