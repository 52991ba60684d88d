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
from portal.settings import DATABASES

DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_onramp")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
AXES_FAILURE_LIMIT = 5
AXES_IP_FAILURE_LIMIT = 8
# Each test session writes its audit checkpoints to a directory of its own.
AUDIT_CHECKPOINT_DIR = Path(tempfile.mkdtemp(prefix="onramp-audit-checkpoints-"))
