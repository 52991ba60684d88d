"""Removing a user, the way AWS requires: its login profile, keys, certificates, SSH keys, service credentials,
MFA devices, inline and attached policies and groups, each a step of its own, then the user (the removal of
both user kinds, the app user and a team member)."""

from provisioning.registry import (
    ApiCall,
    Operation,
    StepKind,
    group_ops,
    ops,
    removal_kind,
    user_ops,
)

ORDER = 5
DELETE_USER = "remove.user"


def part_key(part: str) -> str:
    """The removal kind of one of a user's parts ("login_profile" -> "remove.user.login_profile")."""
    return f"{DELETE_USER}.{part}"


def _user_step(suffix: str, title: str, *operations: Operation, calls=None) -> StepKind:
    key = part_key(suffix) if suffix else DELETE_USER
    # Each part's removal is carried out by remove_<part> (the user's deletion by remove).
    return removal_kind(
        key,
        lambda p: title.format(user=p["name"]),
        operations,
        runs=f"remove_{suffix}" if suffix else "remove",
        **({"calls": calls} if calls else {}),
    )


USER_REMOVAL_KINDS = (
    _user_step(
        "login_profile",
        "{user}: end console access (delete the login profile)",
        *ops("iam", "GetLoginProfile"),
        *user_ops("DeleteLoginProfile"),
    ),
    _user_step(
        "access_keys",
        "{user}: delete the access keys",
        *ops("iam", "ListAccessKeys"),
        *user_ops("DeleteAccessKey"),
    ),
    _user_step(
        "signing_certificates",
        "{user}: delete the signing certificates",
        *ops("iam", "ListSigningCertificates"),
        *user_ops("DeleteSigningCertificate"),
    ),
    _user_step(
        "ssh_public_keys",
        "{user}: delete the SSH public keys",
        *ops("iam", "ListSSHPublicKeys"),
        *user_ops("DeleteSSHPublicKey"),
    ),
    _user_step(
        "service_credentials",
        "{user}: delete the service-specific credentials",
        *ops("iam", "ListServiceSpecificCredentials"),
        *user_ops("DeleteServiceSpecificCredential"),
    ),
    _user_step(
        "mfa_devices",
        "{user}: deactivate the MFA devices, and delete the virtual ones",
        *ops("iam", "ListMFADevices"),
        *user_ops("DeactivateMFADevice"),
        # A virtual device is its own resource (arn:…:mfa/NAME), untagged by whoever made it: no condition can
        # keep this to Onramp's users; the step deletes only a device it has just deactivated from one.
        *ops("iam", "DeleteVirtualMFADevice"),
    ),
    _user_step(
        "inline_policies",
        "{user}: delete the inline policies",
        *ops("iam", "ListUserPolicies"),
        *user_ops("DeleteUserPolicy"),
    ),
    _user_step(
        "attached_policies",
        "{user}: detach the managed policies",
        *ops("iam", "ListAttachedUserPolicies"),
        *user_ops("DetachUserPolicy"),
    ),
    _user_step(
        "groups",
        "{user}: leave the groups",
        *ops("iam", "ListGroupsForUser"),
        *group_ops("RemoveUserFromGroup"),
    ),
    _user_step(
        "",
        "Delete the IAM user {user}",
        *user_ops("DeleteUser"),
        # DeleteConflict: what is still on the user, listed part by part, tells a real conflict (something added
        # after the parts' steps) from AWS not seeing their removal yet (aws.py, _user_conflict).
        *ops(
            "iam",
            "GetLoginProfile",
            "ListAccessKeys",
            "ListSigningCertificates",
            "ListSSHPublicKeys",
            "ListServiceSpecificCredentials",
            "ListMFADevices",
            "ListUserPolicies",
            "ListAttachedUserPolicies",
            "ListGroupsForUser",
        ),
        calls=lambda p: [ApiCall("iam", "DeleteUser", {"UserName": p["name"]})],
    ),
)
KINDS = USER_REMOVAL_KINDS
# A user's removal, in order: its parts AWS wants gone first, then the user (a user kind's `removal`).
USER_REMOVAL = tuple(kind.key for kind in USER_REMOVAL_KINDS)
