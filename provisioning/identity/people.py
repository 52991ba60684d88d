"""People and groups, changed by a person in the admin: saved and audited in one transaction.

Each audit row says who acted, on whom, and which fields changed: group memberships and permissions by
name, a password only as whether one is usable, never its value or its hash. Who may change what:
anyone with the admin's permissions edits ordinary users and groups; only a superuser edits a
superuser, grants superuser or staff status or permissions of one's own, or sets another user's password.
"""

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from provisioning.audit.chain import audit_record
from provisioning.models import ProviderIdentity

# User fields only a superuser may change (they make someone an administrator of the portal itself).
SUPERUSER_ONLY_FIELDS = ("is_superuser", "is_staff", "user_permissions")
# A field whose name says password is recorded as an event of its own, never as a changed field.
_PASSWORD_FIELDS = ("password", "password1", "password2", "usable_password")


def may_edit_user(*, actor: User, user: User) -> bool:
    return actor.is_superuser or not user.is_superuser


def may_set_password(*, actor: User, user: User) -> bool:
    return actor.is_superuser or actor.pk == user.pk


def _names(groups) -> set[str]:
    return {group.name for group in groups}


def _codenames(permissions) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}


def _user_rights(user) -> tuple[set[str], set[str]]:
    if user.pk is None:
        return set(), set()
    return _names(user.groups.all()), _codenames(user.user_permissions.select_related("content_type"))


def _diff(details: dict, name: str, before: set[str], after: set[str]) -> None:
    if after - before:
        details[f"{name}_added"] = sorted(after - before)
    if before - after:
        details[f"{name}_removed"] = sorted(before - after)


def user_save(
    *,
    user: User,
    actor: User,
    created: bool,
    changed: list[str],
    groups: list[Group] | None = None,
    permissions: list[Permission] | None = None,
) -> None:
    """Save a user edited by `actor` with their groups and permissions (None: left as they are), and
    audit who changed what: fields by name, memberships and permissions added and removed."""
    with transaction.atomic():
        groups_before, permissions_before = _user_rights(user)
        user.save()
        if groups is not None:
            user.groups.set(groups)
        if permissions is not None:
            user.user_permissions.set(permissions)
        groups_after, permissions_after = _user_rights(user)
        fields = [f for f in changed if f not in _PASSWORD_FIELDS and f not in ("groups", "user_permissions")]
        details: dict = {"fields": fields, "via": "admin"}
        _diff(details, "groups", groups_before, groups_after)
        _diff(details, "permissions", permissions_before, permissions_after)
        if created:
            details["password_usable"] = user.has_usable_password()
        elif len(details) == 2 and not fields:
            return  # saved as it was: nothing to record
        audit_record(
            action="auth.user_created" if created else "auth.user_changed",
            actor=actor,
            target=user.get_username(),
            details=details,
        )


def user_password_recorded(*, user: User, actor: User, via: str = "admin") -> None:
    """Audit a password just set (or password sign-in disabled) for `user` by `actor`: never the value.
    `via`: "admin" (the user's page), "own password change" (the admin's page for one's own)."""
    audit_record(
        action="auth.password_set",
        actor=actor,
        target=user.get_username(),
        details={"password_usable": user.has_usable_password(), "via": via},
    )


def user_delete(*, user: User, actor: User) -> None:
    with transaction.atomic():
        groups, permissions = _user_rights(user)
        audit_record(
            action="auth.user_deleted",
            actor=actor,
            target=user.get_username(),
            details={"groups": sorted(groups), "is_superuser": user.is_superuser, "via": "admin"},
        )
        user.delete()


def group_save(
    *, group: Group, actor: User, created: bool, changed: list[str], permissions: list | None = None
) -> None:
    """Save a group with its permissions and audit the change: its name, permissions added and removed."""
    with transaction.atomic():
        before = _codenames(group.permissions.select_related("content_type")) if group.pk else set()
        group.save()
        if permissions is not None:
            group.permissions.set(permissions)
        after = _codenames(group.permissions.select_related("content_type"))
        details: dict = {"fields": [f for f in changed if f != "permissions"], "via": "admin"}
        _diff(details, "permissions", before, after)
        if not created and len(details) == 2 and not details["fields"]:
            return
        audit_record(
            action="auth.group_created" if created else "auth.group_changed", actor=actor, target=group.name,
            details=details,
        )  # fmt: skip


def group_delete(*, group: Group, actor: User) -> None:
    with transaction.atomic():
        audit_record(
            action="auth.group_deleted",
            actor=actor,
            target=group.name,
            details={"members": sorted(group.user_set.values_list("username", flat=True)), "via": "admin"},
        )
        group.delete()


def provider_identity_unlink(*, identity: ProviderIdentity, actor: User) -> None:
    """Forget which identity at the provider is this user (provisioning/identity/oidc.py links them at the first
    sign-in): the next identity with the user's email is linked in its place, e.g. a person whose account
    at the provider was remade. Audited."""
    with transaction.atomic():
        audit_record(
            action="auth.identity_unlinked",
            actor=actor,
            target=identity.user.get_username(),
            details={"iss": identity.issuer, "sub": identity.subject, "via": "admin"},
        )
        identity.delete()
