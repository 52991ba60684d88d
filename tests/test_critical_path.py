"""What keeps a run's critical path short (README, Performance): each test fails when its mechanism is gone."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.aws import account_connect
from provisioning.models import StepRun
from provisioning.registry import REGISTRY
from provisioning.runs import run_create, run_dispatch
from provisioning.spec import spec_parse
from provisioning.steps import sts
from provisioning.steps.base import StepContext
from tests.conftest import CUSTOMER_ACCOUNT, customer_for, customer_keys_give, spec_data


def test_confirming_a_run_queues_its_first_step_in_the_transaction_that_records_the_run(db, alice):
    """Under the `db` fixture nothing commits, so nothing registered for after the commit runs: the first step is
    queued only if the dispatch is part of run_create's own transaction (one commit, not two, before it starts)."""
    data = spec_data()
    run = run_create(spec=spec_parse(data), customer=customer_for(data), user=alice)
    queued = dict(run.steps.filter(queued_at__isnull=False).values_list("key", "state"))
    assert queued == {"preflight": "pending"}
    assert run.steps.get(key="preflight").ready_at is not None


def test_the_step_a_dispatch_keeps_comes_back_claimed_exactly_as_the_database_has_it(db, alice):
    """The process that finished a step runs the next step of its chain without reading it again: what the dispatch
    returns must be what its claim wrote."""
    data = spec_data()
    run = run_create(spec=spec_parse(data), customer=customer_for(data), user=alice)
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
    customer_keys_give(aws, customer, account_id=CUSTOMER_ACCOUNT)
    account = account_connect(customer=customer, region=spec.region, session_name="unused", source_identity="alice")
    params = {"account_id": spec.account_id}
    sts.preflight(StepContext(run=None, step=StepRun(key="preflight"), account=account, params=params), params)

    made = set(account._clients)
    assert made == {(service, spec.region) for service in REGISTRY.services()}
    assert {"iam", "s3", "ecr"} <= {service for service, _ in made}


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
        "from provisioning.aws import process_session\n"
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
