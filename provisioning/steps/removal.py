"""Removing what Onramp made, the way AWS requires: a user's login profile, keys, certificates, SSH keys,
service credentials, MFA devices, inline and attached policies and groups, then the user; a policy once
detached from everyone; a group once emptied; a bucket only when empty or after its name was typed; a
repository likewise. Each is a step of its own (progress, audit, retry); something already gone is fine."""

from collections.abc import Callable

from botocore.exceptions import ClientError

from provisioning.aws import UNMODIFIABLE_CODES, error_code, error_translate, settle
from provisioning.errors import StepFailed
from provisioning.ledger import ledger_holds_user
from provisioning.registry import REGISTRY
from provisioning.steps.base import StepContext, StepResult
from provisioning.steps.iam import absent_is_none


def _gone(name: str) -> StepResult:
    return StepResult(adopted=False, gone=True, outputs={"removed": [], "name": name})


def _each(
    ctx: StepContext,
    params: dict,
    listing: Callable[[object, str], list],
    remove: Callable[[object, str, object], None],
) -> StepResult:
    """List what the user has of one sort and remove each; nothing to do when the user is gone."""
    iam, user = ctx.client("iam"), params["name"]
    try:
        found = absent_is_none(lambda: {"items": listing(iam, user)})
        if found is None:
            return _gone(user)
        for item in found["items"]:
            remove(iam, user, item)
    except ClientError as exc:
        raise error_translate(exc, doing=REGISTRY.kind_of(ctx.step.key).title(params)) from None
    removed = [str(i) for i in found["items"]]
    return StepResult(adopted=False, gone=not removed, outputs={"removed": removed, "name": user})


def _mfa_device_remove(iam, user: str, serial: str) -> None:
    """Deactivate the device; a virtual one (its serial is its ARN, arn:aws:iam::ACCOUNT:mfa/NAME) is then deleted,
    or it would stay in the account unassigned. A hardware or FIDO device is the person's, not the account's."""
    iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
    if serial.startswith("arn:") and ":mfa/" in serial:
        # AWS deletes only a deactivated device: the deactivation just made may take a moment to be seen.
        settle(lambda: iam.delete_virtual_mfa_device(SerialNumber=serial), codes=frozenset({"DeleteConflict"}))


# A user's parts AWS wants gone before the user, in order: how to list each, and how to remove one.
_USER_PARTS = {
    "login_profile": (
        lambda iam, user: [user] if absent_is_none(lambda: iam.get_login_profile(UserName=user)) else [],
        # A login profile made moments ago (an onboarding just before) is briefly unmodifiable.
        lambda iam, user, _: settle(lambda: iam.delete_login_profile(UserName=user), codes=UNMODIFIABLE_CODES),
    ),
    "access_keys": (
        lambda iam, user: [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]],
        lambda iam, user, key: iam.delete_access_key(UserName=user, AccessKeyId=key),
    ),
    "signing_certificates": (
        lambda iam, user: [c["CertificateId"] for c in iam.list_signing_certificates(UserName=user)["Certificates"]],
        lambda iam, user, cert: iam.delete_signing_certificate(UserName=user, CertificateId=cert),
    ),
    "ssh_public_keys": (
        lambda iam, user: [k["SSHPublicKeyId"] for k in iam.list_ssh_public_keys(UserName=user)["SSHPublicKeys"]],
        lambda iam, user, key: iam.delete_ssh_public_key(UserName=user, SSHPublicKeyId=key),
    ),
    "service_credentials": (
        lambda iam, user: [
            c["ServiceSpecificCredentialId"]
            for c in iam.list_service_specific_credentials(UserName=user)["ServiceSpecificCredentials"]
        ],
        lambda iam, user, cred: iam.delete_service_specific_credential(UserName=user, ServiceSpecificCredentialId=cred),
    ),
    "mfa_devices": (
        lambda iam, user: [d["SerialNumber"] for d in iam.list_mfa_devices(UserName=user)["MFADevices"]],
        lambda iam, user, serial: _mfa_device_remove(iam, user, serial),
    ),
    "inline_policies": (
        lambda iam, user: iam.list_user_policies(UserName=user)["PolicyNames"],
        lambda iam, user, name: iam.delete_user_policy(UserName=user, PolicyName=name),
    ),
    "attached_policies": (
        lambda iam, user: [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]],
        lambda iam, user, arn: iam.detach_user_policy(UserName=user, PolicyArn=arn),
    ),
    "groups": (
        lambda iam, user: [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]],
        lambda iam, user, group: iam.remove_user_from_group(UserName=user, GroupName=group),
    ),
}


