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

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from provisioning import notify
from provisioning.audit.chain import audit_record
from provisioning.aws.accounts import account_connect
from provisioning.aws.calls import aws_work
from provisioning.errors import OnrampError
from provisioning.identity.permissions import customer_permission_check
from provisioning.kinds.preflight.aws import identity_check, role_version_read
from provisioning.models import AuditEvent, Customer, SetupLink, SetupLinkOpening
from provisioning.registry import (
    MANAGED_BY_CONDITION_KEY,
    MANAGED_BY_WORDS,
    ROLE_TEMPLATE_VERSION,
    role_arn_for,
    words_of,
)
from provisioning.role.published import STACK_NAME, published_template_url, quick_create_url
from provisioning.role.template import access_policy_document
from provisioning.vocabulary import Access

WATCH_TASK = "provisioning.tasks.setup_watch"
REFRESH_TASK = "provisioning.tasks.role_refresh"
SOURCE_IDENTITY = "onramp-setup"
# AWS answers AccessDenied alike for a role not there yet and for a trust policy that refuses: the causes, in one.
NOT_YET = (
    "Onramp cannot assume the role yet: the stack may still be creating, may have been created in another "
    "account, or with another external id, or not at all."
)

USER_AGENT_MAX = 512


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def setup_link_live(*, customer: Customer) -> SetupLink | None:
    """The customer's live link (not revoked, not expired), if any."""
    return SetupLink.objects.filter(customer=customer, revoked_at__isnull=True, expires_at__gt=timezone.now()).first()


def setup_link_create(*, customer: Customer, user: User) -> str:
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


def setup_link_revoke(*, customer: Customer, user: User) -> bool:
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
    recorded) for a token that is unknown, expired or revoked. The first opening starts Onramp looking for the
    role by itself (setup_detect, with backoff, for SETUP_WATCH_SECONDS)."""
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
        started = SetupLink.objects.filter(pk=link.pk, watch_started_at__isnull=True).update(
            watch_started_at=timezone.now()
        )
        if started:
            transaction.on_commit(lambda: current_app.send_task(WATCH_TASK, args=[link.pk]), robust=True)
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
    MANAGED_BY_CONDITION_KEY: f"only on what Onramp tagged {MANAGED_BY_WORDS} (nothing you made yourself)",
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


def update_stack_command(*, region: str, template_url: str, external_id: str, stack_name: str = STACK_NAME) -> str:
    """The AWS CLI's equivalent of the console's update (AWS documents no console link that updates a stack).
    The external id is given as a value: stacks deployed before the template took it as a parameter have none
    to keep."""
    return (
        f"aws cloudformation update-stack --region {region} --stack-name {stack_name} --template-url {template_url} "
        f"--parameters ParameterKey=ExternalId,ParameterValue={external_id} --capabilities CAPABILITY_NAMED_IAM"
    )


def setup_state(*, link: SetupLink) -> str:
    """Where the customer is: "waiting" for the role, "outdated" (a role older than the current template), or
    "current" (done: the page is green)."""
    customer = Customer.objects.get(pk=link.customer_id)
    if customer.access == Access.ROLE and customer.role_arn and customer.role_version is not None:
        current = customer.role_version >= ROLE_TEMPLATE_VERSION and not customer.external_id_next
        return "current" if current else "outdated"
    return "waiting"


def setup_updated(*, link: SetupLink) -> None:
    """The customer says they updated the stack: Onramp reads the role's version again now."""
    audit_record(
        action="setup_link.updated", actor_label="customer (set-up link)", customer=link.customer,
        target=link.customer.name, details={"link": link.pk},
    )  # fmt: skip
    transaction.on_commit(lambda: current_app.send_task(REFRESH_TASK, args=[link.customer_id]), robust=True)


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
    deployed: int | None  # the version the customer's role carries, when Onramp has read it
    console_url: str
    update_command: str | None


def setup_page(*, link: SetupLink) -> SetupPage:
    customer, maker = link.customer, link.created_by
    url = published_template_url()
    external_id = customer.external_id_next or customer.external_id  # a rotated one is what the stack must take
    name = maker.get_full_name() or maker.get_username()
    return SetupPage(
        customer=customer,
        asked_by=f"{name} ({maker.email})" if maker.email else name,
        account_id=customer.aws_account_id,
        external_id=external_id,
        region=customer.default_region,
        template_url=url,
        launch_url=quick_create_url(template_url=url, region=customer.default_region, external_id=external_id)
        if url
        else None,
        permissions=role_permissions_in_words(),
        version=ROLE_TEMPLATE_VERSION,
        deployed=customer.role_version,
        console_url=f"https://{customer.default_region}.console.aws.amazon.com/cloudformation/home?"
        f"region={customer.default_region}",
        update_command=update_stack_command(region=customer.default_region, template_url=url, external_id=external_id)
        if url
        else None,
    )


# --- Onramp notices by itself ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    connected: bool
    retry_in: float | None = None  # seconds until the next try; None: stop
    message: str = ""


def _backoff(attempts: int) -> float:
    return float(min(settings.SETUP_WATCH_FIRST * 2 ** max(attempts - 1, 0), settings.SETUP_WATCH_MAX_DELAY))


