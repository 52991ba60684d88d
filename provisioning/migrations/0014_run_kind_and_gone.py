"""Each run says what kind it is (onboarding, change, repair, offboarding); a removal that found nothing left
to remove is "gone", no longer "adopted"."""

from django.db import migrations, models


def kinds_and_gone_backfill(apps, schema_editor):
    """Runs recorded before: an offboarding is one; a run after a successful onboarding or change of the same
    customer (and no offboarding since) was a change (a repair cannot be told apart from a change afterwards).
    Removal steps recorded as adopted found nothing to remove."""
    Run, StepRun = apps.get_model("provisioning", "Run"), apps.get_model("provisioning", "StepRun")
    Run.objects.exclude(offboard="").update(kind="offboarding")
    kept: set[int] = set()  # customers whose account Onramp keeps in a state, as the runs go by
    for run in Run.objects.order_by("created_at").only("pk", "customer_id", "offboard", "status", "kind"):
        if run.offboard:
            if run.status == "succeeded":
                kept.discard(run.customer_id)
            continue
        if run.customer_id in kept:
            Run.objects.filter(pk=run.pk).update(kind="change")
        if run.status == "succeeded":
            kept.add(run.customer_id)
    StepRun.objects.filter(key__startswith="remove.", state="adopted").update(state="gone")


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0013_drift"),
    ]
    operations = [
        migrations.AddField(
            model_name="run",
            name="kind",
            field=models.CharField(
                choices=[
                    ("onboarding", "Onboarding"),
                    ("change", "Change"),
                    ("repair", "Repair"),
                    ("offboarding", "Offboarding"),
                ],
                db_default="onboarding",
                default="onboarding",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="steprun",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("adopted", "Adopted (already existed)"),
                    ("gone", "Already gone"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                    ("cancelled", "Cancelled"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.RunPython(kinds_and_gone_backfill, migrations.RunPython.noop),
    ]
