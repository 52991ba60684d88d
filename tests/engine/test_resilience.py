"""Faults, the fast way (make test): a worker that died mid-step, broker messages lost, AWS
unreachable, AWS throttling. The heavier versions with real processes are in tests/soak."""

import json
import time
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from portal.celery import app as celery_app
from provisioning.audit.chain import audit_record
from provisioning.aws.accounts import account_for_run, account_for_spec, run_accounts
from provisioning.engine.runs import run_create, run_retry, runs_sweep
from provisioning.models import AuditEvent, Run, StepRun
from provisioning.spec import spec_from_json, spec_parse
from sandbox.controller import free_port
from sandbox.proxy import Rule, SandboxProxy
from tests.conftest import spec_data, team_customer_for, wait_for_run
from tests.soak.harness import duplicates, resource_counts

State = StepRun.State
FAST_RETRIES = {"STEP_RETRY_BACKOFF": 0.05, "STEP_MAX_RETRIES": 3, "AWS_MAX_ATTEMPTS": 2, "AWS_CONNECT_TIMEOUT": 1}


def _create(user, before_commit=None) -> Run:
    """Create a run; `before_commit(run)` runs inside its transaction, before the first dispatch."""
    data = spec_data()
    with transaction.atomic():
        run = run_create(spec=spec_parse(data), customer=team_customer_for(data, user), user=user)
        if before_commit is not None:
            before_commit(run)
    return run


def _age(run: Run, seconds: float = 600) -> None:
    """Time passing, written down: the run's last progress is `seconds` ago."""
    Run.objects.filter(pk=run.pk).update(progressed_at=timezone.now() - timedelta(seconds=seconds))


def _assert_each_resource_once(sandbox) -> None:
    counts = resource_counts(sandbox.url, spec_data())
    assert duplicates(counts) == 0, counts


def test_a_step_left_running_by_a_dead_worker_is_swept_and_the_run_completes(worker, aws, alice):
    def dead_worker_took_preflight(run):
        # What a worker killed mid-step leaves: the step claimed (running, one attempt), no message left.
        StepRun.objects.filter(run=run, key="preflight").update(
            state=State.RUNNING, started_at=timezone.now() - timedelta(minutes=10), attempts=1
        )

    run = _create(alice, dead_worker_took_preflight)
    _age(run)
    preflight = run.steps.get(key="preflight")
    assert preflight.state == State.RUNNING
    assert runs_sweep(stale_after=0.1) == [run.pk]
    run = wait_for_run(run)
    assert run.status == Run.Status.SUCCEEDED
    preflight.refresh_from_db()
    assert preflight.state == State.SUCCEEDED and preflight.attempts == 2
    interrupted = AuditEvent.objects.get(action="step.interrupted", run=run)
    assert interrupted.step_key == "preflight" and interrupted.actor_label == "sweeper"
    _assert_each_resource_once(aws)


def test_a_step_still_running_within_the_stale_time_is_left_alone(worker, aws, alice):
    """The control: the sweeper only takes back what is stale."""

    def running_now(run):
        StepRun.objects.filter(run=run, key="preflight").update(
            state=State.RUNNING, started_at=timezone.now(), attempts=1
        )

    run = _create(alice, running_now)
    assert runs_sweep(stale_after=300) == []
    assert run.steps.get(key="preflight").state == State.RUNNING
    assert not AuditEvent.objects.filter(action="step.interrupted").exists()
    run_accounts.forget(run.pk)


def _queue_length(queue: str = "celery") -> int:
    with celery_app.connection_for_write() as conn:
        return conn.default_channel.client.llen(queue)


def test_lost_broker_messages_are_sent_again_by_the_sweeper(worker, aws, alice):
    """A message lost by the broker leaves a step pending with `queued_at` set and nothing on the
    queue. (Pausing the shared in-process worker to purge a real message proved racy: kombu hands
    back a message fetched during the pause. The soak scenario restarts a real Redis instead.)"""

    def message_sent_then_lost(run):
        StepRun.objects.filter(run=run, key="preflight").update(queued_at=timezone.now() - timedelta(minutes=10))

    run = _create(alice, message_sent_then_lost)
    preflight = run.steps.get(key="preflight")
    assert preflight.state == State.PENDING and preflight.queued_at is not None
    assert _queue_length(celery_app.conf.task_default_queue) == 0  # nothing on the broker for it
    _age(run)
    assert runs_sweep(stale_after=0.1) == [run.pk]
    run = wait_for_run(run)
    assert run.status == Run.Status.SUCCEEDED
    preflight.refresh_from_db()
    assert preflight.attempts == 1
    assert not AuditEvent.objects.filter(action="step.interrupted").exists()  # nothing was running
    _assert_each_resource_once(aws)