def _user_part(part: str):
    listing, remove = _USER_PARTS[part]

    def step(ctx: StepContext, params: dict) -> StepResult:
        return _each(ctx, params, listing, remove)

    step.__name__ = f"user_{part}"
    return step


# What AWS answers a delete for a moment after the last thing hanging on the user, group or policy was removed.
CONFLICT_CODES = frozenset({"DeleteConflict"})


def _delete(
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
            return _gone(params["name"])
        if code in refusals:
            raise StepFailed(refusals[code], code=code) from None
        raise error_translate(exc, doing=REGISTRY.kind_of(ctx.step.key).title(params)) from None
    return StepResult(adopted=False, outputs={"removed": [params["name"]], "name": params["name"]})


# A user's parts in words, for the sentence that names what is still on it.
_PART_WORDS = {
    "login_profile": "a console password",
    "access_keys": "access keys",
    "signing_certificates": "signing certificates",
    "ssh_public_keys": "SSH public keys",
    "service_credentials": "service-specific credentials",
    "mfa_devices": "MFA devices",
    "inline_policies": "inline policies",
    "attached_policies": "attached policies",
    "groups": "group memberships",
}


def _removed_by_run(ctx: StepContext, key: str) -> set[str]:
    """What this run's step `key` removed (its outputs' "removed"); a `key` ending in ":" names every instance of
    that kind (every user's remove.user.groups:…)."""
    if ctx.run is None:
        return set()
    steps = ctx.run.steps.filter(key__startswith=key) if key.endswith(":") else ctx.run.steps.filter(key=key)
    return {
        str(item) for outputs in steps.values_list("outputs", flat=True) for item in (outputs or {}).get("removed", [])
    }


def _user_conflict(ctx: StepContext, user: str) -> bool:
    """DeleteUser answered DeleteConflict. What is on the user that this run did not remove (someone added it after
    Onramp's steps removed the user's parts) is a real conflict: its sentence, at once. Otherwise, when this run
    removed anything of the user, AWS does not see it yet: True (wait it out)."""
    iam = ctx.client("iam")
    removed = set()
    for part in _USER_PARTS:
        removed |= _removed_by_run(ctx, f"remove.user.{part}:{user}")
    left = {}
    for part, (listing, _remove) in _USER_PARTS.items():
        items = [str(item) for item in listing(iam, user) if str(item) not in removed]
        if items:
            left[part] = items
    if left:
        what = "; ".join(f"{_PART_WORDS[part]} ({', '.join(items)})" for part, items in left.items())
        raise StepFailed(
            f"The IAM user {user} cannot be deleted: it has {what}, which Onramp did not remove (they were added "
            "after Onramp removed what the user had). Remove them yourself, or plan again to remove them, then retry.",
            code="UserInUse",
        )
    return bool(removed)


def user(ctx: StepContext, params: dict) -> StepResult:
    return _delete(ctx, params, gone_codes=("NoSuchEntity",), conflict=lambda: _user_conflict(ctx, params["name"]))


def access_key(ctx: StepContext, params: dict) -> StepResult:
    """An access key Onramp made for a user that stays (released): it goes, so that no key of Onramp's
    outlives Onramp's care of the user."""
    return _delete(ctx, params, gone_codes=("NoSuchEntity",))


def account_alias(ctx: StepContext, params: dict) -> StepResult:
    return _delete(ctx, params, gone_codes=("NoSuchEntity",))


def _policy_in_use(name: str, entities: dict, detached: set[str] | None = None) -> StepFailed | None:
    """A role holds the policy (Onramp manages none); once Onramp `detached` it from its users and groups, also a
    user or group it did not detach it from."""
    roles = [r["RoleName"] for r in entities["PolicyRoles"]]
    if roles:
        return StepFailed(
            f"The policy {name} is attached to the role(s) {', '.join(roles)}, which Onramp does not "
            "manage: detach it there, then retry.",
            code="PolicyInUse",
        )
    if detached is None:
        return None
    others = [e["UserName"] for e in entities["PolicyUsers"]] + [e["GroupName"] for e in entities["PolicyGroups"]]
    others = [other for other in others if other not in detached]
    if others:
        return StepFailed(
            f"The policy {name} was attached to {', '.join(others)} after Onramp detached it from everyone: detach it "
            "there (or keep the policy), then retry.",
            code="PolicyInUse",
        )
    return None


def _policy_conflict(ctx: StepContext, params: dict, removed: set[str]) -> bool:
    """DeletePolicy answered DeleteConflict: an attachment Onramp did not remove is the sentence, at once; otherwise
    AWS does not see yet what this step or the run's user removals detached (True: wait it out)."""
    entities = ctx.client("iam").list_entities_for_policy(PolicyArn=params["arn"])
    refused = _policy_in_use(params["name"], entities, removed)
    if refused is not None:
        raise refused
    return bool(removed) or params["arn"] in _removed_by_run(ctx, "remove.user.attached_policies:")


def media_policy(ctx: StepContext, params: dict) -> StepResult:
    iam, arn = ctx.client("iam"), params["arn"]
    removed: set[str] = set()  # the users, groups and versions this step detached or deleted
    try:
        entities = absent_is_none(lambda: iam.list_entities_for_policy(PolicyArn=arn))
        if entities is None:
            return _gone(params["name"])
        refused = _policy_in_use(params["name"], entities)
        if refused is not None:
            raise refused
        for entity in entities["PolicyUsers"]:
            iam.detach_user_policy(UserName=entity["UserName"], PolicyArn=arn)
            removed.add(entity["UserName"])
        for entity in entities["PolicyGroups"]:
            iam.detach_group_policy(GroupName=entity["GroupName"], PolicyArn=arn)
            removed.add(entity["GroupName"])
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
                removed.add(version["VersionId"])
    except ClientError as exc:
        raise error_translate(exc, doing=f"Removing the policy {params['name']}") from None
    return _delete(ctx, params, gone_codes=("NoSuchEntity",), conflict=lambda: _policy_conflict(ctx, params, removed))


def _group_in_use(ctx: StepContext, name: str, found: dict) -> StepFailed | None:
    theirs = [member["UserName"] for member in found["Users"] if not ledger_holds_user(ctx.run.customer_id, member)]
    if not theirs:
        return None
    return StepFailed(
        f"The group {name} still has members Onramp does not manage: {', '.join(theirs)}. Remove them from "
        "the group (or delete the group yourself), then retry.",
        code="GroupInUse",
    )


def _group_conflict(ctx: StepContext, name: str, removed: set[str]) -> bool:
    """DeleteGroup answered DeleteConflict: a member Onramp does not manage, or a policy it did not take off, is a
    sentence at once; otherwise AWS does not see yet what this step or the run's user removals took off (True)."""
    iam = ctx.client("iam")
    refused = _group_in_use(ctx, name, iam.get_group(GroupName=name))
    if refused is not None:
        raise refused
    policies = [p["PolicyArn"] for p in iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]]
    policies += iam.list_group_policies(GroupName=name)["PolicyNames"]
    added = [policy for policy in policies if policy not in removed]
    if added:
        raise StepFailed(
            f"The group {name} has policies Onramp did not put there: {', '.join(added)}. Remove them from the group "
            "(or delete the group yourself), then retry.",
            code="GroupInUse",
        )
    return bool(removed) or name in _removed_by_run(ctx, "remove.user.groups:")


