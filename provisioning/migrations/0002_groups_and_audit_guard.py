"""The two groups with their permissions, and the database guard of the append-only audit log."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADMIN_MODELS = ("customer", "run", "steprun", "credential", "auditevent")


def create_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins, _ = Group.objects.get_or_create(name="Admins")
    leads, _ = Group.objects.get_or_create(name="Tech leads")
    admins.permissions.set(
        Permission.objects.filter(content_type__app_label="provisioning", content_type__model__in=ADMIN_MODELS)
        | Permission.objects.filter(content_type__app_label="auth")
    )
    leads.permissions.set(
        Permission.objects.filter(
            content_type__app_label="provisioning",
            codename__in=["view_customer", "view_run", "view_auditevent"],
        )
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Admins", "Tech leads"]).delete()


GUARD = """
CREATE OR REPLACE FUNCTION provisioning_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER provisioning_auditevent_append_only
    BEFORE UPDATE OR DELETE ON provisioning_auditevent
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_append_only();
"""
UNGUARD = """
DROP TRIGGER IF EXISTS provisioning_auditevent_append_only ON provisioning_auditevent;
DROP FUNCTION IF EXISTS provisioning_audit_append_only();
"""


def guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD, params=None)


def unguard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNGUARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_groups, remove_groups),
        migrations.RunPython(guard, unguard),
    ]
