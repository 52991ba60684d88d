"""The words Onramp's spec, models, forms and templates share, written once.

Imports nothing of the project, so the models (and anything else) may import it.
"""

import unicodedata

from django.core.exceptions import ValidationError
from django.db import models

# Onramp's two groups of people (provisioning/identity/permissions.py says what each may do).
TECH_LEADS = "Tech leads"
ADMINS = "Admins"


class Access(models.TextChoices):
    """How Onramp reaches a customer's account."""

    ROLE = "role", "Assume a role with an external id (recommended)"
    KEYS = "keys", "An IAM user's access keys given by the customer"


class MemberRole(models.TextChoices):
    TECH_LEAD = "tech_lead", "Tech lead (AdministratorAccess + Billing)"
    MEMBER = "member", "Member"


class MediaScope(models.TextChoices):
    """What the app user's MediaManagement policy covers."""

    BUCKET = "bucket", "This bucket only (least privilege)"
    ALL = "all", "Every bucket in the account, as the runbook has it"


# The tag Onramp puts on what it creates (where AWS allows tags), and what the role's delete
# permissions are conditioned on.
MANAGED_BY_TAG = ("managed-by", "onramp")


class OffboardMode(models.TextChoices):
    """How a customer's relationship with the agency ends (provisioning/offboarding.py)."""

    LEAVE = "leave", "The agency leaves"
    DECOMMISSION = "decommission", "Decommission"


# Unicode's control (Cc: line breaks, tabs, the ESC that starts an ANSI sequence) and format (Cf: bidirectional
# overrides and isolates, zero-width characters) categories, line and paragraph separators, and lone surrogates.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def validate_customer_name(value: str) -> None:
    """A customer's name is shown in pages, email subjects, the webhook and terminals: no character that cuts a
    line (a header), drives a terminal or reorders what is shown around it."""
    if any(unicodedata.category(character) in UNPRINTABLE_CATEGORIES for character in value):
        raise ValidationError(
            "A customer's name cannot contain control characters (line breaks, tabs, terminal escapes) or "
            "invisible formatting ones (bidirectional overrides, zero-width characters)."
        )


class RunKind(models.TextChoices):
    """What a run does to a customer's account: the Runs page, the run's page and its email name it so."""

    ONBOARDING = "onboarding", "Onboarding"
    CHANGE = "change", "Change"
    REPAIR = "repair", "Repair"
    OFFBOARDING = "offboarding", "Offboarding"


# What a run's email counts, by kind, in this order (only the counts that are not zero are written): an
# onboarding creates or adopts; a change or a repair also changes, removes and releases; an offboarding
# creates and changes nothing, it removes and hands the rest over.
RUN_COUNTS = {
    RunKind.ONBOARDING: ("created", "adopted"),
    RunKind.CHANGE: ("created", "adopted", "changed", "removed", "released"),
    RunKind.REPAIR: ("created", "adopted", "changed", "removed", "released"),
    RunKind.OFFBOARDING: ("removed", "released", "handed_over"),
}
COUNT_WORDS = {
    "created": "created",
    "adopted": "already there and adopted",
    "changed": "changed",
    "removed": "removed",
    "released": "released (left in the account, no longer Onramp's)",
    "handed_over": "handed over to the customer",
}


def run_kind_words(kind: str, offboard: str = "") -> str:
    """A run's kind in words, an offboarding with its mode: "Offboarding (the agency leaves)"."""
    words = RunKind(kind).label
    if kind == RunKind.OFFBOARDING and offboard:
        words += f" ({OffboardMode(offboard).label[0].lower()}{OffboardMode(offboard).label[1:]})"
    return words


def run_counts_words(kind: str, counts: dict[str, int]) -> str:
    """A run's counts in words, for its kind: "2 created, 1 changed" ("nothing to do" when all are zero)."""
    words = [f"{counts[name]} {COUNT_WORDS[name]}" for name in RUN_COUNTS[RunKind(kind)] if counts.get(name)]
    return ", ".join(words) or "nothing needed doing"
