"""The nightly drift check of many customers: every account read back against its desired state, by real
Celery worker processes, each AWS call behind added latency (the bench proxy), audited as in production.

    .venv/bin/python bench/drift.py [--accounts 1000] [--aws-latency-ms 30]      (or `make bench`)

Untimed first: the accounts are set up in the sandbox with plain boto3 (the plan's own calls, as an
onboarding makes them, straight to the sandbox), each customer with a succeeded run of that spec (its
desired state). The sandbox runs without AWS's managed policies (moto loads ~1,300 per account, about 31 MiB
and up to a second each: 1,000 accounts would not fit in memory), and the team members use no managed
policy. Then the schedule's task is called (drift_checks_start) and the clock runs until every customer has
a drift state from this check. Printed: accounts per minute, where the workers' time went (waiting on AWS,
SQL, the rest), the bounds on concurrent calls, and the sandbox's memory.
"""

import argparse
import itertools
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GOAL_SECONDS = 180  # all 1,000 within 3 minutes (issue 16)
GOAL_ACCOUNTS = 1000
_NUMBERS = itertools.count()  # distinct names (buckets are global) across set-ups in one process
DRIFT_TASKS = ("provisioning.tasks.drift_checks_work", "provisioning.tasks.account_read")


def spec_data(*, account_id: str, name: str) -> dict:
    """The bench's onboarding shape, with team members that use no managed policy and no console (whose
    password change needs one): the same calls to read back otherwise."""
    data = common.spec_data(account_id=account_id, name=name)
    data["team"] = [
        {"email": f"{who}@{name}.example", "role": "member", "policy": "", "console": False} for who in ("lead", "dev")
    ]
    return data


def account_setup(sandbox, data: dict) -> None:
    """One account as an onboarding leaves it, made with plain boto3, straight to the sandbox (untimed)."""
    from bench.onboarding import boto3_clients, boto3_script
    from provisioning.spec import spec_parse

    spec = spec_parse(data)
    sandbox.warm_account(spec.account_id)  # the customer deployed Onramp's role (unless it is there)
    clients, _ = boto3_clients(sandbox=sandbox, spec=spec)  # Onramp's identity, which assumes the role first
    boto3_script(clients, spec)


def accounts_setup(sandbox, *, count: int, user, threads: int = 4, before=None) -> list:
    """`count` customers, each with its account set up and a succeeded run of its spec. `before(account_id)`:
    what the account needs first (on the strict sandbox, the customer's role)."""
    from django.utils import timezone

    from provisioning.models import Customer, Run

    ids = common.AccountIds()
    specs = [spec_data(account_id=ids.new(), name=f"d{next(_NUMBERS)}-{os.getpid() % 10000}") for _ in range(count)]
    straight = common.SandboxAws(server=sandbox.server)  # set-up calls pay no latency
    for data in specs if before else ():
        before(data["account_id"])
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda data: account_setup(straight, data), specs))
    customers = Customer.objects.bulk_create(
        [
            Customer(name=d["customer"], slug=f"c-{d['account_id']}", aws_account_id=d["account_id"],
                     default_region=d["region"], role_arn=d["role_arn"], external_id=d["external_id"])
            for d in specs
        ]
    )  # fmt: skip
    now = timezone.now()
    Run.objects.bulk_create(
        [
            Run(customer=c, started_by=user, spec=d, status=Run.Status.SUCCEEDED, finished_at=now)
            for c, d in zip(customers, specs, strict=True)
        ]
    )
    return customers


def _profiled_app():
    """The Celery app, with each drift task timing its SQL (Django's execute_wrapper) and writing one JSON
    line when it ends: its wall time, SQL time and statements."""
    from celery.signals import task_postrun, task_prerun

    from portal.celery import app

    # Per thread: the threads pool runs many tasks in one process at once (each with its own connection).
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

    @task_prerun.connect(weak=False)
    def before(task=None, **kwargs):
        if task.name not in DRIFT_TASKS:
            return
        from django.db import connection

        local.state = {"task": task.name, "start": time.time(), "sql_ms": 0.0, "queries": 0}
        if timer not in connection.execute_wrappers:
            connection.execute_wrappers.append(timer)

    @task_postrun.connect(weak=False)
    def after(task=None, **kwargs):
        state = getattr(local, "state", None)
        if task.name not in DRIFT_TASKS or not state:
            return
        state["end"] = time.time()
        with write_lock, open(common.ARTIFACTS / f"drift-profile-{os.getpid()}.jsonl", "a") as out:
            out.write(json.dumps(state) + "\n")
        local.state = None

    return app


