"""Reading a customer's account back: what each resource of a spec, and each resource the ledger holds
that the spec no longer wants, looks like now. Read-only calls; the caller audits them (aws_work)."""

import functools
import hashlib
import json
import random
import time
from concurrent.futures import wait

from django.conf import settings

from provisioning.aws.accounts import AwsAccount
from provisioning.aws.calls import aws_beside
from provisioning.kinds import REGISTRY
from provisioning.kinds.common_aws import user_found
from provisioning.plan import plan_build, plan_orphans
from provisioning.registry import Registry
from provisioning.spec import Spec
from provisioning.steps.tables import tables

# What a read finds that may hold things Onramp did not make (StepKind.owned): each entry is marked "onramps"
# once the ledger holds any of the kinds that name Onramp's, so the declaration's compare can report the others.


def _owned_marked(kind: str, found: dict | None, ledger: list[dict]) -> dict | None:
    owned = REGISTRY.kind_of(kind).owned
    if found is None or owned is None:
        return found
    field, name, owners = owned
    kinds = REGISTRY.user_kinds() if owners == "users" else (kind,)
    names = {row["name"] for row in ledger if row["kind"] in kinds}
    if not names:
        return found
    return {**found, field: [{**entry, "onramps": entry[name] in names} for entry in found[field]]}


# What AWS may still show as it was before a change, for a moment after it (IAM User Guide, "Changes that I make
# are not always immediately visible"; for ECR, GetLifecyclePolicy right after PutLifecyclePolicy): the kinds
# declared `settles`. A read of one a run changed moments ago is read again until it shows what the run put
# there, for AWS_SETTLE_SECONDS at most; otherwise, and after that, it is what it is.
SETTLING_READS = REGISTRY.settling()


def _read_settled(read, kind: str, params: dict) -> dict | None:
    """`read()` again, with backoff, while it differs from what the declaration wants (bounded)."""
    compare = REGISTRY.kind_of(kind).compare
    deadline = time.monotonic() + settings.AWS_SETTLE_SECONDS
    delay = 0.2
    found = read()
    while found is not None and compare(params, found, None) and time.monotonic() + delay < deadline:
        time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 (jitter, not a secret)
        delay = min(delay * 2, 2.0)
        found = read()
    return found


# What is read only when the resource it belongs to is there (StepKind.read_first): nothing of a missing bucket,
# repository or user is worth a call (a new customer's read makes one call per named resource that does not exist).


def _read_one(
    account: AwsAccount, step, seen: dict, ledger: list[dict], held: set | None, changed_lately: frozenset[str]
) -> dict | None:
    after = REGISTRY.kind_of(step.kind).read_first
    if after and seen.get(after, "unread") is None:
        return None
    reader = tables().readers[step.kind]
    if step.key in changed_lately and step.kind in SETTLING_READS:
        found = _read_settled(lambda: reader(account, step.params), step.kind, step.params)
    else:
        found = reader(account, step.params)
    found = _owned_marked(step.kind, found, ledger)
    name = step.params.get("user") or step.params.get("email")
    if found is not None and held is not None and REGISTRY.kind_of(step.kind).user and (step.kind, name) not in held:
        # A user the ledger does not hold: what adopting it would take over, for the plan to say so.
        found = {**found, "found": user_found(account, name, found.get("path", "/"))}
    return found


def account_seen(
    account: AwsAccount,
    *,
    spec: Spec,
    ledger: list[dict],
    registry: Registry = REGISTRY,
    changed_lately: frozenset[str] = frozenset(),
    adoptions: bool = True,
    beside: bool = True,
) -> dict[str, dict | None]:
    """By step key, what the account has for each of the spec's resources (None: not there); by
    "<kind>:<identity>", whether each resource only the ledger holds still holds data. `registry`: the
    kinds the plan wants (fewer for an offboarding, provisioning.plan.plan_registry). `adoptions`: what a user
    the ledger does not hold has is read too, for a plan to say what adopting it takes over (a drift check, which
    plans nothing, leaves it). `beside`: the resources are read side by side (aws_beside), those that belong to
    another once that one is read: a plan's read and the run's stale-plan check wait two or three round trips,
    not one per resource (a drift check's bounded workers read one call at a time). `changed_lately`: the step
    keys a run changed moments ago (provisioning.ledger.ledger_changed_lately), read until AWS shows the change."""
    seen: dict[str, dict | None] = {}
    held = {(row["kind"], row["identity"]) for row in ledger} if adoptions else None
    readers = tables().readers
    steps = [step for step in plan_build(spec, registry=registry)[1:] if step.kind in readers]
    for wave in (
        [step for step in steps if not registry.kind_of(step.kind).read_first],
        [step for step in steps if registry.kind_of(step.kind).read_first],
    ):
        if not beside:
            for step in wave:
                seen[step.key] = _read_one(account, step, seen, ledger, held, changed_lately)
            continue
        futures = {
            step.key: aws_beside(functools.partial(_read_one, account, step, seen, ledger, held, changed_lately))
            for step in wave
        }
        wait(futures.values())  # every call done (and audited on the caller's log) before any failure is raised
        seen.update({key: future.result() for key, future in futures.items()})
    for row in plan_orphans(spec=spec, ledger=ledger, registry=registry):
        holdings = tables().holdings.get(row["kind"])
        if holdings is not None:
            seen[f"{row['kind']}:{row['identity']}"] = holdings(account, {"name": row["name"]})
    return seen


# What a read computes from the clock, not from the account: a key's age in days. A plan read just before a key
# turns a day older is still the account's state (the age is reported, never changed by a run).
_CLOCK_FIELDS = frozenset({"age_days"})
# Lists AWS answers in an order of its own (a group's members, a user's keys, policies and groups): sets to a run.
_LISTED_FIELDS = frozenset({"members", "keys", "policies", "groups"})


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def seen_normal(value, field: str = ""):
    """What a read found, as a run would act on it: without the clock's values, AWS's listing order left out."""
    if isinstance(value, dict):
        return {name: seen_normal(item, name) for name, item in value.items() if name not in _CLOCK_FIELDS}
    if isinstance(value, list):
        items = [seen_normal(item) for item in value]
        return sorted(items, key=_canonical) if field in _LISTED_FIELDS else items
    return value


def seen_fingerprint(seen: dict) -> str:
    """A digest of what a read found that a run would act on: the same account read again, a day later or listed in
    another order, gives the same digest."""
    return hashlib.sha256(_canonical(seen_normal(seen)).encode()).hexdigest()
