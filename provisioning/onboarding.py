"""Onboarding from the browser: keep a checked draft between the form and the preview, then confirm it.

The draft lives in the session. It holds the validated spec (no secret), what the user typed (to refill
the form on "Edit") and, when Onramp reaches the account with an IAM user's keys, the secret as Fernet
ciphertext only.
"""

from collections.abc import Set as AbstractSet
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.text import slugify

from provisioning import vault
from provisioning.approvals import plan_start
from provisioning.audit.chain import audit_record
from provisioning.checks import checks_blocking, checks_sentence
from provisioning.customers import customer_refuse_if_offboarded
from provisioning.identity.permissions import is_admin
from provisioning.models import AccountRead, Customer, PlanApproval, Run
from provisioning.plan import plan_decide
from provisioning.reads import account_read_start
from provisioning.spec import Spec, spec_parse
from provisioning.teams import customer_permission_check, customer_team_join
from provisioning.vocabulary import Access

# Form fields never kept in the draft as typed: the CSRF token, and the secret (kept encrypted instead).
_NOT_KEPT = ("csrfmiddlewaretoken", "secret_access_key")


def onboarding_draft_build(
    *, spec: Spec, customer: Customer | None, posted: dict, access_key_id: str, secret: str, previous: dict | None
) -> dict:
    """The session draft for a valid form. An empty secret keeps the one of the previous draft for the same key."""
    keys = None
    if spec.access == Access.KEYS and access_key_id:
        if secret:
            keys = {"access_key_id": access_key_id, "secret_ciphertext": vault.encrypt(secret)}
        elif previous and (previous.get("keys") or {}).get("access_key_id") == access_key_id:
            keys = previous["keys"]
    return {
        "spec": spec.to_json(),
        "customer_id": customer.pk if customer else None,
        "keys": keys,
        "form": {name: value for name, value in posted.items() if name not in _NOT_KEPT},
    }


class OnboardingRefused(Exception):
    """The spec would change what the person may not change, or names the account's customer wrongly."""


def onboarding_draft_spec(*, draft: dict) -> Spec:
    return spec_parse(draft["spec"])


def _customer_slug(name: str) -> str:
    base = slugify(name)[:70] or "customer"
    slug, n = base, 1
    while Customer.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _connection_changes(customer: Customer, spec: Spec) -> dict[str, str]:
    """The connection settings the spec would change on the customer's record."""
    wanted = {"access": spec.access, "role_arn": spec.role_arn, "external_id": spec.external_id}
    return {name: value for name, value in wanted.items() if value and getattr(customer, name) != value}


def _customer_create(*, spec: Spec, user, via: str) -> Customer:
    customer = Customer.objects.create(
        name=spec.customer,
        slug=_customer_slug(spec.customer),
        aws_account_id=spec.account_id,
        default_region=spec.region,
        account_alias=spec.account_alias,
        access=spec.access,
        role_arn=spec.role_arn,
        **({"external_id": spec.external_id} if spec.external_id else {}),
    )
    audit_record(
        action="customer.created",
        actor=user,
        customer=customer,
        target=customer.name,
        details={
            "fields": ["name", "aws_account_id", "default_region", "account_alias", "access", "role_arn"]
            + (["external_id"] if spec.external_id else []),
            "via": via,
        },
    )
    # Whoever onboards a new customer is on its team from then on (an Admin needs no team).
    customer_team_join(customer=customer, user=user, via=via)
    return customer


def onboarding_spec_connection_fill(*, data: dict[str, Any]) -> dict[str, Any]:
    """Raw spec data for a customer on record (by its account id), reached by a role, that omits the role ARN or
    the external id: with the record's. A spec file then needs no copy of the external id Onramp generated, and
    onboarding_customer still checks the name and who may change a connection. Anything else: as given."""
    if not isinstance(data, dict) or (data.get("access") or Access.ROLE) != Access.ROLE:
        return data
    if data.get("role_arn") and data.get("external_id"):
        return data
    account = data.get("account_id")
    customer = (
        Customer.objects.filter(aws_account_id=account, access=Access.ROLE).first()
        if isinstance(account, str)
        else None
    )
    if customer is None:
        return data
    return {
        **data,
        "role_arn": data.get("role_arn") or customer.role_arn,
        "external_id": data.get("external_id") or customer.external_id,
    }


def onboarding_customer(
    *, spec: Spec, user: User, customer_id: int | None = None, via: str, keys_given: bool = False
) -> Customer:
    """The customer on record, or a new one (audited; its onboarder joins its team). On record, only its team
    and Admins may go on (customer_permission_check), the spec must name that customer, and
    only an Admin may change its connection (role, external id, access kind, stored keys: `keys_given`),
    audited; for anyone else the spec must carry the record's values (OnboardingRefused otherwise)."""
    customer = None
    if customer_id:
        customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        customer = Customer.objects.select_for_update().filter(aws_account_id=spec.account_id).first()
    if customer is None:
        return _customer_create(spec=spec, user=user, via=via)
    customer_permission_check(user=user, customer=customer, action="settings")
    if spec.customer.strip().casefold() != customer.name.strip().casefold():
        raise OnboardingRefused(
            f"Account {customer.aws_account_id} belongs to the customer {customer.name!r}, not {spec.customer!r}: "
            f"onboard it as {customer.name!r} (or ask an Admin to rename the customer)."
        )
    changed = _connection_changes(customer, spec)
    if (changed or keys_given) and not is_admin(user):
        fields = sorted(changed) + (["stored keys"] if keys_given else [])
        raise OnboardingRefused(
            f"Only an Admin changes how Onramp reaches {customer.name} ({', '.join(fields)}): use the values on "
            "the customer's record, or ask an Admin to change them there."
        )
    if changed:
        for name, value in changed.items():
            setattr(customer, name, value)
        customer.save(update_fields=[*changed, "updated_at"])
        audit_record(
            action="customer.changed",
            actor=user,
            customer=customer,
            target=customer.name,
            details={"fields": sorted(changed), "via": via},
        )
    return customer


