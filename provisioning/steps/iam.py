"""IAM steps: account alias, group, app user, MediaManagement policy, access key, team members."""

import json
import secrets
import string
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from django.utils import timezone

from provisioning import documents, vault
from provisioning.aws import error_code, error_translate
from provisioning.models import Credential
from provisioning.spec import Spec
from provisioning.steps.base import StepContext, StepFailed, StepResult

MAX_POLICY_VERSIONS = 5


def _missing(exc: ClientError) -> bool:
    return error_code(exc) == "NoSuchEntity"


def account_alias(ctx: StepContext, spec: Spec) -> StepResult:
    iam = ctx.client("iam")
    try:
        aliases = iam.list_account_aliases()["AccountAliases"]
        if spec.account_alias in aliases:
            return StepResult(adopted=True, outputs={"alias": spec.account_alias})
        if aliases:
            raise StepFailed(
                f"The account already has the sign-in alias '{aliases[0]}'. Onramp never replaces an alias: "
                "change it in the IAM console if it should be "
                f"'{spec.account_alias}', or leave the alias empty in the spec.",
                code="AliasConflict",
            )
        iam.create_account_alias(AccountAlias=spec.account_alias)
    except ClientError as exc:
        if error_code(exc) == "EntityAlreadyExists":
            raise StepFailed(
                f"The sign-in alias '{spec.account_alias}' is taken by another AWS account. Choose another one.",
                code="AliasTaken",
            ) from None
        raise error_translate(exc, doing="Setting the account alias") from None
    return StepResult(adopted=False, outputs={"alias": spec.account_alias})


# Steps create first and look only when AWS says the thing exists: a first onboarding (the common
# case) makes one call where a look-then-create would make two, and a re-run still adopts.


def group(ctx: StepContext, spec: Spec) -> StepResult:
    iam = ctx.client("iam")
    try:
        try:
            created = iam.create_group(GroupName=spec.group_name)["Group"]
            return StepResult(adopted=False, outputs={"group": spec.group_name, "arn": created["Arn"]})
        except ClientError as exc:
            if not _exists(exc):
                raise
        found = iam.get_group(GroupName=spec.group_name, MaxItems=1)["Group"]
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the group {spec.group_name}") from None
    return StepResult(adopted=True, outputs={"group": spec.group_name, "arn": found["Arn"]})


def _exists(exc: ClientError) -> bool:
    return error_code(exc) == "EntityAlreadyExists"


def _ensure_user(iam, user_name: str) -> tuple[dict, bool]:
    """(user, created)"""
    try:
        return iam.create_user(UserName=user_name, Tags=[{"Key": "managed-by", "Value": "onramp"}])["User"], True
    except ClientError as exc:
        if not _exists(exc):
            raise
    return iam.get_user(UserName=user_name)["User"], False


def app_user(ctx: StepContext, spec: Spec) -> StepResult:
    iam = ctx.client("iam")
    try:
        user, created = _ensure_user(iam, spec.app_name)
        # A user made just now is in no group yet; one that existed may already be in ours.
        groups = [] if created else [g["GroupName"] for g in iam.list_groups_for_user(UserName=spec.app_name)["Groups"]]
        joined = spec.group_name not in groups
        if joined:
            iam.add_user_to_group(UserName=spec.app_name, GroupName=spec.group_name)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating the app user {spec.app_name}") from None
    return StepResult(
        adopted=not (created or joined),
        outputs={"user": spec.app_name, "arn": user["Arn"], "group": spec.group_name},
    )


def _policy_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:policy/{name}"


def _as_dict(document) -> dict:
    return json.loads(document) if isinstance(document, str) else document


def media_policy(ctx: StepContext, spec: Spec) -> StepResult:
    iam = ctx.client("iam")
    name = documents.media_policy_name(scope=spec.media_scope, bucket=spec.bucket)
    wanted = documents.media_policy_document(scope=spec.media_scope, bucket=spec.bucket)
    arn = _policy_arn(spec.account_id, name)
    try:
        try:
            iam.create_policy(
                PolicyName=name,
                PolicyDocument=json.dumps(wanted),
                Description="Grants access to S3 buckets and objects",
                Tags=[{"Key": "managed-by", "Value": "onramp"}],
            )
            created = changed = True
        except ClientError as exc:
            if not _exists(exc):
                raise
            created = changed = False
        if not created:
            policy = iam.get_policy(PolicyArn=arn)["Policy"]
            current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
            if _as_dict(current["PolicyVersion"]["Document"]) != wanted:
                versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
                if len(versions) >= MAX_POLICY_VERSIONS:
                    oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
                    iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
                iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(wanted), SetAsDefault=True)
                changed = True
        # A policy made just now is attached to no one yet.
        attached = [] if created else iam.list_attached_user_policies(UserName=spec.app_name)["AttachedPolicies"]
        if arn not in {p["PolicyArn"] for p in attached}:
            iam.attach_user_policy(UserName=spec.app_name, PolicyArn=arn)
            changed = True
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the policy {name}") from None
    return StepResult(adopted=not changed, outputs={"policy": name, "arn": arn, "attached_to": spec.app_name})


