"""What both benchmarks share: a dedicated database and Redis db, the sandbox AWS, real Celery
worker processes, fresh customers and accounts, and process measurements from /proc.

Everything here is started and stopped by the benchmark itself, on loopback only.
"""

import gc
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.controller import Sandbox  # noqa: E402

# The worker's pool and concurrency in the benches, as bin/run and docker-compose.yml start it.
DEFAULT_POOL = os.environ.get("BENCH_POOL", "threads")
DEFAULT_CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "bench_onramp")
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# The benchmark's own queue on that Redis db, so that another worker there (a test session's) never takes its tasks.
BENCH_QUEUE = f"bench-{os.getpid()}"
CELERY = ROOT / ".venv" / "bin" / "celery"
ROLE_NAME = "OnrampAccess"
EXTERNAL_ID = "bench-external-id-0123456789"
SANDBOX_KEY = "testing"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Logs of the sandbox and workers, and the profile's lines; shared with the workers through the environment.
ARTIFACTS = Path(os.environ.get("BENCH_ARTIFACTS") or tempfile.mkdtemp(prefix="onramp-bench-"))


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} CPUs ({model}), load average {load}"


# --- Environment, database, Django -------------------------------------------------------


def environment(*, sandbox_url: str) -> dict:
    """The environment of the benchmark and of its workers: our own database, Redis db and sandbox.
    DJANGO_ENV=test keeps DEBUG off (DEBUG would record every query in the worker's memory)."""
    values = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"{PG_SERVER}/{BENCH_DATABASE}",
        "REDIS_URL": BENCH_REDIS,
        "CELERY_QUEUE": BENCH_QUEUE,
        "AWS_ENDPOINT_URL": sandbox_url,
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "BENCH_ARTIFACTS": str(ARTIFACTS),
        "AWS_ACCESS_KEY_ID": SANDBOX_KEY,
        "AWS_SECRET_ACCESS_KEY": SANDBOX_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(values)
    return {**os.environ}


def database_fresh() -> None:
    """Drop and recreate the benchmark's own database (never another one)."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')


def redis_flush() -> None:
    """Empty the benchmark's own queue (never the whole db, which others may use)."""
    import redis

    redis.Redis.from_url(BENCH_REDIS).delete(BENCH_QUEUE)


