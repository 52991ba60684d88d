"""Shared fixtures: the sandbox AWS, a real Celery worker on Redis, and the people.

alice is a tech lead who starts runs, bob is another tech lead, charlie is in no group and
must see nothing, dana is an Admin.
"""

import contextlib
import functools
import hashlib
import importlib
import json
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings

from portal.celery import app as celery_app
from provisioning import vault
from provisioning.aws.accounts import process_session, run_accounts
from provisioning.aws.calls import current_call_log
from provisioning.engine.runs import run_create
from provisioning.kinds import REGISTRY
from provisioning.models import Credential, Customer, Run
from provisioning.registry import Registry
from provisioning.role import template as role_template
from provisioning.spec import spec_parse
from sandbox.controller import Sandbox
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.waiting import wait_until

# A test session started without a terminal (`nohup make test &`, a script's background job) starts with SIGINT
# ignored, and every process a test starts would inherit that: bin/run could not trap the Ctrl-C its tests send it
# (tests/test_make_run.py) and would never stop. Python's own handler instead, which a started program does not keep.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's sync API
# Subprocesses (manage.py, the build script) read and write no .env of this checkout: a developer's
# `make run` keys must not change what a test of production settings sees, nor a test leave keys behind.
os.environ["ENV_FILE"] = str(Path(tempfile.mkdtemp(prefix="onramp-test-env-")) / ".env")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Under pytest-xdist (make test: -n, docs/testing.md), the worker process running this session: gw0, gw1…, else "".
# Each has its own sandbox, Celery queue (portal/settings_test.py) and PostgreSQL database (pytest-django's suffix).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# The session's sandbox writes its log here (the soak searches it for secrets): one file per xdist worker.
SANDBOX_LOG = ARTIFACTS / (f"moto-{XDIST_WORKER}.log" if XDIST_WORKER else "moto.log")
CUSTOMER_ACCOUNT = "111122223333"
PASSWORD = "correct-horse-battery-staple"


# The strict sandbox's rules (sandbox/strict.py Strictness) that end-to-end tests run with by default:
# all of them. The consistency window is 2 s: the steps wait out AWS's propagation delays (aws.settle).
STRICT = {
    "authorization": True,
    "iam_decision": True,
    "cfn_inline_policy": True,
    "cfn_role_update": True,
    "s3_action_names": True,
    "root_principal": True,
    "path_update": True,
    "trust": True,
    "dependent_actions": True,
    "consistency_window": 2.0,
    "session_max_age": 30.0,
    "password_policy": True,
    "names": True,
    "alias_global": True,
    "reset_required_on_create": True,
    "delete_conflicts": True,
    "inactive_keys": True,
    "foreign_bucket": True,
    "policy_quotas": True,
    "opt_in_regions": True,
    "template_url": True,
    "login_profile_window": 1.0,
    "new_key_window": 1.0,
    "tag_window": 1.0,
    "delete_conflict_window": 1.0,
    "lifecycle_window": 1.0,
    "list_buckets_page": 2,  # Onramp's listing pages (and lists by Prefix): a small page shows it does
    "mfa_delete": True,
    "bucket_acl_ownership": True,
    "source_identity_chain": True,
}
# To see what another setting breaks, without editing this file: ONRAMP_SANDBOX_STRICT='{"consistency_window": 2}'.
STRICT.update(json.loads(os.environ.get("ONRAMP_SANDBOX_STRICT") or "{}"))
PORTAL_USER = "onramp-portal"
# Onramp's own identity in the portal's account, given to the worker through the standard credential chain
# (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY): the same keys after every reset.
PORTAL_KEYS = ("AKIAONRAMPPORTAL0001", "onramp-portal-sandbox-only-secret-000000")
EXTERNAL_ID = "acme-external-id-0123456789"
NOTHING_ALLOWED = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
# The access key pair AWS's documentation uses as its example: shaped like a key, never a real one.
EXAMPLE_KEYS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
# The second access key id AWS's documentation uses as an example: another key of the same user, where one is needed.
EXAMPLE_KEY_ID_2 = "AKIAI44QH8DHBEXAMPLE"


