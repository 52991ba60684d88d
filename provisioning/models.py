"""Customers, runs and their steps, generated credentials, and the audit log."""

import hashlib
import json
import secrets
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from provisioning.vocabulary import Access

account_id_validator = RegexValidator(r"^\d{12}$", "An AWS account id is exactly 12 digits.")


def new_external_id() -> str:
    return secrets.token_hex(20)  # 40 characters, as AWS suggests for a third party's external id


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
    external_id = models.CharField(max_length=96, default=new_external_id)
    access_key_id = models.CharField("access key id", max_length=128, blank=True)
    # Fernet ciphertext of the customer's secret access key; never shown back.
    secret_access_key_ciphertext = models.TextField(blank=True, editable=False)
    contacts = models.TextField(blank=True, help_text="Who to talk to at the customer, one per line.")
    notes = models.TextField(blank=True)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.aws_account_id})"

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
    spec = models.JSONField(help_text="The validated onboarding spec. Holds no secret.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    summary = models.JSONField(default=dict, blank=True)
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


class StepRun(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        ADOPTED = "adopted", "Adopted (already existed)"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    DONE = (State.SUCCEEDED, State.ADOPTED)
    FINISHED = (State.SUCCEEDED, State.ADOPTED, State.FAILED, State.SKIPPED, State.CANCELLED)

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
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=128, blank=True)
    error_message = models.TextField(blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="Non-secret outputs: ARNs, ids, names.")
    params = models.JSONField(default=dict, blank=True, help_text="The step's parameters, from its declaration.")

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

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.canonical()).encode()).hexdigest()
