"""Many onboardings at once: 50 submitted together to one worker process (prefork, concurrency 4),
then 50 others to two worker processes. All must succeed, none duplicated.

    .venv/bin/python bench/throughput.py [--onboardings 50]      (or `make bench`)

Prints onboardings per minute for each, the scaling ratio (goal: two workers >= 1.7x one),
the workers' peak RSS (whole process trees, sampled from /proc), and where the CPU went:
this machine's cores are shared by the workers, PostgreSQL and the sandbox, which is one process.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GOAL_SCALING = 1.7


def phase(*, workers_count: int, count: int, sandbox, env: dict, user, ids, label: str, app: str, pool: str) -> dict:
    """Submit `count` onboardings at once to `workers_count` worker processes and wait for all."""
    from django.utils import timezone

    from provisioning.models import Run
    from provisioning.runs import run_create
    from provisioning.spec import spec_parse

    workers = common.Workers(workers_count, env=env, app=app, pool=pool, tag=f"tp{workers_count}-").start()
    try:
        warm = []
        for _ in range(2 * workers_count):  # untimed: every worker process imports, connects, makes clients
            data = common.spec_data(account_id=ids.new(), name=f"{label}-warm-{len(warm)}")
            sandbox.warm_account(data["account_id"])
            warm.append(run_create(spec=spec_parse(data), customer=common.customer_create(data), user=user).pk)
        common.runs_wait(warm, timeout=300, every=0.2)

        batch = []
        for n in range(count):
            data = common.spec_data(account_id=ids.new(), name=f"{label}-{n}")
            sandbox.warm_account(data["account_id"])  # untimed: moto loads managed policies on first IAM call
            batch.append((data, spec_parse(data), common.customer_create(data)))

        rss_idle = workers.rss()
        cpu_workers, cpu_moto, cpu_self = workers.cpu_seconds(), sandbox.cpu_seconds(), time.process_time()
        cpu_pg, machine = common.postgres_cpu_seconds(), common.machine_busy_jiffies()
        workers.sample_start()
        started = timezone.now()
        run_ids = [run_create(spec=spec, customer=customer, user=user).pk for _, spec, customer in batch]
        submitted = timezone.now()
        rows = common.runs_wait(run_ids, timeout=1200, every=0.5)
        peak_rss = workers.sample_stop()
        finished = max(f for _, _, f in rows.values())
        seconds = (finished - started).total_seconds()
        cpu = {
            "workers": workers.cpu_seconds() - cpu_workers,
            "moto": sandbox.cpu_seconds() - cpu_moto,
            "bench": time.process_time() - cpu_self,
            "postgres": common.postgres_cpu_seconds() - cpu_pg,
        }
        busy, total = (after - before for after, before in zip(common.machine_busy_jiffies(), machine, strict=True))
    finally:
        workers.stop()

    succeeded = sum(1 for status, _, _ in rows.values() if status == Run.Status.SUCCEEDED)
    problems = verify(sandbox=sandbox, batch=batch, run_ids=run_ids)
    return {
        "workers": workers_count,
        "count": count,
        "seconds": seconds,
        "submit_seconds": (submitted - started).total_seconds(),
        "per_minute": count / seconds * 60,
        "succeeded": succeeded,
        "problems": problems,
        "peak_rss": peak_rss,
        "rss_idle": rss_idle,
        "machine_busy": busy / total if total else 0.0,
        "cpu": cpu,
    }


def verify(*, sandbox, batch, run_ids) -> list[str]:
    """None duplicated: in each account exactly one app user with exactly one access key, and in the
    database exactly one run per customer, one sealed access key and console password per run."""
    from provisioning.models import Credential, Run, StepRun

    problems = []
    for _data, spec, customer in batch:
        session = sandbox.session(spec.account_id)
        iam = sandbox.client(session, "iam", spec.region)
        users = [u["UserName"] for u in iam.list_users()["Users"]]
        if users.count(spec.app_name) != 1:
            problems.append(f"{spec.account_id}: {users.count(spec.app_name)} app users")
        keys = iam.list_access_keys(UserName=spec.app_name)["AccessKeyMetadata"] if spec.app_name in users else []
        if len(keys) != 1:
            problems.append(f"{spec.account_id}: {len(keys)} access keys for {spec.app_name}")
        expected_users = 1 + len(spec.team)
        if len(users) != expected_users:
            problems.append(f"{spec.account_id}: {len(users)} IAM users, expected {expected_users}")
        runs = Run.objects.filter(customer=customer).count()
        if runs != 1:
            problems.append(f"{customer.name}: {runs} runs")
        credentials = Credential.objects.filter(customer=customer).count()
        if credentials != 2:
            problems.append(f"{customer.name}: {credentials} sealed credentials, expected 2")
    steps = StepRun.objects.filter(run_id__in=run_ids)
    retried = steps.filter(attempts__gt=1).count()
    if retried:
        problems.append(f"{retried} steps ran more than once (retried; steps are idempotent)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onboardings", type=int, default=50)
    parser.add_argument("--worker-app", default="portal", help="the Celery app the workers run (-A)")
    parser.add_argument("--pool", choices=["prefork", "threads"], default="prefork", help="the workers' pool")
    args = parser.parse_args()

    print(f"Machine: {common.machine()}")
    sandbox = common.SandboxAws().start()
    results = []
    try:
        env = common.environment(sandbox_url=sandbox.url)
        common.database_fresh()
        common.redis_flush()
        user = common.django_start()
        ids = common.AccountIds()
        for count, label in ((1, "one"), (2, "two")):
            result = phase(
                workers_count=count,
                count=args.onboardings,
                sandbox=sandbox,
                env=env,
                user=user,
                ids=ids,
                label=f"tp-{label}-{os.getpid() % 10000}",
                app=args.worker_app,
                pool=args.pool,
            )
            results.append(result)
            cpu = result["cpu"]
            ours = (cpu["workers"] + cpu["moto"]) / result["seconds"]
            print(
                f"  {count} worker process{'es' if count > 1 else ''} ({args.pool}, concurrency 4 each): "
                f"{result['count']} onboardings in {result['seconds']:.1f} s = {result['per_minute']:.1f} per minute; "
                f"{result['succeeded']}/{result['count']} succeeded; peak RSS {common.mib(result['peak_rss'])} "
                f"(after warm-up, before the batch: {common.mib(result['rss_idle'])})",
                flush=True,
            )
            print(
                f"    CPU during the batch: workers {cpu['workers']:.1f} s, moto server {cpu['moto']:.1f} s "
                f"({cpu['moto'] / result['seconds'] * 100:.0f}% of one core), this script {cpu['bench']:.1f} s, "
                f"PostgreSQL server {cpu['postgres']:.1f} s (all its databases); workers + moto = {ours:.2f} cores; "
                f"the machine's {os.cpu_count()} cores were {result['machine_busy'] * 100:.0f}% busy",
                flush=True,
            )
            for problem in result["problems"]:
                print(f"    PROBLEM: {problem}")
            if not result["problems"]:
                print("    checked: one run per customer, one app user and one access key per account, nothing retried")
    finally:
        sandbox.stop()

    one, two = results
    ratio = two["per_minute"] / one["per_minute"]
    ok = all(r["succeeded"] == r["count"] and not r["problems"] for r in results)
    print(
        f"\nScaling, two worker processes / one: {ratio:.2f}x (goal >= {GOAL_SCALING}): goal {'met' if ratio >= GOAL_SCALING else 'missed'}"
    )
    if ratio < GOAL_SCALING:
        per_run = [r["cpu"]["workers"] / r["count"] * 1000 for r in results]
        print(
            f"  Why: this machine has {os.cpu_count()} cores for the workers, PostgreSQL, Redis, the sandbox (one "
            f"Python process: one core at most) and the other people working on it. With one worker process the "
            f"cores were already {one['machine_busy'] * 100:.0f}% busy; a second worker process adds no core, "
            f"only more processes to share them. Worker CPU per onboarding: {per_run[0]:.0f} ms with one worker "
            f"process, {per_run[1]:.0f} ms with two (each worker process that takes one of a run's steps assumes "
            "the customer's role and makes its clients: one AssumeRole and its clients per process per run)."
        )
    print(f"All succeeded, none duplicated: {'yes' if ok else 'NO'}. Machine at the end: {common.machine()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