def group(ctx: StepContext, params: dict) -> StepResult:
    iam, name = ctx.client("iam"), params["name"]
    removed: set[str] = set()  # the members and policies this step took off the group
    try:
        found = absent_is_none(lambda: iam.get_group(GroupName=name))
        if found is None:
            return _gone(name)
        refused = _group_in_use(ctx, name, found)
        if refused is not None:
            raise refused
        for member in found["Users"]:
            iam.remove_user_from_group(GroupName=name, UserName=member["UserName"])
            removed.add(member["UserName"])
        for policy in iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]:
            iam.detach_group_policy(GroupName=name, PolicyArn=policy["PolicyArn"])
            removed.add(policy["PolicyArn"])
        for policy_name in iam.list_group_policies(GroupName=name)["PolicyNames"]:
            iam.delete_group_policy(GroupName=name, PolicyName=policy_name)
            removed.add(policy_name)
    except ClientError as exc:
        raise error_translate(exc, doing=f"Removing the group {name}") from None
    return _delete(ctx, params, gone_codes=("NoSuchEntity",), conflict=lambda: _group_conflict(ctx, name, removed))


# How many keys a sentence names: enough to find them, short enough to read.
_NAMED_KEYS = 5


def _page_versions(s3, name: str) -> tuple[list[dict], bool]:
    """The first page (up to 1,000) of the bucket's object versions and delete markers, and whether there are
    more. Always the first page: the one before it was deleted, so the listing never holds the whole bucket."""
    page = s3.list_object_versions(Bucket=name)
    found = [
        {"Key": item["Key"], "VersionId": item["VersionId"]}
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
    ]
    return found, bool(page.get("IsTruncated"))


