"""One onboarding, three ways, on the same sandbox in the same run: the runbook typed into the AWS
CLI, a plain boto3 script, and Onramp (real Celery worker, PostgreSQL, Redis, audit log).

    .venv/bin/python bench/onboarding.py [--rounds 5]      (or `make bench`)

Each round gives each contender a fresh customer and a fresh 12-digit account id, and the
order of the three rotates from round to round so that drift hits them alike. Before timing a
contender in its account, one untimed IAM call loads moto's managed policies there.
"""

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GOAL_CLI = 0.1
GOAL_BOTO3 = 1.0


# --- The contenders -------------------------------------------------------------------------


def runbook_script(*, spec, endpoint: str) -> tuple[str, int]:
    """The runbook's commands for this spec: the preview's CLI transcript (the same strings), from the
    point where the account is reached (the script runs with the role's credentials already), made
    runnable against the sandbox. Returns (bash script, number of aws commands)."""
    from provisioning.plan import plan_build, plan_transcript
    from provisioning.registry import GENERATED
    from provisioning.steps.iam import generate_password

    lines = ["set -euo pipefail"]
    calls = 0
    for line in plan_transcript(spec, plan_build(spec), source_identity="bench").splitlines():
        if line.startswith("aws sts assume-role "):
            continue
        if line.startswith("#"):
            lines.append(line)
            continue
        words = shlex.split(line)
        # The preview shows a placeholder where the engineer types a password (`--password=<generated>`).
        words = [w.replace(GENERATED, generate_password()) for w in words]
        words = ["aws", "--endpoint-url", endpoint, *words[1:]]
        lines.append(" ".join(shlex.quote(w) for w in words) + " >/dev/null")
        calls += 1
    return "\n".join(lines) + "\n", calls


