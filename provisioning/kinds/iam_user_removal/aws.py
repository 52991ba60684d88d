"""Removing a user's parts (remove_<part>) and then the user (remove); something already gone is fine."""

from collections.abc import Callable

from botocore.exceptions import ClientError

from provisioning.aws.errors import error_translate
from provisioning.aws.settle import UNMODIFIABLE_CODES, settle
from provisioning.errors import StepFailed
from provisioning.kinds import REGISTRY
from provisioning.kinds.common_aws import (
    absent_is_none,
    delete,
    gone,
    removed_by_run,
)
from provisioning.kinds.iam_user_removal import declaration
from provisioning.steps.base import StepContext, StepResult


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
            return gone(user)
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


def _user_conflict(ctx: StepContext, user: str) -> bool:
    """DeleteUser answered DeleteConflict. What is on the user that this run did not remove (someone added it after
    Onramp's steps removed the user's parts) is a real conflict: its sentence, at once. Otherwise, when this run
    removed anything of the user, AWS does not see it yet: True (wait it out)."""
    iam = ctx.client("iam")
    removed = set()
    for part in _USER_PARTS:
        removed |= removed_by_run(ctx, f"{declaration.part_key(part)}:{user}")
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


def remove(ctx: StepContext, params: dict) -> StepResult:
    return delete(ctx, params, gone_codes=("NoSuchEntity",), conflict=lambda: _user_conflict(ctx, params["name"]))


remove_login_profile = _user_part("login_profile")
remove_access_keys = _user_part("access_keys")
remove_signing_certificates = _user_part("signing_certificates")
remove_ssh_public_keys = _user_part("ssh_public_keys")
remove_service_credentials = _user_part("service_credentials")
remove_mfa_devices = _user_part("mfa_devices")
remove_inline_policies = _user_part("inline_policies")
remove_attached_policies = _user_part("attached_policies")
remove_groups = _user_part("groups")
