"""Indexes of the audit history page: trigram search on the target, and customer + date range.

The first page and a date range alone use created_at's own index (0001), read backwards.

They are raw SQL, not Meta.indexes: the trigram index is an expression index with an operator class
that only PostgreSQL has, and keeping both here keeps the model's state and the database in step.
On PostgreSQL they are built CONCURRENTLY so a large, live log keeps taking writes meanwhile
(hence a non-atomic migration). SQLite (development) gets the plain index only.
"""

from django.db import migrations

# Django's icontains on PostgreSQL is UPPER("target"::text) LIKE UPPER(%s): the index is on that
# very expression, so the planner can use it for the page's free-text search.
PG_FORWARD = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_target_trgm ON provisioning_auditevent "
    "USING gin ((UPPER(target::text)) gin_trgm_ops)",
    # Customer + date range, the page's common question ("what happened at Acme last week?").
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_customer_created ON provisioning_auditevent "
    "(customer_id, created_at DESC, id DESC)",
)
PG_BACKWARD = (
    "DROP INDEX CONCURRENTLY IF EXISTS audit_customer_created",
    "DROP INDEX CONCURRENTLY IF EXISTS audit_target_trgm",
)
OTHER_FORWARD = (
    "CREATE INDEX IF NOT EXISTS audit_customer_created ON provisioning_auditevent (customer_id, created_at, id)",
)
OTHER_BACKWARD = ("DROP INDEX IF EXISTS audit_customer_created",)


def _run(schema_editor, pg: tuple[str, ...], other: tuple[str, ...]) -> None:
    for sql in pg if schema_editor.connection.vendor == "postgresql" else other:
        schema_editor.execute(sql, params=None)


def forward(apps, schema_editor):
    _run(schema_editor, PG_FORWARD, OTHER_FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, PG_BACKWARD, OTHER_BACKWARD)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("provisioning", "0002_groups_and_audit_guard")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
