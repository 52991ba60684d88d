"""The plan's checks: what would make a run fail half-way, found before it starts (issue 32 point 4).

Read-only calls made with the plan's read of the account (provisioning/reads.py: once it has the difference, which
says what the plan creates) and again, for the blocking ones, by the run's preflight, beside its stale-plan read
(provisioning/kinds/preflight/aws.py). Each check is a row of the preview: passes, warns, or blocks (Start stays
disabled). The callers audit the calls (aws_work / the step's log)."""

from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import asdict, dataclass
from functools import partial

from botocore.exceptions import ClientError

from provisioning.aws.accounts import AwsAccount, account_connect
from provisioning.aws.calls import aws_checking
from provisioning.aws.errors import OPT_IN_REGIONS, error_code
from provisioning.documents import media_policy_name
from provisioning.kinds import REGISTRY
from provisioning.kinds.account_alias import declaration as account_alias
from provisioning.kinds.iam_access_key import declaration as access_key
from provisioning.kinds.s3_bucket import declaration as s3_bucket
from provisioning.kinds.team_member.declaration import BILLING_REMINDER, member_params, member_policies
from provisioning.models import Customer, Resource
from provisioning.registry import ONRAMP_PATH, managed_policy_arn, policy_arn, user_outside_sentence
from provisioning.spec import Spec
from provisioning.vocabulary import Access

PASS, WARN, BLOCK = "pass", "warn", "block"
# AWS's limit of access keys per IAM user (IAM User Guide, "IAM and AWS STS quotas": two, active or not).
ACCESS_KEYS_PER_USER = 2
# Regions every account has (not opt-in) answer DescribeRegions from here whatever the spec's region.
ALWAYS_ENABLED_REGION = "us-east-1"


@dataclass(frozen=True)
class Check:
    name: str  # path, bucket, alias, access_keys, policies, region, billing
    title: str
    outcome: str  # PASS, WARN or BLOCK
    sentence: str
    todo: str = ""  # what to do about it (a warning's or a block's)

    def to_json(self) -> dict:
        return asdict(self)


def _creates(items: list[dict] | None, kind: str) -> bool:
    """Whether the plan makes `kind`'s resource (None: a plan with no read creates everything)."""
    if items is None:
        return True
    return any(item["kind"] == kind and item["action"] in ("create", "change") for item in items)


def _absent_is_empty(call, field: str) -> list:
    try:
        return call()[field]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return []
        raise


def bucket_check(account: AwsAccount, *, spec: Spec, items: list[dict] | None) -> Check:
    """The bucket's name is the account's own, or free: S3 names are global, and HeadBucket answers 403 for a
    bucket of another account (S3 cannot tell more without s3:ListBucket on it). A free name can still be
    taken before the run: the bucket step still handles BucketAlreadyExists."""
    title = f"Bucket name {spec.bucket}"
    if not _creates(items, s3_bucket.KEY):
        return Check("bucket", title, PASS, "The bucket is already this account's.")
    s3 = account.client("s3")
    # Paginated (an account may have up to 10,000 buckets per page) and narrowed to names starting with this one.
    for page in s3.get_paginator("list_buckets").paginate(Prefix=spec.bucket):
        if any(bucket["Name"] == spec.bucket for bucket in page.get("Buckets", [])):
            return Check("bucket", title, PASS, "The bucket is already this account's.")
    try:
        s3.head_bucket(Bucket=spec.bucket)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return Check("bucket", title, PASS, "The name is free: the run creates the bucket.")
        if error_code(exc) not in ("403", "Forbidden", "AccessDenied"):
            raise
    return Check(
        "bucket",
        title,
        BLOCK,
        f"Another AWS account already has a bucket named {spec.bucket} (bucket names are global).",
        "Choose another bucket name.",
    )


def alias_owner(*, spec: Spec, customer_id: int | None) -> str:
    """The name of another customer whose account Onramp's ledger gave the spec's alias ("" if none)."""
    if not spec.account_alias:
        return ""
    others = Resource.objects.filter(kind=account_alias.KEY, identity=spec.account_alias, state=Resource.State.PRESENT)
    if customer_id is not None:
        others = others.exclude(customer_id=customer_id)
    other = others.select_related("customer").first()
    return other.customer.name if other is not None else ""


def alias_check(account: AwsAccount, *, spec: Spec, owner: str) -> Check | None:
    """The alias is not another customer's in Onramp's ledger (`owner`: alias_owner), and the account has no
    other alias: Onramp never replaces one (an account has at most one)."""
    if not spec.account_alias:
        return None
    title = f"Sign-in alias {spec.account_alias}"
    if owner:
        return Check(
            "alias",
            title,
            BLOCK,
            f"Onramp already gave the alias {spec.account_alias} to {owner}'s account.",
            "Choose another alias.",
        )
    aliases = account.client("iam").list_account_aliases()["AccountAliases"]
    if aliases and aliases[0] != spec.account_alias:
        return Check(
            "alias",
            title,
            WARN,
            f"The account already has the alias {aliases[0]}; Onramp never replaces one, so that alias stays.",
            "Leave the alias empty, or ask the customer to delete theirs first.",
        )
    return Check("alias", title, PASS, "The alias is free for this account.")


