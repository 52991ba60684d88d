"""What keeps a run's critical path short (docs/performance.md): each test fails when its mechanism is gone."""

import json
import os
import subprocess
import sys
import threading

import pytest
from celery.signals import before_task_publish, worker_process_shutdown, worker_shutdown
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.celery import _publisher_drain
from provisioning import vault
from provisioning.aws.accounts import account_connect, portal_account, process_session
from provisioning.engine.dispatch import STEP_TASK, publisher, run_dispatch
from provisioning.engine.runs import run_create
from provisioning.kinds import REGISTRY
from provisioning.kinds.iam_access_key import aws as access_key
from provisioning.kinds.preflight import aws as preflight
from provisioning.models import AuditEvent, Run, StepRun
from provisioning.plan import plan_decide
from provisioning.role.template import access_policy_document
from provisioning.spec import spec_parse
from provisioning.steps.base import StepContext
from tests.conftest import (
    CUSTOMER_ACCOUNT,
    EXAMPLE_KEYS,
    EXTERNAL_ID,
    customer_for,
    seal_key,
    spec_data,
    start_run,
    team_customer_for,
    wait_for_run,
)
from tests.test_plan_checks import plan_read

# Calls only the stale-plan read makes in the preflight (the plan's checks make none of them).
STALE_READ_ONLY = ("iam.GetGroup", "ecr.DescribeRepositories")


def _step_messages():
    """Record every step task published in this process: (the publishing thread's name, the step's id)."""
    sent: list[tuple[str, int]] = []

    def note(sender=None, body=None, **kwargs):
        if sender == STEP_TASK:
            sent.append((threading.current_thread().name, body[0][0]))

    before_task_publish.connect(note, weak=False)
    return sent, lambda: before_task_publish.disconnect(note)


def test_confirming_a_run_queues_its_first_step_in_the_transaction_that_records_the_run(db, alice):
    """Under the `db` fixture nothing commits, so nothing registered for after the commit runs: the first step is
    queued only if the dispatch is part of run_create's own transaction (one commit, not two, before it starts)."""
    data = spec_data()
    run = run_create(spec=spec_parse(data), customer=team_customer_for(data, alice), user=alice)
    queued = dict(run.steps.filter(queued_at__isnull=False).values_list("key", "state"))
    assert queued == {"preflight": "pending"}
    assert run.steps.get(key="preflight").ready_at is not None


def test_the_step_a_dispatch_keeps_comes_back_claimed_exactly_as_the_database_has_it(db, alice):
    """The process that finished a step runs the next step of its chain without reading it again: what the dispatch
    returns must be what its claim wrote."""
    data = spec_data()
    run = run_create(spec=spec_parse(data), customer=team_customer_for(data, alice), user=alice)
    run.steps.filter(key="preflight").update(state=StepRun.State.SUCCEEDED, finished_at=timezone.now())
    preflight = run.steps.get(key="preflight")
    with transaction.atomic():
        kept = run_dispatch(run_id=run.pk, after=preflight)

    assert kept.key == "iam.group"  # the head of the longest chain (group, app user, policy, key)
    stored = StepRun.objects.get(pk=kept.pk)
    for field in ("state", "attempts", "started_at", "queued_at", "ready_at", "finished_at", "params", "depends_on"):
        assert getattr(kept, field) == getattr(stored, field), field
    assert (stored.state, stored.attempts, stored.queued_at) == (StepRun.State.RUNNING, 1, None)
    # The other steps that became ready go to the broker; the kept one is in no message.
    queued = set(run.steps.filter(queued_at__isnull=False).values_list("key", flat=True))
    assert {"s3.bucket", "ecr.repository", "account.alias"} <= queued
    assert "iam.group" not in queued


def test_the_preflight_makes_the_clients_the_steps_will_use(db, aws):
    """The run's clients are made while the preflight's own calls wait on AWS, so no step makes one."""
    data = spec_data(access="keys", team=[])
    spec = spec_parse(data)
    customer = customer_for(data)
    # The customer's keys are a user allowed what the role is: the preflight checks the plan with them.
    aws.user_make(
        account_id=CUSTOMER_ACCOUNT, user_name="ops", policy_document=access_policy_document(), keys=EXAMPLE_KEYS
    )
    customer.access = "keys"
    vault.customer_set_keys(customer=customer, access_key_id=EXAMPLE_KEYS[0], secret_access_key=EXAMPLE_KEYS[1])
    account = account_connect(customer=customer, region=spec.region, session_name="unused", source_identity="alice")
    params = {"account_id": spec.account_id}
    run = Run(customer=customer, spec=data)  # the preflight checks the plan of the run's spec again
    preflight.execute(StepContext(run=run, step=StepRun(key="preflight"), account=account, params=params), params)

    made = set(account._clients)
    assert made == {(service, spec.region) for service in REGISTRY.services()}
    assert {"iam", "s3", "ecr"} <= {service for service, _ in made}