# The fixtures that bring the real Celery worker: a test using one (directly or through another fixture) is
# end-to-end, marked `e2e` here rather than by hand, so that `make test-fast` (-m "not e2e …") never runs one.
E2E_FIXTURES = frozenset({"worker", "celery_worker"})


# Under pytest-xdist (`--dist loadgroup`), the tests that start whole programs as processes (make run, the benches,
# the soak's worker processes: marked slow or soak) run one after another in one worker: side by side on 2 cores
# each would take several times as long to start, against its own timeouts.
PROCESSES_GROUP = pytest.mark.xdist_group("processes")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the xdist_group markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("slow") or item.get_closest_marker("soak"):
            item.add_marker(PROCESSES_GROUP)


def per_worker(name: str) -> str:
    """A name of something the session makes outside its own database (a bench's database), one per xdist worker."""
    return f"{name}_{XDIST_WORKER}" if XDIST_WORKER else name


def customer_keys_give(aws, customer: Customer, *, account_id: str) -> tuple[str, str]:
    """An IAM user "ops" in `account_id` with EXAMPLE_KEYS and no permission (GetCallerIdentity needs none), its
    keys stored on the customer as the customer's way in. The keys, for a test to look for."""
    aws.user_make(account_id=account_id, user_name="ops", policy_document=NOTHING_ALLOWED, keys=EXAMPLE_KEYS)
    customer.access = "keys"
    vault.customer_set_keys(customer=customer, access_key_id=EXAMPLE_KEYS[0], secret_access_key=EXAMPLE_KEYS[1])
    return EXAMPLE_KEYS


# --- Every operation a step sends is one its kind declares --------------------------------------------------
# The customer's role is granted exactly the declared operations (provisioning.customers): a step that calls one
# its kind does not declare would fail in a customer's account. Every client Onramp makes copies the process
# session's event handlers, so this hook sees each call; the running step is the call log's (aws_work's step_key).


class UndeclaredOperation(Exception):
    """A step called an operation its kind does not declare (raised in the step, recorded for the test)."""


DECLARED: dict[str, Registry] = {"registry": REGISTRY}  # what steps are held to (a test may put a narrower one)
UNDECLARED: list[str] = []  # each refusal, asserted empty after every test that reaches the sandbox


def operation_refusal(registry: Registry, step_key: str, service: str, operation: str) -> str:
    """Why a step may not call `service`'s `operation`, or "" when its kind declares it. AssumeRole is the portal's
    own call (its trust policy's, not the role's); the preflight reads the account again and repeats the plan's
    checks, so it may call whatever the registry declares, as may audited work outside a step (a plan's read and
    checks, a drift check)."""
    if (service, operation) == ("sts", "AssumeRole"):
        return ""
    kind = registry.kind_of(step_key) if step_key else None
    allowed = registry.operations() if kind is None or kind.always else kind.operations
    if any(op.service == service and op.name == operation for op in allowed):
        return ""
    who = step_key or "audited work outside a step"
    return f"{who}: {service} {operation} is not among the operations {'its kind' if kind else 'the registry'} declares"


def _undeclared_refuse(model, **kwargs) -> None:
    log = current_call_log.get()
    if log is None:  # not Onramp's audited work in an account (the tests' own set-up, the sandbox's)
        return
    refusal = operation_refusal(DECLARED["registry"], log.step_key, model.service_model.service_name, model.name)
    if refusal:
        UNDECLARED.append(refusal)
        raise UndeclaredOperation(refusal)


def declared_operations_hook() -> None:
    process_session().events.register(
        "before-parameter-build.*.*", _undeclared_refuse, unique_id="tests-declared-operations"
    )


@pytest.fixture(scope="session")
def sandbox():
    """The strict sandbox's server, once per test session, reset before each test that uses it (`aws`).
    Onramp's worker takes its own identity from the environment, as in production."""
    ARTIFACTS.mkdir(exist_ok=True)
    server = Sandbox(log=SANDBOX_LOG, strict=True).start()
    settings_override = override_settings(AWS_ENDPOINT_URL=server.url)
    settings_override.enable()
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = PORTAL_KEYS
    declared_operations_hook()
    yield server
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    settings_override.disable()
    server.stop()