def django_start():
    """Set Django up on the fresh database, migrate it, and return the tech lead who starts runs."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(username="bench-lead", email="bench-lead@agency.example", password=None)
    user.groups.add(Group.objects.get(name="Tech leads"))
    return user


# --- Processes ----------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd on; the name may hold spaces


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (and of their reaped children)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def postgres_cpu_seconds(*, database: str = "") -> float:
    """CPU of the whole PostgreSQL server: the postmaster with its exited backends (a worker opens a
    connection per task) and its live processes. Other databases on this machine count too. With
    `database`: the live backends connected to that database only (their process title names it)."""
    postmaster = [int(p.read_text().split()[0]) for p in Path("/var/run/postgresql").glob("*.pid")]
    if not postmaster:
        return 0.0
    if not database:
        return cpu_seconds(process_tree(postmaster[0]))
    mine = []
    for pid in process_tree(postmaster[0]):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if title[:1] == [b"postgres:"] and database.encode() in title[2:4]:  # after the cluster name, if any
            mine.append(pid)
    return cpu_seconds(mine)


def machine_busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat: how much was left idle."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class SandboxAws:
    """moto's server (managed policies loaded, as in tests) and sessions in its accounts."""

    def __init__(self, *, latency_ms: float = 0, server: Sandbox | None = None, managed_policies: bool = True):
        self._own_server = server is None  # a server given (the tests') is the giver's to stop
        self.server = server or Sandbox(log=ARTIFACTS / "moto.log", managed_policies=managed_policies)
        self.latency_ms = latency_ms
        self.proxy = None

    def start(self) -> "SandboxAws":
        if self._own_server:
            self.server.start()
        if self.latency_ms:
            # Every contender then talks to AWS through the same delay, as to real AWS over a network.
            from sandbox.proxy import SandboxProxy

            self.proxy = SandboxProxy(self.server.url, latency=self.latency_ms / 1000).start()
        return self

    @property
    def url(self) -> str:
        return self.proxy.url if self.proxy is not None else self.server.url

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds([self.pid])

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self._own_server:
            self.server.stop()

    def credentials(self, account_id: str) -> dict:
        """Temporary credentials in the account, as the engineer following the runbook has them: its
        administrator's (on the strict sandbox too, where the harness's administrator role is the one)."""
        from sandbox.controller import admin_session

        frozen = admin_session(self.url, account_id).get_credentials().get_frozen_credentials()
        return {
            "aws_access_key_id": frozen.access_key,
            "aws_secret_access_key": frozen.secret_key,
            "aws_session_token": frozen.token,
        }

    def session(self, account_id: str):
        from sandbox.controller import session_make

        return session_make(**self.credentials(account_id))

    def client(self, session, service: str, region: str = "us-east-1"):
        return session.client(service, region_name=region, endpoint_url=self.url)

    def portal_credentials(self) -> dict:
        """Onramp's own identity, which assumes the customer's role: boto3's standard chain, as the worker has it
        (the bench's sandbox keys, or the tests' portal user)."""
        import boto3

        frozen = boto3.Session().get_credentials().get_frozen_credentials()
        return {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key}

    def warm_account(self, account_id: str) -> None:
        """Untimed, before a contender works in the account: the customer deploys Onramp's role from its
        CloudFormation template (every contender assumes it), unless it is there. It is the account's first
        IAM call, on which moto loads the ~1,300 AWS managed policies (0.6-1.1 s here), a cost real AWS does
        not have."""
        from botocore.exceptions import ClientError
        from django.conf import settings

        from provisioning.role.template import cloudformation_template

        try:
            self.client(self.session(account_id), "iam").get_role(RoleName=ROLE_NAME)
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise
        template = cloudformation_template(
            customer_name="Bench", portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID, external_id=EXTERNAL_ID
        )
        self.server.stack_deploy(account_id=account_id, template=template)


# Above this, a call through the latency proxy costs more than the latency it claims by enough to skew the
# ratios between contenders that make different numbers of calls: the bench calls its figures invalid.
PROXY_OVERHEAD_LIMIT_MS = 3.0