def setup_detect(*, link_id: int, role_arn: str = "", watching: bool = True) -> Detection:
    """Try the run's own AssumeRole on the customer's role (its external id; source identity onramp-setup,
    session onramp-setup-<customer>). Found: the role ARN and the template version recorded, the customer
    reached by that role, the team notified, once. Not found: when to try again, while `watching` and within
    SETUP_WATCH_SECONDS of the first opening (each try is an AccessDenied in the customer's CloudTrail)."""
    link = SetupLink.objects.select_related("customer").filter(pk=link_id).first()
    if link is None or link.revoked_at is not None or link.expires_at <= timezone.now():
        return Detection(connected=False, message="The link is revoked or expired.")
    if link.connected_at is not None:
        return Detection(connected=True)
    customer = link.customer
    role_arn = role_arn or role_arn_for(customer.aws_account_id)
    external_id = customer.external_id_next or customer.external_id  # what the page gave the stack
    with aws_work(actor_label=SOURCE_IDENTITY, customer_id=customer.pk) as log:
        try:
            account = account_connect(
                customer=customer,
                region=customer.default_region,
                access=Access.ROLE,
                role_arn=role_arn,
                external_id=external_id,
                session_name=f"onramp-setup-{customer.pk}",
                source_identity=SOURCE_IDENTITY,
            )
            identity_check(sts=account.client("sts"), account_id=customer.aws_account_id)
            version = role_version_read(account, role_arn)
        except OnrampError as exc:
            now = timezone.now()
            SetupLink.objects.filter(pk=link.pk).update(
                attempts=F("attempts") + 1, last_attempt_at=now, last_error_code=exc.code[:64]
            )
            log.record(
                action="setup_link.not_found",
                customer=customer.pk,
                outcome=AuditEvent.Outcome.ERROR,
                error_code=exc.code,
                target=customer.name,
                details={"role_arn": role_arn, "message": str(exc)},
            )
            started = link.watch_started_at or now
            within = (now - started).total_seconds() < settings.SETUP_WATCH_SECONDS
            retry = _backoff(link.attempts + 1) if watching and within else None
            return Detection(connected=False, retry_in=retry, message=NOT_YET)
    _connected(link=link, role_arn=role_arn, version=version, external_id=external_id)
    return Detection(connected=True)


def _connected(*, link: SetupLink, role_arn: str, version: int, external_id: str) -> None:
    customer, now = link.customer, timezone.now()
    with transaction.atomic():
        if not SetupLink.objects.filter(pk=link.pk, connected_at__isnull=True).update(connected_at=now):
            return  # another try found it first
        Customer.objects.filter(pk=customer.pk).update(
            access=Access.ROLE,
            role_arn=role_arn,
            role_version=version,
            role_seen_at=now,
            external_id=external_id,  # a rotated one, once the stack has it, is the customer's
            external_id_next="",
        )
        audit_record(
            action="setup_link.connected",
            actor_label=SOURCE_IDENTITY,
            customer=customer,
            target=customer.name,
            details={"role_arn": role_arn, "role_version": version},
        )
        notify.setup_connected_notify(customer=customer, role_arn=role_arn, version=version, connected_at=now)


def setup_launched(*, link: SetupLink) -> None:
    """The customer pressed "I launched it": one more try now, whatever the watch's state."""
    audit_record(
        action="setup_link.launched", actor_label="customer (set-up link)", customer=link.customer,
        target=link.customer.name, details={"link": link.pk},
    )  # fmt: skip
    transaction.on_commit(
        lambda: current_app.send_task(WATCH_TASK, args=[link.pk], kwargs={"watching": False}), robust=True
    )


def setup_watch_over(*, link: SetupLink) -> bool:
    """Onramp has looked for SETUP_WATCH_SECONDS without finding the role: the page asks for the outputs."""
    if link.connected_at is not None or link.watch_started_at is None:
        return False
    return (timezone.now() - link.watch_started_at).total_seconds() >= settings.SETUP_WATCH_SECONDS


def setup_outputs_given(*, link: SetupLink, role_arn: str, template_version: str) -> str:
    """The customer pasted the stack's outputs: tried as given when they name the account the team set; a
    mismatch is reported to the team (audited, notified), never applied. A sentence for the page."""
    customer = link.customer
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    details = {"role_arn": role_arn[:2048], "template_version": template_version[:16]}
    if not role_arn.startswith("arn:aws") or account != customer.aws_account_id:
        audit_record(
            action="setup_link.mismatch", actor_label="customer (set-up link)", customer=customer,
            target=customer.name, outcome=AuditEvent.Outcome.ERROR, details=details,
        )  # fmt: skip
        notify.setup_mismatch_notify(customer=customer, role_arn=role_arn, given_at=timezone.now())
        return (
            f"That role is not in account {customer.aws_account_id}, the account the agency set. Nothing was "
            "changed; the agency's team has been told."
        )
    audit_record(
        action="setup_link.outputs_given", actor_label="customer (set-up link)", customer=customer,
        target=customer.name, details=details,
    )  # fmt: skip
    transaction.on_commit(
        lambda: current_app.send_task(WATCH_TASK, args=[link.pk], kwargs={"watching": False, "role_arn": role_arn}),
        robust=True,
    )
    return "Thank you: Onramp is trying that role now."
