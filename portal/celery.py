"""The Celery app, configured from Django settings under the CELERY_ namespace."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

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
