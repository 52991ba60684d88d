"""Reading a customer's account back: what each resource of a spec, and each resource the ledger holds
that the spec no longer wants, looks like now. Read-only calls; the caller audits them (aws_work)."""

import hashlib
import json

from provisioning.aws import AwsAccount
from provisioning.plan import plan_build, plan_orphans
from provisioning.registry import REGISTRY, Registry
from provisioning.spec import Spec
from provisioning.steps import ecr, iam, s3

READERS = {
    "account.alias": iam.alias_read,
    "iam.group": iam.group_read,
    "iam.app_user": iam.app_user_read,
    "iam.media_policy": iam.media_policy_read,
    "iam.access_key": iam.access_key_read,
    "team.member": iam.member_read,
    "s3.bucket": s3.bucket_read,
    "s3.public_access_block": s3.public_access_block_read,
    "s3.cors": s3.cors_read,
    "ecr.repository": ecr.repository_read,
    "ecr.lifecycle": ecr.lifecycle_read,
}

# What a resource the spec no longer wants holds, which decides whether it may be deleted without its
# name typed: a bucket's objects, a repository's images.
HOLDINGS = {
    "s3.bucket": s3.bucket_holds_data,
    "ecr.repository": ecr.repository_holds_data,
}


def account_seen(
    account: AwsAccount, *, spec: Spec, ledger: list[dict], registry: Registry = REGISTRY
) -> dict[str, dict | None]:
    """By step key, what the account has for each of the spec's resources (None: not there); by
    "<kind>:<identity>", whether each resource only the ledger holds still holds data. `registry`: the
    kinds the plan wants (fewer for an offboarding, provisioning.plan.plan_registry)."""
    seen: dict[str, dict | None] = {}
    for step in plan_build(spec, registry=registry)[1:]:
        reader = READERS.get(step.kind)
        if reader is not None:
            seen[step.key] = reader(account, step.params)
    for row in plan_orphans(spec=spec, ledger=ledger, registry=registry):
        holdings = HOLDINGS.get(row["kind"])
        if holdings is not None:
            seen[f"{row['kind']}:{row['identity']}"] = holdings(account, {"name": row["name"]})
    return seen


def seen_fingerprint(seen: dict) -> str:
    """A digest of what a read found: the same account read again gives the same digest."""
    return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()
