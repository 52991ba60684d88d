"""The customers' services: records saved and deleted with their audit trail, the connection checked, the
selectors of the customers' and runs' pages, the role's version read back, and the rules every run obeys about
a customer (an offboarded customer gets no run; the desired state). The role's documents are
provisioning/role/template.py's."""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Case, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone
from django.utils.formats import date_format

from provisioning import vault
from provisioning.audit.chain import audit_record
from provisioning.aws.accounts import AwsAccount, account_connect
from provisioning.aws.calls import aws_work
from provisioning.errors import OnrampError
from provisioning.kinds import REGISTRY
from provisioning.kinds.account_alias import declaration as account_alias
from provisioning.kinds.preflight.aws import identity_check, role_version_problem, role_version_read
from provisioning.kinds.team_member import declaration as team_member
from provisioning.ledger import ledger_for_admin, ledger_labels
from provisioning.models import AuditEvent, Credential, Customer, DriftState, Run, SetupLink, new_external_id
from provisioning.models import Resource as LedgerRow
from provisioning.registry import (
    ROLE_TEMPLATE_VERSION,
    Registry,
)
from provisioning.role.template import access_policy_document
from provisioning.role.versions import (
    SAME_PERMISSIONS,
    policy_changes_in_words,
    trust_changes_in_words,
    version_policy,
)
from provisioning.teams import is_admin
from provisioning.vocabulary import Access, OffboardMode

# --- Checking the connection ----------------------------------------------------------


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    code: str = ""
    arn: str = ""


def customer_check_connection(*, customer: Customer, user: User, account: AwsAccount | None = None) -> ConnectionCheck:
    """The preflight, on demand: reach the account (assume the role or use the stored keys), confirm the
    account id, refuse root. The role is assumed exactly as a run assumes it (the same request, the person
    checking as the source identity), so a connection that passes here passes a run's preflight. Every AWS
    call and the result are audited. `account` is opened from the customer's record unless given."""
    with aws_work(actor_label=user.get_username(), actor_id=user.pk, customer_id=customer.pk) as log:
        try:
            if account is None:
                account = account_connect(
                    customer=customer,
                    region=customer.default_region,
                    session_name=f"onramp-check-{customer.pk}",
                    source_identity=user.get_username(),
                )
            identity = identity_check(sts=account.client("sts"), account_id=customer.aws_account_id)
            role = ""
            if account.access == Access.ROLE:
                version = role_version_read(account, customer.role_arn)
                Customer.objects.filter(pk=customer.pk).update(role_version=version)
                problem = role_version_problem(version)
                if problem is not None:
                    raise problem
                role = f", role template version {version}"
            result = ConnectionCheck(
                ok=True,
                message=f"{customer.name}: Onramp reaches account {identity['account']} as {identity['arn']} "
                f"(via {account.access}{role}).",
                arn=identity["arn"],
            )
        except OnrampError as exc:
            result = ConnectionCheck(ok=False, message=f"{customer.name}: {exc}", code=exc.code)
        except vault.VaultError as exc:  # stored keys sealed with a key no longer configured
            result = ConnectionCheck(ok=False, message=f"{customer.name}: {exc}", code="VaultError")
        log.record(
            action="customer.connection_checked",
            customer=customer.pk,
            outcome=AuditEvent.Outcome.OK if result.ok else AuditEvent.Outcome.ERROR,
            error_code=result.code,
            target=customer.name,
            details={"access": customer.access, "arn": result.arn, "message": result.message},
        )
    return result


# --- Saving from the admin ------------------------------------------------------------

SECRET_FIELD = "secret_access_key"  # noqa: S105 (a form field name, not a secret)


def customer_save(
    *, customer: Customer, user: User, created: bool, changed: list[str], secret_access_key: str = ""
) -> None:
    """Save a customer edited by a person, the secret (if given) encrypted by the vault, and audit which
    fields changed: names only, and for the secret only that it was set or replaced."""
    fields = [name for name in changed if name != SECRET_FIELD]
    if secret_access_key:
        customer.secret_access_key_ciphertext = vault.encrypt(secret_access_key)
        fields.append(f"{SECRET_FIELD} ({'set' if created else 'replaced'})")
    with transaction.atomic():
        customer.save()
        if not (created or fields):
            return  # saved as it was: nothing to record
        audit_record(
            action="customer.created" if created else "customer.changed",
            actor=user,
            customer=customer,
            target=customer.name,
            details={
                "fields": fields,
                "via": "admin",
                # The approval rule is no secret, and who weakened or tightened it matters: its new value.
                **({"approval_rule": customer.approval_rule} if "approval_rule" in fields or created else {}),
            },
        )


