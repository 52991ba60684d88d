"""The benchmark compares like with like: each contender makes the runbook's calls for the same spec
and leaves the same account behind, checked in the sandbox by the benchmark's own `verify`. And each
bench runs once at tiny sizes, so none of them rots."""

import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from bench import audit_history, common
from bench.onboarding import (
    CONTENDERS,
    boto3_once,
    cli_once,
    critical_path,
    onramp_calls,
    onramp_once,
    plan_calls,
    runbook_script,
    sequential_calls,
    verify,
    waiting_ms,
)
from provisioning.models import AuditEvent
from provisioning.spec import spec_parse
from tests.conftest import customer_role_deploy, per_worker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench_aws(aws):
    return common.SandboxAws(server=aws).start()


# The contenders are timed against moto, which has no consistency window; here they are checked for making the
# same calls, which waiting out AWS's settling (a retry of a call) would blur, and the CLI does not wait it out.
# Its role session lives an hour, as AWS's default: its 40 CLI processes outlived the sandbox's 30 s once, under load 9.
@pytest.mark.slow  # the runbook as typed: about 40 aws CLI processes, one after another
@pytest.mark.strict(consistency_window=0, session_max_age=3600.0)
def test_the_runbook_script_and_the_boto3_script_make_the_same_calls_and_build_the_same_account(bench_aws, tmp_path):
    by_cli = spec_parse(common.spec_data(account_id="210987654321", name="bench-cli"))
    by_script = spec_parse(common.spec_data(account_id="310987654321", name="bench-script"))
    script, commands = runbook_script(spec=by_cli, endpoint=bench_aws.url)
    assert script.count(f"aws --endpoint-url {bench_aws.url} ") == commands
    assert "<generated>" not in script  # the placeholder the preview shows became a password

    _, cli_calls, cli_cpu = cli_once(sandbox=bench_aws, spec=by_cli, workdir=tmp_path)
    verify(sandbox=bench_aws, spec=by_cli)
    assert not list(tmp_path.iterdir())  # the script held a console password: it is deleted

    _, script_calls, script_cpu = boto3_once(sandbox=bench_aws, spec=by_script)
    verify(sandbox=bench_aws, spec=by_script)

    assert cli_calls == commands == script_calls
    assert cli_cpu["aws CLI"] > 0 and set(script_cpu) == {"script", "sandbox"}
    assert _runbook_calls(script)[("sts", "AssumeRole")] == 1  # as Onramp's own identity, like every contender


@pytest.mark.strict(consistency_window=0)
def test_boto3_parallel_makes_the_scripts_calls_along_the_plans_graph_and_builds_the_same_account(bench_aws):
    spec = spec_parse(common.spec_data(account_id="510987654321", name="bench-parallel"))
    _, calls, cpu = boto3_once(sandbox=bench_aws, spec=spec, parallel=True)
    verify(sandbox=bench_aws, spec=spec)
    graph, made = plan_calls(spec)
    assert calls == sum(counter.total() for counter in made.values())  # the script's calls, no more
    # Its critical path, from the graph: the role, who we are, then the app user's branch.
    on_path, path = critical_path(graph, {key: counter.total() for key, counter in made.items()})
    assert path == ["preflight", "iam.group", "iam.app_user", "iam.media_policy", "iam.access_key"]
    assert on_path == 2 + 1 + 2 + 2 + 1 < calls


def test_calls_sent_side_by_side_count_once_on_a_critical_path():
    one_after_another = [(0.0, 1.0, "sts", "AssumeRole"), (1.0, 2.0, "sts", "GetCallerIdentity")]
    beside = [*one_after_another, (1.1, 1.9, "iam", "GetRole")]
    assert sequential_calls(one_after_another) == sequential_calls(beside) == 2
    assert waiting_ms(beside) == pytest.approx(2000)
    graph = [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["c"])]
    assert critical_path(graph, {"a": 2, "b": 5, "c": 1, "d": 1}) == (7, ["a", "b"])


def test_the_onramp_contender_builds_the_account_the_scripts_build(worker, alice, bench_aws, aws):
    data = common.spec_data(account_id="410987654321", name="bench-onramp")
    customer_role_deploy(aws, data["account_id"], external_id=common.EXTERNAL_ID)  # as the bench's customers did
    _, calls, _, run, _ = onramp_once(sandbox=bench_aws, data=data, user=alice)
    verify(sandbox=bench_aws, spec=spec_parse(data))
    assert calls == AuditEvent.objects.filter(run=run, action__startswith="aws.").count()
    script, commands = runbook_script(spec=spec_parse(data), endpoint=bench_aws.url)
    made = Counter(
        tuple(action.split(".")[1:])
        for action in AuditEvent.objects.filter(run=run, action__startswith="aws.").values_list("action", flat=True)
    )
    # Every call of the runbook, as many times, and more: the looks before a create that could replace.
    runbook = _runbook_calls(script)
    assert runbook.total() == commands and runbook <= made
    # The app user is new: its key is made without listing its keys first (nothing could be there); the preflight's
    # access-key check lists them once (a user made by hand could hold two already).
    listed = AuditEvent.objects.filter(run=run, action="aws.iam.ListAccessKeys")
    assert list(listed.values_list("step_key", flat=True)) == ["preflight"]
    per_step, on_path = onramp_calls(run)
    assert per_step["preflight"][("iam", "GetRole")] == 1 and on_path >= 8


def _runbook_calls(script: str) -> Counter:
    """(service, operation) of each `aws` command: `aws ... iam create-user` is ("iam", "CreateUser")."""
    calls = Counter()
    for line in script.splitlines():
        if "aws --endpoint-url " in line:
            words = shlex.split(line[line.index("aws --endpoint-url ") :])
            service, command = words[3], words[4]  # after `aws --endpoint-url URL`
            operation = "".join(part.capitalize() for part in command.split("-"))
            calls[({"s3api": "s3"}.get(service, service), operation)] += 1
    return calls