def _call_spans(run: Run, step_key: str) -> list[tuple[str, float, float]]:
    """A step's AWS calls from its audit rows: (operation, start, end) in seconds, as the audit hook timed them."""
    rows = AuditEvent.objects.filter(run=run, step_key=step_key, action__startswith="aws.")
    spans = []
    for action, at, details in rows.values_list("action", "created_at", "details"):
        end = at.timestamp()
        spans.append((action.split(".", 1)[1], end - details["duration_ms"] / 1000, end))
    return spans


def test_the_preflight_repeats_the_plans_checks_beside_its_stale_plan_read(worker, alice):
    """The checks' calls go out while the stale-plan read's do (issue 32 point 4): the preflight waits for the longer
    of the two, not for one after the other."""
    data = spec_data()
    team_customer_for(data, alice)
    read = plan_read(alice, data)
    items = plan_decide(read.items, delete=set(), typed={})
    run = wait_for_run(
        run_create(spec=spec_parse(data), customer=customer_for(data), user=alice, read=read, items=items)
    )
    assert run.status == Run.Status.SUCCEEDED

    spans = _call_spans(run, "preflight")
    checks = [(start, end) for operation, start, end in spans if operation == "iam.GetAccountSummary"]
    stale = [(start, end) for operation, start, end in spans if operation in STALE_READ_ONLY]
    assert checks and stale, spans
    assert min(start for start, _ in checks) < max(end for _, end in stale)


def test_a_worker_hands_the_interpreter_over_sooner_than_cpythons_default(worker):
    """The worker's start (Celery's worker_init) sets the switch interval; the test worker started in this process."""
    assert sys.getswitchinterval() == pytest.approx(settings.WORKER_SWITCH_INTERVAL_MS / 1000)
    assert settings.WORKER_SWITCH_INTERVAL_MS / 1000 < 0.005


