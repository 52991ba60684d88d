from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0003_audit_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="steprun",
            name="ready_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
