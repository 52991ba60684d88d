"""Walk the audit log's hash chain and report the first broken link."""

from django.core.management.base import BaseCommand, CommandError

from provisioning.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exit 1 at the first event that does not match."

    def handle(self, *args, **options):
        checked, broken = audit_verify()
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event {broken.pk} ({broken.created_at:%Y-%m-%d %H:%M:%S} "
                f"{broken.action}): its hash does not match its content or the previous event. "
                f"{checked} event(s) before it verified."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} event(s) verified."))
