"""Preflight: reach the account, refuse root, refuse the wrong account."""

from concurrent.futures import wait

from botocore.exceptions import ClientError

from provisioning.aws.calls import aws_beside, current_call_log
from provisioning.aws.errors import error_code, error_translate
from provisioning.checks import checks_blocking, checks_sentence, plan_checks_start
from provisioning.errors import StepFailed
from provisioning.kinds import REGISTRY
from provisioning.ledger import ledger_changed_lately, ledger_rows
from provisioning.models import AccountRead, Customer
from provisioning.plan import plan_registry
from provisioning.registry import ROLE_TEMPLATE_VERSION, ROLE_VERSION_TAG, Operation
from provisioning.role.versions import operations_ungranted, role_update_sentence, version_policy
from provisioning.spec import spec_from_json
from provisioning.steps.base import StepContext, StepResult
from provisioning.steps.reading import SETTLING_READS, account_seen, seen_fingerprint, seen_normal
from provisioning.vocabulary import Access


def identity_check(*, sts, account_id: str) -> dict:
    """Who the credentials are, refusing root and any account but `account_id`: {"arn", "account"}.

    Shared by the preflight step and the admin's "Check connection", so both refuse the same things."""
    try:
        identity = sts.get_caller_identity()
    except Exception as exc:
        raise error_translate(exc, doing="Checking who Onramp is in the account") from None
    arn, account = identity["Arn"], identity["Account"]
    if arn.endswith(":root"):
        raise StepFailed(
            "These are the account's root credentials. Onramp never uses root: give it a role "
            "(recommended) or an IAM user's keys instead.",
            code="RootCredentials",
        )
    if account != account_id:
        raise StepFailed(
            f"These credentials reach account {account}, not the customer's account {account_id}. "
            "Check the role ARN or the stored keys.",
            code="WrongAccount",
        )
    return {"arn": arn, "account": account}


def role_version_read(account, role_arn: str) -> int:
    """The template version the customer's Onramp role was deployed from (its tag); 0 for a role that predates
    versions (no tag, or no right to read itself, which versions 2 and later grant)."""
    try:
        role = account.client("iam").get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
    except ClientError as exc:
        if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            return 0
        raise error_translate(exc, doing="Reading the version of the customer's Onramp role") from None
    value = next((tag["Value"] for tag in role.get("Tags", []) if tag["Key"] == ROLE_VERSION_TAG), "0")
    return int(value) if value.isdigit() else 0


def role_version_problem(version: int, operations: list[Operation] | None = None) -> StepFailed | None:
    """What to tell when the customer's role is older than this Onramp's template. With the `operations` a run
    needs, an older role that grants each of them exactly as its published policy says is no problem."""
    if version >= ROLE_TEMPLATE_VERSION:
        return None
    missing = None
    if operations is not None:
        policy = version_policy(version)
        missing = operations_ungranted(policy, operations) if policy is not None else None
        if missing == []:
            return None
    return StepFailed(
        role_update_sentence(version=version, current=ROLE_TEMPLATE_VERSION, missing=missing), code="RoleOutdated"
    )


def run_operations(run) -> list[Operation]:
    """Every operation the run's steps may call (their kinds' declarations)."""
    kinds = {REGISTRY.kind_of(key).key: REGISTRY.kind_of(key) for key in run.steps.values_list("key", flat=True)}
    return [operation for kind in kinds.values() for operation in kind.operations]


def _plan_still_current(ctx: StepContext, read: AccountRead, *, ledger: list[dict], lately: frozenset[str]) -> None:
    """A difference plan is carried out only on the account it was planned from: read it again and refuse
    when anything changed since (as Terraform refuses a stale plan). The ledger's rows and what changed lately
    (SETTLING_READS) are read by the caller, in the step's thread."""
    spec, registry = spec_from_json(read.spec), plan_registry(read.offboard)
    try:
        seen = account_seen(ctx.account, spec=spec, ledger=ledger, registry=registry, changed_lately=lately)
    except ClientError as exc:
        raise error_translate(exc, doing="Reading the account again") from None
    if seen_fingerprint(seen) == read.fingerprint:
        return
    changed = sorted(
        key for key in {*seen, *read.seen} if seen_normal(seen.get(key)) != seen_normal(read.seen.get(key))
    )
    raise StepFailed(
        f"The account changed since the plan was read ({', '.join(changed)[:400]}). Nothing was changed: "
        "plan again to see the difference as it is now.",
        code="PlanStale",
    )