def access_keys_check(account: AwsAccount, *, spec: Spec, items: list[dict] | None) -> Check | None:
    """A user has at most two access keys: a plan that makes one for a user at two would fail there."""
    if not _creates(items, access_key.KEY):
        return None
    title = f"Access keys of {spec.app_name}"
    iam = account.client("iam")
    keys = _absent_is_empty(lambda: iam.list_access_keys(UserName=spec.app_name), "AccessKeyMetadata")
    if len(keys) >= ACCESS_KEYS_PER_USER:
        return Check(
            "access_keys",
            title,
            BLOCK,
            f"{spec.app_name} already has {len(keys)} access keys, AWS's limit: the plan makes one more.",
            "Delete one of the user's keys in the account (IAM, Users, Security credentials), then plan again.",
        )
    return Check(
        "access_keys", title, PASS, f"{spec.app_name} has {len(keys)} access key(s) of {ACCESS_KEYS_PER_USER}."
    )


def _ledger_users(customer_id: int | None) -> set[str]:
    """The IAM users Onramp's ledger holds for this customer: made or adopted by Onramp before its path existed,
    they are moved into it once by their step (provisioning/kinds/common_aws.py, user_into_path)."""
    if customer_id is None:
        return set()
    rows = Resource.objects.filter(
        customer_id=customer_id, kind__in=REGISTRY.user_kinds(), state=Resource.State.PRESENT
    )
    return set(rows.values_list("identity", flat=True))


def _user_path(account: AwsAccount, name: str) -> str | None:
    """The path of the IAM user `name` (None: there is no such user, one the run creates)."""
    try:
        return account.client("iam").get_user(UserName=name)["User"].get("Path", "/")
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise


def path_check(paths: dict[str, str | None]) -> Check:
    """No user the spec names exists outside Onramp's path unless the ledger holds it (#30 point 3): such a user
    is the customer's, the role can change nothing on it, and only the customer can hand it over by moving it
    into the path. `paths`: by each named user the ledger does not hold, their path (_user_path: one GetUser)."""
    outside = [name for name, path in paths.items() if path is not None and path != ONRAMP_PATH]
    title = f"Users in Onramp's path {ONRAMP_PATH}"
    if outside:
        return Check(
            "path",
            title,
            BLOCK,
            " ".join(user_outside_sentence(name) for name in outside),
            "Plan again once the customer has moved the user(s), or after choosing other names.",
        )
    return Check("path", title, PASS, "No user the spec names belongs to the customer outside Onramp's path.")


def _wanted_policies(spec: Spec) -> dict[str, set[str]]:
    """By user name, the managed policies the spec attaches to them."""
    media = media_policy_name(scope=spec.media_scope, bucket=spec.bucket)
    wanted = {spec.app_name: {policy_arn(spec.account_id, media)}}
    for member in spec.team:
        params = member_params(member, spec)
        wanted[member.email] = {managed_policy_arn(name) for name in member_policies(params)}
    return wanted


def _policies_quota(account: AwsAccount) -> int:
    return account.client("iam").get_account_summary()["SummaryMap"]["AttachedPoliciesPerUserQuota"]


def _attached(account: AwsAccount, user: str) -> set[str]:
    """The managed policies attached to `user` now (none: no such user yet)."""
    iam = account.client("iam")
    attached = _absent_is_empty(lambda: iam.list_attached_user_policies(UserName=user), "AttachedPolicies")
    return {policy["PolicyArn"] for policy in attached}


def policies_check(*, spec: Spec, quota: int, attached: dict[str, set[str]]) -> Check:
    """No user ends past the account's AttachedPoliciesPerUserQuota (`quota`: GetAccountSummary): one below it
    warns. `attached`: by user the spec names, what is attached to them now (_attached)."""
    worst, most = "", -1
    for user, wanted in _wanted_policies(spec).items():
        after = len(attached[user] | wanted)
        if after > most:
            worst, most = user, after
    title = "Managed policies per user"
    if most > quota:
        return Check(
            "policies",
            title,
            BLOCK,
            f"{worst} would have {most} managed policies; the account allows {quota} per user.",
            f"Detach {most - quota} of {worst}'s policies in the account, or ask AWS to raise the quota.",
        )
    if most >= quota - 1:
        return Check(
            "policies",
            title,
            WARN,
            f"{worst} will have {most} managed policies of the {quota} the account allows per user.",
            "Nothing blocks this plan; the next policy for this user may not fit.",
        )
    return Check("policies", title, PASS, f"Every user stays under the account's {quota} policies per user.")


