"""Customers, runs and their steps, generated credentials, and the audit log."""

import json
import secrets
import uuid

from django.conf import settings
from django.core.validators import MinLengthValidator, RegexValidator
from django.db import models
from django.db.models import Q

from provisioning.vocabulary import Access, OffboardMode, RunKind, run_kind_words

account_id_validator = RegexValidator(r"^[0-9]{12}$", "An AWS account id is exactly 12 digits.")
# AWS's limits on sts:ExternalId (AssumeRole): 2 to 1224 characters; the spec checks the characters.
EXTERNAL_ID_MIN, EXTERNAL_ID_MAX = 2, 1224


def new_external_id() -> str:
    return secrets.token_hex(20)  # 40 characters, as AWS suggests for a third party's external id


def approval_default() -> str:
    """A new customer's approval rule: the APPROVAL_DEFAULT setting (provisioning/approvals.py)."""
    return settings.APPROVAL_DEFAULT


class ApprovalRule(models.TextChoices):
    """What of a customer's plans needs a second person (offboarding and adoption always do)."""

    NOTHING = "nothing", "Nothing (only offboarding and adoptions)"
    RISKY = "risky", "Plans that remove, delete, adopt or grant AdministratorAccess"
    EVERY = "every", "Every plan"


class Customer(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    aws_account_id = models.CharField(
        "AWS account id",
        max_length=12,
        unique=True,
        validators=[account_id_validator],
        error_messages={"unique": "A customer with this AWS account id already exists."},
    )
    default_region = models.CharField(max_length=32, default="us-east-1")
    account_alias = models.CharField(max_length=63, blank=True)
    access = models.CharField(
        "how Onramp reaches the account", max_length=8, choices=Access.choices, default=Access.ROLE
    )
    role_arn = models.CharField("role ARN", max_length=2048, blank=True)
    external_id = models.CharField(
        max_length=EXTERNAL_ID_MAX, default=new_external_id, validators=[MinLengthValidator(EXTERNAL_ID_MIN)]
    )
    # A rotated external id (an Admin's, after a leaked link) that the customer's stack has not taken yet: Onramp
    # keeps using external_id until it gets in with this one, then this becomes external_id.
    external_id_next = models.CharField("rotated external id, pending", max_length=EXTERNAL_ID_MAX, blank=True)
    access_key_id = models.CharField("access key id", max_length=128, blank=True)
    # Fernet ciphertext of the customer's secret access key; never shown back.
    secret_access_key_ciphertext = models.TextField(blank=True, editable=False)
    contacts = models.TextField(blank=True, help_text="Who to talk to at the customer, one per line.")
    notes = models.TextField(blank=True)
    is_active = models.BooleanField("active", default=True)
    # The customer's tech leads: only they and Admins plan, run, repair, offboard, rotate, reveal or change
    # settings for this customer (provisioning/teams.py); everyone else sees it read-only.
    team = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="customer_teams",
        help_text="Tech leads who may plan, run, repair, offboard, rotate, reveal and change settings here.",
    )
    # The template version of the customer's Onramp role, as Check connection or a run last read it.
    role_version = models.PositiveSmallIntegerField("role template version", null=True, blank=True)
    # When Onramp last reached the role and read its version (a set-up link's detection, a check, the nightly read).
    role_seen_at = models.DateTimeField("role last seen", null=True, blank=True)
    # Offboarded: an offboarding run succeeded; no run starts for them until an Admin reactivates them.
    offboarded_at = models.DateTimeField(null=True, blank=True, editable=False)
    offboarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="+"
    )
    offboard_mode = models.CharField(
        max_length=16, choices=OffboardMode.choices, blank=True, db_default="", default="", editable=False
    )
    approval_rule = models.CharField(
        "plans that need a second person's approval",
        max_length=8,
        choices=ApprovalRule.choices,
        default=approval_default,
        db_default=ApprovalRule.RISKY,
        help_text="Offboarding, decommission and adoptions always need one (an adoption, an Admin's).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.aws_account_id})"

    @property
    def is_offboarded(self) -> bool:
        return self.offboarded_at is not None

    @property
    def has_stored_keys(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key_ciphertext)


class Run(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="runs")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="approved_runs"
    )
    spec = models.JSONField(help_text="The validated onboarding spec. Holds no secret.")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.ONBOARDING, db_default="onboarding")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    summary = models.JSONField(default=dict, blank=True)
    # A run planned as a difference: the read it was planned from, and the items it carries out.
    read = models.ForeignKey("AccountRead", on_delete=models.PROTECT, null=True, blank=True, related_name="runs")
    plan = models.JSONField(default=list, blank=True, help_text="The planned items: action per resource.")
    offboard = models.CharField(
        max_length=16, choices=OffboardMode.choices, blank=True, db_default="", default="", help_text="An offboarding."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every step transition; the sweeper re-drives runs whose progress stopped.
    progressed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The per-account lock: at most one active run per customer (one customer per account).
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status__in=["pending", "running"]),
                name="one_active_run_per_customer",
            )
        ]
        indexes = [models.Index(fields=["status", "progressed_at"])]

    def __str__(self) -> str:
        return f"Run {str(self.id)[:8]} for {self.customer.name}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def kind_words(self) -> str:
        return run_kind_words(self.kind, self.offboard)