def access_key(ctx: StepContext, spec: Spec) -> StepResult:
    """One access key for the app user, its secret sealed in the vault the moment AWS returns it.

    A run never creates a second key: a key this run sealed is adopted; a key created by an
    interrupted attempt of this run (its secret never sealed) is deleted and made again; a user
    that already has a key is adopted as is (rotate it from the customer page)."""
    iam = ctx.client("iam")
    user = spec.app_name
    mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.ACCESS_KEY, user_name=user).first()
    try:
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        if mine is not None and mine.access_key_id in {k["AccessKeyId"] for k in keys}:
            return StepResult(adopted=True, outputs={"access_key_id": mine.access_key_id, "credential": str(mine.pk)})
        requested = ctx.step.outputs.get("key_requested_at")
        if requested:
            since = datetime.fromisoformat(requested) - timedelta(seconds=5)
            known = set(
                Credential.objects.filter(user_name=user, customer=ctx.run.customer).values_list(
                    "access_key_id", flat=True
                )
            )
            for key in keys:
                if key["AccessKeyId"] not in known and key["CreateDate"] >= since:
                    # Made by an attempt of ours that was cut off before its secret was sealed.
                    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
            keys = [k for k in keys if k["AccessKeyId"] in known or k["CreateDate"] < since]
        if keys:
            return StepResult(
                adopted=True,
                outputs={"access_key_id": keys[0]["AccessKeyId"]},
                note=f"{user} already has an access key; Onramp did not make another. "
                "Use “Issue a new key” to rotate it.",
            )
        ctx.remember(key_requested_at=timezone.now().isoformat())
        created = iam.create_access_key(UserName=user)["AccessKey"]
        credential = vault.credential_seal(
            secret=created.pop("SecretAccessKey"),
            run=ctx.run,
            step=ctx.step,
            customer=ctx.run.customer,
            issued_to=ctx.run.started_by,
            kind=Credential.Kind.ACCESS_KEY,
            user_name=user,
            access_key_id=created["AccessKeyId"],
            region=spec.region,
            bucket=spec.bucket,
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


def team_member(ctx: StepContext, spec: Spec) -> StepResult:
    email = ctx.step.key.split(":", 1)[1]
    member = next(m for m in spec.team if m.email == email)
    iam = ctx.client("iam")
    outputs = {"user": email, "role": member.role, "policies": list(member.policies)}
    try:
        user, created = _ensure_user(iam, email)
        changed = created
        outputs["arn"] = user["Arn"]
        attached = set()
        if not created:  # a user made just now has no policy yet
            attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=email)["AttachedPolicies"]}
        for policy in member.policies:
            arn = f"arn:aws:iam::aws:policy/{policy}"
            if arn not in attached:
                iam.attach_user_policy(UserName=email, PolicyArn=arn)
                changed = True
        if member.console:
            sealed = _console_password(ctx, spec, iam, email, new_user=created)
            changed = changed or sealed is not None
            if sealed is not None:
                outputs["credential"] = str(sealed.pk)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Setting up the team member {email}") from None
    return StepResult(adopted=not changed, outputs=outputs)


def _console_password(ctx: StepContext, spec: Spec, iam, email: str, *, new_user: bool) -> Credential | None:
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
    iam.create_login_profile(UserName=email, Password=password, PasswordResetRequired=True)
    # The sandbox ignores PasswordResetRequired on create; setting it again shows what AWS does.
    iam.update_login_profile(UserName=email, Password=password, PasswordResetRequired=True)
    credential = vault.credential_seal(
        secret=password,
        run=ctx.run,
        step=ctx.step,
        customer=ctx.run.customer,
        issued_to=ctx.run.started_by,
        kind=Credential.Kind.CONSOLE_PASSWORD,
        user_name=email,
        sign_in_url=documents.sign_in_url(account_id=spec.account_id, alias=spec.account_alias),
    )
    del password
    return credential