def cli_once(*, sandbox, spec, workdir: Path) -> tuple[float, int, dict]:
    script, calls = runbook_script(spec=spec, endpoint=sandbox.url)
    path = workdir / f"runbook-{spec.account_id}.sh"
    path.write_text(script)
    creds = sandbox.credentials(spec.account_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{common.ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        AWS_ACCESS_KEY_ID=creds["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=creds["aws_secret_access_key"],
        AWS_SESSION_TOKEN=creds["aws_session_token"],
        AWS_DEFAULT_REGION=spec.region,
    )
    sandbox.warm_account(spec.account_id)
    cpu, children, started = sandbox.cpu_seconds(), _children_cpu(), time.perf_counter()
    done = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    cpu = {"aws CLI": _children_cpu() - children, "sandbox": sandbox.cpu_seconds() - cpu}
    path.unlink()  # it held a console password, sandbox or not
    if done.returncode != 0:
        raise RuntimeError(f"the runbook script failed: {done.stderr[-2000:]}")
    return seconds, calls, cpu


def boto3_clients(*, sandbox, spec) -> tuple[dict, list[int]]:
    """One session in the account, one client per service, each counting its API calls."""
    session = sandbox.session(spec.account_id)
    counter = [0]

    def count(**kwargs):
        counter[0] += 1

    clients = {}
    for service in ("sts", "iam", "s3", "ecr"):
        client = sandbox.client(session, service, spec.region)
        client.meta.events.register("after-call.*.*", count)
        client.meta.events.register("after-call-error.*.*", count)
        clients[service] = client
    return clients, counter


def boto3_script(clients: dict, spec) -> None:
    """The runbook's API calls, one after the other, as a plain script would make them: the plan's
    calls, exactly as Onramp's steps send them on a fresh account."""
    from provisioning.plan import plan_build
    from provisioning.registry import GENERATED
    from provisioning.steps.iam import generate_password

    clients["sts"].get_caller_identity()
    for step in plan_build(spec):
        for call in step.calls:
            params = {name: generate_password() if value == GENERATED else value for name, value in call.params.items()}
            getattr(clients[call.service], call.method)(**params)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def boto3_once(*, sandbox, spec) -> tuple[float, int, dict]:
    clients, counter = boto3_clients(sandbox=sandbox, spec=spec)
    clients["iam"].list_account_aliases()  # the untimed first IAM call, which also warms the clients
    counter[0] = 0
    cpu, own, started = sandbox.cpu_seconds(), time.process_time(), time.perf_counter()
    boto3_script(clients, spec)
    seconds = time.perf_counter() - started
    return seconds, counter[0], {"script": time.process_time() - own, "sandbox": sandbox.cpu_seconds() - cpu}


def onramp_prepare(*, sandbox, data: dict):
    """Untimed: the validated spec, the customer record, the account's first IAM call."""
    from provisioning.spec import spec_parse

    spec = spec_parse(data)
    customer = common.customer_create(data)
    sandbox.warm_account(spec.account_id)
    return spec, customer


def onramp_time(*, sandbox, spec, customer, user, workers=None) -> tuple[float, int, dict, object, object]:
    """From confirming the plan (run_create) to the run's last step done (Run.finished_at)."""
    from django.utils import timezone

    from provisioning.models import AuditEvent, Run
    from provisioning.runs import run_create

    probes = {"sandbox": sandbox.cpu_seconds, "PostgreSQL": common.postgres_cpu_seconds}
    if workers is not None:
        probes["worker"] = workers.cpu_seconds
    cpu = {name: probe() for name, probe in probes.items()}
    started = timezone.now()
    run = run_create(spec=spec, customer=customer, user=user)
    status, _, finished = common.runs_wait([run.pk], timeout=120, every=0.05)[run.pk]
    time.sleep(0.1)  # the last task returns just after the run is marked finished; its CPU counts
    cpu = {name: probe() - cpu[name] for name, probe in probes.items()}
    if status != Run.Status.SUCCEEDED:
        failed = list(run.steps.exclude(state__in=["succeeded", "adopted"]).values_list("key", "error_message"))
        raise RuntimeError(f"the Onramp run {run.pk} {status}: {failed}")
    calls = AuditEvent.objects.filter(run_id=run.pk, action__startswith="aws.").count()
    return (finished - started).total_seconds(), calls, cpu, run, started


def onramp_once(*, sandbox, data: dict, user, workers=None) -> tuple[float, int, dict, object, object]:
    spec, customer = onramp_prepare(sandbox=sandbox, data=data)
    return onramp_time(sandbox=sandbox, spec=spec, customer=customer, user=user, workers=workers)


def verify(*, sandbox, spec) -> None:
    """Every contender must have built the same thing: checked in the account, untimed."""
    session = sandbox.session(spec.account_id)
    iam = sandbox.client(session, "iam", spec.region)
    assert iam.list_account_aliases()["AccountAliases"] == [spec.account_alias]
    groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=spec.app_name)["Groups"]]
    assert groups == [spec.group_name], groups
    assert len(iam.list_attached_user_policies(UserName=spec.app_name)["AttachedPolicies"]) == 1
    assert len(iam.list_access_keys(UserName=spec.app_name)["AccessKeyMetadata"]) == 1
    from provisioning.registry import member_params, member_policies

    for member in spec.team:
        attached = {p["PolicyName"] for p in iam.list_attached_user_policies(UserName=member.email)["AttachedPolicies"]}
        wanted = member_policies(member_params(member, spec))
        assert attached == {p.rsplit("/", 1)[-1] for p in wanted}, attached
        if member.console:
            iam.get_login_profile(UserName=member.email)
    s3 = sandbox.client(session, "s3", spec.region)
    assert s3.get_public_access_block(Bucket=spec.bucket)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
    assert len(s3.get_bucket_cors(Bucket=spec.bucket)["CORSRules"]) == 2
    ecr = sandbox.client(session, "ecr", spec.region)
    assert json.loads(ecr.get_lifecycle_policy(repositoryName=spec.ecr_repository)["lifecyclePolicyText"])["rules"]


# --- The profile of one Onramp run ------------------------------------------------------------


def _ms(delta) -> float:
    return delta.total_seconds() * 1000


