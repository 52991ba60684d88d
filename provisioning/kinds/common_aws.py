"""What several kinds' AWS code shares: IAM's "no such entity" as None, a user's read and its creation
or adoption, a bucket's configuration read and put, and the removal steps' delete."""

import json
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError

from provisioning import registry
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_code, error_translate
from provisioning.aws.settle import settle
from provisioning.errors import StepFailed
from provisioning.kinds import REGISTRY
from provisioning.steps.base import StepContext, StepResult

_T = TypeVar("_T")


# --- IAM: users and "no such entity" ----------------------------------------------------------------


def iam_missing(exc: ClientError) -> bool:
    return error_code(exc) == "NoSuchEntity"


def iam_exists(exc: ClientError) -> bool:
    return error_code(exc) == "EntityAlreadyExists"


def absent_is_none(call: Callable[[], _T]) -> _T | None:
    """The answer, or None when IAM says the entity does not exist."""
    try:
        return call()
    except ClientError as exc:
        if iam_missing(exc):
            return None
        raise


def tagged(tags: list[dict]) -> bool:
    return {"Key": registry.MANAGED_BY_TAG[0], "Value": registry.MANAGED_BY_TAG[1]} in (tags or [])


def as_dict(document) -> dict:
    return json.loads(document) if isinstance(document, str) else document


def user_read(iam, name: str) -> dict | None:
    found = absent_is_none(lambda: iam.get_user(UserName=name))
    if found is None:
        return None
    user = found["User"]
    return {"arn": user["Arn"], "path": user.get("Path", "/"), "tagged": tagged(user.get("Tags"))}


def user_found(account: AwsAccount, name: str, path: str) -> dict:
    """What a user the ledger does not hold has, for the plan to say what adopting it takes over: its keys,
    console password, groups and policies (read-only calls, made only for a user that exists)."""
    iam = account.client("iam")
    return {
        "path": path,
        "keys": len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]),
        "console": absent_is_none(lambda: iam.get_login_profile(UserName=name)) is not None,
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "attached": sorted(policy_names(iam.list_attached_user_policies(UserName=name)["AttachedPolicies"])),
        "inline": sorted(iam.list_user_policies(UserName=name)["PolicyNames"]),
    }


def policy_names(attached: list[dict]) -> list[str]:
    """AWS managed policies by their name under arn:aws:iam::aws:policy/ (job-function/Billing); others by ARN."""
    prefix = registry.managed_policy_arn("")
    return [p["PolicyArn"].removeprefix(prefix) for p in attached]


def user_ensure(ctx: StepContext, name: str, read: Callable[[], dict | None], fresh: dict) -> tuple[dict, bool]:
    """(what the user has, created now): create it, or read it when AWS says it exists (or the plan knew it)."""
    seen = read() if ctx.known else None
    if seen is not None:
        return user_into_path(ctx, name, seen), False
    try:
        user = ctx.send(registry.create_user(name))["User"]
        return {"arn": user["Arn"], "tagged": True, **fresh}, True
    except ClientError as exc:
        if not iam_exists(exc):
            raise
    seen = read()
    if seen is None:  # deleted between the two calls: say so rather than guess
        raise StepFailed(f"The IAM user {name} exists and then did not: retry.", code="UserVanished", retryable=True)
    return user_into_path(ctx, name, seen), False


def user_into_path(ctx: StepContext, name: str, seen: dict) -> dict:
    """A user outside Onramp's path: one Onramp made or adopted before the path existed (in the ledger, tagged)
    is moved into it once; any other is the customer's, and only the customer can hand it over. The ledger
    too, not the tag alone: a tag is anyone's to set (the role's UpdateUser is conditioned on it, no more)."""
    if seen.get("path", registry.ONRAMP_PATH) == registry.ONRAMP_PATH:
        return seen
    if not seen["tagged"] or ctx.previous is None:
        raise StepFailed(registry.user_outside_sentence(name), code="OutsideOnrampsPath")
    ctx.send(registry.user_path_move(name))
    return {
        **seen,
        "path": registry.ONRAMP_PATH,
        "arn": seen["arn"].replace(":user/", f":user{registry.ONRAMP_PATH}", 1),
    }


# --- S3: a bucket's configurations ---------------------------------------------------------------------


def s3_config_read(call, *, missing: str, default):
    """A bucket's configuration, or `default` when AWS answers that it has none (`missing`); None when the
    bucket itself is not there."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return None
        if error_code(exc) != missing:
            raise
        return default


def configure_bucket(ctx: StepContext, params: dict, kind, read, put, doing: str, outputs: dict) -> StepResult:
    """A bucket's configuration: put it on a bucket this run made (there is nothing to read); otherwise read
    it, compare, and put it only when it differs."""
    fresh = ctx.created_by_run("s3.bucket")
    try:
        if not fresh and not kind.compare(params, read(ctx.account, params) or {"config": None, "rules": None}, None):
            return StepResult(adopted=True, outputs=outputs)
        ctx.send(put, settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=doing) from None
    return StepResult(adopted=False, outputs=outputs)


# --- Removals: a declared delete, and what is already gone -----------------------------------------------


def gone(name: str) -> StepResult:
    return StepResult(adopted=False, gone=True, outputs={"removed": [], "name": name})


# What AWS answers a delete for a moment after the last thing hanging on the user, group or policy was removed.
CONFLICT_CODES = frozenset({"DeleteConflict"})


def delete(
    ctx: StepContext,
    params: dict,
    *,
    gone_codes: tuple[str, ...],
    refusals: dict[str, str] | None = None,
    conflict: Callable[[], bool] | None = None,
) -> StepResult:
    """Send the removal's declared delete call; "already gone" answers are fine; `refusals` gives AWS codes
    that mean Onramp must not go on a sentence of their own. On DeleteConflict, `conflict()` says whether it is AWS
    still seeing what this run removed moments ago (True: waited out within AWS_SETTLE_SECONDS), raises the
    sentence of what is really still there, or False (AWS's answer stands)."""
    refusals = refusals or {}
    (call,) = REGISTRY.kind_of(ctx.step.key).calls(params)
    try:
        try:
            ctx.send(call)
        except ClientError as exc:
            if error_code(exc) not in CONFLICT_CODES or conflict is None or not conflict():
                raise
            settle(lambda: ctx.account.send(call), codes=CONFLICT_CODES)
    except ClientError as exc:
        code = error_code(exc)
        if code in gone_codes:
            return gone(params["name"])
        if code in refusals:
            raise StepFailed(refusals[code], code=code) from None
        raise error_translate(exc, doing=REGISTRY.kind_of(ctx.step.key).title(params)) from None
    return StepResult(adopted=False, outputs={"removed": [params["name"]], "name": params["name"]})


def removed_by_run(ctx: StepContext, key: str) -> set[str]:
    """What this run's step `key` removed (its outputs' "removed"); a `key` ending in ":" names every instance of
    that kind (every user's remove.user.groups:…)."""
    if ctx.run is None:
        return set()
    steps = ctx.run.steps.filter(key__startswith=key) if key.endswith(":") else ctx.run.steps.filter(key=key)
    return {
        str(item) for outputs in steps.values_list("outputs", flat=True) for item in (outputs or {}).get("removed", [])
    }