@contextmanager
def collector_held() -> Iterator[None]:
    """This process's garbage collector held off while something is timed, having collected first (untimed).
    This process runs the latency proxy and the boto3 contenders: a full collection here (200-250 ms once a few
    rounds' clients are garbage) stalls every call in flight through the proxy, whichever contender is timed.
    Onramp's worker, a process of its own, keeps its collector as it runs in production."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def proxy_overhead(sandbox: SandboxAws, *, calls: int = 60) -> dict[str, float]:
    """What the latency proxy adds beyond the latency it claims, per call, in ms: a cheap call (STS
    GetCallerIdentity) made straight to the sandbox and through the proxy, warm clients on kept-alive
    connections, medians compared. Calls go in runs of ten back to back on one connection, as a run's calls
    do: interleaved one by one, a connection idles between its calls and a delayed-ACK stall never shows.
    {"straight", "proxied", "latency", "overhead"}; overhead 0 with no proxy."""
    import boto3

    def client(url: str):
        return boto3.client("sts", region_name="us-east-1", endpoint_url=url, aws_access_key_id=SANDBOX_KEY,
                            aws_secret_access_key=SANDBOX_KEY)  # fmt: skip

    targets = {"straight": client(sandbox.server.url), "proxied": client(sandbox.url)}
    times: dict[str, list[float]] = {"straight": [], "proxied": []}
    for sts in targets.values():
        sts.get_caller_identity()  # opens the connection, warms both sides
    for _ in range(max(1, calls // 10)):
        for name, sts in targets.items():
            for _ in range(10):
                started = time.perf_counter()
                sts.get_caller_identity()
                times[name].append((time.perf_counter() - started) * 1000)
    medians = {name: statistics.median(values) for name, values in times.items()}
    latency = sandbox.latency_ms if sandbox.proxy is not None else 0.0
    overhead = medians["proxied"] - latency - medians["straight"] if sandbox.proxy is not None else 0.0
    return {**medians, "latency": latency, "overhead": overhead}


class Workers:
    """Real Celery worker processes (prefork or threads pool), each in its own process group, with their logs."""

    def __init__(
        self,
        count: int,
        *,
        env: dict,
        concurrency: int = DEFAULT_CONCURRENCY,
        pool: str = DEFAULT_POOL,
        app: str = "portal",
        tag: str = "bench",
    ):
        self.count = count
        self.pool = pool
        self.env = env
        self.concurrency = concurrency
        self.app = app
        self.names = [f"{tag}{i}-{os.getpid()}@127.0.0.1" for i in range(count)]
        self.processes: list[subprocess.Popen] = []
        self.peak_rss = 0
        self._sampling = False
        self._sampler: threading.Thread | None = None

    def start(self, timeout: float = 90) -> "Workers":
        for name in self.names:
            log = open(ARTIFACTS / f"worker-{name.split('@')[0]}.log", "ab")  # noqa: SIM115
            self.processes.append(
                subprocess.Popen(
                    [
                        str(CELERY),
                        "-A",
                        self.app,
                        "worker",
                        "--pool",
                        self.pool,
                        "--concurrency",
                        str(self.concurrency),
                        "--hostname",
                        name,
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as a whole, and only it
                )
            )
        from portal.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited with {process.returncode}; see {ARTIFACTS}")
            replies = app.control.ping(destination=self.names, timeout=1.0) or []
            if len(replies) == len(self.names):
                return self
        raise RuntimeError(f"the workers did not answer in {timeout} s; see {ARTIFACTS}")

    def pids(self) -> list[int]:
        return [pid for process in self.processes for pid in process_tree(process.pid)]

    def rss(self) -> int:
        return rss_bytes(self.pids())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def sample_start(self, every: float = 0.2) -> None:
        """Sample the process trees' RSS in the background and keep the peak."""
        self._sampling = True

        def loop():
            while self._sampling:
                self.peak_rss = max(self.peak_rss, self.rss())
                time.sleep(every)

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def sample_stop(self) -> int:
        self._sampling = False
        if self._sampler:
            self._sampler.join()
        self.peak_rss = max(self.peak_rss, self.rss())
        return self.peak_rss

    def stop(self, timeout: float = 30) -> None:
        self._sampling = False
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # warm shutdown: finishes the tasks it holds
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group we created for this worker only
                process.wait(5)
        self.processes = []