@pytest.mark.lenient
def test_the_proxys_own_overhead_is_measured_through_the_proxy_the_bench_uses(aws):
    """The bench prints this before timing anything (a verdict there, not a timed assertion here)."""
    behind = common.SandboxAws(server=aws, latency_ms=5).start()
    try:
        measured = common.proxy_overhead(behind, calls=10)
    finally:
        behind.stop()
    assert measured["latency"] == 5 and set(measured) == {"straight", "proxied", "latency", "overhead"}
    assert behind.proxy.calls.count("GetCallerIdentity") == 1 + 10  # a warm-up call, then the measured ones
    assert common.proxy_overhead(common.SandboxAws(server=aws).start())["overhead"] == 0.0  # no proxy, none


# --- Each bench, once, at tiny sizes: in its own database and on its own queue, as `make bench` runs it ---------


def _bench(script: str, *args: str, tmp_path, **env) -> str:
    """Run a bench as `make bench` does, at tiny sizes; its output (it must exit 0)."""
    database = os.environ.get("TEST_DATABASE_NAME", "test_onramp")
    environment = {
        **os.environ,
        "BENCH_DATABASE": per_worker(f"{database}_bench"),
        "BENCH_REDIS_URL": settings.REDIS_URL,
        "BENCH_ARTIFACTS": str(tmp_path),
        **env,
    }
    done = subprocess.run(
        [sys.executable, str(common.ROOT / "bench" / script), *args],
        env=environment, capture_output=True, text=True, timeout=1200, cwd=common.ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_onboarding_bench_runs_every_contender_bare_and_behind_a_latency(tmp_path):
    # Its smallest size that still takes both paths (bare, and behind a latency with the proxy measured and the
    # critical path profiled): one round, no warm-up; the runbook-cli contender (a CLI process a command) bare
    # only, as the runbook script test above checks its calls and account on its own.
    out = _bench(
        "onboarding.py", "--rounds", "1", "--latencies", "0,5", "--warmups", "0", "--cli-latencies", "0",
        tmp_path=tmp_path,
    )  # fmt: skip
    summary = out[out.index("Summary") :]
    for name in CONTENDERS:
        assert name in summary
    assert re.search(r"^  runbook-cli +\d+ ms +- +\d+$", summary, re.MULTILINE), summary  # bare, not behind 5 ms
    assert "bare           onramp/boto3-script" in summary and "guard <= 3.0" in summary
    assert "behind 5 ms    onramp/boto3-parallel" in summary and "goal <= 1.3" in summary
    assert "The proxy's own overhead" in out and "Where the time goes on Onramp's critical path" in out


@pytest.mark.slow
def test_the_throughput_bench_runs_each_pool(tmp_path):
    out = _bench(
        "throughput.py", "--onboardings", "1", "--latency-ms", "5", "--pools", "prefork:1,threads:1", "--warmups", "0",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert "prefork x1: 1 onboardings" in out and "threads x1: 1 onboardings" in out
    assert out.count("reached") == 2 and "All succeeded, none duplicated: yes" in out


@pytest.mark.slow
def test_the_audit_history_bench_seeds_its_own_database_and_prints_each_page_against_the_goal():
    """One tiny round of `make bench`'s audit history (3,000 events, 2 requests a page): it seeds with SQL in its
    own database and prints p50/p95 of each page and a verdict (figures printed, nothing timed here)."""
    name = per_worker(f"{os.environ.get('TEST_DATABASE_NAME', 'test_onramp')}_bench_audit")
    env = {**os.environ, "BENCH_DATABASE_NAME": name}
    command = [sys.executable, "bench/audit_history.py", "--events", "3000", "--requests", "2", "--fresh"]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        with psycopg.connect(f"{audit_history.SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Seeded 3,000 events" in done.stdout
    for page in ("first page", "customer only", "outcome=error", "page 101 (keyset cursor)", "one run's slice"):
        assert re.search(rf"^  {re.escape(page)} +[\d.]+ +[\d.]+ +[\d.]+", done.stdout, re.MULTILINE), page
    assert re.search(r"^Worst p95 [\d.]+ ms against the goal p95 < 100 ms: (met|MISSED)\.$", done.stdout, re.MULTILINE)


def test_the_drift_bench_checks_its_accounts_in_one_round(worker, alice, bench_aws, aws, capsys):
    """bench/drift.py at its smallest: three accounts set up by plain boto3 with members that use no managed
    policy, then the schedule's check of all three by the worker, timed and reported."""
    from bench import drift as drift_bench
    from provisioning.models import DriftState

    customers = drift_bench.accounts_setup(
        bench_aws,
        count=3,
        user=alice,
        before=lambda account_id: customer_role_deploy(aws, account_id, common.EXTERNAL_ID),
    )
    # Set up by hand moments ago, the accounts settle before the schedule checks them, as they would overnight: the
    # windows after a change (ECR's lifecycle policy shown as it was before for a moment) are over.
    aws.clock_advance(60)
    figures = drift_bench.drift_time(customers, sandbox=bench_aws)
    assert figures["states"] == {"in_sync": 3}
    assert DriftState.objects.filter(customer__in=customers, state="in_sync").count() == 3
    assert figures["split"]["calls"] == AuditEvent.objects.filter(action__startswith="aws.", run__isnull=True).count()
    drift_bench.report(
        figures, latency=0, pool="threads", concurrency=4, takers=8, sandbox_rss=common.rss_bytes([bench_aws.pid])
    )
    out = capsys.readouterr().out
    assert "Drift check of 3 accounts" in out and "accounts per minute" in out and "waiting on AWS" in out
