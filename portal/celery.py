"""The Celery app, configured from Django settings under the CELERY_ namespace."""

import gc
import os
import sys

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs) -> None:
    """Around each task, what Django does around each request: drop a connection that errored or
    outlived CONN_MAX_AGE, keep the others (CELERY_DB_REUSE_MAX stops Celery closing them all)."""
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
def _switch_interval(**kwargs) -> None:
    """A worker's threads mostly wait on AWS: the one whose answer came should not wait CPython's default 5 ms for
    a busy thread to let go of the interpreter (a prefork pool's processes inherit it)."""
    from django.conf import settings

    sys.setswitchinterval(settings.WORKER_SWITCH_INTERVAL_MS / 1000)


@worker_ready.connect  # the threads pool: its tasks run in this process
@worker_process_init.connect  # the prefork pool: in each of its processes
def _worker_settle(**kwargs) -> None:
    """Load what every run needs once, before the first (botocore's models of the services the steps call),
    then leave everything loaded so far out of the garbage collector's full passes: they only ever found it
    alive, and paused every thread for tens of milliseconds to do so."""
    from provisioning.aws.accounts import aws_models_load

    aws_models_load()
    gc.collect()
    gc.freeze()


@worker_shutdown.connect  # the threads pool, once its tasks are done
@worker_process_shutdown.connect  # each process of the prefork pool
def _publisher_drain(**kwargs) -> None:
    """Send the step tasks still waiting on this process's publisher (engine.dispatch._Publisher) before it exits."""
    from provisioning.engine.dispatch import publisher

    publisher.drain()
