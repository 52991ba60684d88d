"""IAM steps: account alias, group, app user, MediaManagement policy, access key, team members.

Each resource has a reader (what the account has, or None when it is not there) and a step that creates
it, or, when AWS says it exists, reads it, compares it with what is wanted (the declaration's compare,
the same one plans and drift checks use), and adopts it or corrects what differs."""

import json
import secrets
import string
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from botocore.exceptions import ClientError
from django.conf import settings
from django.utils import timezone

from provisioning import registry
from provisioning.aws import UNMODIFIABLE_CODES, AwsAccount, error_code, error_translate, settle
from provisioning.errors import StepFailed
from provisioning.models import Credential
from provisioning.steps.base import GONE_AFTER_EXISTS, StepContext, StepResult

MAX_POLICY_VERSIONS = 5

_T = TypeVar("_T")


def _missing(exc: ClientError) -> bool:
    return error_code(exc) == "NoSuchEntity"


def _exists(exc: ClientError) -> bool:
    return error_code(exc) == "EntityAlreadyExists"


def absent_is_none(call: Callable[[], _T]) -> _T | None:
    """The answer, or None when IAM says the entity does not exist."""
    try:
        return call()
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def _tagged(tags: list[dict]) -> bool:
    return {"Key": registry.MANAGED_BY_TAG[0], "Value": registry.MANAGED_BY_TAG[1]} in (tags or [])


def _as_dict(document) -> dict:
    return json.loads(document) if isinstance(document, str) else document


# --- Readers: what the account has ------------------------------------------------------------


def alias_read(account: AwsAccount, params: dict) -> dict:
    aliases = account.client("iam").list_account_aliases()["AccountAliases"]
    return {"alias": aliases[0] if aliases else ""}


def group_read(account: AwsAccount, params: dict) -> dict | None:
    """The group and its members (every page of them)."""
    pages = account.client("iam").get_paginator("get_group").paginate(GroupName=params["group"])
    found = absent_is_none(lambda: list(pages))
    if found is None:
        return None
    members = [{"name": user["UserName"]} for page in found for user in page["Users"]]
    group = found[0]["Group"]
    return {"arn": group["Arn"], "path": group.get("Path", "/"), "members": members}


def _user_read(iam, name: str) -> dict | None:
    found = absent_is_none(lambda: iam.get_user(UserName=name))
    if found is None:
        return None
    user = found["User"]
    return {"arn": user["Arn"], "path": user.get("Path", "/"), "tagged": _tagged(user.get("Tags"))}


def app_user_read(account: AwsAccount, params: dict) -> dict | None:
    iam = account.client("iam")
    user = _user_read(iam, params["user"])
    if user is None:
        return None
    groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=params["user"])["Groups"]]
    return {**user, "groups": groups}


def media_policy_read(account: AwsAccount, params: dict) -> dict | None:
    iam = account.client("iam")
    policy = absent_is_none(lambda: iam.get_policy(PolicyArn=params["arn"]))
    if policy is None:
        return None
    version = iam.get_policy_version(PolicyArn=params["arn"], VersionId=policy["Policy"]["DefaultVersionId"])
    attached = absent_is_none(lambda: iam.list_attached_user_policies(UserName=params["user"]))
    arns = {p["PolicyArn"] for p in (attached or {}).get("AttachedPolicies", [])}
    return {"document": _as_dict(version["PolicyVersion"]["Document"]), "attached": params["arn"] in arns}


def access_key_read(account: AwsAccount, params: dict) -> dict | None:
    found = absent_is_none(lambda: account.client("iam").list_access_keys(UserName=params["user"]))
    if found is None:
        return None
    now = timezone.now()
    keys = [
        {
            "id": k["AccessKeyId"],
            "status": k["Status"],
            "created": k["CreateDate"].isoformat(),
            "age_days": (now - k["CreateDate"]).days,
        }
        for k in found["AccessKeyMetadata"]
    ]
    # A key this old is due for rotation (the declaration's compare says so; drift reports it).
    return {"keys": keys, "max_age_days": settings.DRIFT_KEY_MAX_AGE_DAYS}


