"""Indexes that serve the audit history's one-column filters (actor, action, outcome) in the page's own order,
newest first (created_at DESC, id DESC), as audit_customer_created (0003) does for the customer.

With only (actor, -id), (action, -id) and (outcome, -id), PostgreSQL answers "the newest 51 of this actor"
by walking created_at's index backwards and filtering: quick while the actor's events are everywhere in the
log, but for someone who left months ago it walks past everything since (4 to 6 s at 10 million events,
bench/audit_history.py). With these it seeks straight to the filter's newest rows, and a keyset cursor
continues from there. Built CONCURRENTLY on PostgreSQL (a live log keeps taking writes), hence non-atomic.
"""

from django.db import migrations

COLUMNS = {"audit_actor_created": "actor_id", "audit_action_created": "action", "audit_outcome_created": "outcome"}
PG_FORWARD = tuple(
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON provisioning_auditevent ({column}, created_at DESC, id DESC)"
    for name, column in COLUMNS.items()
)
PG_BACKWARD = tuple(f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in COLUMNS)
OTHER_FORWARD = tuple(
    f"CREATE INDEX IF NOT EXISTS {name} ON provisioning_auditevent ({column}, created_at, id)"
    for name, column in COLUMNS.items()
)
OTHER_BACKWARD = tuple(f"DROP INDEX IF EXISTS {name}" for name in COLUMNS)


def _run(schema_editor, pg: tuple[str, ...], other: tuple[str, ...]) -> None:
    for sql in pg if schema_editor.connection.vendor == "postgresql" else other:
        schema_editor.execute(sql, params=None)


def forward(apps, schema_editor):
    _run(schema_editor, PG_FORWARD, OTHER_FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, PG_BACKWARD, OTHER_BACKWARD)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("provisioning", "0011_offboard")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
