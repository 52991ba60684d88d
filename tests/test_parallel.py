"""make test runs the suite in pytest-xdist worker processes (docs/testing.md, "Tests"): each worker has a Celery
queue and a PostgreSQL database of its own, and the tests that start whole programs run in one group."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.conftest import SANDBOX_LOG, XDIST_WORKER, per_worker

ROOT = Path(__file__).resolve().parent.parent


def _queue_of(worker: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    env |= {"DJANGO_SETTINGS_MODULE": "portal.settings_test", "CELERY_QUEUE": "q-parallel"}
    if worker:
        env["PYTEST_XDIST_WORKER"] = worker
    code = "import django; django.setup(); from django.conf import settings; print(settings.CELERY_TASK_DEFAULT_QUEUE)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_each_xdist_worker_takes_a_celery_queue_of_its_own():
    assert _queue_of(None) == "q-parallel"
    assert _queue_of("gw0") == "q-parallel-gw0"
    assert _queue_of("gw1") == "q-parallel-gw1"


def test_this_session_uses_its_workers_queue_database_sandbox_log_and_bench_names(db):
    if XDIST_WORKER:
        assert settings.CELERY_TASK_DEFAULT_QUEUE.endswith(f"-{XDIST_WORKER}")
        assert connection.settings_dict["NAME"].endswith(f"_{XDIST_WORKER}")
        assert SANDBOX_LOG.name == f"moto-{XDIST_WORKER}.log"
        assert per_worker("bench") == f"bench_{XDIST_WORKER}"
    else:
        assert SANDBOX_LOG.name == "moto.log" and per_worker("bench") == "bench"


def test_the_tests_that_start_programs_and_only_they_run_in_one_xdist_group(request):
    """Seen on the items of the session it runs in (make test: all of them, the benches and make run's among them)."""
    for item in request.session.items:
        starts_programs = item.get_closest_marker("slow") or item.get_closest_marker("soak")
        groups = [mark.args[0] for mark in item.iter_markers("xdist_group")]
        assert groups == (["processes"] if starts_programs else []), item.nodeid
