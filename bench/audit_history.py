"""Benchmark: the audit history page at a million events on PostgreSQL.

Seeds 1,000,000 events (one INSERT ... SELECT generate_series, in its own database), then times the
history page through the Django test client: the first page, a customer + date range page, and a
few more shapes, 50 requests each, and prints median and p95. It also prints the plans (EXPLAIN
ANALYZE) of the page's queries, to show they are index-backed.

    .venv/bin/python bench/audit_history.py            # seeds once, reuses the database afterwards
    .venv/bin/python bench/audit_history.py --fresh    # drop and seed again

The seeded rows carry placeholder hashes (the chain is not the subject here): do not run
verify_audit on this database.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DATABASE_NAME", "bench_audit")
EVENTS = 1_000_000
CUSTOMERS = 200
USERS = 20
REQUESTS = 50
WARMUP = 5
GOAL_P95_MS = 100.0


def database_prepare(*, fresh: bool) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def django_setup() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["DJANGO_ENV"] = "test"
    os.environ["DEBUG"] = "false"
    os.environ["DATABASE_URL"] = f"{SERVER}/{DB_NAME}"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


SEED_SQL = """
INSERT INTO provisioning_auditevent
    (created_at, actor_id, actor_label, customer_id, run_id, step_key, action, outcome, error_code,
     target, details, prev_hash, hash, key_id)
