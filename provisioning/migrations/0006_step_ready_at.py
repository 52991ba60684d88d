from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0005_audit_key_and_external_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="steprun",
            name="ready_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
