"""Walk the audit log's hash chain, compare it with the latest checkpoint, report what is wrong."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.audit.anchor import checkpoint_check, checkpoint_latest
from provisioning.audit.chain import audit_verify_chain


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain (HMAC with AUDIT_KEYS) and compare it with the latest checkpoint "
        "in AUDIT_CHECKPOINT_DIR; exit 1 at the first broken event, a truncation or a rewrite, and in "
        "production when there is no checkpoint to compare with (unless --without-checkpoints)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoints", default="", help="The checkpoint directory (default: AUDIT_CHECKPOINT_DIR)."
        )
        parser.add_argument(
            "--without-checkpoints",
            action="store_true",
            help="In production, accept that no checkpoint is found (only the links are checked then).",
        )

    def handle(self, *args, checkpoints, without_checkpoints, **options):
        chain = audit_verify_chain()
        broken = chain.broken
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event {broken.pk} ({broken.created_at:%Y-%m-%d %H:%M:%S} "
                f"{broken.action}): {chain.reason}. {chain.checked} event(s) before it verified."
            )
        directory = Path(checkpoints or settings.AUDIT_CHECKPOINT_DIR)
        checkpoint = checkpoint_latest(directory=directory)
        if checkpoint is not None:
            problems = checkpoint_check(checkpoint)
            if problems:
                raise CommandError("Audit log does not match its checkpoint. " + " ".join(problems))
        elif settings.PRODUCTION and not without_checkpoints:
            # Without a checkpoint an emptied or cut table is a valid chain: in production that is not "intact".
            where = "No checkpoint" if directory.is_dir() else "No checkpoint directory"
            raise CommandError(
                f"{where} at {directory}: the chain's {chain.checked} event(s) link up, but nothing shows whether "
                "events were deleted. Point --checkpoints at the beat service's checkpoints, or pass "
                "--without-checkpoints to accept a check of the links alone."
            )
        unkeyed = f", {chain.unkeyed} of them unkeyed from before AUDIT_KEYS" if chain.unkeyed else ""
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {chain.checked} event(s) verified{unkeyed}."))
        if checkpoint is None:
            self.stdout.write(
                self.style.WARNING(
                    f"No checkpoint in {directory}: the links were checked, but not whether the newest "
                    "events were deleted."
                )
            )
        else:
            self.stdout.write(
                f"It matches the checkpoint of {checkpoint.at}: "
                f"{checkpoint.count} event(s) up to event {checkpoint.id}."
            )