def _policy_names(attached: list[dict]) -> list[str]:
    """AWS managed policies by their name under arn:aws:iam::aws:policy/ (job-function/Billing); others by ARN."""
    prefix = registry.managed_policy_arn("")
    return [p["PolicyArn"].removeprefix(prefix) for p in attached]


def member_read(account: AwsAccount, params: dict) -> dict | None:
    iam = account.client("iam")
    user = _user_read(iam, params["email"])
    if user is None:
        return None
    attached = iam.list_attached_user_policies(UserName=params["email"])["AttachedPolicies"]
    console = absent_is_none(lambda: iam.get_login_profile(UserName=params["email"])) is not None
    return {**user, "policies": _policy_names(attached), "console": console}


def user_found(account: AwsAccount, name: str, path: str) -> dict:
    """What a user the ledger does not hold has, for the plan to say what adopting it takes over: its keys,
    console password, groups and policies (read-only calls, made only for a user that exists)."""
    iam = account.client("iam")
    return {
        "path": path,
        "keys": len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]),
        "console": absent_is_none(lambda: iam.get_login_profile(UserName=name)) is not None,
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "attached": sorted(_policy_names(iam.list_attached_user_policies(UserName=name)["AttachedPolicies"])),
        "inline": sorted(iam.list_user_policies(UserName=name)["PolicyNames"]),
    }


# --- Steps ------------------------------------------------------------------------------------


def account_alias(ctx: StepContext, params: dict) -> StepResult:
    alias = params["alias"]
    try:
        differences = registry.ACCOUNT_ALIAS.compare(params, alias_read(ctx.account, params), None)
        if not differences:
            return StepResult(adopted=True, outputs={"alias": alias})
        if not differences[0].repairable:
            raise StepFailed(
                f"The account already has the sign-in alias '{differences[0].actual}'. Onramp never replaces an "
                f"alias: change it in the IAM console if it should be '{alias}', or leave the alias empty in the spec.",
                code="AliasConflict",
            )
        ctx.send(registry.create_account_alias(alias))
    except ClientError as exc:
        if _exists(exc):
            raise StepFailed(
                f"The sign-in alias '{alias}' is taken by another AWS account. Choose another one.",
                code="AliasTaken",
            ) from None
        raise error_translate(exc, doing="Setting the account alias") from None
    return StepResult(adopted=False, outputs={"alias": alias, "created": True})


# Steps create first and look only when AWS says the thing exists: a first onboarding (the common
# case) makes one call where a look-then-create would make two, and a re-run still adopts.


def group(ctx: StepContext, params: dict) -> StepResult:
    name = params["group"]
    try:
        try:
            created = ctx.send(registry.create_group(name))["Group"]
            return StepResult(adopted=False, outputs={"group": name, "arn": created["Arn"], "created": True})
        except ClientError as exc:
            if not _exists(exc):
                raise
        found = group_read(ctx.account, params)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the group {name}") from None
    if found and found["path"] != registry.ONRAMP_PATH:
        raise StepFailed(registry.group_outside_sentence(name), code="OutsideOnrampsPath")
    return StepResult(adopted=True, outputs={"group": name, "arn": found["arn"] if found else ""})


def _user_ensure(ctx: StepContext, name: str, read: Callable[[], dict | None], fresh: dict) -> tuple[dict, bool]:
    """(what the user has, created now): create it, or read it when AWS says it exists (or the plan knew it)."""
    seen = read() if ctx.known else None
    if seen is not None:
        return _user_into_path(ctx, name, seen), False
    try:
        user = ctx.send(registry.create_user(name))["User"]
        return {"arn": user["Arn"], "tagged": True, **fresh}, True
    except ClientError as exc:
        if not _exists(exc):
            raise
    seen = read()
    if seen is None:  # deleted between the two calls: say so rather than guess
        raise StepFailed(f"The IAM user {name} exists and then did not: retry.", code="UserVanished", retryable=True)
    return _user_into_path(ctx, name, seen), False


def _user_into_path(ctx: StepContext, name: str, seen: dict) -> dict:
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


