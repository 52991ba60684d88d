"""People and groups in the admin: an Admin (dana, not a superuser) manages memberships, audited; only a
superuser (root) makes administrators, sets another's password or edits a superuser. And no admin list
filters on a secret field."""

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from provisioning.identity.admin import SecretLookupsRefused
from provisioning.models import AuditEvent, Credential
from tests.conftest import PASSWORD, customer_make, finished_run, seal_key

NEW_PASSWORD = "a-brand-new-passphrase-4711"


def _change(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def _password(user) -> str:
    return reverse("admin:auth_user_password_change", args=[user.pk])


def _user_form(user, **fields) -> dict:
    """The user's change form as the browser posts it (only the fields the page shows to this admin)."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S.%f"),
        "_save": "Save",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v not in (None, "")}


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@agency.example", PASSWORD)


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def test_an_admin_cannot_make_anyone_superuser_or_staff_and_her_membership_change_is_audited(client, dana, charlie):
    client.force_login(dana)
    admins = Group.objects.get(name="Admins")
    response = client.post(
        _change(charlie),
        _user_form(charlie, is_superuser="on", is_staff="on", groups=[str(admins.pk)], email="c@agency.example"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    charlie.refresh_from_db()
    assert (charlie.is_superuser, charlie.is_staff) == (False, False)  # read-only for her: ignored
    assert list(charlie.groups.values_list("name", flat=True)) == ["Admins"]  # memberships are hers to manage
    event = AuditEvent.objects.get(action="auth.user_changed")
    assert (event.actor_id, event.target) == (dana.pk, "charlie")
    # (the admin's split date-time widget posts date_joined back without its microseconds: a change to it)
    assert [f for f in event.details["fields"] if f != "date_joined"] == ["email"]
    assert event.details["groups_added"] == ["Admins"] and "is_superuser" not in event.details["fields"]
    page = client.get(_change(charlie)).content.decode()
    assert 'name="is_superuser"' not in page and 'name="is_staff"' not in page
    assert 'name="user_permissions"' not in page


def test_a_superuser_grants_superuser_status_and_permissions_audited(client, root, charlie):
    client.force_login(root)
    permission = Permission.objects.get(codename="change_customer")
    response = client.post(
        _change(charlie), _user_form(charlie, is_superuser="on", is_staff="on", user_permissions=[str(permission.pk)])
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    charlie.refresh_from_db()
    assert charlie.is_superuser and charlie.is_staff
    event = AuditEvent.objects.get(action="auth.user_changed")
    assert (event.actor_label, event.target) == ("root", "charlie")
    assert {"is_staff", "is_superuser"} <= set(event.details["fields"])
    assert event.details["permissions_added"] == ["provisioning.change_customer"]


def test_only_a_superuser_sets_another_users_password_and_it_is_audited_without_the_password(client, dana, alice, root):
    old_hash = alice.password
    client.force_login(dana)
    form = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    assert client.get(_password(alice)).status_code == 403
    assert client.post(_password(alice), form).status_code == 403
    alice.refresh_from_db()
    assert alice.password == old_hash
    assert not AuditEvent.objects.filter(action="auth.password_set").exists()

    client.force_login(root)
    assert client.post(_password(alice), form).status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="auth.password_set")
    assert (event.actor_label, event.target, event.details) == (
        "root",
        "alice",
        {"password_usable": True, "via": "admin"},
    )
    text = _audit_text()
    assert NEW_PASSWORD not in text and alice.password not in text and alice.password.split("$")[-1] not in text


def test_an_admin_cannot_edit_or_delete_a_superuser(client, dana, root):
    client.force_login(dana)
    assert client.get(_change(root)).status_code == 200  # she may look
    assert 'name="_save"' not in client.get(_change(root)).content.decode()
    assert client.post(_change(root), _user_form(root, email="mine@evil.example")).status_code == 403
    assert client.post(reverse("admin:auth_user_delete", args=[root.pk]), {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [root.pk], "post": "yes"}
    assert client.post(reverse("admin:auth_user_changelist"), bulk).status_code == 403
    root.refresh_from_db()
    assert root.email == "root@agency.example"
    assert not AuditEvent.objects.filter(action__startswith="auth.user_").exists()


def test_users_created_and_deleted_by_an_admin_are_audited(client, dana):
    client.force_login(dana)
    response = client.post(
        reverse("admin:auth_user_add"),
        {"username": "erin", "usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    erin = User.objects.get(username="erin")
    created = AuditEvent.objects.get(action="auth.user_created")
    assert (created.actor_label, created.target) == ("dana", "erin")
    assert created.details == {"fields": ["username"], "password_usable": True, "via": "admin"}
    assert client.post(reverse("admin:auth_user_delete", args=[erin.pk]), {"post": "yes"}).status_code == 302
    deleted = AuditEvent.objects.get(action="auth.user_deleted")
    assert (deleted.actor_label, deleted.target) == ("dana", "erin")
    assert NEW_PASSWORD not in _audit_text()


def test_group_permission_changes_are_audited(client, dana):
    client.force_login(dana)
    leads = Group.objects.get(name="Tech leads")
    keep = list(leads.permissions.values_list("pk", flat=True))
    change = Permission.objects.get(codename="change_customer")
    view_run = Permission.objects.get(codename="view_run")
    permissions = [str(pk) for pk in keep if pk != view_run.pk] + [str(change.pk)]
    response = client.post(
        reverse("admin:auth_group_change", args=[leads.pk]), {"name": "Tech leads", "permissions": permissions}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="auth.group_changed")
    assert (event.actor_label, event.target) == ("dana", "Tech leads")
    assert event.details == {
        "fields": [],
        "permissions_added": ["provisioning.change_customer"],
        "permissions_removed": ["provisioning.view_run"],
        "via": "admin",
    }
    response = client.post(reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": []})
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="auth.group_created").target == "Auditors"


# --- Secret fields are never a filter ---------------------------------------------------


@pytest.mark.parametrize(
    ("changelist", "lookup"),
    [
        ("provisioning_customer", "secret_access_key_ciphertext__regex"),
        ("provisioning_customer", "secret_access_key_ciphertext__startswith"),
        ("provisioning_credential", "ciphertext__startswith"),
        ("provisioning_run", "customer__secret_access_key_ciphertext__startswith"),
        ("provisioning_run", "credentials__ciphertext__startswith"),
        ("provisioning_steprun", "run__customer__secret_access_key_ciphertext__startswith"),
        ("auth_user", "runs__customer__secret_access_key_ciphertext__startswith"),
    ],
)
def test_an_admin_list_refuses_to_filter_on_a_secret_field(client, alice, dana, changelist, lookup):
    customer = customer_make(access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key_ciphertext="gAAAAAsecret")
    seal_key(finished_run(alice, customer=customer.name), secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    Credential.objects.update(ciphertext="gAAAAAsecret")
    url = reverse(f"admin:{changelist}_changelist")
    allowed = []
    for user in (alice, dana):
        client.force_login(user)
        if client.get(url).status_code != 200:
            continue  # a list this user may not see at all
        allowed.append(user)
        response = client.get(url, {lookup: "gAAAAA"})
        assert response.status_code == 400, (user.username, response.status_code)
    assert dana in allowed


def test_every_admin_of_ours_carries_the_secret_lookup_guard():
    ours = [ma for model, ma in admin.site._registry.items() if model._meta.app_label in ("provisioning", "auth")]
    assert len(ours) == 8
    for model_admin in ours:
        assert isinstance(model_admin, SecretLookupsRefused), type(model_admin)


def test_point_12_changing_ones_own_password_in_the_admin_is_audited_without_the_password(client, dana):
    client.force_login(dana)
    form = {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    wrong = client.post(reverse("admin:password_change"), {**form, "old_password": "not-her-password"})
    assert wrong.status_code == 200 and not AuditEvent.objects.filter(action="auth.password_set").exists()
    done = client.post(reverse("admin:password_change"), form)
    assert done.status_code == 302 and done["Location"] == reverse("admin:password_change_done")
    dana.refresh_from_db()
    assert dana.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="auth.password_set")
    assert (event.actor, event.target, event.details) == (
        dana,
        "dana",
        {"password_usable": True, "via": "own password change"},
    )
    text = _audit_text()
    assert NEW_PASSWORD not in text and PASSWORD not in text and dana.password.split("$")[-1] not in text
    assert client.get(reverse("admin:index")).status_code == 200  # still signed in after the change
