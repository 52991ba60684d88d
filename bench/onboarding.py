"""One onboarding, four ways, on the same sandbox in one run, bare and behind 30 and 80 ms a call: the runbook
typed into the AWS CLI, a plain boto3 script, the same calls in parallel (one thread per chain of the plan's
graph: the practical limit), and Onramp (real Celery worker, PostgreSQL, Redis, audit log).

    .venv/bin/python bench/onboarding.py [--rounds 5] [--latencies 0,30,80] [--warmups 2]      (or `make bench`)

Its smoke run (tests/test_bench.py) is the smallest that still takes every path: `--rounds 1 --latencies 0,5
--warmups 0 --cli-latencies 0`, the runbook-cli contender bare only (its round starts the AWS CLI once a command,
most of a smoke run's time; tests/test_bench.py checks that contender's calls and account on its own).

Each round gives each contender a fresh customer and a fresh 12-digit account id, in which the customer
deployed Onramp's role (untimed), and the order of the four rotates from round to round so that drift hits
them alike. Every contender assumes that role first, as Onramp's own identity, and checks who it is there.
Behind a latency, every contender's calls go through the same proxy (sandbox/proxy.py), whose own overhead
is measured and printed first.
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

LATENCIES = (0, 30, 80)
CONTENDERS = ("runbook-cli", "boto3-script", "boto3-parallel", "onramp")
SERVICES = ("sts", "iam", "s3", "ecr")
# What the contenders are sent on a fresh account before the plan's steps: the preflight's calls.
PREFLIGHT_CALLS = (("sts", "AssumeRole"), ("sts", "GetCallerIdentity"))
CREDENTIALS_QUERY = "Credentials.[AccessKeyId,SecretAccessKey,SessionToken]"


@dataclass(frozen=True)
class Goal:
    """onramp / `over` <= `limit`, bare (behind=False) or behind a latency; a guard catches regressions."""

    over: str
    limit: float | None
    behind: bool
    stretch: float | None = None
    guard: bool = False


GOALS = (
    Goal("boto3-parallel", 1.3, behind=True, stretch=1.15),
    Goal("runbook-cli", 0.05, behind=True),
    Goal("boto3-script", None, behind=True),  # printed, no goal
    Goal("boto3-script", 3.0, behind=False, guard=True),
)


# --- The contenders -------------------------------------------------------------------------


def runbook_script(*, spec, endpoint: str) -> tuple[str, int]:
    """The runbook's commands for this spec: the preview's CLI transcript (the same strings), made runnable
    against the sandbox. The script starts as Onramp's own identity; the role's credentials that
    assume-role returns are exported for the commands after it, as the transcript says to do.
    Returns (bash script, number of aws commands)."""
    from provisioning.kinds.team_member.aws import generate_password
    from provisioning.plan import RUN_SESSION_NAME, plan_build, plan_transcript
    from provisioning.registry import GENERATED

    placeholder = RUN_SESSION_NAME.format(run_id="<run id>")
    lines = ["set -euo pipefail"]
    calls = 0
    for line in plan_transcript(spec, plan_build(spec), source_identity="bench").splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        words = shlex.split(line)
        # The preview shows a placeholder where the engineer types a password (`--password=<generated>`).
        words = [w.replace(GENERATED, generate_password()).replace(placeholder, "bench-run") for w in words]
        command = " ".join(shlex.quote(w) for w in ["aws", "--endpoint-url", endpoint, *words[1:]])
        if words[1:3] == ["sts", "assume-role"]:
            lines += [
                f"creds=$({command} --query {CREDENTIALS_QUERY} --output text)",
                'read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN <<<"$creds"',
                "export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN",
            ]
        else:
            lines.append(command + " >/dev/null")
        calls += 1
    return "\n".join(lines) + "\n", calls


def cli_once(*, sandbox, spec, workdir: Path) -> tuple[float, int, dict]:
    script, calls = runbook_script(spec=spec, endpoint=sandbox.url)
    path = workdir / f"runbook-{spec.account_id}.sh"
    path.write_text(script)
    portal = sandbox.portal_credentials()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{common.ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        AWS_ACCESS_KEY_ID=portal["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=portal["aws_secret_access_key"],
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


def boto3_clients(*, sandbox, spec) -> tuple[dict, list[str]]:
    """Warm clients, made before the clock starts: Onramp's own identity's STS client ("portal"), which assumes
    the role, and one client per service in the account, which get the role's credentials the moment
    AssumeRole returns them. Every call is counted (the list of operations made; appends are thread-safe)."""
    from sandbox.controller import session_make

    session = session_make(**sandbox.portal_credentials())
    made: list[str] = []

    def count(model=None, **kwargs):
        made.append(model.name)

    clients = {}
    for name, service in (("portal", "sts"), *((s, s) for s in SERVICES)):
        client = sandbox.client(session, service, spec.region)
        client.meta.events.register("after-call.*.*", count)
        client.meta.events.register("after-call-error.*.*", count)
        clients[name] = client
    return clients, made


def _reach(clients: dict, spec) -> None:
    """The preflight's calls: assume the customer's role, then check who we are in the account."""
    from botocore.credentials import Credentials

    from provisioning.plan import RUN_SESSION_NAME
    from provisioning.registry import assume_role_call

    call = assume_role_call(
        role_arn=spec.role_arn,
        external_id=spec.external_id,
        session_name=RUN_SESSION_NAME.format(run_id="bench"),
        source_identity="bench",
    )
    answer = clients["portal"].assume_role(**call.params)["Credentials"]
    role = Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
    for service in SERVICES:
        clients[service]._request_signer._credentials = role  # the warm client, now signing as the role
    clients["sts"].get_caller_identity()


def _send(clients: dict, call) -> None:
    """One declared call, a generated password filled in. AWS's "not there yet" right after a create is
    waited out as Onramp's steps do (provisioning.aws.settle; the bench's moto never answers it)."""
    from provisioning.aws.settle import settle
    from provisioning.kinds.team_member.aws import generate_password
    from provisioning.registry import GENERATED

    params = {name: generate_password() if value == GENERATED else value for name, value in call.params.items()}
    settle(lambda: getattr(clients[call.service], call.method)(**params))


def boto3_script(clients: dict, spec) -> None:
    """The runbook's API calls, one after the other, as a plain script would make them: the plan's
    calls, exactly as Onramp's steps send them on a fresh account."""
    from provisioning.plan import plan_build

    _reach(clients, spec)
    for step in plan_build(spec):
        for call in step.calls:
            _send(clients, call)