def test_aws_unreachable_fails_after_bounded_retries_then_the_run_is_retried_to_success(worker, aws, alice):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with override_settings(AWS_ENDPOINT_URL=closed, **FAST_RETRIES):
        run = wait_for_run(_create(alice))
        assert run.status == Run.Status.FAILED
        preflight = run.steps.get(key="preflight")
        assert preflight.state == State.FAILED
        assert "Cannot reach AWS" in preflight.error_message
        assert preflight.error_code == "CannotReachAWS"
        assert preflight.attempts == FAST_RETRIES["STEP_MAX_RETRIES"] + 1
        retries = AuditEvent.objects.filter(action="step.retrying", run=run, step_key="preflight")
        assert retries.count() == FAST_RETRIES["STEP_MAX_RETRIES"]
        assert all(e.details["retry_in_seconds"] > 0 for e in retries)
        assert set(run.steps.exclude(key="preflight").values_list("state", flat=True)) <= {
            State.SKIPPED,
            State.PENDING,
        }
    # AWS is back.
    run = wait_for_run(run_retry(run=run, user=alice))
    assert run.status == Run.Status.SUCCEEDED
    _assert_each_resource_once(aws)


def test_aws_lost_after_preflight_fails_every_step_with_cannot_reach_aws(worker, aws, alice):
    """AWS goes away mid-run: the steps' own clients (IAM, S3, ECR) get connection errors, which
    must be 'Cannot reach AWS' and retried, like the preflight's."""
    closed = f"http://127.0.0.1:{free_port()}"

    def preflight_reaches_aws_then_it_is_gone(run):
        with override_settings(AWS_ENDPOINT_URL=aws.url):
            # The run's account, opened now on the sandbox with the preflight's clients only: STS, IAM (it reads the
            # role's version) and S3 (the plan's bucket-name check). Every later client (ECR) is made on `closed`.
            account = account_for_spec(
                customer=run.customer,
                spec=spec_from_json(run.spec),
                session_name=f"onramp-run-{run.pk}",
                source_identity=alice.get_username(),
                services=("sts", "iam", "s3"),
            )
            run_accounts.put(run.pk, account)

    with override_settings(**FAST_RETRIES):
        with override_settings(AWS_ENDPOINT_URL=closed):
            run = wait_for_run(_create(alice, preflight_reaches_aws_then_it_is_gone))
        assert run.status == Run.Status.FAILED
        assert run.steps.get(key="preflight").state == State.SUCCEEDED
        failed = list(run.steps.filter(state=State.FAILED))
        assert {s.key for s in failed} >= {"ecr.repository"}
        for step in failed:
            assert "Cannot reach AWS" in step.error_message, (step.key, step.error_message)
            assert step.attempts == FAST_RETRIES["STEP_MAX_RETRIES"] + 1
        run_accounts.forget(run.pk)
        run = wait_for_run(run_retry(run=run, user=alice))
    assert run.status == Run.Status.SUCCEEDED
    _assert_each_resource_once(aws)


def _stub_create_group(event: str, answer, times: int):
    """A handler at the boto3 client boundary of the run's IAM client: its CreateGroup gets
    `answer(n)` instead of the sandbox's, the first `times` times. Returns (install, calls)."""
    calls = {"n": 0}

    def handler(**kwargs):
        calls["n"] += 1
        return answer(calls["n"]) if calls["n"] <= times else None

    def install(run):
        # The run's account, opened before the first step and shared by the worker (same process).
        account_for_run(run).client("iam").meta.events.register(f"{event}.iam.CreateGroup", handler)

    return install, calls


def _throttled(n: int):
    """A before-call answer: AWS's Throttling, already parsed."""
    return AWSResponse("https://iam.amazonaws.com/", 400, {}, None), {
        "Error": {"Code": "Throttling", "Message": "Rate exceeded", "Type": "Sender"},
        "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": f"throttled-{n}"},
    }


def _with_throttled_create_group(times: int):
    return _stub_create_group("before-call", _throttled, times)


@override_settings(**FAST_RETRIES)
def test_throttling_is_retried_with_backoff_and_the_run_succeeds(worker, aws, alice):
    install, calls = _with_throttled_create_group(2)
    run = wait_for_run(_create(alice, install))
    assert run.status == Run.Status.SUCCEEDED
    group = run.steps.get(key="iam.group")
    assert group.state == State.SUCCEEDED and group.attempts == 3
    assert calls["n"] == 3
    retries = AuditEvent.objects.filter(action="step.retrying", run=run, step_key="iam.group")
    assert [e.error_code for e in retries] == ["Throttling", "Throttling"]
    delays = sorted(e.details["retry_in_seconds"] for e in retries)
    assert all(d > 0 for d in delays)
    assert (
        AuditEvent.objects.filter(
            action="aws.iam.CreateGroup", run=run, outcome="error", error_code="Throttling"
        ).count()
        == 2
    )
    _assert_each_resource_once(aws)