def onboarding_draft_customer(*, draft: dict) -> Customer | None:
    """The customer on record a draft is for (picked in the form, or known by its account id)."""
    spec = draft["spec"]
    if draft.get("customer_id"):
        return Customer.objects.filter(pk=draft["customer_id"]).first()
    return Customer.objects.filter(aws_account_id=spec["account_id"]).first()


def _draft_customer_record(*, draft: dict, user: User) -> Customer:
    """The customer a draft is for, on record before its account is read: a new one is created now (audited, its
    onboarder on its team), with the draft's keys if it is reached by keys (already encrypted: stored as they
    are). A customer on record goes through the same checks as at the start (onboarding_customer): its
    connection is not changed before the start, the read uses the spec's role and external id."""
    known = onboarding_draft_customer(draft=draft)
    if known is not None:
        customer_permission_check(user=user, customer=known, action="plan")
        return known
    with transaction.atomic():
        customer = onboarding_customer(spec=onboarding_draft_spec(draft=draft), user=user, via="onboarding preview")
        keys = draft.get("keys")
        if keys:
            _keys_store(customer=customer, keys=keys, user=user, via="onboarding preview")
            draft["keys"] = None  # on the record now: starting changes nothing of the connection
    draft["customer_id"] = customer.pk
    # On record from now on: "Edit" shows it picked, and its connection is the record's (an Admin changes it).
    draft["form"] = {**draft.get("form", {}), "customer": str(customer.pk), "new_customer_name": ""}
    return customer


def _keys_store(*, customer: Customer, keys: dict, user: User, via: str) -> None:
    customer.access_key_id = keys["access_key_id"]
    customer.secret_access_key_ciphertext = keys["secret_ciphertext"]
    customer.save(update_fields=["access_key_id", "secret_access_key_ciphertext", "updated_at"])
    audit_record(
        action="customer.changed",
        actor=user,
        customer=customer,
        target=customer.name,
        details={"fields": ["access_key_id", "secret_access_key (replaced)"], "via": via},
    )


def onboarding_draft_read(*, draft: dict, user: User) -> AccountRead:
    """The read of the customer's account this draft's plan is the difference with: the draft's own if it was made
    for this very spec, else a new one (read as a task). Every plan reads first, a new customer's too (whose
    record is made now): nothing the spec names is taken over unseen, and the run's preflight checks the account
    is still as read. OnboardingRefused, NotOnCustomerTeam as for starting it."""
    customer = _draft_customer_record(draft=draft, user=user)
    read_id = draft.get("read_id")
    read = AccountRead.objects.filter(pk=read_id, customer=customer, spec=draft["spec"]).first() if read_id else None
    if read is None:
        read = account_read_start(customer=customer, spec=onboarding_draft_spec(draft=draft), user=user)
        draft["read_id"] = str(read.pk)
    return read


def onboarding_confirm(
    *, draft: dict, user: User, delete: AbstractSet[int] = frozenset(), typed: dict | None = None, emergency: str = ""
) -> Run | PlanApproval:
    """Update the customer from a checked draft and start the run of its plan (RunConflict if one is active), or
    save the plan as awaiting approval when the approval rules ask for a second person (approvals.plan_start: an
    adoption always does, and only an Admin approves it; `emergency`: an Admin's reason to start it alone). The
    run carries out the difference the read found, with the tech lead's decisions (adopted resources ticked for
    deletion, `delete`; names typed to delete what holds data, `typed`)."""
    spec = onboarding_draft_spec(draft=draft)
    read_id = draft.get("read_id")
    read = AccountRead.objects.filter(pk=read_id, status=AccountRead.Status.DONE).first() if read_id else None
    if read is None or read.spec != draft["spec"]:
        raise OnboardingRefused("The account was not read for this plan yet: check the plan again.")
    blocking = checks_blocking(read.checks)
    if blocking:  # the preview disables Start; a POST made anyway is refused the same way
        raise OnboardingRefused(f"The plan's checks found what would fail: {checks_sentence(blocking)}")
    items = plan_decide(read.items, delete=set(delete), typed=typed or {})
    repair = bool(draft.get("repair"))  # opened by Repair and started unedited (an edit makes a new draft)
    known = onboarding_draft_customer(draft=draft)
    if known is not None:  # before the transaction, so that the refusal stays in the audit log
        customer_permission_check(user=user, customer=known, action="run")
        customer_refuse_if_offboarded(customer=known, user=user, doing="onboarding")
    with transaction.atomic():
        keys = draft.get("keys")
        customer = onboarding_customer(
            spec=spec, user=user, customer_id=draft.get("customer_id"), via="onboarding form", keys_given=bool(keys)
        )
        if keys:  # already encrypted when the form was checked: stored as they are
            _keys_store(customer=customer, keys=keys, user=user, via="onboarding form")
        if read.customer_id != customer.pk:
            raise OnboardingRefused("This plan was read from another customer's account: check the plan again.")
        return plan_start(
            spec=spec, customer=customer, user=user, read=read, items=items, repair=repair, emergency=emergency
        )
