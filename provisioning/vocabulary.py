"""The words Onramp's spec, models, forms and templates share, written once.

Imports nothing of the project, so the models (and anything else) may import it.
"""

import unicodedata

from django.core.exceptions import ValidationError
from django.db import models

# Onramp's two groups of people (provisioning/permissions.py says what each may do).
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