def profile_print(*, run, started, tasks: dict) -> None:
    """Where one run's time goes: AWS calls, task hand-offs, SQL, by step and on the critical path.

    `tasks` maps a step id to what the profiling worker measured around its task."""
    from datetime import UTC, datetime

    from provisioning.models import AuditEvent

    steps = {s.key: s for s in run.steps.all()}
    aws: dict[str, list[float]] = {}
    for key, details in AuditEvent.objects.filter(run_id=run.pk, action__startswith="aws.").values_list(
        "step_key", "details"
    ):
        aws.setdefault(key, []).append(details.get("duration_ms") or 0.0)
    moment = lambda t: datetime.fromtimestamp(t, tz=UTC)  # noqa: E731
    rows = []
    for key, step in steps.items():
        task = tasks.get(step.pk, {})
        deps = [steps[k] for k in step.depends_on]
        ready = max((d.finished_at for d in deps), default=started)
        rows.append(
            {
                "key": key,
                "deps": step.depends_on,
                "gap": _ms(step.started_at - ready),  # previous step done (or confirm) -> this one claimed
                # Enqueued when the dependency's outcome commits (its finished_at, give or take the
                # commit): broker, waiting for a free process, pickup. None: run next in-process.
                "queued": max(0.0, _ms(moment(task["start"]) - ready)) if task else None,
                "run": _ms(step.finished_at - step.started_at),
                "task": (task["end"] - task["start"]) * 1000 if task else None,
                "aws": sum(aws.get(key, [])),
                "calls": len(aws.get(key, [])),
                "sql": task.get("sql_ms"),
                "sql_write": task.get("sql_write_ms"),
                "sql_read": task.get("sql_read_ms"),
                "sql_lock": task.get("sql_lock_ms"),
                "queries": task.get("queries"),
                "finished": step.finished_at,
            }
        )
    by_key = {r["key"]: r for r in rows}
    # The critical path: from the last step to finish, back through the dependency that finished last.
    path, current = [], max(rows, key=lambda r: r["finished"])
    while current:
        path.append(current["key"])
        deps = [by_key[k] for k in current["deps"]]
        current = max(deps, key=lambda r: r["finished"]) if deps else None
    path.reverse()
    wall = _ms(run.finished_at - started)
    first_claim = min(s.started_at for s in steps.values() if s.started_at)
    last_done = max(r["finished"] for r in rows)

    def total(name, keys=None):
        return sum(r[name] or 0 for r in rows if keys is None or r["key"] in keys)

    print(f"\nProfile of one Onramp run ({wall:.0f} ms from confirm to the run finished; {len(rows)} steps):")
    print(f"  confirm -> first step claimed:          {_ms(first_claim - started):7.0f} ms")
    print(f"  last step done -> run finished:         {_ms(run.finished_at - last_done):7.0f} ms")
    print(
        f"  AWS calls:        {total('calls'):4.0f} calls, {total('aws'):7.0f} ms summed over steps, "
        f"{total('aws', path):5.0f} ms on the critical path"
    )
    print(
        f"  SQL in tasks:     {total('queries'):4.0f} stmts, {total('sql'):7.0f} ms summed "
        f"(writes {total('sql_write'):.0f}, reads {total('sql_read'):.0f}, run and audit locks {total('sql_lock'):.0f}; "
        f"commits not included), {total('sql', path):5.0f} ms on the critical path"
    )
    print(
        f"  Task hand-offs:   step done -> next claimed {total('gap', path):5.0f} ms on the critical path "
        f"(of which queued: broker, pickup, waiting for a free process {total('queued', path):.0f} ms)"
    )
    print(f"  Critical path: {' -> '.join(path)}")
    print(f"  {'step':34} {'hand-off':>8} {'queued':>7} {'step':>7} {'aws':>7} {'calls':>5} {'sql':>6} {'stmts':>5}")
    for r in sorted(rows, key=lambda r: r["finished"]):
        mark = "*" if r["key"] in path else " "
        queued = f"{r['queued']:7.1f}" if r["queued"] is not None else "      -"
        sql = f"{r['sql']:6.1f}" if r["sql"] is not None else "     -"
        print(
            f" {mark}{r['key'][:34]:34} {r['gap']:8.1f} {queued} {r['run']:7.1f} {r['aws']:7.1f} "
            f"{r['calls']:5d} {sql} {r['queries'] or 0:5d}"
        )
    print(
        "  (ms; hand-off = the step it waited for done -> this step claimed: recording, dispatch, broker, pickup; "
        "queued = the step it waited for done -> this step's task started; '-': run next in the same process)"
    )