def customer_role_deploy(sandbox: Sandbox, account_id: str = CUSTOMER_ACCOUNT, external_id: str = EXTERNAL_ID) -> str:
    """The customer's side of the connection: their administrator deploys Onramp's CloudFormation template
    (the one the admin page offers) in their account. The role's ARN."""
    template = role_template.cloudformation_template(
        customer_name="Acme Corp", portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID, external_id=external_id
    )
    return sandbox.stack_deploy(account_id=account_id, template=template)["RoleArn"]


@pytest.fixture
def aws(sandbox, request):
    """A clean sandbox, strict by default (STRICT, with a test's @pytest.mark.strict(switch=value) on top), or
    moto as it is for a unit-level test marked @pytest.mark.lenient. In it: Onramp's own identity in the portal's
    account with exactly docs/deploying.md's policy, and the customer's role deployed from Onramp's template."""
    switches = dict(STRICT)
    for marker in reversed(list(request.node.iter_markers("strict"))):  # a module's, then the test's own
        switches.update(marker.kwargs)
    lenient = request.node.get_closest_marker("lenient") is not None
    switches = {} if lenient else switches
    # Built once per set of rules (they decide how the role's template is stored), then restored from the
    # server's snapshot before each test: the same state, without a reset, a user and a stack deploy each time.
    snapshot = hashlib.sha256(json.dumps(switches, sort_keys=True).encode()).hexdigest()[:16]
    if not sandbox.snapshot_restore(snapshot, **switches):
        sandbox.reset(**switches)
        sandbox.user_make(
            account_id=settings.PORTAL_AWS_ACCOUNT_ID,
            user_name=PORTAL_USER,
            policy_document=role_template.portal_policy_document(),
            keys=PORTAL_KEYS,
        )
        customer_role_deploy(sandbox)
        sandbox.snapshot_take(snapshot)
    yield sandbox
    refused, UNDECLARED[:] = list(UNDECLARED), []
    assert refused == [], "steps called operations their kinds do not declare"


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
    _worker_quiet()  # before transactional_db's flush (this teardown runs first)


def _worker_quiet(*, timeout: float = 15.0, still: float = 0.3) -> None:
    """Wait (bounded) until the worker has had no task running or taken for `still` seconds: a task the test
    left behind (the notification after a run's end) holds locks that the flush's TRUNCATE of every table
    would otherwise deadlock with, failing the flush and leaving this test's rows to the next."""
    from celery.worker import state

    quiet_since = None

    def quiet_long_enough() -> bool:
        nonlocal quiet_since
        if state.active_requests or state.reserved_requests:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        return quiet_since is not None and time.monotonic() - quiet_since >= still

    with contextlib.suppress(AssertionError):  # bounded, and no failure: the flush is tried anyway
        wait_until(quiet_long_enough, timeout=timeout, interval=0.05, message="the worker did not go quiet")


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
    cache.clear()  # the discovery document another test's provider published (e.g. with an end-session endpoint)
    settings.OIDC_ISSUER = oidc_provider.url
    settings.OIDC_PROVIDER_NAME = "Test provider"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ALLOWED_DOMAINS = ["agency.example"]
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_GROUP_MAP = {"onramp-leads": "Tech leads", "onramp-admins": "Admins"}
    _groups_ensure()
    yield oidc_provider


@functools.cache
def _migrated_apps():
    """The models as the migrations leave them (what their functions take), built once per process: rendering them
    takes about 60 ms of CPU, and the groups are made again after every end-to-end test's flush."""
    return MigrationLoader(connection).project_state().apps


def _groups_ensure() -> None:
    """A transactional test (the `worker` fixture) ends with a flush that empties the groups the data
    migrations made; make them again, with their permissions, by running those migrations' functions."""
    if Group.objects.filter(name__in=["Admins", "Tech leads"]).count() == 2:
        return
    apps = _migrated_apps()
    importlib.import_module("provisioning.migrations.0002_groups_and_audit_guard").create_groups(apps, None)
    importlib.import_module("provisioning.migrations.0015_provider_identity").admins_may_unlink(apps, None)


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