def billing_check(*, spec: Spec) -> Check | None:
    """Always a warning where a tech lead needs Billing: the account owner switches IAM access on, no API can."""
    if not spec.has_tech_lead:
        return None
    return Check("billing", "Billing access for tech leads", WARN, BILLING_REMINDER, "Ask the account owner.")


def region_check(*, customer: Customer, spec: Spec, source_identity: str) -> Check:
    """The spec's region is enabled for the account. Regions that are not opt-in always are; an opt-in one is
    asked with EC2 DescribeRegions (its OptInStatus) from a region every account has, since the account's
    credentials are refused in an opt-in region it has not enabled."""
    title = f"Region {spec.region}"
    if spec.region not in OPT_IN_REGIONS:
        return Check("region", title, PASS, "The region is enabled in every account.")
    account = account_connect(
        customer=customer,
        region=ALWAYS_ENABLED_REGION,
        access=spec.access,
        role_arn=spec.role_arn,
        external_id=spec.external_id,
        session_name="onramp-region-check",
        source_identity=source_identity,
    )
    regions = account.client("ec2").describe_regions(RegionNames=[spec.region], AllRegions=True)["Regions"]
    status = next((r.get("OptInStatus", "") for r in regions if r["RegionName"] == spec.region), "")
    if status in ("opted-in", "opt-in-not-required"):
        return Check("region", title, PASS, "The account has enabled this opt-in region.")
    who = "the customer's account" if spec.access != Access.ROLE else "the customer's account (and Onramp's own)"
    return Check(
        "region",
        title,
        BLOCK,
        f"{spec.region} is an opt-in region that {who} has not enabled.",
        "Enable it (Account, AWS Regions), or choose another region.",
    )


@dataclass(frozen=True)
class ChecksUnderWay:
    """The plan's checks started (plan_checks_start): their calls in flight, by what each answers."""

    spec: Spec
    calls: dict[str, Future]

    def wait(self) -> None:
        """Every call done (and audited on the starter's log), whatever they answered."""
        wait(self.calls.values())

    def result(self) -> list[Check]:
        """The checks, in the preview's order; raises what a call raised (ClientError), once every call is done."""
        self.wait()
        found = {key: future.result() for key, future in self.calls.items()}
        paths = {key.split(":", 1)[1]: value for key, value in found.items() if key.startswith("path:")}
        attached = {key.split(":", 1)[1]: value for key, value in found.items() if key.startswith("attached:")}
        checks = [
            path_check(paths),
            found["bucket"],
            found["alias"],
            found["access_keys"],
            policies_check(spec=self.spec, quota=found["quota"], attached=attached),
            billing_check(spec=self.spec),
        ]
        return [check for check in checks if check is not None]


def plan_checks_start(
    account: AwsAccount, *, spec: Spec, customer_id: int | None, items: list[dict] | None
) -> ChecksUnderWay:
    """Start the checks that need the account reached in its region (the region's own comes first, separately):
    the ledger is read here, in the caller's thread and transaction; then every call goes out at once on the checks'
    own threads (aws_checking: a user's GetUser and attached policies, one call each), while the caller does
    something else (the run's preflight: the stale-plan read). Wait for it (ChecksUnderWay) before the caller's
    log is drained."""
    owner = alias_owner(spec=spec, customer_id=customer_id)
    held = _ledger_users(customer_id)
    named = [spec.app_name, *(member.email for member in spec.team)]
    works: dict[str, Callable[[], object]] = {
        **{f"path:{name}": partial(_user_path, account, name) for name in named if name not in held},
        "bucket": lambda: bucket_check(account, spec=spec, items=items),
        "alias": lambda: alias_check(account, spec=spec, owner=owner),
        "access_keys": lambda: access_keys_check(account, spec=spec, items=items),
        "quota": lambda: _policies_quota(account),
        **{f"attached:{user}": partial(_attached, account, user) for user in _wanted_policies(spec)},
    }
    return ChecksUnderWay(spec=spec, calls={key: aws_checking(work) for key, work in works.items()})


def plan_checks(account: AwsAccount, *, spec: Spec, customer_id: int | None, items: list[dict] | None) -> list[Check]:
    """The checks, started and waited for (plan_checks_start): one round trip or two in all, not one per call."""
    return plan_checks_start(account, spec=spec, customer_id=customer_id, items=items).result()


def checks_blocking(checks: list[Check] | list[dict]) -> list[dict]:
    rows = [check.to_json() if isinstance(check, Check) else check for check in checks]
    return [row for row in rows if row["outcome"] == BLOCK]


def checks_sentence(blocking: list[dict]) -> str:
    return " ".join(f"{row['sentence']} {row['todo']}".strip() for row in blocking)