def app_user(ctx: StepContext, params: dict) -> StepResult:
    name, group_name = params["user"], params["group"]
    try:
        seen, created = _user_ensure(ctx, name, lambda: app_user_read(ctx.account, params), {"groups": []})
        if not seen["tagged"]:
            ctx.send(registry.tag_user(name))
        differences = registry.APP_USER.compare(params, {**seen, "tagged": True}, None)
        if differences:
            fresh = created or ctx.created_by_run("iam.group")
            ctx.send(registry.add_user_to_group(name, group_name), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the app user {name}") from None
    outputs = {"user": name, "arn": seen["arn"], "group": group_name}
    if created:
        outputs["created"] = True
    return StepResult(adopted=not (created or differences or not seen["tagged"]), outputs=outputs)


def _policy_version_make(ctx: StepContext, arn: str, wanted: dict) -> None:
    """Make `wanted` the policy's default version, keeping at most five versions as IAM allows."""
    iam = ctx.client("iam")
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    ctx.send(registry.create_policy_version(arn, wanted))


def media_policy(ctx: StepContext, params: dict) -> StepResult:
    name, arn, user = params["name"], params["arn"], params["user"]
    wanted = registry.media_document(params)
    try:
        seen = media_policy_read(ctx.account, params) if ctx.known else None
        created = False
        if seen is None:
            try:
                ctx.send(registry.create_policy(name, wanted))
                created, seen = True, {"document": wanted, "attached": False}  # attached to no one yet
            except ClientError as exc:
                if not _exists(exc):
                    raise
                seen = media_policy_read(ctx.account, params)
                if seen is None:
                    raise StepFailed(GONE_AFTER_EXISTS.format(what=f"The policy {name}")) from None
        differences = registry.MEDIA_POLICY.compare(params, seen, None)
        if seen["document"] != wanted:
            _policy_version_make(ctx, arn, wanted)
        if not seen["attached"]:
            fresh = created or ctx.created_by_run("iam.app_user")
            ctx.send(registry.attach_user_policy(user, arn), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the policy {name}") from None
    outputs = {"policy": name, "arn": arn, "attached_to": user}
    if created:
        outputs["created"] = True
    return StepResult(adopted=not (created or differences), outputs=outputs)


def _forget_cut_off_keys(iam, ctx: StepContext, user: str, keys: list[dict]) -> list[dict]:
    """Delete keys made by an attempt of ours that was cut off before its secret was sealed (made after
    we asked, known to no credential); the keys left."""
    requested = ctx.step.outputs.get("key_requested_at")
    if not requested:
        return keys
    since = datetime.fromisoformat(requested) - timedelta(seconds=5)
    known = set(
        Credential.objects.filter(user_name=user, customer=ctx.run.customer).values_list("access_key_id", flat=True)
    )
    for key in keys:
        if key["id"] not in known and datetime.fromisoformat(key["created"]) >= since:
            iam.delete_access_key(UserName=user, AccessKeyId=key["id"])
    return [k for k in keys if k["id"] in known or datetime.fromisoformat(k["created"]) < since]


def access_key(ctx: StepContext, params: dict) -> StepResult:
    """One access key for the app user, its secret sealed in the vault the moment AWS returns it.

    A run never creates a second key: a key this run sealed is adopted; a key created by an
    interrupted attempt of this run (its secret never sealed) is deleted and made again; a user
    that already has a key is adopted as is (rotate it from the run page)."""
    user = params["user"]
    mine = None  # the key an earlier attempt of this step sealed; a first attempt has sealed nothing
    if ctx.step.attempts > 1:
        mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.ACCESS_KEY, user_name=user).first()
    new_user = ctx.created_by_run("iam.app_user")
    # A user this run created moments ago has no key but one an attempt of this step made, which it marked
    # (key_requested_at) before asking: only then, or for a user found there, is there anything to list.
    first_try = new_user and mine is None and not ctx.step.outputs.get("key_requested_at")
    try:
        keys = [] if first_try else (access_key_read(ctx.account, params) or {"keys": []})["keys"]
        if mine is not None and mine.access_key_id in {k["id"] for k in keys}:
            return StepResult(adopted=True, outputs={"access_key_id": mine.access_key_id, "credential": str(mine.pk)})
        keys = _forget_cut_off_keys(ctx.client("iam"), ctx, user, keys)
        if keys:
            return StepResult(
                adopted=True,
                outputs={"access_key_id": keys[0]["id"]},
                note=f"{user} already has an access key; Onramp did not make another. "
                "Use “Issue a new key” to rotate it.",
            )
        ctx.remember(key_requested_at=timezone.now().isoformat())
        created = ctx.send(registry.create_access_key(user), settling=new_user)["AccessKey"]
        credential = ctx.seal(
            secret=created.pop("SecretAccessKey"),
            kind=Credential.Kind.ACCESS_KEY,
            user_name=user,
            access_key_id=created["AccessKeyId"],
            region=params["region"],
            bucket=params["bucket"],
        )
        del created
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating an access key for {user}") from None
    outputs = {"access_key_id": credential.access_key_id, "credential": str(credential.pk), "created": True}
    return StepResult(adopted=False, outputs=outputs)


def generate_password(length: int = 24) -> str:
    """A console password that meets any IAM password policy (all four character classes)."""
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*()-_=+[]{}"]
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(ch in cls for ch in password) for cls in classes):
            return password


