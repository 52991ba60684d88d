"""Onboard from a spec file: the same schema and validator as the browser form."""

import json
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from provisioning.approvals import BREAK_GLASS_MIN, ApprovalRefused, plan_start
from provisioning.audit.chain import audit_record
from provisioning.checks import checks_blocking, checks_sentence
from provisioning.customers import CustomerOffboarded, customer_refuse_if_offboarded
from provisioning.engine.runs import RunConflict
from provisioning.identity.permissions import (
    TECH_LEADS,
    NotOnCustomerTeam,
    customer_permission_check,
    is_admin,
    is_portal_user,
)
from provisioning.models import AccountRead, AuditEvent, Customer, PlanApproval, Run, StepRun
from provisioning.onboarding import OnboardingRefused, onboarding_customer, onboarding_spec_connection_fill
from provisioning.plan import Action, plan_decide, plan_groups
from provisioning.reads import account_read_now
from provisioning.spec import SpecError, spec_parse
from provisioning.vocabulary import Access

# Exit codes: a refusal (a self-approval that is not an Admin's own, a run in progress…), and a plan saved as
# awaiting approval when --wait asked to follow its run.
REFUSED, AWAITING = 2, 3


class Command(BaseCommand):
    help = "Validate a spec file and start an onboarding run; --wait follows it to the end."

    def add_arguments(self, parser):
        parser.add_argument("--spec", required=True, help="Path to the spec JSON file (see examples/).")
        parser.add_argument(
            "--user",
            default="",
            help="The tech lead starting the run (default: the only superuser, else the only tech lead).",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Print each step as it finishes; exit 0 only if the run succeeded."
        )
        parser.add_argument("--timeout", type=float, default=900, help="Seconds --wait waits at most.")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="For the run's URL.")
        parser.add_argument(
            "--approved-by",
            default="",
            help="A plan that needs approval is saved as awaiting it. An Admin may start it alone in an emergency: "
            "--approved-by naming themselves (the same as --user) with --reason (audited as break-glass).",
        )
        parser.add_argument("--reason", default="", help="Why a self-approved plan cannot wait (with --approved-by).")

    def handle(self, *args, spec, user, wait, timeout, base_url, approved_by, reason, **options):
        raw = onboarding_spec_connection_fill(data=self._read(Path(spec)))
        try:
            parsed = spec_parse(raw)
        except SpecError as exc:
            lines = [f"  {name}: {' '.join(messages)}" for name, messages in exc.errors.items()]
            raise CommandError("The spec is not valid:\n" + "\n".join(lines)) from None
        starter = self._user(user)
        emergency = self._self_approval(starter, approved_by, reason)
        known = Customer.objects.filter(aws_account_id=parsed.account_id).first()
        try:
            if known is not None:  # before the transaction: the refusals stay audited
                customer_permission_check(user=starter, customer=known, action="run")
                customer_refuse_if_offboarded(customer=known, user=starter, doing="onboard command")
        except (CustomerOffboarded, NotOnCustomerTeam) as exc:
            raise CommandError(str(exc)) from None
        with transaction.atomic():
            try:
                customer = onboarding_customer(spec=parsed, user=starter, via="onboard command")
            except OnboardingRefused as exc:
                raise CommandError(str(exc)) from None
            if parsed.access == Access.KEYS and not customer.has_stored_keys:
                raise CommandError(f"{customer.name} has no stored access keys: set them in the admin first.")
        read = self._plan(customer, parsed, starter)  # every plan reads first, a new customer's too
        try:
            items = plan_decide(read.items, delete=set(), typed={})
            run = plan_start(spec=parsed, customer=customer, user=starter, read=read, items=items, emergency=emergency)
        except (RunConflict, CustomerOffboarded, ApprovalRefused) as exc:
            raise CommandError(str(exc), returncode=REFUSED) from None
        if isinstance(run, PlanApproval):
            self._awaiting(run, wait)
            return
        self.stdout.write(f"Run {run.pk} started: {base_url.rstrip('/')}{reverse('run_detail', args=[run.pk])}")
        if not wait:
            return
        run = self._follow(run, timeout)
        summary = {"run": str(run.pk), "status": run.status, **run.summary}
        self.stdout.write(json.dumps(summary, indent=2))
        if run.status != Run.Status.SUCCEEDED:
            raise CommandError(f"The run ended {run.status}.")

    def _self_approval(self, starter, approved_by: str, reason: str) -> str:
        """The break-glass reason of a self-approval, or "": --approved-by must name --user, an Admin, with a
        reason; anything else is refused (exit code REFUSED), audited."""
        if not approved_by:
            return ""
        if approved_by != starter.get_username() or not is_admin(starter):
            audit_record(
                action="plan.approval_refused",
                actor=starter,
                outcome=AuditEvent.Outcome.REFUSED,
                error_code="ApprovalRefused",
                details={"doing": "onboard --approved-by", "approved_by": approved_by[:150]},
            )
            raise CommandError(
                "--approved-by is an Admin's self-approval in an emergency: it must name the --user starting the run, "
                "and that user must be an Admin. Anyone else's approval is given in the portal (Approvals).",
                returncode=REFUSED,
            )
        if len(reason.strip()) < BREAK_GLASS_MIN:
            raise CommandError("Say with --reason why this plan cannot wait for a second person.", returncode=REFUSED)
        return reason.strip()

    def _awaiting(self, approval: PlanApproval, wait: bool) -> None:
        """Say that the plan awaits approval, why, and where it is approved."""
        self.stdout.write(f"The plan needs a second person's approval: {approval.summary}")
        for reason in approval.reasons:
            self.stdout.write(f"  {reason['sentence']}")
        who = "an Admin" if approval.admin_only else "a member of the customer's team or an Admin"
        link = settings.PORTAL_URL + reverse("approval_detail", args=[approval.pk])
        self.stdout.write(f"Saved as awaiting approval; nothing runs until {who} approves it: {link}")
        if wait:
            raise CommandError("Nothing to wait for: the run starts once the plan is approved.", returncode=AWAITING)

    def _plan(self, customer, spec, user) -> AccountRead:
        """Read the account now and print the difference the run applies, with what each adoption takes over
        (what holds data is kept and released: deleting it needs its name typed in the browser's plan). A
        blocking check stops here, as the preview's Start stays disabled."""
        read = account_read_now(customer=customer, spec=spec, user=user)
        if read.status != AccountRead.Status.DONE:
            raise CommandError(f"Onramp could not read the account: {read.error_message}")
        blocking = checks_blocking(read.checks)
        if blocking:
            raise CommandError(f"The plan's checks found what would fail: {checks_sentence(blocking)}")
        for action, title, items in plan_groups(read.items):
            if action != Action.KEEP:
                self.stdout.write(f"{title}:")
                for item in items:
                    # Not typed here, so plan_decide keeps it in the account, released (no longer Onramp's).
                    kept = " (kept, released: it holds data)" if action == Action.REMOVE and item["holds_data"] else ""
                    found = f" ({item['note']})" if action == Action.ADOPT and item["note"] else ""
                    self.stdout.write(f"  {item['title']}{kept}{found}")
        count = sum(1 for item in read.items if item["action"] == Action.KEEP)
        self.stdout.write(f"{count} resource{'s' if count != 1 else ''} kept as they are.")
        return read

    def _read(self, path: Path):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(f"No spec file at {path}.") from None
        except OSError as exc:  # a directory, no permission…
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        except ValueError as exc:  # not UTF-8, not JSON, or a number too long for Python to read
            raise CommandError(f"{path} is not valid JSON ({exc.__class__.__name__}: {exc}).") from None
        except RecursionError:  # arrays or objects nested deeper than Python's parser goes
            raise CommandError(f"{path} is nested too deeply to be a spec (a spec is one flat object).") from None

    def _user(self, username: str):
        User = get_user_model()
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username}.")
            # The command starts a run as this person: only someone the portal would let start it.
            if not user.is_active:
                raise CommandError(f"{username} is deactivated: name an active tech lead with --user.")
            if not is_portal_user(user):
                raise CommandError(
                    f"{username} is in neither of Onramp's groups (Tech leads, Admins), so cannot start a run: "
                    "name a tech lead with --user, or ask an Admin to add them to a group."
                )
            return user
        # The only superuser; else the only tech lead (make run's demo has one tech lead and no superuser).
        for people in (User.objects.filter(is_superuser=True), User.objects.filter(groups__name=TECH_LEADS)):
            users = list(people.filter(is_active=True)[:2])
            if len(users) == 1:
                return users[0]
            if users:
                break
        raise CommandError("Name the tech lead starting the run with --user.")

    def _follow(self, run: Run, timeout: float) -> Run:
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while True:
            for step in StepRun.objects.filter(run=run).order_by("finished_at", "position"):
                if step.state in StepRun.FINISHED and step.key not in seen:
                    seen.add(step.key)
                    detail = f" {step.error_code}: {step.error_message}" if step.state == "failed" else ""
                    self.stdout.write(f"  {step.state:<10} {step.title}{detail}")
            run.refresh_from_db()
            if not run.is_active:
                return run
            if time.monotonic() > deadline:
                raise CommandError(f"The run is still {run.status} after {timeout:.0f} s: see its page.")
            time.sleep(0.5)
