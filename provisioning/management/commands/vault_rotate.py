"""Re-encrypt every unrevealed secret with the newest VAULT_KEYS key.

Rotation: put a new key first in VAULT_KEYS (keep the old ones after it), restart, run this,
then drop the old keys."""

from django.core.management.base import BaseCommand

from provisioning.vault import vault_rotate


class Command(BaseCommand):
    help = "Re-encrypt unrevealed secrets and stored customer keys with the first key of VAULT_KEYS."

    def handle(self, *args, **options):
        count = vault_rotate()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secret(s) with the newest key."))