def _profiled_app():
    """The Celery app, with each step task timing its SQL statements (Django's execute_wrapper)
    and writing one JSON line when it ends. Only the profile's worker loads this. Its state is per
    thread: in the threads pool, tasks run side by side in one process, each on its own connection."""
    from celery.signals import task_postrun, task_prerun

    from portal.celery import app

    local = threading.local()
    write_lock = threading.Lock()

    def timer(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            state = getattr(local, "state", None)
            if state:
                state["sql_ms"] += (time.perf_counter() - started) * 1000
                state["queries"] += 1
                if os.environ.get("BENCH_SQL_TEXT"):  # each statement's start, to see what a task sends
                    state.setdefault("statements", []).append(sql[:90])

    @task_prerun.connect(weak=False)
    def before(task=None, args=None, **kwargs):
        if task.name != "provisioning.tasks.step_run":
            return
        from django.db import connection

        local.state = {"step_id": args[0], "start": time.time(), "sql_ms": 0.0, "queries": 0}
        if timer not in connection.execute_wrappers:
            connection.execute_wrappers.append(timer)

    @task_postrun.connect(weak=False)
    def after(task=None, **kwargs):
        state = getattr(local, "state", None)
        if task.name != "provisioning.tasks.step_run" or not state:
            return
        state["end"] = time.time()
        with write_lock, open(ARTIFACTS / f"profile-{os.getpid()}.jsonl", "a") as out:
            out.write(json.dumps(state) + "\n")
        local.state = None

    return app


def __getattr__(name: str):
    # `celery -A bench.common:profiled_app`: built on first access, so importing this module costs nothing.
    if name == "profiled_app":
        return _profiled_app()
    raise AttributeError(name)


# --- Specs, customers, runs -----------------------------------------------------------------


class AccountIds:
    """Fresh, distinct 12-digit account ids."""

    def __init__(self):
        self._used = {"123456789012"}  # the sandbox's default account

    def new(self) -> str:
        while True:
            value = str(random.randrange(10**11, 10**12))
            if value not in self._used:
                self._used.add(value)
                return value


def role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{ROLE_NAME}"


def spec_data(*, account_id: str, name: str, region: str = "us-west-2") -> dict:
    """The same shape of onboarding for every contender: alias, app user, policy, key, a tech
    lead with a console password, a read-only member, bucket with BPA and CORS, ECR with lifecycle."""
    return {
        "customer": f"Bench {name}",
        "account_id": account_id,
        "region": region,
        "access": "role",
        "role_arn": role_arn(account_id),
        "external_id": EXTERNAL_ID,
        "account_alias": name,
        "app_name": f"{name}-app",
        "bucket": f"{name}-media",
        "app_origin": f"https://{name}.herokuapp.com",
        "ecr_repository": f"{name}-app",
        "media_scope": "bucket",
        "team": [
            {"email": f"lead@{name}.example", "role": "tech_lead", "console": True},
            {"email": f"dev@{name}.example", "role": "member", "policy": "ReadOnlyAccess", "console": False},
        ],
    }


def customer_create(data: dict, *, lead):
    """The customer's record, with `lead` on its team (whoever onboards a new customer joins it): only the
    customer's team and Admins may start its runs."""
    from provisioning.models import Customer

    customer = Customer.objects.create(
        name=data["customer"],
        slug=f"c-{data['account_id']}",
        aws_account_id=data["account_id"],
        default_region=data["region"],
        account_alias=data["account_alias"],
        role_arn=data["role_arn"],
        external_id=data["external_id"],
    )
    customer.team.add(lead)
    return customer


def run_start(*, data: dict, user):
    """Confirm the plan: what the "Start" button does (run_create; the dispatch follows the commit)."""
    from provisioning.engine.runs import run_create
    from provisioning.spec import spec_parse

    return run_create(spec=spec_parse(data), customer=customer_create(data, lead=user), user=user)


def runs_wait(run_ids: list, *, timeout: float, every: float = 0.01) -> dict:
    """Wait until none of the runs is active; return {run id: (status, created_at, finished_at)}."""
    from provisioning.models import Run

    deadline = time.monotonic() + timeout
    while True:
        rows = {
            pk: (status, created, finished)
            for pk, status, created, finished in Run.objects.filter(pk__in=run_ids).values_list(
                "pk", "status", "created_at", "finished_at"
            )
        }
        if all(status not in Run.ACTIVE for status, _, _ in rows.values()) and len(rows) == len(run_ids):
            return rows
        if time.monotonic() > deadline:
            active = sum(1 for status, _, _ in rows.values() if status in Run.ACTIVE)
            raise RuntimeError(f"{active} of {len(run_ids)} runs still active after {timeout} s")
        time.sleep(every)


# --- Figures ------------------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    seconds: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)  # seconds of CPU per process kind, per round
    critical: list[int] = field(default_factory=list)  # calls on the critical path, per round

    def cpu_median(self, part: str | None = None) -> float:
        """Median CPU seconds of one part (e.g. "sandbox"), or of all parts together."""
        return statistics.median(c[part] if part else sum(c.values()) for c in self.cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    def calls_text(self) -> str:
        return _span(self.calls)

    def critical_text(self) -> str:
        return _span(self.critical)


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