def profile_run(*, sandbox, env: dict, user, ids, pool: str, concurrency: int) -> None:
    """One more Onramp run on a worker whose tasks time their SQL (Django's execute_wrapper)."""
    workers = common.Workers(
        1, env=env, app="bench.common:profiled_app", tag="profile", pool=pool, concurrency=concurrency
    ).start()
    try:
        for _ in range(2):  # warm the worker's processes, as in the timed rounds
            onramp_once(sandbox=sandbox, data=common.spec_data(account_id=ids.new(), name=_name("pw")), user=user)
        for path in common.ARTIFACTS.glob("profile-*.jsonl"):
            path.unlink()
        spec, customer = onramp_prepare(sandbox=sandbox, data=common.spec_data(account_id=ids.new(), name=_name("pf")))
        _, _, cpu, run, started = onramp_time(sandbox=sandbox, spec=spec, customer=customer, user=user, workers=workers)
        time.sleep(0.5)  # the last task's postrun line
        tasks = {}
        for path in common.ARTIFACTS.glob("profile-*.jsonl"):
            for line in path.read_text().splitlines():
                item = json.loads(line)
                tasks[item["step_id"]] = item
        run.refresh_from_db()
        profile_print(run=run, started=started, tasks=tasks)
        print(
            f"  CPU used by the run: worker processes {cpu['worker'] * 1000:.0f} ms, moto server "
            f"{cpu['sandbox'] * 1000:.0f} ms, PostgreSQL {cpu['PostgreSQL'] * 1000:.0f} ms"
        )
    finally:
        workers.stop()


# --- The benchmark ----------------------------------------------------------------------------


def cpu_budget_print(figures: dict) -> None:
    """Why onramp cannot beat the boto3 script here: CPU, not waiting, bounds both."""
    script, onramp = figures["boto3-script"], figures["onramp"]
    cores = os.cpu_count() or 1
    total = onramp.cpu_median()
    sandbox = onramp.cpu_median("sandbox")
    calls = statistics.median(onramp.calls)
    print(
        f"  Why: on the bare sandbox an AWS call costs CPU, not waiting. The boto3 script spends "
        f"{script.cpu_median() * 1000:.0f} ms of CPU (script + sandbox, one call at a time) in its "
        f"{script.median * 1000:.0f} ms. One onramp run spends {total * 1000:.0f} ms of CPU (worker, sandbox, "
        f"PostgreSQL): on {cores} cores no schedule of it ends in under {total / cores * 1000:.0f} ms. The sandbox "
        f"alone (one Python process, so one core at most) spends {sandbox * 1000:.0f} ms on onramp's "
        f"{calls:.0f} calls. Parallel branches pay for Celery, the database and the audit log only when "
        "calls wait on a network: see --aws-latency-ms."
    )


_names: dict[str, int] = {}


def _name(prefix: str) -> str:
    _names[prefix] = _names.get(prefix, 0) + 1
    return f"bench-{prefix}-{_names[prefix]}-{os.getpid() % 10000}"