def boto3_parallel(clients: dict, spec) -> None:
    """The same calls, each step in a thread of its own that starts when the steps it waits for are done:
    every chain of the plan's graph (a branch; each team member) runs in parallel, as far as it allows."""
    from provisioning.plan import plan_build

    steps = plan_build(spec)
    done = {step.key: threading.Event() for step in steps}
    failed: list[Exception] = []

    def chain(step) -> None:
        try:
            for key in step.depends_on:
                done[key].wait()
            for call in step.calls if not failed else ():
                _send(clients, call)
        except Exception as exc:
            failed.append(exc)
        finally:
            done[step.key].set()

    _reach(clients, spec)  # the preflight, which every other step waits for
    done[steps[0].key].set()
    threads = [threading.Thread(target=chain, args=(step,)) for step in steps[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def boto3_once(*, sandbox, spec, parallel: bool = False) -> tuple[float, int, dict]:
    clients, made = boto3_clients(sandbox=sandbox, spec=spec)
    sandbox.warm_account(spec.account_id)
    clients["portal"].get_caller_identity()  # opens the connection; the account's clients open theirs below
    made.clear()
    cpu, own, started = sandbox.cpu_seconds(), time.process_time(), time.perf_counter()
    (boto3_parallel if parallel else boto3_script)(clients, spec)
    seconds = time.perf_counter() - started
    return seconds, len(made), {"script": time.process_time() - own, "sandbox": sandbox.cpu_seconds() - cpu}


# --- Critical paths ----------------------------------------------------------------------------


def critical_path(steps: list[tuple[str, list]], calls: dict[str, int]) -> tuple[int, list[str]]:
    """The chain of the plan's graph with the most calls: `steps` in plan order as (key, the keys it waits
    for), `calls` the calls each step makes. (calls on the path, the path's keys)."""
    longest: dict[str, tuple[int, list[str]]] = {}
    for key, depends_on in steps:
        before = max((longest[d] for d in depends_on), key=lambda item: item[0], default=(0, []))
        longest[key] = (before[0] + calls.get(key, 0), [*before[1], key])
    return max(longest.values(), key=lambda item: item[0])


def plan_calls(spec) -> tuple[list, dict[str, Counter]]:
    """The plan's graph and, per step, the calls boto3-parallel makes: the declared ones, the preflight's."""
    from provisioning.plan import plan_build

    steps = plan_build(spec)
    made = {step.key: Counter((call.service, call.operation) for call in step.calls) for step in steps}
    made[steps[0].key].update(PREFLIGHT_CALLS)
    return [(step.key, list(step.depends_on)) for step in steps], made


def contender_critical_path(name: str, spec, calls: int) -> int:
    """Calls one after the other for the sequential contenders; the graph's longest chain for the parallel one."""
    if name not in ("boto3-parallel",):
        return calls
    graph, made = plan_calls(spec)
    return critical_path(graph, {key: made[key].total() for key in made})[0]


def call_spans(run) -> dict[str, list[tuple[float, float, str, str]]]:
    """Onramp's AWS calls per step, from the run's audit rows: (start, end) in seconds since the epoch, as
    the audit hook timed them, with the service and operation."""
    from provisioning.models import AuditEvent

    spans: dict[str, list] = {}
    for key, action, at, details in AuditEvent.objects.filter(run_id=run.pk, action__startswith="aws.").values_list(
        "step_key", "action", "created_at", "details"
    ):
        end = at.timestamp()
        service, operation = action.split(".")[1:3]
        spans.setdefault(key, []).append((end - (details.get("duration_ms") or 0) / 1000, end, service, operation))
    return spans


def sequential_calls(spans: list[tuple]) -> int:
    """How many of a step's calls ran one after the other: calls sent side by side count once (the most
    calls that do not overlap, taken by earliest end)."""
    count, free_at = 0, float("-inf")
    for start, end, *_ in sorted(spans, key=lambda span: span[1]):
        if start >= free_at - 0.0005:  # the audit's clock: half a millisecond of slack
            count, free_at = count + 1, end
    return count


def waiting_ms(spans: list[tuple]) -> float:
    """The time a step spent waiting on AWS: the union of its calls' spans, in ms."""
    total, reach = 0.0, float("-inf")
    for start, end, *_ in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total * 1000


def onramp_calls(run) -> tuple[dict[str, Counter], int]:
    """What Onramp sent, per step, from the run's audit rows; and the calls on its critical path."""
    spans = call_spans(run)
    made = {key: Counter((service, op) for *_, service, op in items) for key, items in spans.items()}
    graph = [(s.key, s.depends_on) for s in run.steps.order_by("position")]
    return made, critical_path(graph, {key: sequential_calls(items) for key, items in spans.items()})[0]


def onramp_prepare(*, sandbox, data: dict, user):
    """Untimed: the validated spec, the customer record (`user` on its team), the account's first IAM call."""
    from provisioning.spec import spec_parse

    spec = spec_parse(data)
    customer = common.customer_create(data, lead=user)
    sandbox.warm_account(spec.account_id)
    return spec, customer


# What each onramp run's plan read took (the preview's wait, before the confirm: not in the timed figure).
READ_SECONDS: list[float] = []


def onramp_plan(*, spec, customer, user):
    """Untimed in the figure, measured apart (READ_SECONDS): the plan's read of the account, as every preview now
    makes one (in this process, as the onboard command does), and its items as the tech lead confirms them."""
    from provisioning.models import AccountRead
    from provisioning.plan import plan_decide
    from provisioning.reads import account_read_now

    begun = time.perf_counter()
    read = account_read_now(customer=customer, spec=spec, user=user)
    READ_SECONDS.append(time.perf_counter() - begun)
    if read.status != AccountRead.Status.DONE:
        raise RuntimeError(f"the plan's read failed: {read.error_message}")
    return read, plan_decide(read.items, delete=set(), typed={})


def onramp_time(*, sandbox, spec, customer, user, workers=None) -> tuple[float, int, dict, object, object]:
    """From confirming the plan read from the account (run_create) to the run's last step done (Run.finished_at):
    the run's preflight reads the account again (the stale-plan check) before any write."""
    from django.utils import timezone

    from provisioning.engine.runs import run_create
    from provisioning.models import AuditEvent, Run

    read, items = onramp_plan(spec=spec, customer=customer, user=user)

    probes = {"sandbox": sandbox.cpu_seconds, "PostgreSQL": common.postgres_cpu_seconds}
    if workers is not None:
        probes["worker"] = workers.cpu_seconds
    cpu = {name: probe() for name, probe in probes.items()}
    started = timezone.now()
    run = run_create(spec=spec, customer=customer, user=user, read=read, items=items)
    status, _, finished = common.runs_wait([run.pk], timeout=120, every=0.05)[run.pk]
    time.sleep(0.1)  # the last task returns just after the run is marked finished; its CPU counts
    cpu = {name: probe() - cpu[name] for name, probe in probes.items()}
    if status != Run.Status.SUCCEEDED:
        failed = list(run.steps.exclude(state__in=["succeeded", "adopted"]).values_list("key", "error_message"))
        raise RuntimeError(f"the Onramp run {run.pk} {status}: {failed}")
    calls = AuditEvent.objects.filter(run_id=run.pk, action__startswith="aws.").count()
    return (finished - started).total_seconds(), calls, cpu, run, started


def onramp_once(*, sandbox, data: dict, user, workers=None) -> tuple[float, int, dict, object, object]:
    spec, customer = onramp_prepare(sandbox=sandbox, data=data, user=user)
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
    from provisioning.kinds.team_member.declaration import member_params, member_policies

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


# --- Where Onramp's time goes -------------------------------------------------------------------


def _ms(delta) -> float:
    return delta.total_seconds() * 1000


def _profile_rows(*, run, started, tasks: dict) -> list[dict]:
    """Per step: hand-off (the step it waited for done, or confirm -> claimed), queued (-> its task started:
    broker, waiting for a free slot, pickup; None when run next in the same task), the step itself, its AWS
    calls and the time it waited on them, the SQL of the task that ran it. `tasks`: what the profiling worker
    measured around each task."""
    from datetime import UTC, datetime

    spans = call_spans(run)
    steps = {s.key: s for s in run.steps.all()}
    rows = []
    for key, step in steps.items():
        task = tasks.get(step.pk, {})
        ready = max((steps[k].finished_at for k in step.depends_on), default=started)
        task_start = datetime.fromtimestamp(task["start"], tz=UTC) if task else None
        rows.append(
            {
                "key": key,
                "deps": step.depends_on,
                "gap": _ms(step.started_at - ready),
                "queued": max(0.0, _ms(task_start - ready)) if task else None,
                "run": _ms(step.finished_at - step.started_at),
                "aws": waiting_ms(spans.get(key, [])),
                "calls": len(spans.get(key, [])),
                "sql": task.get("sql_ms"),
                "queries": task.get("queries"),
                "finished": step.finished_at,
            }
        )
    return rows


def _path_of(rows: list[dict]) -> list[str]:
    """The critical path as it ran: from the last step to finish, back through the dependency that finished last."""
    by_key = {r["key"]: r for r in rows}
    path, current = [], max(rows, key=lambda r: r["finished"])
    while current:
        path.append(current["key"])
        deps = [by_key[k] for k in current["deps"]]
        current = max(deps, key=lambda r: r["finished"]) if deps else None
    return path[::-1]


def extra_calls(run, spec) -> dict[str, Counter]:
    """Per step, the calls Onramp made that boto3-parallel does not (its audit rows less the plan's calls)."""
    _, limit = plan_calls(spec)
    made, _ = onramp_calls(run)
    return {
        key: counter - limit.get(key, Counter()) for key, counter in made.items() if counter - limit.get(key, Counter())
    }


def breakdown_print(*, run, spec, started, tasks: dict) -> dict:
    """Where one run's time goes on its critical path: AWS waiting (extra calls among it), the steps' own work
    besides (Python, SQL), hand-offs (of which Celery's queue), the run's finish; SQL across the last three.
    The figures, for the summary."""
    rows = _profile_rows(run=run, started=started, tasks=tasks)
    path = _path_of(rows)
    on = [r for r in rows if r["key"] in path]
    extra = extra_calls(run, spec)
    graph, limit = plan_calls(spec)
    wall = _ms(run.finished_at - started)
    f = {
        "wall": wall,
        "aws": sum(r["aws"] for r in on),
        "calls": sum(r["calls"] for r in on),
        "critical_calls": onramp_calls(run)[1],
        "limit_calls": critical_path(graph, {k: c.total() for k, c in limit.items()})[0],
        "extra_calls": sum(extra.get(k, Counter()).total() for k in path),
        "steps": sum(r["run"] - r["aws"] for r in on),
        "handoffs": sum(r["gap"] for r in on),
        "queued": sum(r["queued"] or 0 for r in on),
        "sql": sum(r["sql"] or 0 for r in on),
        "tail": _ms(run.finished_at - max(r["finished"] for r in rows)),
    }
    print(f"\n  Where the time goes on Onramp's critical path (one run, {wall:.0f} ms from confirm to finished):")
    print(f"    path: {' -> '.join(path)}")
    print(
        f"    AWS waiting      {f['aws']:6.0f} ms  {f['critical_calls']} calls one after the other "
        f"(boto3-parallel: {f['limit_calls']}); {f['extra_calls']} of the path's {f['calls']} calls are extra"
    )
    print(f"    steps' own work  {f['steps']:6.0f} ms  besides AWS: Python, botocore, SQL inside the steps")
    print(
        f"    hand-offs        {f['handoffs']:6.0f} ms  step done -> next claimed: its record, dispatch, claim "
        f"(of which Celery's queue: broker, a free slot, pickup {f['queued']:.0f} ms)"
    )
    print(f"    run's finish     {f['tail']:6.0f} ms  last step done -> the run finished")
    print(f"    SQL              {f['sql']:6.0f} ms  in the tasks that ran the path (within the two lines above)")
    print("    Extra calls, by step (Onramp's audit rows less boto3-parallel's calls; * on the critical path):")
    for key, counter in extra.items():
        items = ", ".join(f"{n}x {service}.{op}" for (service, op), n in sorted(counter.items()))
        print(f"      {'*' if key in path else ' '}{key[:40]:40} {items}")
    _steps_print(rows, path)
    return f


def _steps_print(rows: list[dict], path: list[str]) -> None:
    print(f"    {'step':34} {'hand-off':>8} {'queued':>7} {'step':>7} {'aws':>7} {'calls':>5} {'sql':>6} {'stmts':>5}")
    for r in sorted(rows, key=lambda r: r["finished"]):
        queued = f"{r['queued']:7.1f}" if r["queued"] is not None else "      -"
        sql = f"{r['sql']:6.1f}" if r["sql"] is not None else "     -"
        print(
            f"   {'*' if r['key'] in path else ' '}{r['key'][:34]:34} {r['gap']:8.1f} {queued} {r['run']:7.1f} "
            f"{r['aws']:7.1f} {r['calls']:5d} {sql} {r['queries'] or 0:5d}"
        )
    print("    (ms; * on the critical path; queued '-': run next in the same process, no broker)")


def profile_run(*, sandbox, env: dict, user, ids, pool: str, concurrency: int, warmups: int = 2) -> dict:
    """One more Onramp run on a worker whose tasks time their SQL (Django's execute_wrapper); its breakdown."""
    workers = common.Workers(
        1, env=env, app="bench.common:profiled_app", tag="profile", pool=pool, concurrency=concurrency
    ).start()
    try:
        for _ in range(warmups):  # warm the worker's processes, as in the timed rounds
            onramp_once(sandbox=sandbox, data=common.spec_data(account_id=ids.new(), name=_name("pw")), user=user)
        for path in common.ARTIFACTS.glob("profile-*.jsonl"):
            path.unlink()
        spec, customer = onramp_prepare(
            sandbox=sandbox, data=common.spec_data(account_id=ids.new(), name=_name("pf")), user=user
        )
        with common.collector_held():
            _, _, cpu, run, started = onramp_time(
                sandbox=sandbox, spec=spec, customer=customer, user=user, workers=workers
            )
        time.sleep(0.5)  # the last task's postrun line
        tasks = {}
        for path in common.ARTIFACTS.glob("profile-*.jsonl"):
            for line in path.read_text().splitlines():
                item = json.loads(line)
                tasks[item["step_id"]] = item
        run.refresh_from_db()
        figures = breakdown_print(run=run, spec=spec, started=started, tasks=tasks)
        print(
            f"    CPU used by the run: worker {cpu['worker'] * 1000:.0f} ms, moto server "
            f"{cpu['sandbox'] * 1000:.0f} ms, PostgreSQL {cpu['PostgreSQL'] * 1000:.0f} ms"
        )
        return figures
    finally:
        workers.stop()


# --- The benchmark ----------------------------------------------------------------------------


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


def contender_once(name: str, *, sandbox, spec, data: dict, user, workers) -> tuple[float, int, int, dict]:
    """One timed onboarding by one contender, checked: (seconds, calls, calls on its critical path, CPU)."""
    if name == "runbook-cli":
        seconds, calls, cpu = cli_once(sandbox=sandbox, spec=spec, workdir=common.ARTIFACTS)
    elif name == "onramp":
        seconds, calls, cpu, run, _ = onramp_once(sandbox=sandbox, data=data, user=user, workers=workers)
    else:
        seconds, calls, cpu = boto3_once(sandbox=sandbox, spec=spec, parallel=name == "boto3-parallel")
    verify(sandbox=sandbox, spec=spec)
    critical = onramp_calls(run)[1] if name == "onramp" else contender_critical_path(name, spec, calls)
    return seconds, calls, critical, cpu


def rounds_run(*, sandbox, rounds: int, user, ids, workers, contenders=CONTENDERS) -> dict[str, common.Figures]:
    from provisioning.spec import spec_parse

    figures = {name: common.Figures(name) for name in contenders}
    order = list(figures)
    for round_no in range(rounds):
        turn = order[round_no % len(order) :] + order[: round_no % len(order)]  # rotate: drift hits each alike
        for name in turn:
            data = common.spec_data(account_id=ids.new(), name=_name(name.split("-")[-1][:6]))
            spec = spec_parse(data)
            with common.collector_held():
                seconds, calls, critical, cpu = contender_once(
                    name, sandbox=sandbox, spec=spec, data=data, user=user, workers=workers
                )
            f = figures[name]
            f.seconds.append(seconds), f.calls.append(calls), f.critical.append(critical), f.cpu.append(cpu)
            print(
                f"    round {round_no + 1}: {name:14} {seconds * 1000:8.0f} ms  {calls:3d} AWS calls, "
                f"{critical:3d} on its critical path  CPU "
                + ", ".join(f"{part} {value * 1000:.0f} ms" for part, value in cpu.items()),
                flush=True,
            )
    return figures


def figures_print(figures: dict[str, common.Figures]) -> None:
    print(f"    {'contender':15} {'median':>9} {'max':>9} {'AWS calls':>10} {'critical path':>14}  CPU used (medians)")
    for f in figures.values():
        parts = ", ".join(f"{part} {f.cpu_median(part) * 1000:.0f}" for part in f.cpu[0])
        print(
            f"    {f.name:15} {f.median * 1000:7.0f} ms {f.max * 1000:6.0f} ms {f.calls_text():>10} "
            f"{f.critical_text():>8} calls  {f.cpu_median() * 1000:.0f} ms ({parts})"
        )


def goals_check(figures: dict[str, common.Figures], *, latency: float) -> list[tuple[str, float, str]]:
    """Each ratio that applies at this latency, with its verdict: (text, ratio, verdict)."""
    verdicts = []
    for goal in GOALS:
        if goal.behind != bool(latency) or goal.over not in figures or "onramp" not in figures:
            continue
        ratio = figures["onramp"].median / figures[goal.over].median
        if goal.limit is None:
            verdict = "printed (no goal)"
        else:
            verdict = "met" if ratio <= goal.limit else "MISSED"
            if goal.stretch is not None:
                verdict += f"; stretch <= {goal.stretch}: {'met' if ratio <= goal.stretch else 'missed'}"
            verdict = f"{'guard' if goal.guard else 'goal'} <= {goal.limit}: {verdict}"
        verdicts.append((f"onramp/{goal.over}", ratio, verdict))
    return verdicts


def phase(*, server, latency: float, args, user, ids) -> dict:
    """Every contender at one latency, with its own proxy and worker; the breakdown behind a latency."""
    sandbox = common.SandboxAws(server=server, latency_ms=latency).start()
    where = f"behind {latency:.0f} ms a call" if latency else "bare (straight to the sandbox)"
    print(f"\n== {where} ==", flush=True)
    contenders = args.contenders
    if args.cli_latencies is not None and latency not in args.cli_latencies:
        contenders = tuple(name for name in contenders if name != "runbook-cli")
        print("  runbook-cli: not at this latency (--cli-latencies)", flush=True)
    valid = proxy_overhead_print(sandbox) if latency else True
    env = common.environment(sandbox_url=sandbox.url)
    from django.conf import settings

    settings.AWS_ENDPOINT_URL = sandbox.url  # this process reads the account too (each plan's read)
    READ_SECONDS.clear()
    workers = common.Workers(1, env=env, pool=args.pool, concurrency=args.concurrency).start()
    try:
        for _ in range(args.warmups):  # warm-up, untimed: the worker's processes import, connect, make clients
            onramp_once(sandbox=sandbox, data=common.spec_data(account_id=ids.new(), name=_name("w")), user=user)
        figures = rounds_run(
            sandbox=sandbox, rounds=args.rounds, user=user, ids=ids, workers=workers, contenders=contenders
        )
    finally:
        workers.stop()
    print(f"  {where}, {args.rounds} rounds, 1 worker ({args.pool}, concurrency {args.concurrency}):")
    figures_print(figures)
    if READ_SECONDS:
        reads = sorted(READ_SECONDS)
        print(f"    onramp's plan read (the preview's wait before the confirm, not timed above): median "
              f"{reads[len(reads) // 2] * 1000:.0f} ms over {len(reads)} reads")  # fmt: skip
    verdicts = goals_check(figures, latency=latency)
    for text, ratio, verdict in verdicts:
        print(f"    {text:22} = {ratio:6.3f}  {verdict}")
    if not valid:
        print("    These figures are INVALID: the latency proxy added more than it claims (see above).")
    breakdown = None
    if args.profile == "always" or (args.profile == "auto" and latency):
        breakdown = profile_run(
            sandbox=sandbox, env=env, user=user, ids=ids, pool=args.pool, concurrency=args.concurrency,
            warmups=args.warmups,
        )  # fmt: skip
    sandbox.stop()
    return {"latency": latency, "figures": figures, "verdicts": verdicts, "valid": valid, "breakdown": breakdown}


def summary_print(phases: list[dict]) -> None:
    """The table of the four contenders at every latency ("-" where one did not run: --cli-latencies), and every
    ratio with its verdict."""
    print(f"\nSummary (medians; ratios compare contenders within this one run; machine: {common.machine()}):")
    heads = [f"{p['latency']:.0f} ms" if p["latency"] else "bare" for p in phases]
    print(f"  {'contender':15} " + " ".join(f"{h:>10}" for h in heads) + "   critical path (calls)")
    for name in dict.fromkeys(name for p in phases for name in p["figures"]):
        first = next(p["figures"][name] for p in phases if name in p["figures"])
        cells = " ".join(
            f"{p['figures'][name].median * 1000:8.0f} ms" if name in p["figures"] else f"{'-':>10}" for p in phases
        )
        print(f"  {name:15} {cells}   {first.critical_text()}")
    for p in phases:
        where = f"behind {p['latency']:.0f} ms" if p["latency"] else "bare"
        for text, ratio, verdict in p["verdicts"]:
            print(f"  {where:14} {text:22} = {ratio:6.3f}  {verdict}{'' if p['valid'] else '  (INVALID proxy)'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmups", type=int, default=2, help="untimed runs first (0: figures are cold; the tests)")
    parser.add_argument("--latencies", default=",".join(str(x) for x in LATENCIES), help="ms a call, e.g. 0,30,80")
    parser.add_argument(
        "--contenders", type=lambda text: tuple(text.split(",")), default=CONTENDERS, help="a subset, to iterate"
    )
    parser.add_argument(
        "--cli-latencies",
        type=lambda text: tuple(float(x) for x in text.split(",") if x.strip()),
        default=None,
        help="the latencies at which runbook-cli runs (default: every one); the smoke run: 0",
    )
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto", help="auto: behind latency")
    parser.add_argument("--pool", choices=["prefork", "threads"], default=common.DEFAULT_POOL, help="the worker's pool")
    parser.add_argument("--concurrency", type=int, default=common.DEFAULT_CONCURRENCY, help="processes or threads")
    args = parser.parse_args()

    print(f"Machine: {common.machine()}")
    print("Speeds are compared only as ratios within this one run: the machine's cores are shared with other work.")
    server = common.SandboxAws().start()
    try:
        common.environment(sandbox_url=server.url)
        common.database_fresh()
        common.redis_flush()
        user = common.django_start()
        ids = common.AccountIds()
        latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
        phases = [phase(server=server.server, latency=latency, args=args, user=user, ids=ids) for latency in latencies]
        summary_print(phases)
        common.dump(
            common.ARTIFACTS / "onboarding.json",
            [{**p, "figures": {k: f.__dict__ for k, f in p["figures"].items()}} for p in phases],
        )
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