@override_settings(**FAST_RETRIES)
def test_throttling_that_does_not_pass_fails_the_step_after_bounded_retries(worker, aws, alice):
    install, calls = _with_throttled_create_group(1000)
    run = wait_for_run(_create(alice, install))
    assert run.status == Run.Status.FAILED
    group = run.steps.get(key="iam.group")
    assert group.state == State.FAILED and group.error_code == "Throttling"
    assert group.attempts == FAST_RETRIES["STEP_MAX_RETRIES"] + 1 == calls["n"]
    assert run.steps.get(key="iam.access_key").state == State.SKIPPED
    # The other branches were not held back by the throttled one.
    assert run.steps.get(key="s3.cors").state == State.SUCCEEDED
    run_accounts.forget(run.pk)  # a fresh client without the stub: AWS calmed down
    run = wait_for_run(run_retry(run=run, user=alice))
    assert run.status == Run.Status.SUCCEEDED
    _assert_each_resource_once(aws)


class _Body:
    """What botocore reads a response's body from (urllib3's stream())."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


# What the sandbox's web server sent once under load: its generic 500 page, not AWS's XML. This one
# also carries a session token, as an unreadable AssumeRole answer would: botocore quotes the body.
LEAKED_TOKEN = "FwoGZXIvYXdzEXAMPLE" + "Zm9vYmFy" * 30
SERVER_FAULT_PAGE = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    + f"<SessionToken>{LEAKED_TOKEN}</SessionToken>".encode()
)


@override_settings(**FAST_RETRIES)
def test_a_server_fault_botocore_cannot_read_is_retried_and_the_run_succeeds(worker, aws, alice):
    """botocore raises ResponseParserError (not a BotoCoreError, never retried by botocore) on a
    500 whose body is not AWS's XML; the step must retry it, not fail as an Onramp bug."""
    install, calls = _stub_create_group(
        "before-send",
        lambda n: AWSResponse(
            "https://iam.amazonaws.com/", 500, {"Content-Type": "text/html"}, _Body(SERVER_FAULT_PAGE)
        ),
        times=1,
    )
    run = wait_for_run(_create(alice, install))
    assert run.status == Run.Status.SUCCEEDED
    group = run.steps.get(key="iam.group")
    assert group.state == State.SUCCEEDED and group.attempts == 2 and calls["n"] == 2
    retry = AuditEvent.objects.get(action="step.retrying", run=run, step_key="iam.group")
    assert retry.error_code == "UnreadableResponse"
    assert "could not read" in retry.details["message"]
    call = AuditEvent.objects.get(action="aws.iam.CreateGroup", run=run, outcome="error")
    assert call.error_code == "ResponseParserError"
    recorded = json.dumps(list(AuditEvent.objects.values("target", "error_code", "details")), default=str)
    recorded += json.dumps(list(run.steps.values("error_message", "outputs")), default=str)
    assert LEAKED_TOKEN not in recorded and "Zm9vYmFyZm9vYmFy" not in recorded
    _assert_each_resource_once(aws)


def test_recording_a_step_takes_the_runs_lock_before_the_audit_chains_as_cancel_does(worker, aws, alice):
    """run_cancel and run_retry lock the run's row, then the audit chain. A step's record must take
    them in the same order, or a cancel landing while a step records is a deadlock (PostgreSQL then
    kills one side: the cancel fails, or the step's outcome and audit rows are lost)."""
    proxy = SandboxProxy(aws.url).start()
    held = proxy.add(Rule(operation="CreateGroup", hold_response=True))
    try:
        with override_settings(AWS_ENDPOINT_URL=proxy.url):
            run = _create(alice)
            assert held.seen.wait(30), "the group step never called AWS"
            with transaction.atomic():  # what run_cancel does, with time for the step to record between
                Run.objects.select_for_update().get(pk=run.pk)
                held.release.set()  # the step hears back from AWS and records its outcome now
                time.sleep(1.5)  # longer than PostgreSQL's deadlock_timeout (1 s)
                audit_record(action="run.note", actor=alice, run=run, details={"why": "the cancel's own audit"})
            run = wait_for_run(run, timeout=30)
    finally:
        proxy.stop()
    assert run.status == Run.Status.SUCCEEDED
    group = run.steps.get(key="iam.group")
    assert group.state == State.SUCCEEDED and group.attempts == 1
    assert AuditEvent.objects.filter(action="aws.iam.CreateGroup", run=run).count() == 1
    assert AuditEvent.objects.filter(action="run.note", run=run).count() == 1


@pytest.fixture(autouse=True)
def _no_cached_accounts():
    yield
    run_accounts._items.clear()


def test_the_leak_search_finds_a_secret_inside_a_celery_message():
    """The soak's leak search would see a secret put in a task argument (bodies are base64 on Redis)."""
    import base64
    import json

    from tests.soak.harness import _decoded_bodies, leaks

    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    body = base64.b64encode(json.dumps([[secret], {}, {}]).encode()).decode()
    message = json.dumps({"body": body, "headers": {"task": "provisioning.tasks.step_run"}})
    assert secret not in message
    assert leaks({secret}, {"broker": "\n".join([message, *_decoded_bodies(message)])}) == {"broker": 1}
    assert leaks({secret}, {"log": "nothing here"}) == {}
