"""One registry of steps: a step keeps its declared parameters; finishing a run is no longer a step;
the customer's connection is called what the spec calls it, its access."""

from django.db import migrations, models


def drop_finalize_steps(apps, schema_editor):
    # The run's summary, which the finalize row repeated, stays on the run.
    apps.get_model("provisioning", "StepRun").objects.filter(key="finalize").delete()


class Migration(migrations.Migration):
    dependencies = [("provisioning", "0003_audit_search")]

    operations = [
        migrations.RenameField("customer", "connection", "access"),
        migrations.AlterField(
            model_name="customer",
            name="access",
            field=models.CharField(
                choices=[
                    ("role", "Assume a role with an external id (recommended)"),
                    ("keys", "An IAM user's access keys given by the customer"),
                ],
                default="role",
                max_length=8,
                verbose_name="how Onramp reaches the account",
            ),
        ),
        migrations.AddField(
            model_name="steprun",
            name="params",
            field=models.JSONField(blank=True, default=dict, help_text="The step's parameters, from its declaration."),
        ),
        migrations.RunPython(drop_finalize_steps, migrations.RunPython.noop),
    ]