SELECT
    -- a year of history, in order, with the jitter of buffered AWS calls
    timestamptz '2025-01-01 00:00:00+00' + g * (interval '1 second' * 31536000 / %(events)s)
        - random() * interval '20 seconds',
    users[1 + (g / 150) %% cardinality(users)],
    CASE WHEN g %% 150 IN (0, 1) THEN 'user-' ELSE 'worker for user-' END
        || (1 + (g / 150) %% cardinality(users)),
    customers[1 + ((g / 150) * 7919) %% cardinality(customers)],
    md5('run-' || (g / 150))::uuid,
    (ARRAY['preflight', 'iam.group', 'iam.app_user', 'iam.access_key', 's3.bucket', 'ecr.repository'])[1 + g %% 6],
    CASE
        WHEN g %% 150 = 0 THEN 'run.confirmed'
        WHEN g %% 150 = 1 THEN 'onboarding.submitted'
        WHEN g %% 150 = 149 THEN 'run.succeeded'
        WHEN g %% 997 = 0 THEN 'auth.login_failed'
        ELSE (ARRAY['aws.iam.CreateUser', 'aws.iam.GetUser', 'aws.iam.AttachUserPolicy', 'aws.iam.CreateAccessKey',
                    'aws.s3.CreateBucket', 'aws.s3.PutBucketCors', 'aws.s3.PutPublicAccessBlock',
                    'aws.ecr.CreateRepository', 'aws.sts.AssumeRole', 'aws.iam.CreateGroup'])[1 + g %% 10]
    END,
    CASE WHEN g %% 53 = 0 THEN 'error' WHEN g %% 211 = 0 THEN 'refused' ELSE 'ok' END,
    CASE WHEN g %% 53 = 0 THEN 'EntityAlreadyExists' WHEN g %% 211 = 0 THEN 'Forbidden' ELSE '' END,
    'app-' || (g / 150) || (ARRAY['', '-media', '-deployer', '/onramp/app-user', ''])[1 + g %% 5],
    jsonb_build_object(
        'service', 'iam', 'operation', 'CreateUser', 'region', 'eu-west-1',
        'params', jsonb_build_object('UserName', 'app-' || (g / 150)),
        'http_status', 200, 'request_id', md5(g::text), 'duration_ms', round((random() * 200)::numeric, 1)
    ),
    encode(sha256(int8send(g - 1)), 'hex'),
    encode(sha256(int8send(g)), 'hex'),
    ''  -- placeholder hashes, not keyed (see the module's docstring)
FROM generate_series(1, %(events)s) AS g,
     (SELECT array_agg(id ORDER BY id) AS customers FROM provisioning_customer) AS c,
     (SELECT array_agg(id ORDER BY id) AS users FROM auth_user WHERE username LIKE 'user-%%') AS u
"""


# The runs the events belong to, each with its steps, so the page's step titles are looked up for real.
SEED_RUNS_SQL = """
INSERT INTO provisioning_run (id, customer_id, started_by_id, spec, status, summary, plan, created_at, progressed_at)
SELECT md5('run-' || r)::uuid, customers[1 + (r * 7919) %% cardinality(customers)],
       users[1 + r %% cardinality(users)], '{}'::jsonb, 'succeeded', '{}'::jsonb, '[]'::jsonb, now(), now()
FROM generate_series(0, %(events)s / 150) AS r,
     (SELECT array_agg(id ORDER BY id) AS customers FROM provisioning_customer) AS c,
     (SELECT array_agg(id ORDER BY id) AS users FROM auth_user WHERE username LIKE 'user-%%') AS u
"""
SEED_STEPS_SQL = """
INSERT INTO provisioning_steprun (run_id, key, title, branch, position, depends_on, state, attempts, error_code,
                                  error_message, outputs, params)
SELECT md5('run-' || r)::uuid, step.key, step.title || ' app-' || r, split_part(step.key, '.', 1), step.position,
       '[]'::jsonb, 'succeeded', 1, '', '', '{}'::jsonb, '{}'::jsonb
FROM generate_series(0, %(events)s / 150) AS r,
     (VALUES (0, 'preflight', 'Reach the account and check who Onramp is there'), (1, 'iam.group', 'Group Apps for'),
             (2, 'iam.app_user', 'App user'), (3, 'iam.access_key', 'Access key for'),
             (4, 's3.bucket', 'Private bucket for'), (5, 'ecr.repository', 'ECR repository for'))
         AS step(position, key, title)
"""


def seed_steps() -> None:
    from django.db import connection

    from provisioning.models import StepRun

    if StepRun.objects.exists():
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(SEED_RUNS_SQL, {"events": EVENTS})
        cursor.execute(SEED_STEPS_SQL, {"events": EVENTS})
        cursor.execute("VACUUM ANALYZE provisioning_run")
        cursor.execute("VACUUM ANALYZE provisioning_steprun")
    print(f"Seeded the events' runs and their steps in {time.perf_counter() - started:.1f} s.")


def seed() -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from provisioning.models import AuditEvent, Customer

    lead, _ = User.objects.get_or_create(username="bench-lead")
    lead.groups.add(Group.objects.get(name="Tech leads"))
    existing = AuditEvent.objects.count()  # once, in the benchmark; the page never counts
    if existing >= EVENTS:
        print(f"Reusing {DB_NAME}: {existing:,} events.")
        seed_steps()  # a database seeded before the step titles were shown
        return
    Customer.objects.bulk_create(
        Customer(name=f"Customer {n:03d}", slug=f"customer-{n:03d}", aws_account_id=f"{100000000000 + n}")
        for n in range(1, CUSTOMERS + 1)
    )
    User.objects.bulk_create(User(username=f"user-{n}") for n in range(1, USERS + 1))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"events": EVENTS})
        cursor.execute("VACUUM ANALYZE provisioning_auditevent")
    print(f"Seeded {EVENTS:,} events in {time.perf_counter() - started:.1f} s.")
    seed_steps()


def _timed(client, url: str) -> list[float]:
    for _ in range(WARMUP):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return times


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1]


def _explain(label: str, queryset) -> None:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    print(f"\n-- {label}")
    for line in plan:
        print("   ", line)


def measure() -> list[tuple[str, float, float]]:
    from django.contrib.auth.models import User
    from django.test import Client

    from provisioning.history import AuditFilters, Cursor, _beyond, audit_events_filter, audit_page, audit_step_titles
    from provisioning.models import AuditEvent, Customer, StepRun

    client = Client()
    client.force_login(User.objects.get(username="bench-lead"))
    customer = Customer.objects.get(slug="customer-042")
    deep = audit_events_filter(filters=AuditFilters()).values_list("created_at", "id")[5000]
    deep_cursor = Cursor(created_at=deep[0], id=deep[1])
    run_id = AuditEvent.objects.filter(customer_id=customer.pk).values_list("run_id", flat=True)[:1][0]
    target = AuditEvent.objects.filter(customer_id=customer.pk).order_by("-id").values_list("target", flat=True)[300]
    pages = {
        "first page": "/audit/",
        "customer + date range (30 days)": f"/audit/?customer={customer.slug}&since=2025-06-01&until=2025-06-30",
        "customer only": f"/audit/?customer={customer.slug}",
        "date range only (1 day)": "/audit/?since=2025-09-14&until=2025-09-14",
        "outcome=error": "/audit/?outcome=error",
        f"search target ({target})": f"/audit/?q={target}",
        "action prefix aws.s3.*": "/audit/?action=aws.s3.*",
        "page 101 (keyset cursor)": f"/audit/?before={deep_cursor}",
        "actor user-3": "/audit/?actor=user-3",
        "rare action auth.login_failed": "/audit/?action=auth.login_failed",
        "one run's slice": f"/audit/?run={run_id}",
    }
    figures = []
    for label, url in pages.items():
        times = _timed(client, url)
        figures.append((label, statistics.median(times), _p95(times)))

    print("\nQuery plans at 1M rows (the page's main query, LIMIT 51):")
    _explain("first page", audit_events_filter(filters=AuditFilters())[:51])
    _explain(
        "customer + date range",
        audit_events_filter(
            filters=AuditFilters(customer_id=customer.pk, since=date(2025, 6, 1), until=date(2025, 6, 30))
        )[:51],
    )
    _explain("search target", audit_events_filter(filters=AuditFilters(q=target))[:51])
    _explain("outcome=error", audit_events_filter(filters=AuditFilters(outcome="error"))[:51])
    actor_id = User.objects.get(username="user-3").pk
    _explain("actor user-3", audit_events_filter(filters=AuditFilters(actor_id=actor_id))[:51])
    _explain("rare action", audit_events_filter(filters=AuditFilters(action="auth.login_failed"))[:51])
    _explain("one run", audit_events_filter(filters=AuditFilters(run_id=run_id))[:51])
    page = audit_page(events=audit_events_filter(filters=AuditFilters()), before=deep_cursor)
    assert len(page.events) == 50
    _explain("page 101 (keyset)", _beyond(audit_events_filter(filters=AuditFilters()), deep_cursor, older=True)[:51])
    titles = StepRun.objects.filter(
        run_id__in={e.run_id for e in page.events}, key__in={e.step_key for e in page.events}
    ).order_by()
    _explain("the step titles of a page (one query)", titles.values_list("run_id", "key", "title"))
    assert audit_step_titles(events=page.events), "the seeded events' steps have titles"
    return figures


def main() -> None:
    global EVENTS, REQUESTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="drop the benchmark database and seed it again")
    parser.add_argument("--events", type=int, default=EVENTS, help="how many to seed (tests/test_bench.py: few)")
    parser.add_argument("--requests", type=int, default=REQUESTS, help="per page shape")
    args = parser.parse_args()
    EVENTS, REQUESTS = args.events, args.requests
    database_prepare(fresh=args.fresh)
    django_setup()
    seed()
    figures = measure()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nAudit history page through the Django test client, {REQUESTS} requests each ({EVENTS:,} events).")
    print(f"Machine: {os.cpu_count()} CPU(s), load average {load} (other work on the machine inflates p95).")
    print(f"  {'page':<44} {'median ms':>10} {'p95 ms':>10}")
    for label, median, p95 in figures:
        flag = "" if p95 < GOAL_P95_MS else f"  (over the {GOAL_P95_MS:.0f} ms goal)"
        print(f"  {label:<44} {median:>10.1f} {p95:>10.1f}{flag}")


if __name__ == "__main__":
    main()
