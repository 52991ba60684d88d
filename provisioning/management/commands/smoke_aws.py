"""A check on two real, disposable AWS accounts before the first production use (`make smoke-aws`, docs/deploying.md "A
check on real accounts"): the customer's administrator deploys Onramp's role with CloudFormation, Onramp onboards, a
drift check finds it In sync, the team changes, a decommission removes everything (the bucket's name typed), the
stack is deleted; then it prints what was left (nothing, or each leftover by ARN) and each "assumed" rule of the
strict sandbox it saw AWS apply or not. `make test` runs the same function against the strict sandbox
(tests/test_smoke_aws.py)."""

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from provisioning import drift
from provisioning.approvals import approval_approve
from provisioning.engine.runs import run_create
from provisioning.models import AccountRead, AuditEvent, Customer, DriftState, Run
from provisioning.offboarding import offboard_confirm, offboard_start
from provisioning.onboarding import onboarding_customer
from provisioning.plan import plan_decide
from provisioning.reads import account_read_now
from provisioning.role import template as role_template
from provisioning.spec import spec_parse
from provisioning.vocabulary import OffboardMode

# What `make smoke-aws` needs in its environment (docs/deploying.md, "A check on real accounts").
CONFIRM_VARIABLE = "ONRAMP_SMOKE_CONFIRM"
CONFIRM_VALUE = "delete-everything-onramp-makes-in-these-accounts"
# The strict sandbox's rules whose answer is assumed, not documented (docs/testing.md's table): the operations (any,
# when empty) and AWS codes that show AWS applying each. The report says which the smoke saw in its own audited calls.
ASSUMED_RULES = {
    "login_profile_window": (("DeleteLoginProfile", "UpdateLoginProfile"), ("EntityTemporarilyUnmodifiable",)),
    "new_key_window": ((), ("InvalidClientTokenId",)),
    "consistency_window": ((), ("NoSuchEntity", "NoSuchBucket")),
    "opt_in_regions": ((), ("InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId")),
    "template_url": (("CreateStack", "ValidateTemplate"), ("ValidationError",)),
    "mfa_delete": (("DeleteObjects",), ("AccessDenied",)),
    "source_identity_chain": (("AssumeRole",), ("AccessDenied",)),
    "tag_window": (("UpdateUser",), ("AccessDenied",)),
    "delete_conflict_window": (("DeleteUser", "DeleteGroup", "DeletePolicy"), ("DeleteConflict",)),
    "lifecycle_window": (("GetLifecyclePolicy",), ("LifecyclePolicyNotFoundException",)),
}
_POLL = 2.0


@dataclass
class SmokeReport:
    lines: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    observed: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.leftovers