class StepRun(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        ADOPTED = "adopted", "Adopted (already existed)"
        # A removal that found nothing left to remove: neither made nor adopted.
        GONE = "gone", "Already gone"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    DONE = (State.SUCCEEDED, State.ADOPTED, State.GONE)
    FINISHED = (State.SUCCEEDED, State.ADOPTED, State.GONE, State.FAILED, State.SKIPPED, State.CANCELLED)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    branch = models.CharField(max_length=32)
    position = models.PositiveSmallIntegerField()
    depends_on = models.JSONField(default=list, help_text="Keys of the steps that must be done first.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a task for this step was last put on the broker; a pending step is enqueued once.
    queued_at = models.DateTimeField(null=True, blank=True)
    # When every step it depends on was done (it could start from then on): the run page's
    # timeline draws the wait from here to started_at. Unknown (null) on rows written before it.
    ready_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=128, blank=True)
    error_message = models.TextField(blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="Non-secret outputs: ARNs, ids, names.")
    params = models.JSONField(default=dict, blank=True, help_text="The step's parameters, from its declaration.")
    flags = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "How the plan runs the step: known (the read saw it), ends (the ledger rows it ends), "
            "read (the preflight's account read)."
        ),
    )

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="one_step_per_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class Resource(models.Model):
    """The ledger: one thing Onramp created or adopted in a customer's account, and what became of it."""

    class Origin(models.TextChoices):
        CREATED = "created", "Created by Onramp"
        ADOPTED = "adopted", "Adopted (it was already there)"

    class State(models.TextChoices):
        PRESENT = "present", "Present"
        REMOVED = "removed", "Removed by Onramp"
        RELEASED = "released", "Released (left in the account, no longer Onramp's)"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="resources")
    kind = models.CharField(max_length=64, help_text="The step declaration's key, e.g. iam.group.")
    identity = models.CharField(max_length=300, help_text="What the spec names it by (user name, bucket…).")
    name = models.CharField(max_length=300, help_text="What AWS names it by (an access key's id).")
    arn = models.CharField("ARN", max_length=2048, blank=True)
    region = models.CharField(max_length=32, blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PRESENT)
    params = models.JSONField(default=dict, blank=True, help_text="The parameters it was last applied with.")
    outputs = models.JSONField(default=dict, blank=True, help_text="What AWS said of it (ARN, URI): no secret.")
    created_by_run = models.ForeignKey(
        Run, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="Only if Onramp made it."
    )
    last_run = models.ForeignKey(Run, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Runs that found it already there and adopted it, after it was created (or first adopted).
    adopted_by = models.JSONField(default=list, blank=True)
    removed_by_run = models.ForeignKey(Run, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["customer", "kind", "identity"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind", "name"], condition=Q(state="present"), name="one_present_resource"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.state})"

    @property
    def is_onramps(self) -> bool:
        return self.origin == self.Origin.CREATED


class AccountRead(models.Model):
    """A read-back of a customer's account against a desired spec: the difference a plan shows, or drift."""

    class Purpose(models.TextChoices):
        PLAN = "plan", "Plan"
        DRIFT = "drift", "Drift check"
        OFFBOARD = "offboard", "Offboarding plan"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Reading the account"
        DONE = "done", "Read"
        FAILED = "failed", "Could not read"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="reads")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    purpose = models.CharField(max_length=8, choices=Purpose.choices, default=Purpose.PLAN)
    offboard = models.CharField(
        max_length=16, choices=OffboardMode.choices, blank=True, db_default="", default="", help_text="An offboarding."
    )
    spec = models.JSONField(help_text="The desired spec the account is compared with. Holds no secret.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    items = models.JSONField(default=list, blank=True, help_text="Each resource: its action and differences.")
    seen = models.JSONField(default=dict, blank=True, help_text="What the read found, by resource (no secret).")
    fingerprint = models.CharField(max_length=64, blank=True, help_text="A digest of what was read.")
    checks = models.JSONField(
        default=list, blank=True, help_text="The plan's checks (provisioning/checks.py): each passes, warns or blocks."
    )
    error_code = models.CharField(max_length=128, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["customer", "purpose", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} of {self.customer.name} ({self.status})"


class DriftState(models.Model):
    """What the last drift check of a customer's account found (provisioning/drift.py)."""

    class State(models.TextChoices):
        UNREACHABLE = "unreachable", "Unreachable"
        DRIFTED = "drifted", "Drifted"
        IN_SYNC = "in_sync", "In sync"

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="drift")
    state = models.CharField(max_length=12, choices=State.choices)
    # Each difference: {key, title, field, expected, actual, repairable, words, since (the first check that
    # found it, ISO), since_read}; kept across checks while the difference stays.
    differences = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True, help_text="Why the account could not be read (Unreachable).")
    since = models.DateTimeField(help_text="Since when the customer has been in this state.")
    checked_at = models.DateTimeField()
    last_read = models.ForeignKey(AccountRead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["state", "since"])]

    def __str__(self) -> str:
        return f"{self.customer.name}: {self.get_state_display()}"

    @property
    def repairable(self) -> bool:
        """Whether a repair would change something: drifted, with a difference Repair puts back (not only
        what was made by hand beside Onramp's, which Repair leaves alone)."""
        return self.state == self.State.DRIFTED and any(d.get("repairable") for d in self.differences)


class Credential(models.Model):
    class Kind(models.TextChoices):
        ACCESS_KEY = "access_key", "App access key"
        CONSOLE_PASSWORD = "console_password", "Console password"

    class State(models.TextChoices):
        SEALED = "sealed", "Waiting to be revealed"
        REVEALED = "revealed", "Revealed"
        EXPIRED = "expired", "Expired unrevealed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="credentials", null=True, blank=True)
    step = models.ForeignKey(StepRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credentials")
    issued_to = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    user_name = models.CharField("IAM user", max_length=64)
    access_key_id = models.CharField(max_length=128, blank=True)
    sign_in_url = models.URLField(blank=True)
    region = models.CharField(max_length=32, blank=True)
    bucket = models.CharField(max_length=63, blank=True)
    # Fernet token; emptied in the transaction that reveals or expires it.
    ciphertext = models.TextField(blank=True, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.SEALED)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revealed_at = models.DateTimeField(null=True, blank=True)
    revealed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    refused_attempts = models.PositiveIntegerField(default=0)
    # For "Issue a new key": the key this one replaces, deleted once the tech lead confirms.
    replaces_access_key_id = models.CharField(max_length=128, blank=True)
    replacement_done_at = models.DateTimeField(null=True, blank=True)
    # When its owner was told it is about to be wiped unrevealed (provisioning/notify.py): once per credential.
    warned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.user_name}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise TypeError("Audit events are append-only: they cannot be deleted.")


class AuditEvent(models.Model):
    """One line of the append-only audit log, hash-chained to the previous one."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        # An answer the code expects and acts on, not a failure: "already exists" to a create (then the
        # step adopts), "not found" to a read (then there is nothing to compare).
        EXPECTED = "expected", "Expected answer"
        ERROR = "error", "Error"
        REFUSED = "refused", "Refused"

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    # References are kept loose (no database constraint): the log outlives what it names.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, help_text="Who acted, as written at the time.")
    customer = models.ForeignKey(
        Customer, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+"
    )
    run = models.ForeignKey(
        Run, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+"
    )
    step_key = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    error_code = models.CharField(max_length=128, blank=True)
    target = models.CharField(max_length=500, blank=True, help_text="What was acted on: user, bucket, repository…")
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # Which AUDIT_KEYS key signed `hash` (HMAC-SHA256); empty on rows written before the chain was keyed,
    # whose hash is the plain SHA-256 they were written with.
    key_id = models.CharField(max_length=16, blank=True, default="")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["customer", "-id"], name="audit_customer_id"),
            models.Index(fields=["run", "-id"], name="audit_run_id"),
            models.Index(fields=["actor", "-id"], name="audit_actor_id"),
            models.Index(fields=["action", "-id"], name="audit_action_id"),
            models.Index(fields=["outcome", "-id"], name="audit_outcome_id"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise TypeError("Audit events are append-only: they cannot be updated.")
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only: they cannot be deleted.")

    def canonical(self) -> str:
        """The event as canonical JSON, the input of its hash."""
        return json.dumps(
            {
                "created_at": self.created_at.isoformat(),
                "actor_id": self.actor_id,
                "actor_label": self.actor_label,
                "customer_id": self.customer_id,
                "run_id": str(self.run_id) if self.run_id else None,
                "step_key": self.step_key,
                "action": self.action,
                "outcome": self.outcome,
                "error_code": self.error_code,
                "target": self.target,
                "details": self.details,
            },
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )


class ProviderIdentity(models.Model):
    """Who a user is at the identity provider: its issuer and subject (`iss`, `sub`), stored at the first
    sign-in. Later sign-ins find the user by these, never by email: an email can be renamed, reused or
    claimed by another identity at the provider; the subject is the provider's name for that one person."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="provider_identity_unique"),
            models.UniqueConstraint(fields=["user", "issuer"], name="provider_identity_one_per_user"),
        ]
        verbose_name_plural = "provider identities"

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject}"


