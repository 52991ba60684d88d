"""Many onboardings behind latency: 100 submitted at once to one worker, behind 30 ms a call, once per pool
(prefork, and the threads pool at two concurrencies), side by side in one run. All must succeed, none duplicated.

    .venv/bin/python bench/throughput.py [--onboardings 100] [--latency-ms 30] [--pools prefork:4,threads:16,threads:32]
        [--warmups 4]

For each pool it prints onboardings per minute; the share of the steps' time spent waiting on AWS; the worker's
peak RSS and database connections; the CPU one onboarding costs (the worker, its PostgreSQL backends, the sandbox
and this process, which runs the latency proxy), hence the machine's ceiling (its cores / CPU-seconds per
onboarding) and the fraction of it reached (goal >= 80%). The cores are shared with other work on this machine:
compare pools as ratios within one run.
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GOAL_FRACTION = 0.8
POOLS = "prefork:4,threads:16,threads:32"


class Connections:
    """The peak number of connections to the benchmark's database, sampled in the background."""

    def __init__(self):
        self.peak = 0
        self._on = False
        self._thread: threading.Thread | None = None

    def now(self) -> int:
        import psycopg

        with psycopg.connect(f"{common.PG_SERVER}/postgres", autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [common.BENCH_DATABASE])
            return row.fetchone()[0]

    def start(self) -> "Connections":
        self._on = True

        def loop():
            while self._on:
                self.peak = max(self.peak, self.now())
                time.sleep(0.5)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._on = False
        if self._thread:
            self._thread.join()
        return self.peak


def batch_prepare(*, count: int, straight, ids, label: str, user) -> list:
    """Untimed: each onboarding's spec, customer, and account with the customer's role deployed in it."""
    from provisioning.spec import spec_parse

    batch = []
    for n in range(count):
        data = common.spec_data(account_id=ids.new(), name=f"{label}-{n}")
        straight.warm_account(data["account_id"])
        batch.append((data, spec_parse(data), common.customer_create(data, lead=user)))
    return batch


def cpu_probes(workers, sandbox) -> dict:
    """What one onboarding costs in CPU, by part. PostgreSQL: the backends of the benchmark's database only."""
    return {
        "worker": workers.cpu_seconds,
        "PostgreSQL": lambda: common.postgres_cpu_seconds(database=common.BENCH_DATABASE),
        "sandbox": sandbox.cpu_seconds,
        "bench (proxy)": time.process_time,
    }


def batch_run(*, batch, user, workers, sandbox) -> dict:
    """Submit the batch at once, as many tech leads pressing Start together; wait for every run."""
    from django.utils import timezone

    probes = cpu_probes(workers, sandbox)
    before = {name: probe() for name, probe in probes.items()}
    machine = common.machine_busy_jiffies()
    connections = Connections().start()
    workers.sample_start()
    started = timezone.now()
    run_ids = [run_create_pk(spec, customer, user) for _, spec, customer in batch]
    rows = common.runs_wait(run_ids, timeout=1800, every=0.5)
    peak_rss = workers.sample_stop()
    cpu = {name: probe() - before[name] for name, probe in probes.items()}
    busy, total = (after - was for after, was in zip(common.machine_busy_jiffies(), machine, strict=True))
    finished = max(f for _, _, f in rows.values())
    return {
        "run_ids": run_ids,
        "rows": rows,
        "seconds": (finished - started).total_seconds(),
        "cpu": cpu,
        "peak_rss": peak_rss,
        "connections": connections.stop(),
        "machine_busy": busy / total if total else 0.0,
    }


def waited_share(run_ids: list) -> float:
    """Of the time the worker spent in steps, the share it waited on AWS (the union of each step's calls)."""
    from bench.onboarding import call_spans, waiting_ms
    from provisioning.models import Run

    waited = in_steps = 0.0
    for run in Run.objects.filter(pk__in=run_ids).prefetch_related("steps"):
        spans = call_spans(run)
        for step in run.steps.all():
            if step.started_at and step.finished_at:
                in_steps += (step.finished_at - step.started_at).total_seconds() * 1000
                waited += waiting_ms(spans.get(step.key, []))
    return waited / in_steps if in_steps else 0.0


def phase(
    *, pool: str, concurrency: int, count: int, sandbox, straight, env: dict, user, ids, warmups: int = 4
) -> dict:
    """One worker with this pool: warmed, then the batch; checked afterwards."""
    from provisioning.models import Run

    workers = common.Workers(1, env=env, pool=pool, concurrency=concurrency, tag=f"tp-{pool}{concurrency}-").start()
    label = f"tp-{pool[:2]}{concurrency}-{os.getpid() % 10000}"
    try:
        warm = batch_prepare(count=warmups, straight=straight, ids=ids, label=f"{label}-w", user=user)
        warm_ids = [run_create_pk(spec, customer, user) for _, spec, customer in warm]
        common.runs_wait(warm_ids, timeout=300, every=0.2)  # untimed: imports, connections, clients
        batch = batch_prepare(count=count, straight=straight, ids=ids, label=label, user=user)
        with common.collector_held():
            result = batch_run(batch=batch, user=user, workers=workers, sandbox=sandbox)
    finally:
        workers.stop()
    result.update(
        pool=pool,
        concurrency=concurrency,
        count=count,
        per_minute=count / result["seconds"] * 60,
        succeeded=sum(1 for status, _, _ in result["rows"].values() if status == Run.Status.SUCCEEDED),
        problems=verify(sandbox=straight, batch=batch, run_ids=result["run_ids"]),
        waited=waited_share(result["run_ids"]),
    )
    return result