def _wait(what: str, check: Callable[[], object], timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(_POLL)
    raise CommandError(f"{what}: not done after {timeout:.0f} s.")


def _run_finished(run: Run, timeout: float) -> Run:
    def finished():
        run.refresh_from_db()
        return run if not run.is_active else None

    _wait(f"The run {run.pk}", finished, timeout)
    if run.status != Run.Status.SUCCEEDED:
        failed = run.steps.filter(state="failed").values_list("key", "error_code", "error_message")
        raise CommandError(f"The run {run.pk} ended {run.status}: {list(failed)}")
    return run


def _read_done(read: AccountRead, timeout: float) -> AccountRead:
    def done():
        read.refresh_from_db()
        return read if read.status in (AccountRead.Status.DONE, AccountRead.Status.FAILED) else None

    _wait("The account's read", done, timeout)
    if read.status != AccountRead.Status.DONE:
        raise CommandError(f"The account's read failed: {read.error_message}")
    return read


def _stack(cfn, name: str, wanted: str, timeout: float) -> dict:
    def settled():
        try:
            (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
        except cfn.exceptions.ClientError:
            return {"StackStatus": "DELETE_COMPLETE"} if wanted == "DELETE_COMPLETE" else None
        if stack["StackStatus"].endswith(("_FAILED", "ROLLBACK_COMPLETE")):
            raise CommandError(f"The stack {name} is {stack['StackStatus']}: {stack.get('StackStatusReason', '')}")
        return stack if stack["StackStatus"] == wanted else None

    return _wait(f"The stack {name}", settled, timeout)


def _team(suffix: str) -> list[dict]:
    """A tech lead with console access and a member with a policy and none."""
    return [
        {"email": f"lead-{suffix}@smoke.example", "role": "tech_lead", "console": True},
        {"email": f"dev-{suffix}@smoke.example", "role": "member", "policy": "ReadOnlyAccess", "console": False},
    ]


def _spec(*, suffix: str, account_id: str, region: str, role_arn: str, external_id: str) -> dict:
    return {
        "customer": f"Onramp smoke {suffix}",
        "account_id": account_id,
        "region": region,
        "access": "role",
        "role_arn": role_arn,
        "external_id": external_id,
        "account_alias": f"onramp-smoke-{suffix}",
        "app_name": f"smoke-app-{suffix}",
        "bucket": f"onramp-smoke-{suffix}-media",
        "app_origin": "https://smoke.example.com",
        "ecr_repository": f"onramp-smoke-{suffix}",
        "media_scope": "bucket",
        "team": _team(suffix),
    }


def _leftovers(admin: boto3.Session, *, region: str, suffix: str, stack: str) -> list[str]:
    """What Onramp or the stack made that is still in the customer's account, by ARN."""
    kw = {"region_name": region, "endpoint_url": settings.AWS_ENDPOINT_URL}
    iam, s3, ecr = admin.client("iam", **kw), admin.client("s3", **kw), admin.client("ecr", **kw)
    found = [u["Arn"] for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    found += [g["Arn"] for page in iam.get_paginator("list_groups").paginate() for g in page["Groups"]]
    found += [p["Arn"] for page in iam.get_paginator("list_policies").paginate(Scope="Local") for p in page["Policies"]]
    found += [
        r["Arn"]
        for page in iam.get_paginator("list_roles").paginate()
        for r in page["Roles"]
        if r["RoleName"] == role_template.ROLE_NAME
    ]
    found += [f"account alias {a}" for a in iam.list_account_aliases()["AccountAliases"] if suffix in a]
    buckets = s3.get_paginator("list_buckets").paginate(Prefix=f"onramp-smoke-{suffix}")
    found += [f"arn:aws:s3:::{b['Name']}" for page in buckets for b in page.get("Buckets", [])]
    found += [
        r["repositoryArn"]
        for page in ecr.get_paginator("describe_repositories").paginate()
        for r in page["repositories"]
        if suffix in r["repositoryName"]
    ]
    return [arn for arn in found if suffix in arn or role_template.ROLE_NAME in arn or stack in arn]


def smoke_aws_run(
    *,
    customer_admin: boto3.Session,
    account_id: str,
    region: str,
    user,
    approver,
    say: Callable[[str], None],
    timeout=900,
) -> SmokeReport:
    """The whole check, in the customer's account `account_id` (its administrator: `customer_admin`), with Onramp's
    own identity from the standard credential chain (the agency's account, PORTAL_AWS_ACCOUNT_ID). The
    decommission, which always needs a second person, is asked by `user` and approved by `approver`."""
    report = SmokeReport()

    def note(line: str) -> None:
        report.lines.append(line)
        say(line)

    suffix = secrets.token_hex(3)
    stack = f"onramp-smoke-{suffix}"
    external_id = secrets.token_hex(16)
    cfn = customer_admin.client("cloudformation", region_name=region, endpoint_url=settings.AWS_ENDPOINT_URL)
    outputs = _role_deploy(cfn, stack=stack, suffix=suffix, external_id=external_id, timeout=timeout)
    note(f"Deployed the role from the template: {outputs['RoleArn']} (version {outputs['TemplateVersion']}).")
    role_arn = outputs["RoleArn"]
    data = _spec(suffix=suffix, account_id=account_id, region=region, role_arn=role_arn, external_id=external_id)
    spec = spec_parse(data)
    with transaction.atomic():  # the record is taken under its row lock, as the onboard command does
        customer = onboarding_customer(spec=spec, user=user, via="smoke-aws")
    run = _run_finished(run_create(spec=spec, customer=customer, user=user), timeout)
    note(f"Onboarded: run {run.pk} succeeded.")
    _drift_in_sync(customer, user=user, timeout=timeout)
    note("Drift check: In sync.")

    data = {
        **data,
        "team": [data["team"][0], {"email": f"new-{suffix}@smoke.example", "role": "member", "console": False}],
    }
    run = _team_change(customer, data=data, user=user, timeout=timeout)
    note(f"Changed the team: run {run.pk} succeeded.")

    customer_admin.client("s3", region_name=region, endpoint_url=settings.AWS_ENDPOINT_URL).put_object(
        Bucket=data["bucket"], Key="smoke.txt", Body=b"the bucket holds data: its name must be typed"
    )
    run, typed = _decommission(customer, user=user, approver=approver, timeout=timeout)
    note(f"Decommissioned, {typed} name(s) typed: run {run.pk} succeeded.")

    cfn.delete_stack(StackName=stack)
    _stack(cfn, stack, "DELETE_COMPLETE", timeout)
    note(f"Deleted the stack {stack}.")

    report.leftovers = _leftovers(customer_admin, region=region, suffix=suffix, stack=stack)
    note("Left in the customer's account: " + ("nothing." if not report.leftovers else ""))
    for arn in report.leftovers:
        note(f"  {arn}")
    _assumed_rules_observe(customer, report=report, note=note)
    return report


def _role_deploy(cfn, *, stack: str, suffix: str, external_id: str, timeout: float) -> dict[str, str]:
    """The customer's administrator deploys Onramp's role from the template: the stack's outputs."""
    template = role_template.cloudformation_template(
        customer_name=f"Onramp smoke {suffix}",
        portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID,
        external_id=external_id,
    )
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"])
    return {o["OutputKey"]: o["OutputValue"] for o in _stack(cfn, stack, "CREATE_COMPLETE", timeout)["Outputs"]}


def _drift_in_sync(customer: Customer, *, user, timeout: float) -> None:
    """A drift check of the account just onboarded, which must find it In sync."""
    check = drift.drift_check_start(customer=customer, user=user)
    state = _wait(
        "The drift check", lambda: DriftState.objects.filter(customer=customer, last_read=check).first(), timeout
    )
    if state.state != DriftState.State.IN_SYNC:
        raise CommandError(f"The drift check found the account {state.state}: {state.differences}")


def _team_change(customer: Customer, *, data: dict, user, timeout: float) -> Run:
    """A change run to the spec `data`, its plan the difference with the account as read now."""
    spec = spec_parse(data)
    read = account_read_now(customer=customer, spec=spec, user=user)
    items = plan_decide(read.items, delete=set(), typed={})
    return _run_finished(run_create(spec=spec, customer=customer, user=user, read=read, items=items), timeout)


def _decommission(customer: Customer, *, user, approver, timeout: float) -> tuple[Run, int]:
    """Decommission the customer, typing the name of each resource that holds data, asked by `user` and approved by
    `approver` (an offboarding always needs a second person): the run, and how many names."""
    read = _read_done(offboard_start(customer=customer, mode=OffboardMode.DECOMMISSION, user=user), timeout)
    typed = {item["resource"]: item["params"]["name"] for item in read.items if item.get("holds_data")}
    asked = offboard_confirm(read=read, user=user, delete=set(), typed=typed)
    run = asked if isinstance(asked, Run) else approval_approve(approval_id=asked.pk, user=approver)
    return _run_finished(run, timeout), len(typed)


def _assumed_rules_observe(customer: Customer, *, report: SmokeReport, note: Callable[[str], None]) -> None:
    """Which of the strict sandbox's assumed rules AWS applied in this check's own audited calls."""
    answers = set(
        AuditEvent.objects.filter(customer=customer, action__startswith="aws.")
        .exclude(error_code="")
        .values_list("action", "error_code")
    )
    note("The strict sandbox's assumed rules, as AWS applied them in this check:")
    for rule, (operations, codes) in ASSUMED_RULES.items():
        report.observed[rule] = any(
            code in codes and (not operations or action.rsplit(".", 1)[-1] in operations) for action, code in answers
        )
        note(f"  {rule}: {'observed' if report.observed[rule] else 'not observed'} ({', '.join(codes)})")


class Command(BaseCommand):
    help = "Onboard, check, change, decommission and clean up on two disposable AWS accounts (docs/deploying.md)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The tech lead the runs are started as.")
        parser.add_argument(
            "--approver",
            required=True,
            help="The second person who approves the decommission: an Admin, or another member of the customer's team.",
        )
        parser.add_argument("--timeout", type=float, default=900, help="Seconds each stage waits at most.")

    def handle(self, *args, user, approver, timeout, **options):
        if os.environ.get(CONFIRM_VARIABLE) != CONFIRM_VALUE:
            raise CommandError(
                f"This check creates and deletes things in real AWS accounts. Set {CONFIRM_VARIABLE}={CONFIRM_VALUE} "
                "to confirm both accounts are disposable."
            )
        missing = [name for name in ("SMOKE_CUSTOMER_ACCOUNT_ID", "SMOKE_CUSTOMER_PROFILE") if not os.environ.get(name)]
        if missing:
            raise CommandError(f"Set {', '.join(missing)} (docs/deploying.md, 'A check on real accounts').")
        starter = get_user_model().objects.filter(username=user, is_active=True).first()
        second = get_user_model().objects.filter(username=approver, is_active=True).first()
        if starter is None or second is None:
            raise CommandError(f"No active user named {user if starter is None else approver}.")
        if Customer.objects.filter(aws_account_id=os.environ["SMOKE_CUSTOMER_ACCOUNT_ID"]).exists():
            raise CommandError("The customer account is already on record here: use a database of its own for this.")
        report = smoke_aws_run(
            customer_admin=boto3.Session(profile_name=os.environ["SMOKE_CUSTOMER_PROFILE"]),
            account_id=os.environ["SMOKE_CUSTOMER_ACCOUNT_ID"],
            region=os.environ.get("SMOKE_REGION", "us-west-2"),
            user=starter,
            approver=second,
            say=self.stdout.write,
            timeout=timeout,
        )
        if not report.ok:
            raise CommandError(f"{len(report.leftovers)} leftover(s) in the customer's account (listed above).")
