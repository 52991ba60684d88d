"""IAM steps: account alias, group, app user, MediaManagement policy, access key, team members."""

import json
import secrets
import string
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from django.utils import timezone

from provisioning import documents, registry
from provisioning.aws import error_code, error_translate
from provisioning.errors import StepFailed
from provisioning.models import Credential
from provisioning.steps.base import StepContext, StepResult

MAX_POLICY_VERSIONS = 5


def _missing(exc: ClientError) -> bool:
    return error_code(exc) == "NoSuchEntity"


def _exists(exc: ClientError) -> bool:
    return error_code(exc) == "EntityAlreadyExists"


def account_alias(ctx: StepContext, params: dict) -> StepResult:
    iam = ctx.client("iam")
    alias = params["alias"]
    try:
        aliases = iam.list_account_aliases()["AccountAliases"]
        if alias in aliases:
            return StepResult(adopted=True, outputs={"alias": alias})
        if aliases:
            raise StepFailed(
                f"The account already has the sign-in alias '{aliases[0]}'. Onramp never replaces an alias: "
                f"change it in the IAM console if it should be '{alias}', or leave the alias empty in the spec.",
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
        found = ctx.client("iam").get_group(GroupName=name, MaxItems=1)["Group"]
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the group {name}") from None
    return StepResult(adopted=True, outputs={"group": name, "arn": found["Arn"]})


def _ensure_user(ctx: StepContext, user_name: str) -> tuple[dict, bool]:
    """(user, created)"""
    try:
        return ctx.send(registry.create_user(user_name))["User"], True
    except ClientError as exc:
        if not _exists(exc):
            raise
    return ctx.client("iam").get_user(UserName=user_name)["User"], False


def app_user(ctx: StepContext, params: dict) -> StepResult:
    name, group_name = params["user"], params["group"]
    try:
        user, created = _ensure_user(ctx, name)
        # A user made just now is in no group yet; one that existed may already be in ours.
        groups = (
            [] if created else [g["GroupName"] for g in ctx.client("iam").list_groups_for_user(UserName=name)["Groups"]]
        )
        joined = group_name not in groups
        if joined:
            fresh = created or ctx.created_by_run("iam.group")
            ctx.send(registry.add_user_to_group(name, group_name), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the app user {name}") from None
    outputs = {"user": name, "arn": user["Arn"], "group": group_name}
    if created:
        outputs["created"] = True
    return StepResult(adopted=not (created or joined), outputs=outputs)


def _as_dict(document) -> dict:
    return json.loads(document) if isinstance(document, str) else document


def _policy_correct(iam, ctx: StepContext, arn: str, wanted: dict) -> bool:
    """Make `wanted` the policy's default version if it is not; True when it changed."""
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    if _as_dict(current["PolicyVersion"]["Document"]) == wanted:
        return False
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    ctx.send(registry.create_policy_version(arn, wanted))
    return True


def media_policy(ctx: StepContext, params: dict) -> StepResult:
    iam = ctx.client("iam")
    name, arn, user = params["name"], params["arn"], params["user"]
    wanted = documents.media_policy_document(scope=params["scope"], bucket=params["bucket"])
    try:
        try:
            ctx.send(registry.create_policy(name, wanted))
            created = changed = True
        except ClientError as exc:
            if not _exists(exc):
                raise
            created = False
            changed = _policy_correct(iam, ctx, arn, wanted)
        # A policy made just now is attached to no one yet.
        attached = [] if created else iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
        if arn not in {p["PolicyArn"] for p in attached}:
            fresh = created or ctx.created_by_run("iam.app_user")
            ctx.send(registry.attach_user_policy(user, arn), settling=fresh)
            changed = True
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the policy {name}") from None
    outputs = {"policy": name, "arn": arn, "attached_to": user}
    if created:
        outputs["created"] = True
    return StepResult(adopted=not changed, outputs=outputs)


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
        if key["AccessKeyId"] not in known and key["CreateDate"] >= since:
            iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    return [k for k in keys if k["AccessKeyId"] in known or k["CreateDate"] < since]


def access_key(ctx: StepContext, params: dict) -> StepResult:
    """One access key for the app user, its secret sealed in the vault the moment AWS returns it.

    A run never creates a second key: a key this run sealed is adopted; a key created by an
    interrupted attempt of this run (its secret never sealed) is deleted and made again; a user
    that already has a key is adopted as is (rotate it from the run page)."""
    iam = ctx.client("iam")
    user = params["user"]
    mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.ACCESS_KEY, user_name=user).first()
    try:
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        if mine is not None and mine.access_key_id in {k["AccessKeyId"] for k in keys}:
            return StepResult(adopted=True, outputs={"access_key_id": mine.access_key_id, "credential": str(mine.pk)})
        keys = _forget_cut_off_keys(iam, ctx, user, keys)
        if keys:
            return StepResult(
                adopted=True,
                outputs={"access_key_id": keys[0]["AccessKeyId"]},
                note=f"{user} already has an access key; Onramp did not make another. "
                "Use “Issue a new key” to rotate it.",
            )
        ctx.remember(key_requested_at=timezone.now().isoformat())
        created = ctx.send(registry.create_access_key(user), settling=ctx.created_by_run("iam.app_user"))["AccessKey"]
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
    return StepResult(
        adopted=False, outputs={"access_key_id": credential.access_key_id, "credential": str(credential.pk)}
    )


def generate_password(length: int = 24) -> str:
    """A console password that meets any IAM password policy (all four character classes)."""
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*()-_=+[]{}"]
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(ch in cls for ch in password) for cls in classes):
            return password


def team_member(ctx: StepContext, params: dict) -> StepResult:
    email = params["email"]
    iam = ctx.client("iam")
    policies = registry.member_policies(params)
    outputs = {"user": email, "role": params["role"], "policies": policies}
    try:
        user, created = _ensure_user(ctx, email)
        changed = created
        outputs["arn"] = user["Arn"]
        attached = set()
        if not created:  # a user made just now has no policy yet
            attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=email)["AttachedPolicies"]}
        for policy in policies:
            arn = registry.managed_policy_arn(policy)
            if arn not in attached:
                ctx.send(registry.attach_user_policy(email, arn), settling=created)
                changed = True
        if params["console"]:
            sealed = _console_password(ctx, params, iam, new_user=created)
            changed = changed or sealed is not None
            if sealed is not None:
                outputs["credential"] = str(sealed.pk)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the team member {email}") from None
    if created:
        outputs["created"] = True
    return StepResult(adopted=not changed, outputs=outputs)


def _console_password(ctx: StepContext, params: dict, iam, *, new_user: bool) -> Credential | None:
    email = params["email"]
    mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.CONSOLE_PASSWORD, user_name=email).first()
    exists = False
    if not new_user:  # a user made just now has no console password yet
        try:
            iam.get_login_profile(UserName=email)
            exists = True
        except ClientError as exc:
            if not _missing(exc):
                raise
    if exists:
        if mine is not None or not ctx.step.outputs.get("login_profile_requested"):
            return None  # the person already has a console password: adopted
        # An attempt of ours made it and was cut off before sealing the password: make it again.
        iam.delete_login_profile(UserName=email)
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