class PublishedTemplate(models.Model):
    """One version of the role's CloudFormation template as it was published (provisioning/role/published.py):
    its exact content and sha256, kept beside the version so that what an older role may do is read from what
    its customer really deployed. A row is written once and never changed, like the object it records."""

    version = models.PositiveSmallIntegerField(unique=True)
    content = models.TextField()
    sha256 = models.CharField(max_length=64)
    bucket = models.CharField(max_length=63)
    key = models.CharField(max_length=1024)
    url = models.URLField(max_length=2048)  # what CloudFormation and the quick-create link are given
    published_at = models.DateTimeField(auto_now_add=True)
    published_by = models.CharField(max_length=255)

    class Meta:
        ordering = ["version"]

    def __str__(self) -> str:
        return f"role template v{self.version}"


class SetupLink(models.Model):
    """A link a customer's team sends so the customer can deploy Onramp's role in one click
    (provisioning/setup_links.py). Only the token's sha256 is kept: the token itself is shown once, to the
    person who made the link. One live link per customer; a new one revokes the old."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="setup_links")
    token_sha256 = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Onramp looking for the role by itself: since the first opening, for SETUP_WATCH_SECONDS at most.
    watch_started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)  # Onramp assumed the role: the page turns green

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=Q(revoked_at__isnull=True), name="setup_link_one_unrevoked"
            )
        ]

    def __str__(self) -> str:
        return f"set-up link for {self.customer}"


class SetupLinkOpening(models.Model):
    """One opening of a set-up link: when, and by what user agent (a chat's link preview opens links too)."""

    link = models.ForeignKey(SetupLink, on_delete=models.CASCADE, related_name="openings")
    opened_at = models.DateTimeField(auto_now_add=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["opened_at"]

    def __str__(self) -> str:
        return f"opened {self.opened_at:%Y-%m-%d %H:%M}"


class PlanApproval(models.Model):
    """A plan that needs a second person, saved as asked for (provisioning/approvals.py). Outside the
    one-active-run lock: waiting takes no run. Approving starts the run, as the requester's."""

    class State(models.TextChoices):
        AWAITING = "awaiting", "Awaiting approval"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired"
        VOIDED = "voided", "Voided"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="approvals")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    spec = models.JSONField(help_text="The validated spec of the plan. Holds no secret.")
    read = models.ForeignKey(AccountRead, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    items = models.JSONField(default=list, blank=True, help_text="The plan's items as decided by the requester.")
    offboard = models.CharField(max_length=16, choices=OffboardMode.choices, blank=True, default="")
    repair = models.BooleanField(default=False)
    summary = models.CharField(max_length=300, help_text='The plan in a line: "Acme: remove 1 user".')
    reasons = models.JSONField(default=list, help_text="Why it needs approval: [{code, sentence}].")
    admin_only = models.BooleanField(default=False, help_text="Only an Admin may approve it (an adoption).")
    # What the customer's ledger held when it was asked for: another run changing it voids the approval.
    ledger_fingerprint = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.AWAITING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    comment = models.TextField(blank=True, help_text="The approver's, or the decliner's.")
    ended_reason = models.TextField(blank=True, help_text="Why it expired or was voided, in a sentence.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    run = models.OneToOneField(Run, on_delete=models.PROTECT, null=True, blank=True, related_name="approval")

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return self.summary

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]