def proxy_overhead_print(sandbox) -> bool:
    """Print the latency proxy's own overhead, measured before anything is timed; False when it is too high
    for the figures behind it to mean what they say (issue 18, point 0)."""
    measured = common.proxy_overhead(sandbox)
    valid = measured["overhead"] <= common.PROXY_OVERHEAD_LIMIT_MS
    print(
        f"  The proxy's own overhead: a call takes {measured['straight']:.1f} ms straight to the sandbox and "
        f"{measured['proxied']:.1f} ms through the proxy set to {measured['latency']:.0f} ms: "
        f"{measured['overhead']:+.1f} ms a call of its own "
        f"({'valid' if valid else 'INVALID'}: the limit is {common.PROXY_OVERHEAD_LIMIT_MS:.0f} ms).",
        flush=True,
    )
    return valid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto")
    parser.add_argument(
        "--aws-latency-ms", type=float, default=0, help="add this delay to every AWS call, for every contender"
    )
    parser.add_argument("--pool", choices=["prefork", "threads"], default="prefork", help="the worker's pool")
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's processes (or threads)")
    args = parser.parse_args()

    print(f"Machine: {common.machine()}")
    sandbox = common.SandboxAws(latency_ms=args.aws_latency_ms).start()
    proxy_valid = True
    if args.aws_latency_ms:
        print(f"Every AWS call, for every contender, goes through a proxy that adds {args.aws_latency_ms:.0f} ms.")
        proxy_valid = proxy_overhead_print(sandbox)
    workers = None
    try:
        env = common.environment(sandbox_url=sandbox.url)
        common.database_fresh()
        common.redis_flush()
        user = common.django_start()
        from provisioning.spec import spec_parse

        workers = common.Workers(1, env=env, pool=args.pool, concurrency=args.concurrency).start()
        ids = common.AccountIds()
        for _ in range(2):  # warm-up, untimed: the worker's processes import, connect, make clients
            onramp_once(sandbox=sandbox, data=common.spec_data(account_id=ids.new(), name=_name("w")), user=user)

        figures = {name: common.Figures(name) for name in ("runbook-cli", "boto3-script", "onramp")}
        workdir = common.ARTIFACTS
        order = list(figures)
        for round_no in range(args.rounds):
            turn = order[round_no % 3 :] + order[: round_no % 3]  # rotate, so drift hits each alike
            for name in turn:
                data = common.spec_data(account_id=ids.new(), name=_name(name.split("-")[0]))
                spec = spec_parse(data)
                if name == "runbook-cli":
                    seconds, calls, cpu = cli_once(sandbox=sandbox, spec=spec, workdir=workdir)
                elif name == "boto3-script":
                    seconds, calls, cpu = boto3_once(sandbox=sandbox, spec=spec)
                else:
                    seconds, calls, cpu, _, _ = onramp_once(sandbox=sandbox, data=data, user=user, workers=workers)
                verify(sandbox=sandbox, spec=spec)
                figures[name].seconds.append(seconds)
                figures[name].calls.append(calls)
                figures[name].cpu.append(cpu)
                print(
                    f"  round {round_no + 1}: {name:13} {seconds * 1000:8.0f} ms  {calls:3d} AWS calls  CPU "
                    + ", ".join(f"{part} {value * 1000:.0f} ms" for part, value in cpu.items()),
                    flush=True,
                )

        print(f"\nOne onboarding, {args.rounds} rounds, 1 worker ({args.pool}, concurrency {args.concurrency}):")
        print(f"  {'contender':14} {'median':>9} {'max':>9} {'AWS calls':>10}  CPU used (medians)")
        for f in figures.values():
            parts = ", ".join(f"{part} {f.cpu_median(part) * 1000:.0f}" for part in f.cpu[0])
            print(
                f"  {f.name:14} {f.median * 1000:7.0f} ms {f.max * 1000:6.0f} ms {f.calls_text():>10}  "
                f"{f.cpu_median() * 1000:.0f} ms ({parts})"
            )
        onramp = figures["onramp"].median
        cli_ratio = onramp / figures["runbook-cli"].median
        boto3_ratio = onramp / figures["boto3-script"].median
        met_cli, met_boto3 = cli_ratio <= GOAL_CLI, boto3_ratio <= GOAL_BOTO3
        print(f"  onramp/runbook-cli  = {cli_ratio:.3f}  (goal <= {GOAL_CLI}): goal {'met' if met_cli else 'missed'}")
        print(
            f"  onramp/boto3-script = {boto3_ratio:.3f}  (goal <= {GOAL_BOTO3}): "
            f"goal {'met' if met_boto3 else 'missed'}"
        )
        if not met_boto3:
            cpu_budget_print(figures)
        print(f"  moto server CPU so far: {sandbox.cpu_seconds():.1f} s; machine now: {common.machine()}")
        if not proxy_valid:
            print("  These figures are INVALID: the latency proxy added more than it claims (see above).")
        if args.profile == "always" or (args.profile == "auto" and not (met_cli and met_boto3)):
            workers.stop()
            workers = None
            profile_run(sandbox=sandbox, env=env, user=user, ids=ids, pool=args.pool, concurrency=args.concurrency)
        return 0
    finally:
        if workers is not None:
            workers.stop()
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