def __getattr__(name: str):
    # `celery -A bench.drift:profiled_app`: built on first access.
    if name == "profiled_app":
        return _profiled_app()
    raise AttributeError(name)


def checks_wait(customer_ids: list[int], *, since, timeout: float) -> None:
    from provisioning.models import DriftState

    deadline = time.monotonic() + timeout
    while True:
        done = DriftState.objects.filter(customer_id__in=customer_ids, checked_at__gte=since).count()
        if done == len(customer_ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{done} of {len(customer_ids)} checks recorded after {timeout} s")
        time.sleep(0.2)


def where_time_went(*, since, workers_busy_ms: float) -> dict:
    """The workers' drift tasks' time, split: waiting on AWS (each audited call's duration), SQL, the rest."""
    from django.db.models import Count, FloatField, Sum
    from django.db.models.fields.json import KT
    from django.db.models.functions import Cast

    from provisioning.models import AuditEvent

    calls = AuditEvent.objects.filter(created_at__gte=since, action__startswith="aws.", run__isnull=True)
    totals = calls.aggregate(n=Count("id"), ms=Sum(Cast(KT("details__duration_ms"), FloatField())))
    sql_ms = queries = 0
    for path in common.ARTIFACTS.glob("drift-profile-*.jsonl"):
        for line in path.read_text().splitlines():
            item = json.loads(line)
            sql_ms += item["sql_ms"]
            queries += item["queries"]
    aws_ms = totals["ms"] or 0.0
    return {"calls": totals["n"], "aws_ms": aws_ms, "sql_ms": sql_ms, "queries": queries,
            "other_ms": max(0.0, workers_busy_ms - aws_ms - sql_ms), "busy_ms": workers_busy_ms}  # fmt: skip


def busy_ms() -> float:
    total = 0.0
    for path in common.ARTIFACTS.glob("drift-profile-*.jsonl"):
        for line in path.read_text().splitlines():
            item = json.loads(line)
            total += (item["end"] - item["start"]) * 1000
    return total


def drift_time(customers: list, *, sandbox, workers=None) -> dict:
    """Time the schedule's check of these customers, from calling the beat's task to the last drift state
    recorded. `workers`: the worker processes measured (None: the caller's own worker, not measured)."""
    from django.db.models import Count
    from django.utils import timezone

    from provisioning.drift import drift_checks_start
    from provisioning.models import DriftState

    for path in common.ARTIFACTS.glob("drift-profile-*.jsonl"):
        path.unlink()
    probes = {"sandbox": sandbox.cpu_seconds, "PostgreSQL": common.postgres_cpu_seconds}
    if workers is not None:
        probes["workers"] = workers.cpu_seconds
        workers.sample_start()
    cpu = {name: probe() for name, probe in probes.items()}
    machine = common.machine_busy_jiffies()
    since = timezone.now()
    clock = time.perf_counter()
    drift_checks_start()  # what the beat calls
    checks_wait([c.pk for c in customers], since=since, timeout=max(600, len(customers) * 2))
    seconds = time.perf_counter() - clock
    cpu = {name: probe() - cpu[name] for name, probe in probes.items()}
    busy, total = (a - b for a, b in zip(common.machine_busy_jiffies(), machine, strict=True))
    peak = workers.sample_stop() if workers is not None else 0
    time.sleep(0.5)  # the last tasks' profile lines
    states = dict(DriftState.objects.filter(customer__in=customers).values_list("state").annotate(n=Count("id")))
    return {"accounts": len(customers), "seconds": seconds, "cpu": cpu, "machine_busy": busy / max(1, total),
            "workers_rss": peak, "states": states, "split": where_time_went(since=since, workers_busy_ms=busy_ms())}  # fmt: skip


def drift_warm_and_time(*, sandbox, workers, user, accounts: int, takers: int) -> dict:
    """Untimed first: a check of as many accounts as there are takers, so that each worker process has
    imported, connected and loaded botocore's models, as a worker running since the day before has (those
    customers are then set inactive, out of the timed check); then the `accounts` accounts are set up. Then
    the timed check of them."""
    from provisioning.models import Customer

    warm = accounts_setup(sandbox, count=takers, user=user)
    seconds = drift_time(warm, sandbox=sandbox)["seconds"]
    Customer.objects.filter(pk__in=[c.pk for c in warm]).update(is_active=False)
    print(f"  warm-up: {takers} accounts checked in {seconds:.1f} s (untimed)", flush=True)
    started = time.perf_counter()
    customers = accounts_setup(sandbox, count=accounts, user=user)
    print(f"  set up {accounts} accounts in {time.perf_counter() - started:.0f} s (untimed)", flush=True)
    return drift_time(customers, sandbox=sandbox, workers=workers)


def report(figures: dict, *, latency: float, pool: str, concurrency: int, takers: int, sandbox_rss: int) -> None:
    n, seconds, split = figures["accounts"], figures["seconds"], figures["split"]
    print(f"\nDrift check of {n} accounts, {latency:.0f} ms added to every AWS call:")
    print(f"  {seconds:.1f} s: {n / seconds * 60:.0f} accounts per minute ({seconds / n * 1000:.0f} ms per account)")
    print(f"  outcome: {figures['states']}")
    print(
        f"  bounds: {takers} checks at once overall (DRIFT_CONCURRENCY), each one AWS call at a time, so at most "
        f"{takers} calls in flight and 1 per account; one worker, "
        + (f"{concurrency} prefork processes" if pool == "prefork" else f"{concurrency} threads in one process")
    )
    busy = split["busy_ms"] or 1
    print(
        f"  where the workers' time went ({busy / 1000:.0f} s of drift tasks, summed over the tasks): "
        f"waiting on AWS {split['aws_ms'] / 1000:.0f} s ({split['aws_ms'] / busy:.0%}, {split['calls']} calls, "
        f"{split['aws_ms'] / max(1, split['calls']):.1f} ms each), SQL {split['sql_ms'] / 1000:.0f} s "
        f"({split['sql_ms'] / busy:.0%}, {split['queries']} statements), other (Python: boto3, Django, plan) "
        f"{split['other_ms'] / 1000:.0f} s ({split['other_ms'] / busy:.0%})"
    )
    cpu = figures["cpu"]
    print(
        "  CPU used: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in cpu.items())
        + f"; the machine was {figures['machine_busy']:.0%} busy"
    )
    print(
        f"  memory: the sandbox (moto, no managed policies) {common.mib(sandbox_rss)} RSS after; "
        f"the worker {common.mib(figures['workers_rss'])} at its peak"
    )
    if n >= GOAL_ACCOUNTS:
        verdict = "met" if seconds <= GOAL_SECONDS else "missed"
        print(f"  goal: {GOAL_ACCOUNTS} accounts within {GOAL_SECONDS} s: {verdict}")
    else:
        print(f"  goal: {GOAL_ACCOUNTS} accounts within {GOAL_SECONDS} s: not measured at this size ({n} accounts)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=GOAL_ACCOUNTS)
    parser.add_argument("--aws-latency-ms", type=float, default=30)
    parser.add_argument("--pool", choices=["prefork", "threads"], default=common.DEFAULT_POOL, help="the worker's pool")
    parser.add_argument("--concurrency", type=int, default=16, help="the worker's processes or threads")
    parser.add_argument("--drift-concurrency", type=int, default=16, help="DRIFT_CONCURRENCY")
    args = parser.parse_args(argv)

    print(f"Machine: {common.machine()}")
    sandbox = common.SandboxAws(latency_ms=args.aws_latency_ms, managed_policies=False).start()
    try:
        if args.aws_latency_ms:
            from bench.onboarding import proxy_overhead_print

            proxy_overhead_print(sandbox)
        os.environ["DRIFT_CONCURRENCY"] = str(args.drift_concurrency)
        env = common.environment(sandbox_url=sandbox.url)
        common.database_fresh()
        common.redis_flush()
        user = common.django_start()
        workers = common.Workers(
            1, env=env, app="bench.drift:profiled_app", tag="drift", pool=args.pool, concurrency=args.concurrency
        ).start()
        try:
            figures = drift_warm_and_time(
                sandbox=sandbox, workers=workers, user=user, accounts=args.accounts, takers=args.drift_concurrency
            )
        finally:
            workers.stop()
        report(
            figures,
            latency=args.aws_latency_ms,
            pool=args.pool,
            concurrency=args.concurrency,
            takers=args.drift_concurrency,
            sandbox_rss=common.rss_bytes([sandbox.pid]),
        )
        return 0 if figures["states"] == {"in_sync": args.accounts} else 1
    finally:
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
