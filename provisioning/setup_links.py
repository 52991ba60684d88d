"""Set-up links: what a customer's team sends so the customer deploys Onramp's role in one click.

A link is a random token; only its sha256 is stored, with an expiry (SETUP_LINK_DAYS), and it can be revoked.
One live link per customer: making one revokes the last. Made, opened and revoked are audited. The page it
opens needs no Onramp login and shows only what the customer must know: who asks, the account id the team set
(read-only), what the role may do in words, the template, and the CloudFormation console's quick-create link.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.audit import audit_record
from provisioning.customers import access_policy_document
from provisioning.models import Customer, SetupLink, SetupLinkOpening
from provisioning.permissions import customer_permission_check
from provisioning.registry import ROLE_TEMPLATE_VERSION, words_of
from provisioning.role_templates import published_template_url, quick_create_url

USER_AGENT_MAX = 512


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def setup_link_live(*, customer: Customer) -> SetupLink | None:
    """The customer's live link (not revoked, not expired), if any."""
    return SetupLink.objects.filter(customer=customer, revoked_at__isnull=True, expires_at__gt=timezone.now()).first()


def setup_link_create(*, customer: Customer, user) -> str:
    """Make the customer's set-up link (revoking a live one) and return its token: shown once, to `user`, never
    stored, logged or audited."""
    customer_permission_check(user=user, customer=customer, action="settings")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=customer.pk).first()  # one maker at a time per customer
        for old in SetupLink.objects.filter(customer=customer, revoked_at__isnull=True):
            _revoke(link=old, user=user, now=now, why="replaced")
        link = SetupLink.objects.create(
            customer=customer,
            token_sha256=_digest(token),
            created_by=user,
            expires_at=now + timedelta(days=settings.SETUP_LINK_DAYS),
        )
        audit_record(
            action="setup_link.created",
            actor=user,
            customer=customer,
            target=customer.name,
            details={"link": link.pk, "expires_at": link.expires_at.isoformat()},
        )
    return token


def _revoke(*, link: SetupLink, user, now, why: str) -> None:
    SetupLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=user)
    audit_record(
        action="setup_link.revoked",
        actor=user,
        customer=link.customer,
        target=link.customer.name,
        details={"link": link.pk, "why": why},
    )


def setup_link_revoke(*, customer: Customer, user) -> bool:
    """Revoke the customer's unrevoked link; False when there was none."""
    customer_permission_check(user=user, customer=customer, action="settings")
    with transaction.atomic():
        link = SetupLink.objects.select_for_update().filter(customer=customer, revoked_at__isnull=True).first()
        if link is None:
            return False
        _revoke(link=link, user=user, now=timezone.now(), why="revoked")
    return True


def setup_link_open(*, token: str, user_agent: str) -> SetupLink | None:
    """The live link this token opens, its opening recorded with the user agent and audited; None (nothing
    recorded) for a token that is unknown, expired or revoked."""
    link = (
        SetupLink.objects.select_related("customer")
        .filter(token_sha256=_digest(token), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if link is None:
        return None
    agent = user_agent[:USER_AGENT_MAX]
    with transaction.atomic():
        SetupLinkOpening.objects.create(link=link, user_agent=agent)
        audit_record(
            action="setup_link.opened",
            actor_label="customer (set-up link)",
            customer=link.customer,
            target=link.customer.name,
            details={"link": link.pk, "user_agent": agent},
        )
    return link


def setup_link_by_id(*, link_id: int) -> SetupLink | None:
    """A live link by its id (what the page's cookie names after the token was exchanged)."""
    return (
        SetupLink.objects.select_related("customer", "created_by")
        .filter(pk=link_id, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


# --- What the page shows ----------------------------------------------------------------------------------

_SERVICES = {"iam": "IAM", "s3": "S3", "ecr": "ECR", "sts": "STS"}
_SCOPES = {
    "iam:PolicyARN": "only these policies: {values}",
    "aws:ResourceTag/managed-by": "only on what Onramp tagged managed-by=onramp (nothing you made yourself)",
}


@dataclass(frozen=True)
class Permission:
    service: str
    actions: list[str]  # in words: "create user"
    scope: str  # where: everywhere in the account, only the role itself, only what Onramp tagged…


def role_permissions_in_words() -> list[Permission]:
    """What the role may do, statement by statement of its policy (itself derived from the steps' declarations
    in the registry), in words a customer's administrator reads."""
    permissions = []
    for statement in access_policy_document()["Statement"]:
        service = statement["Action"][0].split(":", 1)[0]
        actions = [words_of(action.split(":", 1)[1], " ") for action in statement["Action"]]
        scope = "anywhere in the account"
        if statement["Resource"] != "*":
            scope = "only on this role itself"
        for tests in statement.get("Condition", {}).values():
            for key, values in tests.items():
                values = values if isinstance(values, list) else [values]
                scope = _SCOPES.get(key, f"only where {key} is {', '.join(values)}").format(values=", ".join(values))
        permissions.append(Permission(service=_SERVICES.get(service, service.upper()), actions=actions, scope=scope))
    return permissions


@dataclass(frozen=True)
class SetupPage:
    customer: Customer
    asked_by: str
    account_id: str
    external_id: str
    region: str
    template_url: str | None  # None: the agency has not published the current version yet
    launch_url: str | None
    permissions: list[Permission]
    version: int


def setup_page(*, link: SetupLink) -> SetupPage:
    customer, maker = link.customer, link.created_by
    url = published_template_url()
    name = maker.get_full_name() or maker.get_username()
    return SetupPage(
        customer=customer,
        asked_by=f"{name} ({maker.email})" if maker.email else name,
        account_id=customer.aws_account_id,
        external_id=customer.external_id,
        region=customer.default_region,
        template_url=url,
        launch_url=quick_create_url(template_url=url, region=customer.default_region, external_id=customer.external_id)
        if url
        else None,
        permissions=role_permissions_in_words(),
        version=ROLE_TEMPLATE_VERSION,
    )