def _keys_named(errors: list[dict]) -> str:
    keys = sorted({error["Key"] for error in errors})
    more = f" and {len(keys) - _NAMED_KEYS} more" if len(keys) > _NAMED_KEYS else ""
    return ", ".join(keys[:_NAMED_KEYS]) + more


def _locked(s3, name: str) -> bool:
    """Whether Object Lock is on for the bucket (AWS answers ObjectLockConfigurationNotFoundError when not)."""
    try:
        config = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    except ClientError as exc:
        if error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return config.get("ObjectLockEnabled") == "Enabled"


def _blocked(s3, name: str, errors: list[dict]) -> StepFailed:
    """DeleteObjects answered 200 with per-key Errors: what kept those keys, in a sentence."""
    if _locked(s3, name) and all(error.get("Code") == "AccessDenied" for error in errors):
        return StepFailed(
            f"The bucket {name} cannot be emptied: Object Lock protects {len(errors)} object version(s) "
            f"({_keys_named(errors)}) with a retention period that has not ended or a legal hold. Onramp deleted "
            "what it could. Wait until the retention ends or have the legal hold removed (a governance-mode "
            "retention can be bypassed by someone allowed s3:BypassGovernanceRetention), then retry.",
            code="ObjectLocked",
        )
    reasons = sorted({f"{error.get('Code')}: {error.get('Message')}" for error in errors})
    return StepFailed(
        f"The bucket {name} cannot be emptied: AWS refused to delete {len(errors)} object version(s) "
        f"({_keys_named(errors)}), saying {'; '.join(reasons)}. Onramp deleted what it could; retry once that is "
        "resolved.",
        code="ObjectsNotDeleted",
    )


def _mfa_delete_on(s3, name: str) -> bool:
    return s3.get_bucket_versioning(Bucket=name).get("MFADelete") == "Enabled"


def _bucket_empty(s3, name: str) -> None:
    """Delete every object version and delete marker, a page at a time (DeleteObjects takes 1,000 keys, a listing
    page holds as many). DeleteObjects answers 200 even when keys stay (Object Lock): its Errors are read."""
    while True:
        versions, _ = _page_versions(s3, name)
        if not versions:
            return
        try:
            answer = s3.delete_objects(Bucket=name, Delete={"Objects": versions, "Quiet": True})
        except ClientError as exc:
            # MFA Delete refuses the whole request, whatever else it names (S3 API reference, DeleteObjects).
            if error_code(exc) == "AccessDenied" and _mfa_delete_on(s3, name):
                raise StepFailed(
                    f"The bucket {name} has MFA Delete on: only the account's root user, signed in with its MFA "
                    "device, can delete its object versions. Ask the account's owner to empty it (or turn MFA "
                    "Delete off) as root, then retry.",
                    code="MfaDelete",
                ) from None
            raise
        if answer.get("Errors"):
            raise _blocked(s3, name, answer["Errors"])


def bucket(ctx: StepContext, params: dict) -> StepResult:
    s3, name = ctx.client("s3"), params["name"]
    try:
        versions, more = _page_versions(s3, name)
        if versions and not params.get("confirmed"):
            count = f"at least {len(versions)}" if more else str(len(versions))
            raise StepFailed(
                f"The bucket {name} holds {count} object version(s). Onramp deletes a bucket that holds "
                "objects only when its name was typed in the plan: plan again and type it, or empty it yourself.",
                code="BucketNotEmpty",
            )
        _bucket_empty(s3, name)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return _gone(name)
        raise error_translate(exc, doing=f"Emptying the bucket {name}") from None
    return _delete(ctx, params, gone_codes=("NoSuchBucket",))


def repository(ctx: StepContext, params: dict) -> StepResult:
    not_empty = (
        f"The repository {params['name']} holds images. Onramp deletes it with its images only when its name "
        "was typed in the plan: plan again and type it, or delete the images yourself."
    )
    return _delete(
        ctx,
        params,
        gone_codes=("RepositoryNotFoundException",),
        refusals={"RepositoryNotEmptyException": not_empty},
    )


REMOVERS = {
    **{f"remove.user.{part}": _user_part(part) for part in _USER_PARTS},
    "remove.user": user,
    "remove.iam.access_key": access_key,
    "remove.account.alias": account_alias,
    "remove.iam.media_policy": media_policy,
    "remove.iam.group": group,
    "remove.s3.bucket": bucket,
    "remove.ecr.repository": repository,
}