def _plan_recheck(ctx: StepContext, read_id: str | None) -> None:
    """The stale-plan check (a plan with a read) and the plan's blocking checks again, side by side: the checks'
    calls go out on their own threads (checks.plan_checks_start) while this thread reads the account again, so
    the preflight waits for the longer of the two, not for both. Everything the database says is read here first,
    in the step's thread. A stale plan is refused first (PlanStale, even when a check blocks too); then a
    blocking check (PlanCheckFailed): a bucket name taken or a user's keys made by hand since the plan was read
    (or a plan with no read, which creates everything). An offboarding creates nothing: nothing of it can fail
    the checks. The region needs no call: the account was just reached in it."""
    customer_id = ctx.run.customer_id
    read = AccountRead.objects.get(pk=read_id) if read_id else None
    if read is not None:
        ledger = ledger_rows(customer_id=customer_id)
        lately = ledger_changed_lately(customer_id=customer_id, kinds=SETTLING_READS)
    checking = None
    if read is None or not read.offboard:
        spec, items = spec_from_json(ctx.run.spec), read.items if read is not None else None
        checking = plan_checks_start(ctx.account, spec=spec, customer_id=customer_id, items=items)
    try:
        if read is not None:
            _plan_still_current(ctx, read, ledger=ledger, lately=lately)
    finally:
        if checking is not None:
            checking.wait()  # every check's call audited with this step's, also when the plan is stale
    if checking is None:
        return
    try:
        blocking = checks_blocking(checking.result())
    except ClientError as exc:
        raise error_translate(exc, doing="Checking the plan again") from None
    if blocking:
        raise StepFailed(f"Nothing was changed: {checks_sentence(blocking)}", code="PlanCheckFailed")


def _approver_untagged_record(ctx: StepContext) -> None:
    """A run approved by someone whose name its session could not carry says so in its audit, once: with the
    preflight's own events (the preflight runs first, and opens the run's first session)."""
    run = ctx.run
    log = current_call_log.get()
    if run.approved_by_id is None or run.approved_by is None or not ctx.account.untagged_because or log is None:
        return
    approver = run.approved_by.get_username()
    log.record(
        action="run.approver_not_in_session",
        target=approver,
        details={"approved_by": approver, "reason": ctx.account.untagged_because},
    )


def execute(ctx: StepContext, params: dict) -> StepResult:
    role = ctx.account.access == Access.ROLE and params.get("role_arn")
    sts = ctx.client("sts")  # first: the identity check's call goes out before the other clients are made
    # The role's version is read beside the identity check (neither waits on the other): one round trip.
    version = aws_beside(lambda: role_version_read(ctx.account, params["role_arn"])) if role else None
    # The clients the run's steps use are made while these calls wait on AWS, not by the steps (a role's account
    # made them already, while AWS answered its AssumeRole: provisioning.aws.account_connect).
    others = aws_beside(lambda: ctx.account.clients_open(REGISTRY.services()))
    try:
        identity = identity_check(sts=sts, account_id=params["account_id"])
    finally:
        # The version's call is audited with this step's: done before the step's log is written.
        wait([f for f in (version, others) if f is not None])
    if version is not None:
        version = version.result()
        if ctx.run.customer.role_version != version:
            Customer.objects.filter(pk=ctx.run.customer_id).update(role_version=version)
        problem = role_version_problem(version, run_operations(ctx.run))
        if problem is not None:
            raise problem
    _approver_untagged_record(ctx)
    _plan_recheck(ctx, ctx.read)
    return StepResult(adopted=False, outputs={**identity, "via": ctx.account.access})
