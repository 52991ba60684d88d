"""Shared fixtures: the sandbox AWS, a real Celery worker on Redis, and the people.

alice is a tech lead who starts runs, bob is another tech lead, charlie is in no group and
must see nothing, dana is an Admin.
"""

import importlib
import os
import tempfile
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings

from portal.celery import app as celery_app
from provisioning import vault
from provisioning.aws import run_accounts
from provisioning.models import Credential, Customer, Run
from provisioning.runs import run_create
from provisioning.spec import spec_parse
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.sandbox import Sandbox

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's sync API
# Subprocesses (manage.py, the build script) read and write no .env of this checkout: a developer's
# `make run` keys must not change what a test of production settings sees, nor a test leave keys behind.
os.environ["ENV_FILE"] = str(Path(tempfile.mkdtemp(prefix="onramp-test-env-")) / ".env")
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def sandbox():
    """moto's server, once per test session, reset before each test that uses it."""
    ARTIFACTS.mkdir(exist_ok=True)
    server = Sandbox(log=ARTIFACTS / "moto.log").start()
    settings_override = override_settings(AWS_ENDPOINT_URL=server.url)
    settings_override.enable()
    yield server
    settings_override.disable()
    server.stop()


@pytest.fixture
def aws(sandbox):
    sandbox.reset()
    yield sandbox


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, sandbox):
    """A real Celery worker (threads, like a small prefork) consuming from Redis."""
    celery_app.control.purge()
    with (
        django_db_blocker.unblock(),
        start_worker(
            celery_app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
        ) as worker,
    ):
        yield worker


@pytest.fixture
def worker(celery_worker, transactional_db, aws):
    """Per test: a clean sandbox and database, and the session's worker."""
    run_accounts._items.clear()
    yield celery_worker


@pytest.fixture(scope="session")
def oidc_provider():
    """The tests' OpenID Connect provider on loopback (tests/oidc_provider.py), once per session."""
    provider = Provider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oidc(oidc_provider, settings, db):
    """Onramp signing in through the test provider, with a groups claim (OIDC is off in other tests)."""
    oidc_provider.reset()
    settings.OIDC_ISSUER = oidc_provider.url
    settings.OIDC_PROVIDER_NAME = "Test provider"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ALLOWED_DOMAINS = ["agency.example"]
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_GROUP_MAP = {"onramp-leads": "Tech leads", "onramp-admins": "Admins"}
    _groups_ensure()
    yield oidc_provider


def _groups_ensure() -> None:
    """A transactional test (the `worker` fixture) ends with a flush that empties the groups the data
    migration made; make them again, with their permissions, by running that migration's function."""
    if Group.objects.filter(name__in=["Admins", "Tech leads"]).count() == 2:
        return
    migration = importlib.import_module("provisioning.migrations.0002_groups_and_audit_guard")
    migration.create_groups(MigrationLoader(connection).project_state().apps, None)


def _user(username: str, group: str | None, **extra) -> User:
    user = User.objects.create_user(username=username, email=f"{username}@agency.example", password=PASSWORD, **extra)
    if group:
        _groups_ensure()
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def alice(db):
    return _user("alice", "Tech leads", is_staff=True)


@pytest.fixture
def bob(db):
    return _user("bob", "Tech leads", is_staff=True)


@pytest.fixture
def charlie(db):
    return _user("charlie", None)


@pytest.fixture
def dana(db):
    return _user("dana", "Admins", is_staff=True)


CUSTOMER_ACCOUNT = "111122223333"


def spec_data(**overrides) -> dict:
    data = {
        "customer": "Acme Corp",
        "account_id": CUSTOMER_ACCOUNT,
        "region": "us-west-2",
        "access": "role",
        "role_arn": f"arn:aws:iam::{overrides.get('account_id', CUSTOMER_ACCOUNT)}:role/OnrampAccess",
        "external_id": "acme-external-id-0123456789",
        "account_alias": "acme-corp",
        "app_name": "acme-app",
        "bucket": "acme-app-media",
        "app_origin": "https://acme-app.herokuapp.com",
        "ecr_repository": "acme-app",
        "media_scope": "bucket",
        "team": [
            {"email": "lead@agency.example", "role": "tech_lead", "console": True},
            {"email": "dev@agency.example", "role": "member", "policy": "ReadOnlyAccess", "console": False},
        ],
    }
    data.update(overrides)
    return data


def customer_for(data: dict) -> Customer:
    customer, _ = Customer.objects.get_or_create(
        aws_account_id=data["account_id"],
        defaults={
            "name": data["customer"],
            "slug": f"c-{data['account_id']}",
            "default_region": data["region"],
            "role_arn": data.get("role_arn", ""),
            "external_id": data.get("external_id") or "x" * 32,
        },
    )
    return customer


def customer_make(**fields) -> Customer:
    """An admin-made customer record (Acme Corp on the sandbox's customer account), with overrides."""
    defaults = {
        "name": "Acme Corp",
        "slug": "acme-corp",
        "aws_account_id": CUSTOMER_ACCOUNT,
        "default_region": "us-west-2",
        "account_alias": "acme-corp",
        "role_arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess",
    }
    return Customer.objects.create(**{**defaults, **fields})


def finished_run(user, **overrides) -> Run:
    """A run recorded as succeeded, without executing anything."""
    data = spec_data(**overrides)
    return Run.objects.create(customer=customer_for(data), started_by=user, spec=data, status=Run.Status.SUCCEEDED)


def seal_key(run: Run, *, secret: str, **fields) -> Credential:
    """An app access key sealed for the run's starter, as the access-key step leaves it."""
    fields = {"user_name": "acme-app", "access_key_id": "AKIAIOSFODNN7EXAMPLE", **fields}
    return vault.credential_seal(
        secret=secret,
        run=run,
        customer=run.customer,
        issued_to=run.started_by,
        kind=Credential.Kind.ACCESS_KEY,
        **fields,
    )


def start_run(user, **overrides) -> Run:
    data = spec_data(**overrides)
    return run_create(spec=spec_parse(data), customer=customer_for(data), user=user)


def wait_for_run(run: Run, timeout: float = 90) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            return run
        time.sleep(0.1)
    states = {s.key: s.state for s in run.steps.all()}
    raise AssertionError(f"run still {run.status} after {timeout} s: {states}")


def form_data(**overrides) -> dict:
    """A valid POST of the onboarding form (the browser's field names), with overrides."""
    data = {
        "customer": "",
        "new_customer_name": "Acme Corp",
        "account_id": CUSTOMER_ACCOUNT,
        "region": "us-west-2",
        "access": "role",
        "role_arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess",
        "external_id": "acme-external-id-0123456789",
        "access_key_id": "",
        "secret_access_key": "",
        "account_alias": "acme-corp",
        "group_name": "Apps",
        "app_name": "acme-app",
        "bucket": "acme-app-media",
        "app_origin": "https://acme-app.herokuapp.com",
        "ecr_repository": "acme-app",
        "media_scope": "bucket",
        "team-TOTAL_FORMS": "2",
        "team-INITIAL_FORMS": "0",
        "team-MIN_NUM_FORMS": "0",
        "team-MAX_NUM_FORMS": "50",
        "team-0-email": "lead@agency.example",
        "team-0-role": "tech_lead",
        "team-0-policy": "",
        "team-0-console": "on",
        "team-1-email": "dev@agency.example",
        "team-1-role": "member",
        "team-1-policy": "ReadOnlyAccess",
    }
    data.update(overrides)
    return data