def _member_policies_apply(ctx: StepContext, params: dict, seen: dict, *, fresh: bool) -> bool:
    """Attach the wanted policies the user lacks and detach those Onramp attached before and no longer
    wants (a role changed); what someone attached by hand stays. True when anything changed."""
    email, wanted = params["email"], registry.member_policies(params)
    previous = ctx.previous or {}
    before = registry.member_policies(previous) if previous else []
    changed = False
    for policy in wanted:
        if policy not in seen["policies"]:
            ctx.send(registry.attach_user_policy(email, registry.managed_policy_arn(policy)), settling=fresh)
            changed = True
    for policy in before:
        if policy not in wanted and policy in seen["policies"]:
            ctx.send(registry.detach_user_policy(email, registry.managed_policy_arn(policy)))
            changed = True
    return changed


def team_member(ctx: StepContext, params: dict) -> StepResult:
    email = params["email"]
    outputs = {"user": email, "role": params["role"], "policies": registry.member_policies(params)}
    try:
        fresh = {"policies": [], "console": False}
        seen, created = _user_ensure(ctx, email, lambda: member_read(ctx.account, params), fresh)
        changed = created or not seen["tagged"]
        if not seen["tagged"]:
            ctx.send(registry.tag_user(email))
        outputs["arn"] = seen["arn"]
        changed = _member_policies_apply(ctx, params, seen, fresh=created) or changed
        cut_off = ctx.step.outputs.get("login_profile_requested")  # an attempt of ours was interrupted
        if params["console"] and (not seen["console"] or cut_off):
            sealed = _console_password(ctx, params, exists=seen["console"], new_user=created)
            changed = changed or sealed is not None
            if sealed is not None:
                outputs["credential"] = str(sealed.pk)
        elif not params["console"] and seen["console"]:
            # Console access ends; a profile an onboarding made moments ago is briefly unmodifiable.
            iam = ctx.client("iam")
            settle(lambda: iam.delete_login_profile(UserName=email), codes=UNMODIFIABLE_CODES)
            changed = True
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the team member {email}") from None
    if created:
        outputs["created"] = True
    return StepResult(adopted=not changed, outputs=outputs)


def _console_password(ctx: StepContext, params: dict, *, exists: bool, new_user: bool) -> Credential | None:
    email = params["email"]
    iam = ctx.client("iam")
    mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.CONSOLE_PASSWORD, user_name=email).first()
    if exists:
        if mine is not None or not ctx.step.outputs.get("login_profile_requested"):
            return None  # the person already has a console password: adopted
        # An attempt of ours made it and was cut off before sealing the password: make it again.
        settle(lambda: iam.delete_login_profile(UserName=email), codes=UNMODIFIABLE_CODES)  # made moments ago
    ctx.remember(login_profile_requested=True)
    password = generate_password()
    ctx.send(registry.create_login_profile(email), settling=new_user, Password=password)
    credential = ctx.seal(
        secret=password,
        kind=Credential.Kind.CONSOLE_PASSWORD,
        user_name=email,
        sign_in_url=params["sign_in_url"],
    )
    del password
    return credential
