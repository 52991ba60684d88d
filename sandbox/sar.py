"""AWS's Service Authorization Reference as data: per action, the resource types it is authorised against (with
their ARN formats) and the condition keys each carries. The one source of it is parliament's machine-readable
copy (iam_definition.json, installed with the sandbox's requirements); only the strict layer imports it, and
tests reach it through this module."""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@cache
def reference() -> dict[str, dict]:
    """The reference, by service prefix (iam, s3, ecr, sts…)."""
    import parliament

    path = Path(parliament.__file__).parent / "iam_definition.json"
    return {service["prefix"]: service for service in json.loads(path.read_text())}


@dataclass(frozen=True)
class ResourceType:
    name: str  # user, group, bucket, object, repository…
    arn: str  # the ARN format, e.g. arn:${Partition}:iam::${Account}:user/${UserNameWithPath}
    condition_keys: tuple[str, ...]  # the keys every request on such a resource carries (aws:ResourceTag/…)


@dataclass(frozen=True)
class Privilege:
    action: str  # iam:DeleteUser
    required: tuple[ResourceType, ...]  # the resource types the action is authorised against (the "*" rows)
    condition_keys: tuple[str, ...]  # the action's own keys (its row without a resource type, and each row's)


@cache
def privilege(action: str) -> Privilege | None:
    """What the reference says of `action` (case-insensitive), or None when it does not list it."""
    prefix, _, name = action.partition(":")
    service = reference().get(prefix.lower())
    if service is None:
        return None
    row = next((p for p in service["privileges"] if p["privilege"].lower() == name.lower()), None)
    if row is None:
        return None
    types = {r["resource"]: r for r in service["resources"]}
    required = []
    keys: list[str] = []
    for resource_type in row["resource_types"]:
        keys += resource_type["condition_keys"]
        name_ = resource_type["resource_type"]
        if name_.endswith("*") and name_.rstrip("*") in types:
            known = types[name_.rstrip("*")]
            required.append(ResourceType(known["resource"], known["arn"], tuple(known["condition_keys"])))
    return Privilege(f"{prefix.lower()}:{row['privilege']}", tuple(required), tuple(dict.fromkeys(keys)))