def run_create_pk(spec, customer, user):
    from provisioning.engine.runs import run_create

    return run_create(spec=spec, customer=customer, user=user).pk


def verify(*, sandbox, batch, run_ids) -> list[str]:
    """None duplicated: in each account exactly one app user with exactly one access key, and in the
    database exactly one run per customer, two sealed credentials, no step run twice."""
    from provisioning.models import Credential, Run, StepRun

    problems = []
    for _data, spec, customer in batch:
        iam = sandbox.client(sandbox.session(spec.account_id), "iam", spec.region)
        users = [u["UserName"] for u in iam.list_users()["Users"]]
        keys = iam.list_access_keys(UserName=spec.app_name)["AccessKeyMetadata"] if spec.app_name in users else []
        if users.count(spec.app_name) != 1 or len(keys) != 1:
            problems.append(f"{spec.account_id}: {users.count(spec.app_name)} app users, {len(keys)} access keys")
        if len(users) != 1 + len(spec.team):
            problems.append(f"{spec.account_id}: {len(users)} IAM users, expected {1 + len(spec.team)}")
        if Run.objects.filter(customer=customer).count() != 1:
            problems.append(f"{customer.name}: more than one run")
        if Credential.objects.filter(customer=customer).count() != 2:
            problems.append(f"{customer.name}: not two sealed credentials")
    retried = StepRun.objects.filter(run_id__in=run_ids, attempts__gt=1).count()
    if retried:
        problems.append(f"{retried} steps ran more than once (retried; steps are idempotent)")
    return problems


def result_print(r: dict) -> None:
    cores = os.cpu_count() or 1
    per_run = {part: seconds / r["count"] for part, seconds in r["cpu"].items()}
    total = sum(per_run.values())
    ceiling = cores * 60 / total if total else 0.0
    r["ceiling"], r["fraction"] = ceiling, r["per_minute"] / ceiling if ceiling else 0.0
    verdict = "met" if r["fraction"] >= GOAL_FRACTION else "MISSED"
    print(
        f"  {r['pool']} x{r['concurrency']}: {r['count']} onboardings in {r['seconds']:.1f} s = "
        f"{r['per_minute']:.0f} per minute; {r['succeeded']}/{r['count']} succeeded",
        flush=True,
    )
    print(
        f"    waiting on AWS: {r['waited'] * 100:.0f}% of the steps' time; peak RSS {common.mib(r['peak_rss'])}; "
        f"peak connections to the database {r['connections']}; the machine's cores {r['machine_busy'] * 100:.0f}% busy"
    )
    print(
        f"    CPU per onboarding {total * 1000:.0f} ms ("
        + ", ".join(f"{part} {seconds * 1000:.0f}" for part, seconds in per_run.items())
        + f") -> ceiling {cores} cores / {total:.3f} s = {ceiling:.0f} per minute; reached "
        f"{r['fraction'] * 100:.0f}% (goal >= {GOAL_FRACTION * 100:.0f}%: {verdict})"
    )
    for problem in r["problems"]:
        print(f"    PROBLEM: {problem}")
    if not r["problems"]:
        print("    checked: one run per customer, one app user and one access key per account, nothing retried")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onboardings", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=30)
    parser.add_argument("--pools", default=POOLS, help="pool:concurrency, comma-separated")
    parser.add_argument("--warmups", type=int, default=4, help="untimed onboardings first (0: cold; the tests)")
    args = parser.parse_args()

    print(f"Machine: {common.machine()}")
    print("Pools are compared as ratios within this one run: the machine's cores are shared with other work.")
    straight = common.SandboxAws().start()
    sandbox = common.SandboxAws(server=straight.server, latency_ms=args.latency_ms).start()
    results = []
    try:
        env = common.environment(sandbox_url=sandbox.url)
        common.database_fresh()
        common.redis_flush()
        user = common.django_start()
        ids = common.AccountIds()
        print(f"{args.onboardings} onboardings submitted at once, behind {args.latency_ms:.0f} ms a call:", flush=True)
        for item in args.pools.split(","):
            pool, concurrency = item.split(":")
            result = phase(pool=pool, concurrency=int(concurrency), count=args.onboardings, sandbox=sandbox,
                           straight=straight, env=env, user=user, ids=ids, warmups=args.warmups)  # fmt: skip
            result_print(result)
            results.append(result)
    finally:
        sandbox.stop()
        straight.stop()
    best = max(results, key=lambda r: r["per_minute"])
    print(f"\nFastest: {best['pool']} x{best['concurrency']} ({best['per_minute']:.0f} per minute); machine now: "
          f"{common.machine()}")  # fmt: skip
    ok = all(r["succeeded"] == r["count"] and not r["problems"] for r in results)
    print(f"All succeeded, none duplicated: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