def test_a_ready_worker_has_loaded_the_services_models_and_frozen_what_it_loaded():
    """In a fresh process, as a worker's: botocore's models of the steps' services are loaded before any run, and the
    garbage collector's full passes leave what was loaded alone."""
    script = (
        "import django, gc, json; django.setup()\n"
        "from portal.celery import _worker_settle\n"
        "from provisioning.aws.accounts import process_session\n"
        "_worker_settle()\n"
        "loader = process_session()._session.get_component('data_loader')\n"
        "models = sorted({key[1] for key in loader._cache if key[:1] == ('load_service_model',)})\n"
        "print(json.dumps({'models': models, 'frozen': gc.get_freeze_count()}))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["models"] == sorted(REGISTRY.services())
    assert found["frozen"] > 10_000


def test_the_steps_a_kept_steps_dispatch_makes_ready_are_sent_beside_it_and_every_one_runs(worker, alice):
    """The thread that goes on with the kept step (iam.group after the preflight) does not publish its siblings: the
    publisher's thread does, and none is lost (each step ran once, the run succeeded)."""
    sent, stop = _step_messages()
    try:
        run = wait_for_run(start_run(alice))
    finally:
        stop()
    assert run.status == Run.Status.SUCCEEDED
    keys = dict(run.steps.values_list("pk", "key"))
    by_publisher = {keys[step_id] for name, step_id in sent if name == "onramp-publisher"}
    assert {"s3.bucket", "ecr.repository", "account.alias"} <= by_publisher  # made ready with iam.group, kept
    assert sent[0] == (threading.current_thread().name, run.steps.get(key="preflight").pk)  # the confirm's own
    assert "iam.group" not in {keys[step_id] for _, step_id in sent}
    assert set(run.steps.values_list("attempts", flat=True)) == {1}


def test_the_publisher_sends_everything_it_was_given_before_a_worker_exits(db):
    """drain() returns once all that was put is sent; a worker's shutdown (either pool) drains it. The ids are of no
    step: a worker that takes these messages claims nothing."""
    sent, stop = _step_messages()
    try:
        publisher.put([-1, -2])
        publisher.put([-3])
        assert publisher.drain(timeout=10)
    finally:
        stop()
    assert sent == [("onramp-publisher", -1), ("onramp-publisher", -2), ("onramp-publisher", -3)]
    for signal in (worker_shutdown, worker_process_shutdown):
        assert _publisher_drain in signal._live_receivers(None)


def test_a_roles_clients_are_made_while_aws_answers_the_assume_role_and_sign_with_its_session(db, aws):
    """account_connect makes the run's clients beside the AssumeRole (the preflight's first call then finds them);
    each signs with the role's session, never with the keys it was made with."""
    data = spec_data(team=[])
    spec = spec_parse(data)
    customer = customer_for(data)
    made_by: list[str] = []

    def count(**kwargs):
        made_by.append(threading.current_thread().name)

    portal_account(spec.region).client("sts")  # Onramp's own client, as a worker has it after its first run
    events = process_session().events
    events.register("creating-client-class", count)
    try:
        account = account_connect(
            customer=customer,
            region=spec.region,
            role_arn=spec.role_arn,
            external_id=EXTERNAL_ID,
            session_name="onramp-test",
            source_identity="alice",
            services=REGISTRY.services(),
        )
    finally:
        events.unregister("creating-client-class", count)
    assert set(account._clients) == {(service, spec.region) for service in REGISTRY.services()}
    assert made_by and all(name.startswith("onramp-aws") for name in made_by)  # beside, not the connecting thread
    for client in account._clients.values():
        assert client._request_signer._credentials is account.session
    identity = account.client("sts").get_caller_identity()
    assert identity["Account"] == CUSTOMER_ACCOUNT and ":assumed-role/" in identity["Arn"]


def test_postgresql_gets_each_statements_values_apart_and_prepares_what_a_connection_runs_often(db):
    """DATABASE_SERVER_SIDE_BINDING (on by default): no quoting in Python, and a statement a connection has run five
    times is prepared, so PostgreSQL does not plan it again (each step's record runs the same few)."""
    import psycopg

    for _ in range(6):
        assert not StepRun.objects.filter(pk=-1, state=StepRun.State.PENDING).exists()
    with connection.cursor() as cursor:
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "provisioning_steprun"' in statement for statement in prepared), prepared


def test_confirming_a_run_reads_none_of_the_steps_it_just_wrote(db, alice):
    """The first dispatch is made from the steps as run_create writes them: the steps that wait on nothing are queued
    in the insert itself, with no read of the run's steps and no second write."""
    data = spec_data()
    with CaptureQueriesContext(connection) as queries:
        run = run_create(spec=spec_parse(data), customer=team_customer_for(data, alice), user=alice)
    on_steps = [q["sql"].split()[0] for q in queries if '"provisioning_steprun"' in q["sql"]]
    assert on_steps == ["INSERT"]
    assert list(run.steps.filter(queued_at__isnull=False).values_list("key", flat=True)) == ["preflight"]


def test_a_later_attempt_of_the_access_key_step_adopts_the_key_an_earlier_one_sealed(db, aws, alice):
    """A first attempt skips looking for a key it sealed (it has sealed none); a later attempt still finds it and makes
    no second key."""
    data = spec_data(team=[])
    spec = spec_parse(data)
    run = run_create(spec=spec, customer=team_customer_for(data, alice), user=alice)
    iam = aws.admin(CUSTOMER_ACCOUNT).client("iam", endpoint_url=aws.url, region_name="us-east-1")
    iam.create_user(UserName=spec.app_name, Path="/onramp/")
    key_id = iam.create_access_key(UserName=spec.app_name)["AccessKey"]["AccessKeyId"]
    sealed = seal_key(run, secret=EXAMPLE_KEYS[1], user_name=spec.app_name, access_key_id=key_id)
    run.steps.filter(key="iam.app_user").update(state=StepRun.State.SUCCEEDED, outputs={"created": True})
    step = run.steps.get(key="iam.access_key")
    step.attempts = 2
    account = account_connect(
        customer=run.customer, region=spec.region, session_name="onramp-test", source_identity="alice"
    )

    result = access_key.execute(StepContext(run=run, step=step, account=account, params=step.params), step.params)

    assert result.adopted and result.outputs == {"access_key_id": key_id, "credential": str(sealed.pk)}
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=spec.app_name)["AccessKeyMetadata"]] == [key_id]
