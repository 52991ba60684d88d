"""The audit chain's key id (rows written before it stay unkeyed: key_id ""), AWS's external id limit
(2 to 1224), an ASCII-only account id, and no role but the audit table's owner keeps the rights to
rewrite it (UPDATE, DELETE, TRUNCATE, TRIGGER), whatever default privileges gave them."""

import django.core.validators
from django.db import migrations, models

import provisioning.models

REVOKE = """
DO $$
DECLARE
    grantee_name text;
BEGIN
    FOR grantee_name IN
        SELECT DISTINCT pg_get_userbyid(acl.grantee)
        FROM pg_class c, aclexplode(c.relacl) acl
        WHERE c.oid = 'provisioning_auditevent'::regclass
          AND acl.grantee <> c.relowner AND acl.grantee <> 0
          AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')
    LOOP
        EXECUTE format(
            'REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON provisioning_auditevent FROM %I', grantee_name
        );
    END LOOP;
END $$;
"""


def revoke(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVOKE, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0004_registry"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AlterField(
            model_name="customer",
            name="aws_account_id",
            field=models.CharField(
                error_messages={"unique": "A customer with this AWS account id already exists."},
                max_length=12,
                unique=True,
                validators=[
                    django.core.validators.RegexValidator("^[0-9]{12}$", "An AWS account id is exactly 12 digits.")
                ],
                verbose_name="AWS account id",
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="external_id",
            field=models.CharField(
                default=provisioning.models.new_external_id,
                max_length=1224,
                validators=[django.core.validators.MinLengthValidator(2)],
            ),
        ),
        migrations.RunPython(revoke, migrations.RunPython.noop),
    ]