def customer_delete(*, customer: Customer, user: User) -> None:
    with transaction.atomic():
        audit_record(
            action="customer.deleted",
            actor=user,
            customer=customer,
            target=customer.name,
            details={"aws_account_id": customer.aws_account_id, "via": "admin"},
        )
        customer.delete()


# --- Selectors ------------------------------------------------------------------------


def customers_with_last_run(queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Each customer with its last run (id, date, kind, status), and the sign-in alias the account has as far
    as the ledger knows, in the same query (correlated subqueries)."""
    last = Run.objects.filter(customer=OuterRef("pk")).order_by("-created_at")
    alias = LedgerRow.objects.filter(customer=OuterRef("pk"), kind=account_alias.KEY, state=LedgerRow.State.PRESENT)
    return queryset.annotate(
        last_run_id=Subquery(last.values("pk")[:1]),
        last_run_at=Subquery(last.values("created_at")[:1]),
        last_run_kind=Subquery(last.values("kind")[:1]),
        last_run_offboard=Subquery(last.values("offboard")[:1]),
        last_run_status=Subquery(last.values("status")[:1]),
        alias_now=Subquery(alias.order_by("-id").values("name")[:1]),
    )


# Drift states worst first: what could not be read, then what drifted, then what is in sync; never checked last.
DRIFT_RANK = {DriftState.State.UNREACHABLE: 0, DriftState.State.DRIFTED: 1, DriftState.State.IN_SYNC: 2}
DRIFT_UNCHECKED = 3


def drift_rank() -> Case:
    """A customer's drift state as a number to sort by (DRIFT_RANK)."""
    whens = (When(drift__state=state, then=Value(value)) for state, value in DRIFT_RANK.items())
    return Case(*whens, default=Value(DRIFT_UNCHECKED), output_field=IntegerField())


# The Customers list's orders: each column's most useful way first (newest run, worst drift, oldest role).
CUSTOMER_SORTS = {
    "name": ("name",),
    "last_run": (F("last_run_at").desc(nulls_last=True), "name"),
    "drift": ("drift_rank", "drift__since", "name"),
    "role": (F("role_version").asc(nulls_first=True), "name"),
    "offboarded": (F("offboarded_at").desc(nulls_last=True), "name"),
}


def customers_find(*, q: str = "", sort: str = "name") -> QuerySet[Customer]:
    """The active customers whose name or account id contains `q`, with their last run, drift state and
    role version, in one of CUSTOMER_SORTS."""
    found = Customer.objects.filter(is_active=True)
    if q:
        found = found.filter(Q(name__icontains=q) | Q(aws_account_id__contains=q))
    found = customers_with_last_run(found).select_related("drift").annotate(drift_rank=drift_rank())
    return found.order_by(*CUSTOMER_SORTS.get(sort, CUSTOMER_SORTS["name"]))


@dataclass(frozen=True)
class RunFilters:
    customer_id: int | None = None
    kind: str = ""
    status: str = ""
    person_id: int | None = None
    q: str = ""  # in the customer's name


def runs_find(*, filters: RunFilters, limit: int = 50) -> list[Run]:
    """The runs that match every filter given, newest first (at most `limit`)."""
    runs = Run.objects.select_related("customer", "started_by")
    if filters.customer_id:
        runs = runs.filter(customer_id=filters.customer_id)
    if filters.kind:
        runs = runs.filter(kind=filters.kind)
    if filters.status:
        runs = runs.filter(status=filters.status)
    if filters.person_id:
        runs = runs.filter(started_by_id=filters.person_id)
    if filters.q:
        runs = runs.filter(customer__name__icontains=filters.q)
    return list(runs.order_by("-created_at", "-pk")[:limit])


def customer_desired_spec(*, customer: Customer, for_drift: bool = False) -> dict | None:
    """The spec the customer's account is meant to match; `for_drift` chooses what counts.

    for_drift=False (the customer's page, the form's "Change team / settings", an offboarding's plan): the spec
    of the customer's last run that succeeded, whatever its kind (an offboarding's is the spec it started from),
    else of their last run (a first onboarding that failed: the form opens on what was tried).

    for_drift=True (the drift check, a repair): only a state Onramp keeps the account in: None once the
    customer is offboarded, else the spec of the last successful run that is not an offboarding (the one
    that finished last); None when there is none yet."""
    if for_drift:
        if customer.is_offboarded:
            return None  # Onramp no longer keeps their account in any state
        runs = Run.objects.filter(customer=customer, status=Run.Status.SUCCEEDED, offboard="")
        return runs.order_by("-finished_at").values_list("spec", flat=True).first()
    runs = Run.objects.filter(customer=customer).order_by("-created_at")
    run = runs.filter(status=Run.Status.SUCCEEDED).first() or runs.first()
    return run.spec if run else None


def customer_offboarding_undone(*, customer: Customer) -> list[str] | None:
    """When the customer's last successful run is an offboarding that an Admin's reactivation ended: the team
    users it removed (names), whom "Change team / settings" brings back, since the form opens on the spec the
    offboarding started from. None otherwise."""
    run = Run.objects.filter(customer=customer, status=Run.Status.SUCCEEDED).order_by("-created_at").first()
    if run is None or not run.offboard or customer.is_offboarded:
        return None
    removed = LedgerRow.objects.filter(removed_by_run=run, kind=team_member.KEY, state=LedgerRow.State.REMOVED)
    return list(removed.order_by("name").values_list("name", flat=True))


def customer_unrevealed(*, customer: Customer, user: User, admin: bool) -> list[Credential]:
    """Secrets of the customer's runs still waiting to be revealed, that this person may reveal (theirs, or
    any for an Admin), soonest wiped first: none stranded in an earlier run."""
    credentials = Credential.objects.filter(customer=customer, state=Credential.State.SEALED).defer("ciphertext")
    if not admin:
        credentials = credentials.filter(issued_to=user)
    return list(credentials.select_related("run").order_by("expires_at"))


def runs_with_unrevealed(*, runs: list[Run], user: User, admin: bool) -> set:
    """Which of `runs` hold a secret still waiting to be revealed by this person."""
    credentials = Credential.objects.filter(run__in=runs, state=Credential.State.SEALED)
    if not admin:
        credentials = credentials.filter(issued_to=user)
    return set(credentials.values_list("run_id", flat=True))


HANDED_OVER = "Handed over (now the customer's)"


@dataclass(frozen=True)
class ResourceRow:
    kind: str
    name: str
    arn: str
    origin: str
    state: str
    created_by_run: object
    last_run: object


def customer_resources(*, customer: Customer, registry: Registry = REGISTRY) -> list[ResourceRow]:
    """What the ledger says Onramp created or adopted in the customer's account (present first, then what
    it removed or released), in the declarations' order: names, ARNs and which run made it, never a secret."""
    labels = ledger_labels(registry)
    order = {kind: index for index, kind in enumerate(labels)}
    ledger = sorted(
        ledger_for_admin(customer=customer),
        key=lambda row: (row.state != LedgerRow.State.PRESENT, order.get(row.kind, len(order)), row.name),
    )
    # What an offboarding left present in the ledger is the customer's now (the run page handed it over).
    handed = customer.is_offboarded
    return [
        ResourceRow(
            kind=labels.get(row.kind, row.kind),
            name=row.name,
            arn=row.arn or str(row.outputs.get("uri") or ""),
            origin=row.get_origin_display(),
            state=HANDED_OVER if handed and row.state == LedgerRow.State.PRESENT else row.get_state_display(),
            created_by_run=row.created_by_run_id,
            last_run=row.last_run_id,
        )
        for row in ledger
    ]


@dataclass(frozen=True)
class RoleRow:
    customer: Customer
    deployed: int | None  # the template version its role carries; None: never read
    outdated: bool
    changes: list[str]  # for an outdated role: what the update changes, in words


def roles_overview() -> list[RoleRow]:
    """Every active customer reached by a role, oldest role first: the version deployed, when last seen, and for
    an outdated one what the current version changes (its published policy against the current one)."""
    current = access_policy_document()
    customers = Customer.objects.filter(is_active=True, offboarded_at__isnull=True, access=Access.ROLE)
    rows, policies = [], {}
    for customer in customers.order_by(F("role_version").asc(nulls_first=True), "name"):
        deployed = customer.role_version
        outdated = deployed is not None and deployed < ROLE_TEMPLATE_VERSION
        changes = []
        if outdated and deployed is not None:
            if deployed not in policies:
                policies[deployed] = version_policy(deployed)
            changes = policy_changes_in_words(policies[deployed], current, version=deployed)
            trust = trust_changes_in_words(deployed)
            if trust and changes == [SAME_PERMISSIONS]:
                changes = []
            changes = trust + changes
        rows.append(RoleRow(customer=customer, deployed=deployed, outdated=outdated, changes=changes))
    return rows


ROLES_IDENTITY = "onramp-roles"  # the source identity and session prefix of Onramp's own reads of a role's version


def role_refresh(*, customer: Customer) -> int | None:
    """Read the customer's role version again (nightly, and when the customer says they updated the stack):
    recorded with when it was seen, audited. A rotated external id still pending is tried first: once the
    customer's stack takes it, it becomes the customer's. None when the role cannot be assumed (the drift check
    reports an unreachable account)."""
    if customer.access != Access.ROLE or not customer.role_arn:
        return None
    with aws_work(actor_label=ROLES_IDENTITY, customer_id=customer.pk) as log:
        for external_id in [value for value in (customer.external_id_next, customer.external_id) if value]:
            try:
                account = account_connect(
                    customer=customer,
                    region=customer.default_region,
                    external_id=external_id,
                    session_name=f"{ROLES_IDENTITY}-{customer.pk}",
                    source_identity=ROLES_IDENTITY,
                )
                version = role_version_read(account, customer.role_arn)
            except OnrampError as exc:
                log.record(
                    action="role.version_read", customer=customer.pk, outcome=AuditEvent.Outcome.ERROR,
                    error_code=exc.code, target=customer.name, details={"message": str(exc)},
                )  # fmt: skip
                continue
            changed = {"role_version": version, "role_seen_at": timezone.now()}
            if external_id == customer.external_id_next:
                changed.update(external_id=external_id, external_id_next="")
                log.record(action="customer.external_id_rotated", customer=customer.pk, target=customer.name)
            Customer.objects.filter(pk=customer.pk).update(**changed)
            log.record(
                action="role.version_read", customer=customer.pk, target=customer.name,
                details={"role_version": version, "before": customer.role_version},
            )  # fmt: skip
            return version
    return None


def customer_external_id_rotate(*, customer: Customer, user: User) -> None:
    """An Admin gives the customer a new external id (after a leaked link): pending until the customer's stack is
    updated with it (their set-up page gives the update), while Onramp keeps reaching them with the old one. The
    customer's live set-up links are revoked; a new one carries the new value."""
    if not is_admin(user):
        raise PermissionDenied("Only Admins rotate a customer's external id.")
    with transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(external_id_next=new_external_id())
        revoked = SetupLink.objects.filter(customer=customer, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=user
        )
        audit_record(
            action="customer.external_id_rotation_started", actor=user, customer=customer, target=customer.name,
            details={"setup_links_revoked": revoked},
        )  # fmt: skip


def roles_to_refresh() -> list[int]:
    """The customers whose role version the nightly read covers."""
    customers = Customer.objects.filter(is_active=True, offboarded_at__isnull=True, access=Access.ROLE)
    return list(customers.exclude(role_arn="").order_by("pk").values_list("pk", flat=True))


# --- The rule every run obeys: no run for an offboarded customer -------------------------


class CustomerOffboarded(Exception):
    """The customer was offboarded: no run starts for them until an Admin reactivates them."""

    def __init__(self, customer: Customer):
        self.customer = customer
        who = customer.offboarded_by.get_username() if customer.offboarded_by else "someone"
        super().__init__(
            f"{customer.name} was offboarded ({OffboardMode(customer.offboard_mode).label.lower()}) on "
            f"{date_format(timezone.localtime(customer.offboarded_at), 'DATETIME_FORMAT')} by {who}: Onramp starts no "
            "run for them until an Admin reactivates them (admin, Customers, the action “Reactivate”)."
        )


def customer_refuse_if_offboarded(*, customer: Customer, user: User, doing: str) -> None:
    """Raise CustomerOffboarded (audited as refused) when the customer, as the database has it now, is offboarded."""
    current = Customer.objects.select_related("offboarded_by").get(pk=customer.pk)
    if current.offboarded_at is None:
        return
    audit_record(
        action="run.refused",
        actor=user,
        customer=current,
        outcome=AuditEvent.Outcome.REFUSED,
        error_code="CustomerOffboarded",
        target=current.name,
        details={"reason": "the customer is offboarded", "doing": doing},
    )
    raise CustomerOffboarded(current)
