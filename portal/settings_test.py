"""Settings for pytest: the real PostgreSQL and Redis of the development machines.

Each value can still be overridden from the environment (a second checkout can
use its own Redis database number, for instance).
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_ENV", "test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("CONN_MAX_AGE", "0")

from portal.settings import *  # noqa: F403
from portal.settings import CELERY_TASK_DEFAULT_QUEUE, DATABASES

DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_onramp")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
AXES_FAILURE_LIMIT = 5
AXES_IP_FAILURE_LIMIT = 8
# Each test session writes its audit checkpoints to a directory of its own.
AUDIT_CHECKPOINT_DIR = Path(tempfile.mkdtemp(prefix="onramp-audit-checkpoints-"))
# Under pytest-xdist (make test's -n) each worker process, gw0, gw1…, takes a Celery queue of its own on the same
# Redis db, so that one worker's tasks never reach another's; pytest-django gives its PostgreSQL test database the
# suffix _gw0, _gw1… The processes a test starts inherit PYTEST_XDIST_WORKER, so they share their test's queue.
if os.environ.get("PYTEST_XDIST_WORKER"):
    CELERY_TASK_DEFAULT_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-{os.environ['PYTEST_XDIST_WORKER']}"