def spec_data(**overrides) -> dict:
    data = {
        "customer": "Acme Corp",
        "account_id": CUSTOMER_ACCOUNT,
        "region": "us-west-2",
        "access": "role",
        "role_arn": f"arn:aws:iam::{overrides.get('account_id', CUSTOMER_ACCOUNT)}:role/OnrampAccess",
        "external_id": EXTERNAL_ID,
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
        "external_id": EXTERNAL_ID,  # the one the customer's role was deployed with (`aws`)
    }
    return Customer.objects.create(**{**defaults, **fields})


def team_customer_for(data: dict, user) -> Customer:
    """customer_for, with `user` on the customer's team (as onboarding a new customer puts its onboarder)."""
    customer = customer_for(data)
    if not user.is_superuser and user.groups.filter(name="Tech leads").exists():
        customer.team.add(user)
    return customer


def finished_run(user, **overrides) -> Run:
    """A run recorded as succeeded, without executing anything; its starter on the customer's team."""
    data = spec_data(**overrides)
    customer = team_customer_for(data, user)
    return Run.objects.create(customer=customer, started_by=user, spec=data, status=Run.Status.SUCCEEDED)


def seal_key(run: Run, *, secret: str, **fields) -> Credential:
    """An app access key sealed for the run's starter, as the access-key step leaves it."""
    fields = {"user_name": "acme-app", "access_key_id": EXAMPLE_KEYS[0], **fields}
    return vault.credential_seal(
        secret=secret,
        run=run,
        customer=run.customer,
        issued_to=run.started_by,
        kind=Credential.Kind.ACCESS_KEY,
        **fields,
    )


def start_run(user, **overrides) -> Run:
    """A run started by `user`, who is on the customer's team."""
    data = spec_data(**overrides)
    return run_create(spec=spec_parse(data), customer=team_customer_for(data, user), user=user)


@pytest.fixture
def no_approvals():
    """For a test about something else than approvals: new customers' plans need no second person
    (APPROVAL_DEFAULT "nothing", as an installation may choose). Offboarding and adoptions still ask
    (tests/test_approvals.py tests the rules themselves, with the production default)."""
    with override_settings(APPROVAL_DEFAULT="nothing"):
        yield


def approved(started, *, by=None) -> Run:
    """The run a plan started: at once, or, when it awaits approval (an offboarding always does), once a
    second person approved it (`by`, else an Admin made for it)."""
    from provisioning.approvals import approval_approve
    from provisioning.models import PlanApproval

    if not isinstance(started, PlanApproval):
        return started
    if by is None:
        by = User.objects.filter(username="approver").first() or _user("approver", "Admins")
    return approval_approve(approval_id=started.pk, user=by)


def wait_for_run(run: Run, timeout: float = 90) -> Run:
    def ended() -> bool:
        run.refresh_from_db()
        return not run.is_active

    wait_until(
        ended,
        timeout=timeout,
        message=lambda: f"run still {run.status} after {timeout} s: { {s.key: s.state for s in run.steps.all()} }",
    )
    return run


def form_data(**overrides) -> dict:
    """A valid POST of the onboarding form (the browser's field names), with overrides."""
    data = {
        "customer": "",
        "new_customer_name": "Acme Corp",
        "account_id": CUSTOMER_ACCOUNT,
        "region": "us-west-2",
        "access": "role",
        "role_arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/OnrampAccess",
        "external_id": EXTERNAL_ID,
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


def preview_read(client, *, timeout: float = 60):
    """The onboarding preview once its account read is done. Asking for it starts the read (the page polls);
    a test without the worker reads here as the read task would (the sandbox: `aws`), a test with it waits for
    the worker's. Then the page as it shows the plan."""
    from provisioning.models import AccountRead
    from provisioning.reads import account_read_execute

    first = client.get("/onboard/preview/")
    draft = client.session.get("onboarding_draft") or {}
    if not draft.get("read_id"):
        return first  # refused, or sent back to the form
    account_read_execute(read_id=draft["read_id"])  # does nothing when the worker has taken it
    wait_until(
        lambda: AccountRead.objects.filter(pk=draft["read_id"], status__in=["done", "failed"]).exists(),
        timeout=timeout,
        message="the plan's read did not finish",
    )
    return client.get("/onboard/preview/")
