"""The ledger: what Onramp created or adopted in each customer's account, kept up to date by the steps'
outcomes (in the transaction that records them), and read by plans, drift checks and the admin."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from provisioning.kinds import REGISTRY
from provisioning.kinds.iam_access_key import declaration as access_key
from provisioning.models import Customer, Resource, Run, StepRun
from provisioning.registry import Registry, StepKind


def _plain(rows: QuerySet[Resource, Any]) -> list[dict]:
    """A .values() query's rows as plain dicts."""
    return list(rows)


def ledger_rows(*, customer_id: int) -> list[dict]:
    """The present resources as plain data, for planning (provisioning.plan.plan_difference)."""
    return _plain(
        Resource.objects.filter(customer_id=customer_id, state=Resource.State.PRESENT)
        .order_by("id")
        .values("id", "kind", "identity", "name", "origin", "params")
    )


def ledger_outputs(*, customer_id: int) -> list[dict]:
    """What each present resource is, as AWS said it (for the summary of what exists now)."""
    return _plain(
        Resource.objects.filter(customer_id=customer_id, state=Resource.State.PRESENT)
        .order_by("id")
        .values("kind", "identity", "name", "outputs")
    )


def ledger_holds_user(customer_id: int, member: dict) -> bool:
    """Whether an IAM user (as GetGroup lists it) is one Onramp keeps in this customer's account."""
    return Resource.objects.filter(
        customer_id=customer_id,
        kind__in=REGISTRY.user_kinds(),
        name=member["UserName"],
        state=Resource.State.PRESENT,
    ).exists()


def ledger_changed_lately(*, customer_id: int, kinds: frozenset[str]) -> frozenset[str]:
    """The keys of the steps of these `kinds` that a run of this customer changed (succeeded, not adopted) less than
    AWS_SETTLE_SECONDS ago: AWS may still show what was there before (provisioning.steps.reading SETTLING_READS)."""
    since = timezone.now() - timedelta(seconds=settings.AWS_SETTLE_SECONDS)
    of_kinds = Q()
    for kind in kinds:
        of_kinds |= Q(key=kind) | Q(key__startswith=f"{kind}:")
    changed = StepRun.objects.filter(
        of_kinds, run__customer_id=customer_id, state=StepRun.State.SUCCEEDED, finished_at__gte=since
    )
    return frozenset(changed.values_list("key", flat=True))


def ledger_previous(*, customer_id: int, kind: str, identity: str) -> dict | None:
    """The parameters a resource was last applied with, or None when the ledger does not know it."""
    row = (
        Resource.objects.filter(customer_id=customer_id, kind=kind, identity=identity, state=Resource.State.PRESENT)
        .order_by("-id")
        .values_list("params", flat=True)
        .first()
    )
    return row


def ledger_record(*, run: Run, kind: StepKind, params: dict, outputs: dict) -> Resource | None:
    """Record what a finished step of `run` leaves: created by it (outputs["created"]) or found there."""
    record = kind.resource
    if record is None or not outputs.get(record.name_output):
        return None
    name = str(outputs[record.name_output])
    identity = str(params.get(record.identity_param) or name)
    arn = str(outputs.get(record.arn_output) or "") if record.arn_output else ""
    created = bool(outputs.get("created"))
    row = Resource.objects.filter(
        customer_id=run.customer_id, kind=kind.key, name=name, state=Resource.State.PRESENT
    ).first()
    stored = {k: v for k, v in params.items() if k != "sign_in_url"}
    said = {k: v for k, v in outputs.items() if k not in ("created", "credential", "key_requested_at")}
    if row is None:
        return Resource.objects.create(
            customer_id=run.customer_id,
            kind=kind.key,
            identity=identity,
            name=name,
            arn=arn,
            region=str(params.get("region") or ""),
            origin=Resource.Origin.CREATED if created else Resource.Origin.ADOPTED,
            params=stored,
            outputs=said,
            created_by_run=run if created else None,
            last_run=run,
        )
    row.params, row.outputs, row.last_run, row.arn = stored, said, run, arn or row.arn
    fields = ["params", "outputs", "last_run", "arn", "updated_at"]
    if row.created_by_run_id != run.pk and str(run.pk) not in row.adopted_by:
        row.adopted_by = [*row.adopted_by, str(run.pk)]
        fields.append("adopted_by")
    row.save(update_fields=fields)
    return row


def ledger_end(*, run: Run | None, resource_ids: list[int], state: str) -> int:
    """Mark resources removed (Onramp deleted them) or released (left in the account, forgotten)."""
    return Resource.objects.filter(pk__in=resource_ids, state=Resource.State.PRESENT).update(
        state=state, removed_by_run=run, ended_at=timezone.now()
    )


def ledger_access_key(*, customer_id: int, run: Run | None, user: str, created_id: str, deleted_id: str = "") -> None:
    """A key issued outside a run's steps ("Issue a new key"): the new key is Onramp's; the old one, once
    deleted, is gone."""
    if created_id:
        Resource.objects.get_or_create(
            customer_id=customer_id,
            kind=access_key.KEY,
            name=created_id,
            state=Resource.State.PRESENT,
            defaults={
                "identity": user,
                "origin": Resource.Origin.CREATED,
                "params": {"user": user},
                "outputs": {"access_key_id": created_id},
                "created_by_run": run,
                "last_run": run,
            },
        )
    if deleted_id:
        Resource.objects.filter(
            customer_id=customer_id, kind=access_key.KEY, name=deleted_id, state=Resource.State.PRESENT
        ).update(state=Resource.State.REMOVED, ended_at=timezone.now())


def ledger_labels(registry: Registry = REGISTRY) -> dict[str, str]:
    """Each resource kind's label, in the declarations' order."""
    return {kind.key: record.label for kind, record in registry.resources()}


def ledger_for_admin(*, customer: Customer) -> list[Resource]:
    """What the customer's page lists: present resources first, then what ended, newest first."""
    return list(
        Resource.objects.filter(customer=customer)
        .filter(Q(state=Resource.State.PRESENT) | Q(ended_at__isnull=False))
        .select_related("created_by_run", "last_run", "removed_by_run")
        .order_by("state", "kind", "identity", "-id")
    )
