"""One declaration per step: what a step is, written once.

A StepKind says, for one kind of step: its key, title, branch and what it waits for; which
instances a spec asks for (one per team member, none without an alias…) and their parameters;
its JSON documents; the write calls it sends on the way that creates its resource, exactly as
they are sent (the plan's CLI transcript is rendered from the same ApiCall objects the step sends);
every AWS operation it may call and the IAM actions those need (the customer's role policy is
derived from them); what it records as a resource; what it publishes to the run's summary.

Pure data and pure functions: the plan imports this module and reaches no AWS code. The functions
that carry a step out are bound to its key in provisioning.steps (EXECUTORS).
"""

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from provisioning import documents
from provisioning.spec import MEMBER_POLICY_NAMES, TECH_LEAD_POLICIES, Spec, TeamMember
from provisioning.vocabulary import MANAGED_BY_TAG, MemberRole

ASSUME_SECONDS = 3600  # the session Onramp asks for; the template's MaxSessionDuration allows exactly this
# The role customers deploy from Onramp's template, and the version of that template this Onramp needs: a
# change to the role's permissions raises it, and Check connection and each run's preflight read the
# deployed role's version (its tag) and say when the customer's stack must be updated.
ROLE_NAME = "OnrampAccess"
ROLE_VERSION_TAG = "onramp-template-version"
ROLE_TEMPLATE_VERSION = 4
# The sha256 of the role's policy (customers.access_policy_document as canonical JSON) at each version, so a
# policy that changes without a new version fails tests/test_role_template.py. Add a line, never edit one: a
# deployed role carries the version it was made from. 3: iam:RemoveUserFromGroup without a tag condition; the
# plan's checks (GetAccountSummary, HeadBucket, ec2:DescribeRegions); bucket removal's reads (versioning, Object
# Lock); virtual MFA devices deleted; scan-on-push kept; users' and groups' writes only in the /onramp/ path.
# 4: the trust policy's sts:TagSession (ROLE_TRUST_ACTIONS), so a run names its approver in the session.
ROLE_POLICY_SHA256 = {
    2: "cfd28e6958d31ece30098c10fec1f10381151973ef1ef008cf34a38dcfdc5701",
    3: "974186e825faea9bad7efe59bf878147ab6a470f10d8cc397227a5d6872ffb99",
    4: "974186e825faea9bad7efe59bf878147ab6a470f10d8cc397227a5d6872ffb99",  # the policy of 3: only the trust changed
}
# What the role's trust policy allows Onramp's account at each version since 3 (a version may change only these):
# sts:SetSourceIdentity names the person who started a run, sts:TagSession its approver (APPROVER_TAG).
ROLE_TRUST_ACTIONS = {
    3: ("sts:AssumeRole", "sts:SetSourceIdentity"),
    4: ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
}
# The session tag that names a run's approver in the customer's CloudTrail (AssumeRole's Tags).
APPROVER_TAG = "onramp-approver"


def role_allows_session_tags(version: int | None) -> bool | None:
    """Whether a role deployed from `version` lets Onramp tag its sessions; None when the version is not known."""
    if version is None:
        return None
    return "sts:TagSession" in ROLE_TRUST_ACTIONS.get(version, ())


# A value Onramp generates at send time (a console password): shown as this in the transcript.
GENERATED = "<generated>"
MANAGED_TAGS = [{"Key": MANAGED_BY_TAG[0], "Value": MANAGED_BY_TAG[1]}]
# The condition key of the role's deletes (ONRAMPS_ONLY), and the tag in words for people.
MANAGED_BY_CONDITION_KEY = f"aws:ResourceTag/{MANAGED_BY_TAG[0]}"
MANAGED_BY_WORDS = f"{MANAGED_BY_TAG[0]}={MANAGED_BY_TAG[1]}"
# Onramp's users and groups live under this IAM path. An IAM ARN holds the path, so the role's write actions on
# users and groups name only ARNs under it: what Onramp did not make (or the customer did not hand over by moving
# it here) is beyond its reach, group membership included (AddUserToGroup's only resource is the group).
ONRAMP_PATH = "/onramp/"
ONRAMPS_USERS = f"arn:aws:iam::*:user{ONRAMP_PATH}*"
ONRAMPS_GROUPS = f"arn:aws:iam::*:group{ONRAMP_PATH}*"
CHANGE_PASSWORD_POLICY = "IAMUserChangePassword"  # noqa: S105 (an AWS managed policy's name)
MEDIA_POLICY_DESCRIPTION = "Grants access to S3 buckets and objects"
BRANCHES = {
    "preflight": "Preflight",
    "account": "Account",
    "iam": "App user and access",
    "team": "Team members",
    "s3": "S3 bucket",
    "ecr": "ECR repository",
    "remove": "Removals",
}

_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def words_of(name: str, joiner: str) -> str:
    """An AWS operation or parameter name as boto3 (joiner "_") or the AWS CLI ("-") spells it:
    CreateUser -> create_user, CORSConfiguration -> cors-configuration."""
    return _WORD_BREAK.sub(joiner, name).lower()


# --- Calls ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One AWS API call with its parameters, as a step sends it and as the transcript shows it."""

    service: str  # boto3's name: iam, s3, ecr, sts
    operation: str  # the API's name: CreateUser
    params: dict

    @property
    def method(self) -> str:
        return words_of(self.operation, "_")


def role_arn_for(account_id: str) -> str:
    """The role's name is fixed by the template, so its ARN follows from the account id ("*": in any account)."""
    return f"arn:aws:iam::{account_id}:role/{ROLE_NAME}"


def assume_role_call(
    *, role_arn: str, external_id: str, session_name: str, source_identity: str, tags: dict[str, str] | None = None
) -> ApiCall:
    """`tags`: the session's tags (an approver), which need sts:TagSession from both the role's trust policy and
    Onramp's own policy."""
    params: dict[str, object] = {"RoleArn": role_arn, "RoleSessionName": session_name, "ExternalId": external_id}
    if source_identity:
        params["SourceIdentity"] = source_identity
    if tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    params["DurationSeconds"] = ASSUME_SECONDS
    return ApiCall("sts", "AssumeRole", params)


def create_account_alias(alias: str) -> ApiCall:
    return ApiCall("iam", "CreateAccountAlias", {"AccountAlias": alias})


def create_group(group: str) -> ApiCall:
    return ApiCall("iam", "CreateGroup", {"GroupName": group, "Path": ONRAMP_PATH})


def create_user(user: str) -> ApiCall:
    return ApiCall("iam", "CreateUser", {"UserName": user, "Path": ONRAMP_PATH, "Tags": MANAGED_TAGS})


def user_outside_sentence(user: str) -> str:
    return (
        f"The IAM user {user} exists outside Onramp's path {ONRAMP_PATH}: Onramp cannot take it over. To hand it "
        f"to Onramp, the customer moves it into the path (aws iam update-user --user-name {user} --new-path "
        f"{ONRAMP_PATH}); otherwise choose another name."
    )


def group_outside_sentence(group: str) -> str:
    return (
        f"The IAM group {group} exists outside Onramp's path {ONRAMP_PATH}: Onramp cannot take it over. To hand it "
        f"to Onramp, the customer moves it into the path (aws iam update-group --group-name {group} --new-path "
        f"{ONRAMP_PATH}); otherwise choose another group name."
    )


def user_path_move(user: str) -> ApiCall:
    """A user Onramp made before its path existed (tagged as Onramp's), moved into the path once."""
    return ApiCall("iam", "UpdateUser", {"UserName": user, "NewPath": ONRAMP_PATH})


def tag_user(user: str) -> ApiCall:
    """An adopted user becomes Onramp's to manage (its keys, password, policies): tagged as such."""
    return ApiCall("iam", "TagUser", {"UserName": user, "Tags": MANAGED_TAGS})


def detach_user_policy(user: str, policy_arn: str) -> ApiCall:
    return ApiCall("iam", "DetachUserPolicy", {"UserName": user, "PolicyArn": policy_arn})


def add_user_to_group(user: str, group: str) -> ApiCall:
    return ApiCall("iam", "AddUserToGroup", {"GroupName": group, "UserName": user})


def create_policy(name: str, document: dict) -> ApiCall:
    return ApiCall(
        "iam",
        "CreatePolicy",
        {
            "PolicyName": name,
            "PolicyDocument": json.dumps(document, separators=(",", ":")),
            "Description": MEDIA_POLICY_DESCRIPTION,
            "Tags": MANAGED_TAGS,
        },
    )


def create_policy_version(arn: str, document: dict) -> ApiCall:
    return ApiCall(
        "iam",
        "CreatePolicyVersion",
        {"PolicyArn": arn, "PolicyDocument": json.dumps(document, separators=(",", ":")), "SetAsDefault": True},
    )


def attach_user_policy(user: str, policy_arn: str) -> ApiCall:
    return ApiCall("iam", "AttachUserPolicy", {"UserName": user, "PolicyArn": policy_arn})


def create_access_key(user: str) -> ApiCall:
    return ApiCall("iam", "CreateAccessKey", {"UserName": user})


def create_login_profile(user: str) -> ApiCall:
    return ApiCall(
        "iam", "CreateLoginProfile", {"UserName": user, "Password": GENERATED, "PasswordResetRequired": True}
    )


def create_bucket(bucket: str, region: str) -> ApiCall:
    params: dict = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 takes no LocationConstraint
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    params["ObjectOwnership"] = documents.OBJECT_OWNERSHIP  # ACLs off: the bucket owner owns every object
    return ApiCall("s3", "CreateBucket", params)


def put_bucket_ownership_controls(bucket: str) -> ApiCall:
    return ApiCall(
        "s3", "PutBucketOwnershipControls", {"Bucket": bucket, "OwnershipControls": documents.ownership_document()}
    )


def put_public_access_block(bucket: str) -> ApiCall:
    return ApiCall(
        "s3",
        "PutPublicAccessBlock",
        {"Bucket": bucket, "PublicAccessBlockConfiguration": documents.public_access_block_document()},
    )


def put_bucket_cors(bucket: str, origin: str) -> ApiCall:
    return ApiCall(
        "s3", "PutBucketCors", {"Bucket": bucket, "CORSConfiguration": documents.cors_document(app_origin=origin)}
    )


def create_repository(name: str) -> ApiCall:
    return ApiCall(
        "ecr",
        "CreateRepository",
        {"repositoryName": name, "imageScanningConfiguration": {"scanOnPush": True}, "tags": MANAGED_TAGS},
    )


def put_image_scanning_configuration(name: str) -> ApiCall:
    return ApiCall(
        "ecr",
        "PutImageScanningConfiguration",
        {"repositoryName": name, "imageScanningConfiguration": {"scanOnPush": True}},
    )


def put_lifecycle_policy(name: str) -> ApiCall:
    text = json.dumps(documents.lifecycle_policy_document(), separators=(",", ":"))
    return ApiCall("ecr", "PutLifecyclePolicy", {"repositoryName": name, "lifecyclePolicyText": text})


def policy_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:policy/{name}"


def managed_policy_arn(name: str) -> str:
    return f"arn:aws:iam::aws:policy/{name}"


# --- Permissions ------------------------------------------------------------------------------

# S3 names a few IAM actions differently from the API operations they authorise.
_ACTION_NAMES = {
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "GetObjectLockConfiguration"): "s3:GetBucketObjectLockConfiguration",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "GetBucketCors"): "s3:GetBucketCORS",
    ("s3", "PutBucketCors"): "s3:PutBucketCORS",
}


# Calls that AWS authorises with more than one action.
_ALSO_NEEDS = {("s3", "DeleteObjects"): ("s3:DeleteObjectVersion",)}


@dataclass(frozen=True)
class Operation:
    """An AWS operation a step may call, and what IAM must allow for it."""

    service: str
    name: str
    also: tuple[str, ...] = ()  # IAM actions the call needs besides its own (tagging on create)
    condition: tuple = ()  # ((operator, key, values), …): the statement allowing it is conditioned
    resource: str = "*"  # where IAM can name it in advance (Onramp's own role); "*" where a spec names it

    @property
    def action(self) -> str:
        return _ACTION_NAMES.get((self.service, self.name), f"{self.service}:{self.name}")

    @property
    def actions(self) -> tuple[str, ...]:
        return (self.action, *self.also, *_ALSO_NEEDS.get((self.service, self.name), ()))


def ops(service: str, *names: str, **kwargs: Any) -> tuple[Operation, ...]:
    return tuple(Operation(service, name, **kwargs) for name in names)


# --- Declarations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """A value a step's outputs give the run's summary: summary[field] = outputs[output]."""

    field: str
    output: str
    label: str
    many: bool = False  # one value per instance (the team), a list in the summary


@dataclass(frozen=True)
class ResourceRecord:
    """What a step's resource is called in the admin and the ledger: the parameter a spec names it by
    (its identity, what plans match on), the output AWS names it by, and the output holding its ARN."""

    label: str
    identity_param: str
    name_output: str
    arn_output: str = "arn"


# --- What differs between what a spec wants and what the account has --------------------------


@dataclass(frozen=True)
class Difference:
    """One field of a resource that is not as wanted, in words."""

    field: str
    expected: str
    actual: str
    repairable: bool = True  # False: Onramp will not change it (another region, an alias it never replaces)

    def words(self) -> str:
        return f"{self.field}: expected {self.expected}, found {self.actual}"

    def to_json(self) -> dict:
        return {"field": self.field, "expected": self.expected, "actual": self.actual, "repairable": self.repairable}


def shown(value: object) -> str:
    """A value, short and readable, for a difference."""
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)[:300]
    return str(value)


def _changes(expected, actual, path: str = "") -> list[tuple[str, object, object]]:
    """The paths at which two JSON documents differ, walking objects and lists of objects."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            found += _changes(expected.get(key), actual.get(key), f"{path}.{key}" if path else str(key))
        return found
    if (
        isinstance(expected, list)
        and isinstance(actual, list)
        and len(expected) == len(actual)
        and all(isinstance(item, dict) for item in [*expected, *actual])
    ):
        found = []
        for index, (want, have) in enumerate(zip(expected, actual, strict=True)):
            found += _changes(want, have, f"{path}[{index}]")
        return found
    return [] if expected == actual else [(path, expected, actual)]


def document_differences(label: str, expected: Any, actual: Any) -> list[Difference]:
    """A document's differences, one per changed field (e.g. "CORS rules [1].AllowedOrigins")."""
    if actual is None:
        return [Difference(label, "set", "none")]
    return [
        Difference(f"{label} {path}".strip(), shown(want), shown(have))
        for path, want, have in _changes(expected, actual)
    ]


def _no_differences(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    return []


def _no_documents(params: dict) -> dict:
    return {}


def _no_calls(params: dict) -> list[ApiCall]:
    return []


def _no_reminders(params: dict) -> list[str]:
    return []


@dataclass(frozen=True)
class StepKind:
    key: str  # "iam.group"; the steps of a kind with many instances are "team.member:<instance>"
    branch: str
    title: Callable[[dict], str]
    instances: Callable[[Spec], list[dict]]  # each instance's parameters; [] leaves the step out
    after: tuple[str, ...] = ("preflight",)  # kinds whose steps come first
    instance_id: Callable[[dict], str] | None = None  # for kinds with many instances
    calls: Callable[[dict], list[ApiCall]] = _no_calls  # the write calls of the create path
    documents: Callable[[dict], dict] = _no_documents
    operations: tuple[Operation, ...] = ()
    resource: ResourceRecord | None = None
    publishes: tuple[Publish, ...] = ()
    reminders: Callable[[dict], list[str]] = _no_reminders
    # What differs between these parameters and what a read of the account found (provisioning.steps
    # READERS), given the parameters it was last applied with: the steps decide "adopt or correct" with
    # it, plans show it, drift reports it.
    compare: Callable[[dict, dict, dict | None], list[Difference]] = _no_differences
    removal: tuple[str, ...] = ()  # the kinds whose steps remove this kind's resource, in order

    def step_key(self, params: dict) -> str:
        return f"{self.key}:{self.instance_id(params)}" if self.instance_id else self.key


class Registry:
    """The step kinds, in plan order (a kind comes after the kinds it waits for)."""

    def __init__(
        self, kinds: Iterable[StepKind], extra_operations: Iterable[Operation] = (), known: Iterable[StepKind] = ()
    ):
        self.kinds = tuple(kinds)
        # `known`: kinds a registry that plans fewer still names (what the ledger holds, to remove it).
        self._by_key = {kind.key: kind for kind in (*known, *self.kinds)}
        # Calls Onramp makes in the account outside any step (the connection check reads the role's version).
        self.extra_operations = tuple(extra_operations)

    def wanting(self, keys: Iterable[str]) -> "Registry":
        """A desired state that wants less: the same declarations, planning only the kinds in `keys` (with the
        preflight and the removals). What the ledger holds of the others becomes the plan's removals."""
        keep = {"preflight", *keys}
        return Registry(
            (kind for kind in self.kinds if kind.key in keep or kind.branch == "remove"),
            self.extra_operations,
            known=self.kinds,
        )

    def kind_of(self, step_key: str) -> StepKind:
        return self._by_key[step_key.split(":", 1)[0]]

    def operations(self) -> list[Operation]:
        seen: dict[tuple, Operation] = {}
        for operation in (*self.extra_operations, *(op for kind in self.kinds for op in kind.operations)):
            seen.setdefault((operation.service, operation.name, operation.condition, operation.resource), operation)
        return list(seen.values())

    def services(self) -> list[str]:
        """The AWS services the steps call, in the declarations' order: the clients a run makes while its role is
        assumed (not those of extra_operations, such as the region check's EC2, which asks from us-east-1)."""
        return list(dict.fromkeys(op.service for kind in self.kinds for op in kind.operations))

    def publishes(self) -> list[Publish]:
        return [publish for kind in self.kinds for publish in kind.publishes]

    def resources(self) -> list[tuple[StepKind, ResourceRecord]]:
        return [(kind, kind.resource) for kind in self.kinds if kind.resource is not None]


# --- Onramp's steps ---------------------------------------------------------------------------

BILLING_REMINDER = (
    "IAM access to the Billing console must be switched on once by the account owner "
    "(root user → Account → IAM user and role access to Billing information). No API can do it."
)
# The AWS managed policies Onramp may attach: a tech lead's, a member's choice, and the right to change
# one's own password. With the app's own MediaManagement policies, they are the whole reach of the role's
# Attach permission (iam:PolicyARN).
ATTACHABLE_POLICIES = tuple(
    dict.fromkeys((*TECH_LEAD_POLICIES, *(name for name in MEMBER_POLICY_NAMES if name), CHANGE_PASSWORD_POLICY))
)
ATTACH_CONDITION = (
    (
        "ArnLike",
        "iam:PolicyARN",
        ("arn:aws:iam::*:policy/MediaManagement*", *sorted(managed_policy_arn(p) for p in ATTACHABLE_POLICIES)),
    ),
)
# What creates, changes or deletes a user, its keys, password and policies reaches only users in Onramp's path
# (ONRAMPS_USERS); groups and their membership only groups in it (ONRAMPS_GROUPS). The one exception is the
# move of a user Onramp made before the path existed: UpdateUser on any user, but only one tagged as Onramp's
# (AWS authorizes a move on the user where it is and where it goes: "*" covers both; the tag is the user's).
ONRAMPS_ONLY = (("StringEquals", MANAGED_BY_CONDITION_KEY, (MANAGED_BY_TAG[1],)),)


def user_ops(*names: str, **kwargs: Any) -> tuple[Operation, ...]:
    return ops("iam", *names, resource=ONRAMPS_USERS, **kwargs)


def group_ops(*names: str) -> tuple[Operation, ...]:
    return ops("iam", *names, resource=ONRAMPS_GROUPS)


def _media_params(spec: Spec) -> dict:
    name = documents.media_policy_name(scope=spec.media_scope, bucket=spec.bucket)
    return {
        "user": spec.app_name,
        "scope": spec.media_scope,
        "bucket": spec.bucket,
        "name": name,
        "arn": policy_arn(spec.account_id, name),
    }


def media_document(params: dict) -> dict:
    return documents.media_policy_document(scope=params["scope"], bucket=params["bucket"])


def member_params(member: TeamMember, spec: Spec) -> dict:
    return {
        "email": member.email,
        "role": member.role,
        "policy": member.policy,
        "console": member.console,
        "sign_in_url": documents.sign_in_url(account_id=spec.account_id, alias=spec.account_alias),
    }


def member_policies(params: dict) -> list[str]:
    """The AWS managed policies a member's user gets: their role's, and the right to change the password
    AWS makes them change at first sign-in (a member's own policy may not include it)."""
    policies = list(TeamMember(email=params["email"], role=params["role"], policy=params["policy"]).policies)
    if params["console"] and CHANGE_PASSWORD_POLICY not in policies:
        policies.append(CHANGE_PASSWORD_POLICY)
    return policies


def _member_calls(params: dict) -> list[ApiCall]:
    user = params["email"]
    calls = [create_user(user)]
    calls += [attach_user_policy(user, managed_policy_arn(policy)) for policy in member_policies(params)]
    if params["console"]:
        calls.append(create_login_profile(user))
    return calls


def _member_title(params: dict) -> str:
    member = TeamMember(email=params["email"], role=params["role"], policy=params["policy"])
    role = "tech lead" if member.is_tech_lead else "member"
    # The policies the step attaches, IAMUserChangePassword included: the CLI and the diff show it too.
    attached = member_policies(params)
    policies = f" ({', '.join(attached)})" if attached else ""
    console = "console access" if params["console"] else "no console access"
    return f"Team {role} {params['email']}{policies}, {console}"


# The comparisons: parameters (what the spec wants) against `seen` (what a read of the account found, see
# provisioning.steps READERS), given the parameters it was last applied with (`previous`, from the ledger).


def _compare_alias(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    if seen["alias"] == params["alias"]:
        return []
    # Onramp never replaces another alias: only a missing one can be set.
    return [Difference("sign-in alias", params["alias"], shown(seen["alias"]), repairable=not seen["alias"])]


def _compare_tag(seen: dict) -> list[Difference]:
    found = [] if seen["tagged"] else [Difference(f"tag {MANAGED_BY_TAG[0]}", MANAGED_BY_TAG[1], "none")]
    # Outside the path: Onramp's own user of before the path is moved; anyone else's only the customer can move.
    path = seen.get("path", ONRAMP_PATH)
    if path != ONRAMP_PATH:
        found.append(Difference("IAM path", ONRAMP_PATH, path, repairable=bool(seen["tagged"])))
    return found


def _compare_app_user(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    found = _compare_tag(seen)
    if params["group"] not in seen["groups"]:
        found.append(Difference("groups", params["group"], shown(seen["groups"])))
    return found


def _compare_media_policy(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    found = document_differences("policy document", media_document(params), seen["document"])
    if not seen["attached"]:
        found.append(Difference(f"attached to {params['user']}", "yes", "no"))
    return found


# What a read found that Onramp's ledger does not hold (steps.reading marks each such thing "onramps": False):
# reported, never removed.
NOT_ONRAMPS = "made by hand, not by Onramp (reported; Onramp leaves it)"


def _compare_group(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    path = seen.get("path", ONRAMP_PATH)
    outside = [] if path == ONRAMP_PATH else [Difference("IAM path", ONRAMP_PATH, path, repairable=False)]
    return outside + [
        Difference(f"member {member['name']}", "not in the group", NOT_ONRAMPS, repairable=False)
        for member in seen.get("members", [])
        if member.get("onramps") is False
    ]


def _compare_key_age(key: dict, limit: int | None) -> list[Difference]:
    if limit is None or key.get("age_days") is None or key["age_days"] < limit:
        return []
    return [
        Difference(
            f"access key {key['id']}",
            f"younger than {limit} days",
            f"{key['age_days']} days old: due for rotation (Issue a new key on the last run's page)",
            repairable=False,
        )
    ]


def _compare_access_key(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    keys = seen["keys"]
    if not keys:
        return [Difference("access key", "one", "none")]
    found = []
    for key in keys:
        if key.get("onramps") is False:
            found.append(Difference(f"access key {key['id']}", "none besides Onramp's", NOT_ONRAMPS, repairable=False))
        else:
            found += _compare_key_age(key, seen.get("max_age_days"))
    if len(keys) > 1 and all(key.get("onramps") is not False for key in keys):
        ids = ", ".join(key["id"] for key in keys)
        found.append(Difference("access keys", "one", f"{len(keys)} ({ids})", repairable=False))
    return found


def _compare_member(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    wanted = member_policies(params)
    before = member_policies(previous) if previous else []
    # Onramp takes back only what it attached before and no longer wants; what was attached by hand stays.
    stale = [name for name in before if name not in wanted and name in seen["policies"]]
    found = _compare_tag(seen)
    if stale or any(name not in seen["policies"] for name in wanted):
        found.append(Difference("policies", shown(wanted), shown(seen["policies"])))
    if seen["console"] != params["console"]:
        found.append(Difference("console access", shown(params["console"]), shown(seen["console"])))
    return found


def _compare_bucket(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    if seen["region"] != params["region"]:
        # Onramp will not use a bucket in another region: nothing else about it is worth correcting.
        return [Difference("region", params["region"], seen["region"], repairable=False)]
    found = []
    if seen["ownership"] != documents.OBJECT_OWNERSHIP:
        found.append(Difference("object ownership", "BucketOwnerEnforced (ACLs off)", shown(seen["ownership"])))
    return found


def _compare_public_access_block(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    return document_differences("Block Public Access", documents.public_access_block_document(), seen["config"])


def _compare_cors(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    wanted = documents.cors_rules_normal(documents.cors_document(app_origin=params["origin"])["CORSRules"])
    return document_differences("CORS rules", wanted, seen["rules"])


def _compare_repository(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    if seen.get("scan_on_push", True):
        return []
    return [Difference("scan on push", "on", "off")]


def _compare_lifecycle(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    return document_differences("lifecycle policy", documents.lifecycle_policy_document(), seen["policy"])


USER_REMOVAL = (
    "remove.user.login_profile",
    "remove.user.access_keys",
    "remove.user.signing_certificates",
    "remove.user.ssh_public_keys",
    "remove.user.service_credentials",
    "remove.user.mfa_devices",
    "remove.user.inline_policies",
    "remove.user.attached_policies",
    "remove.user.groups",
    "remove.user",
)

PREFLIGHT = StepKind(
    key="preflight",
    branch="preflight",
    title=lambda p: "Reach the account and check who Onramp is there",
    instances=lambda spec: [{"account_id": spec.account_id, "role_arn": spec.role_arn}],
    after=(),
    # GetRole: the role reads its own template version, and nothing else's.
    operations=(
        *ops("sts", "GetCallerIdentity"),
        Operation("iam", "GetRole", resource=role_arn_for("*")),
    ),
)
ACCOUNT_ALIAS = StepKind(
    key="account.alias",
    branch="account",
    title=lambda p: f"Set the sign-in alias {p['alias']}",
    instances=lambda spec: [{"alias": spec.account_alias}] if spec.account_alias else [],
    calls=lambda p: [create_account_alias(p["alias"])],
    operations=ops("iam", "ListAccountAliases", "CreateAccountAlias"),
    resource=ResourceRecord("Account alias", "alias", "alias", arn_output=""),
    compare=_compare_alias,
    removal=("remove.account.alias",),
)
GROUP = StepKind(
    key="iam.group",
    branch="iam",
    title=lambda p: f"Group {p['group']}",
    instances=lambda spec: [{"group": spec.group_name}],
    calls=lambda p: [create_group(p["group"])],
    operations=(*group_ops("CreateGroup"), *ops("iam", "GetGroup")),
    resource=ResourceRecord("IAM group", "group", "group"),
    publishes=(Publish("group", "arn", "Group"),),
    compare=_compare_group,
    removal=("remove.iam.group",),
)
APP_USER = StepKind(
    key="iam.app_user",
    branch="iam",
    title=lambda p: f"App user {p['user']} in {p['group']}",
    instances=lambda spec: [{"user": spec.app_name, "group": spec.group_name}],
    after=("iam.group",),
    calls=lambda p: [create_user(p["user"]), add_user_to_group(p["user"], p["group"])],
    operations=(
        *user_ops("CreateUser", also=("iam:TagUser",)),
        *user_ops("TagUser"),
        *ops("iam", "UpdateUser", condition=ONRAMPS_ONLY),
        *ops("iam", "GetUser", "ListGroupsForUser"),
        *group_ops("AddUserToGroup"),
    ),
    resource=ResourceRecord("IAM user (app)", "user", "user"),
    publishes=(Publish("app_user", "arn", "App user"),),
    compare=_compare_app_user,
    removal=USER_REMOVAL,
)
MEDIA_POLICY = StepKind(
    key="iam.media_policy",
    branch="iam",
    title=lambda p: f"Policy {p['name']}, attached to {p['user']}",
    instances=lambda spec: [_media_params(spec)],
    after=("iam.app_user",),
    calls=lambda p: [create_policy(p["name"], media_document(p)), attach_user_policy(p["user"], p["arn"])],
    documents=lambda p: {"policy": media_document(p)},
    operations=(
        *ops("iam", "CreatePolicy", also=("iam:TagPolicy",)),
        *ops(
            "iam",
            "GetPolicy",
            "GetPolicyVersion",
            "ListPolicyVersions",
            "CreatePolicyVersion",
            "DeletePolicyVersion",
            "ListAttachedUserPolicies",
        ),
        *user_ops("AttachUserPolicy", condition=ATTACH_CONDITION),
    ),
    resource=ResourceRecord("IAM policy", "name", "policy"),
    publishes=(Publish("policy", "arn", "Policy"),),
    compare=_compare_media_policy,
    removal=("remove.iam.media_policy",),
)
ACCESS_KEY = StepKind(
    key="iam.access_key",
    branch="iam",
    title=lambda p: f"Access key for {p['user']}",
    instances=lambda spec: [{"user": spec.app_name, "region": spec.region, "bucket": spec.bucket}],
    after=("iam.media_policy",),
    calls=lambda p: [create_access_key(p["user"])],
    # Update and Delete: "Issue a new key" retires the old key.
    operations=(
        *ops("iam", "ListAccessKeys"),
        *user_ops("CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey"),
    ),
    resource=ResourceRecord("Access key", "user", "access_key_id", arn_output=""),
    publishes=(Publish("access_key_id", "access_key_id", "Access key id"),),
    compare=_compare_access_key,
    # On its own only when its user stays (released): a removed user's removal deletes its keys.
    removal=("remove.iam.access_key",),
)
TEAM_MEMBER = StepKind(
    key="team.member",
    branch="team",
    title=_member_title,
    instances=lambda spec: [member_params(member, spec) for member in spec.team],
    instance_id=lambda p: p["email"],
    calls=_member_calls,
    operations=(
        *user_ops("CreateUser", also=("iam:TagUser",)),
        *user_ops("TagUser", "CreateLoginProfile", "DetachUserPolicy", "DeleteLoginProfile"),
        *ops("iam", "UpdateUser", condition=ONRAMPS_ONLY),
        *ops("iam", "GetUser", "ListAttachedUserPolicies", "GetLoginProfile"),
        *user_ops("AttachUserPolicy", condition=ATTACH_CONDITION),
    ),
    resource=ResourceRecord("IAM user (team)", "email", "user"),
    publishes=(Publish("team", "arn", "Team user", many=True),),
    reminders=lambda p: [BILLING_REMINDER] if p["role"] == MemberRole.TECH_LEAD else [],
    compare=_compare_member,
    removal=USER_REMOVAL,
)
BUCKET = StepKind(
    key="s3.bucket",
    branch="s3",
    title=lambda p: f"Private bucket {p['bucket']} in {p['region']}, ACLs off",
    instances=lambda spec: [{"bucket": spec.bucket, "region": spec.region}],
    calls=lambda p: [create_bucket(p["bucket"], p["region"])],
    operations=ops(
        "s3",
        "ListBuckets",
        "CreateBucket",
        "GetBucketLocation",
        "GetBucketOwnershipControls",
        "PutBucketOwnershipControls",
    ),
    resource=ResourceRecord("S3 bucket", "bucket", "bucket"),
    publishes=(Publish("bucket", "arn", "Bucket"),),
    compare=_compare_bucket,
    removal=("remove.s3.bucket",),
)
PUBLIC_ACCESS_BLOCK = StepKind(
    key="s3.public_access_block",
    branch="s3",
    title=lambda p: "Block Public Access (all four flags)",
    instances=lambda spec: [{"bucket": spec.bucket}],
    after=("s3.bucket",),
    calls=lambda p: [put_public_access_block(p["bucket"])],
    documents=lambda p: {"public_access_block": documents.public_access_block_document()},
    operations=ops("s3", "GetPublicAccessBlock", "PutPublicAccessBlock"),
    compare=_compare_public_access_block,
)
CORS = StepKind(
    key="s3.cors",
    branch="s3",
    title=lambda p: f"CORS: GET from anywhere, uploads from {p['origin']}",
    instances=lambda spec: [{"bucket": spec.bucket, "origin": spec.app_origin}],
    after=("s3.public_access_block",),
    calls=lambda p: [put_bucket_cors(p["bucket"], p["origin"])],
    documents=lambda p: {"cors": documents.cors_document(app_origin=p["origin"])},
    operations=ops("s3", "GetBucketCors", "PutBucketCors"),
    compare=_compare_cors,
)
REPOSITORY = StepKind(
    key="ecr.repository",
    branch="ecr",
    title=lambda p: f"ECR repository {p['repository']}, scanned on push",
    instances=lambda spec: [{"repository": spec.ecr_repository}],
    calls=lambda p: [create_repository(p["repository"])],
    operations=(
        *ops("ecr", "CreateRepository", also=("ecr:TagResource",)),
        *ops("ecr", "DescribeRepositories", "PutImageScanningConfiguration"),
    ),
    resource=ResourceRecord("ECR repository", "repository", "repository"),
    publishes=(Publish("repository_uri", "uri", "Repository"),),
    compare=_compare_repository,
    removal=("remove.ecr.repository",),
)
LIFECYCLE = StepKind(
    key="ecr.lifecycle",
    branch="ecr",
    title=lambda p: f"ECR lifecycle policy ({len(documents.lifecycle_policy_document()['rules'])} rules)",
    instances=lambda spec: [{"repository": spec.ecr_repository}],
    after=("ecr.repository",),
    calls=lambda p: [put_lifecycle_policy(p["repository"])],
    documents=lambda p: {"lifecycle_policy": documents.lifecycle_policy_document()},
    operations=ops("ecr", "GetLifecyclePolicy", "PutLifecyclePolicy"),
    compare=_compare_lifecycle,
)


# --- Removing what Onramp made ------------------------------------------------------------------
# Planned from the ledger, never from a spec (instances: none). Each removal step's parameters name the
# resource ({"name": …, "resource": the ledger row's id, …}).


def _removal(key: str, title: Callable[[dict], str], operations: tuple[Operation, ...], **kwargs) -> StepKind:
    return StepKind(
        key=key,
        branch="remove",
        title=title,
        instances=lambda spec: [],
        instance_id=lambda p: p["name"],
        operations=operations,
        **kwargs,
    )


def _user_step(suffix: str, title: str, *operations: Operation, calls=_no_calls) -> StepKind:
    key = f"remove.user.{suffix}" if suffix else "remove.user"
    return _removal(key, lambda p: title.format(user=p["name"]), operations, calls=calls)


USER_REMOVAL_KINDS = (
    _user_step(
        "login_profile",
        "{user}: end console access (delete the login profile)",
        *ops("iam", "GetLoginProfile"),
        *user_ops("DeleteLoginProfile"),
    ),
    _user_step(
        "access_keys",
        "{user}: delete the access keys",
        *ops("iam", "ListAccessKeys"),
        *user_ops("DeleteAccessKey"),
    ),
    _user_step(
        "signing_certificates",
        "{user}: delete the signing certificates",
        *ops("iam", "ListSigningCertificates"),
        *user_ops("DeleteSigningCertificate"),
    ),
    _user_step(
        "ssh_public_keys",
        "{user}: delete the SSH public keys",
        *ops("iam", "ListSSHPublicKeys"),
        *user_ops("DeleteSSHPublicKey"),
    ),
    _user_step(
        "service_credentials",
        "{user}: delete the service-specific credentials",
        *ops("iam", "ListServiceSpecificCredentials"),
        *user_ops("DeleteServiceSpecificCredential"),
    ),
    _user_step(
        "mfa_devices",
        "{user}: deactivate the MFA devices, and delete the virtual ones",
        *ops("iam", "ListMFADevices"),
        *user_ops("DeactivateMFADevice"),
        # A virtual device is its own resource (arn:…:mfa/NAME), untagged by whoever made it: no condition can
        # keep this to Onramp's users; the step deletes only a device it has just deactivated from one.
        *ops("iam", "DeleteVirtualMFADevice"),
    ),
    _user_step(
        "inline_policies",
        "{user}: delete the inline policies",
        *ops("iam", "ListUserPolicies"),
        *user_ops("DeleteUserPolicy"),
    ),
    _user_step(
        "attached_policies",
        "{user}: detach the managed policies",
        *ops("iam", "ListAttachedUserPolicies"),
        *user_ops("DetachUserPolicy"),
    ),
    _user_step(
        "groups",
        "{user}: leave the groups",
        *ops("iam", "ListGroupsForUser"),
        *group_ops("RemoveUserFromGroup"),
    ),
    _user_step(
        "",
        "Delete the IAM user {user}",
        *user_ops("DeleteUser"),
        calls=lambda p: [ApiCall("iam", "DeleteUser", {"UserName": p["name"]})],
    ),
)
REMOVAL_KINDS = (
    *USER_REMOVAL_KINDS,
    _removal(
        "remove.account.alias",
        lambda p: f"Delete the sign-in alias {p['name']}",
        ops("iam", "DeleteAccountAlias"),
        calls=lambda p: [ApiCall("iam", "DeleteAccountAlias", {"AccountAlias": p["name"]})],
    ),
    _removal(
        "remove.iam.access_key",
        lambda p: f"Delete the access key {p['name']} Onramp made for {p['user']} (the user stays)",
        # The very permissions "Issue a new key" has: the role's policy is unchanged.
        user_ops("UpdateAccessKey", "DeleteAccessKey"),
        calls=lambda p: [ApiCall("iam", "DeleteAccessKey", {"UserName": p["user"], "AccessKeyId": p["name"]})],
    ),
    _removal(
        "remove.iam.media_policy",
        lambda p: f"Delete the policy {p['name']} (detached from everyone first)",
        (
            # Detaching from a user touches the user: only Onramp's (a role or another user keeps it attached,
            # and the removal stops saying so).
            *ops("iam", "ListEntitiesForPolicy", "ListPolicyVersions"),
            *group_ops("DetachGroupPolicy"),
            *ops("iam", "DeletePolicyVersion", "DeletePolicy"),
            *user_ops("DetachUserPolicy"),
        ),
        calls=lambda p: [ApiCall("iam", "DeletePolicy", {"PolicyArn": p["arn"]})],
    ),
    _removal(
        "remove.iam.group",
        lambda p: f"Delete the group {p['name']} (its members leave it first)",
        (
            *ops("iam", "GetGroup", "ListAttachedGroupPolicies", "ListGroupPolicies"),
            *group_ops("DetachGroupPolicy", "DeleteGroupPolicy", "DeleteGroup", "RemoveUserFromGroup"),
        ),
        calls=lambda p: [ApiCall("iam", "DeleteGroup", {"GroupName": p["name"]})],
    ),
    _removal(
        "remove.s3.bucket",
        lambda p: f"Delete the bucket {p['name']}" + (" and everything in it" if p.get("confirmed") else " (empty)"),
        # GetBucketVersioning and GetObjectLockConfiguration only to say why a bucket cannot be emptied.
        ops(
            "s3",
            "ListObjectVersions",
            "DeleteObjects",
            "DeleteBucket",
            "GetBucketVersioning",
            "GetObjectLockConfiguration",
        ),
        calls=lambda p: [ApiCall("s3", "DeleteBucket", {"Bucket": p["name"]})],
    ),
    _removal(
        "remove.ecr.repository",
        lambda p: f"Delete the ECR repository {p['name']}" + (" and its images" if p.get("confirmed") else ""),
        ops("ecr", "ListImages", "DeleteRepository"),
        calls=lambda p: [
            ApiCall("ecr", "DeleteRepository", {"repositoryName": p["name"], "force": bool(p.get("confirmed"))})
        ],
    ),
)

# The plan's checks (provisioning/checks.py): read-only calls beside the plan's read and the run's preflight.
CHECK_OPERATIONS = (
    *ops("iam", "GetAccountSummary", "ListAccountAliases", "ListAccessKeys", "ListAttachedUserPolicies"),
    *ops("s3", "ListBuckets", "HeadBucket"),
    *ops("ec2", "DescribeRegions"),
)

REGISTRY = Registry(
    (
        PREFLIGHT,
        ACCOUNT_ALIAS,
        GROUP,
        APP_USER,
        MEDIA_POLICY,
        ACCESS_KEY,
        TEAM_MEMBER,
        BUCKET,
        PUBLIC_ACCESS_BLOCK,
        CORS,
        REPOSITORY,
        LIFECYCLE,
        *REMOVAL_KINDS,
    ),
    extra_operations=CHECK_OPERATIONS,
)


def role_grants(action: str, registry: Registry = REGISTRY) -> list[tuple[tuple, str]]:
    """How this version of the role's template allows `action`: (condition, resource) of each statement granting
    it, [] when none does. An AccessDenied sentence tells "the role lacks it" from "a condition refused it" with it."""
    return list(dict.fromkeys((op.condition, op.resource) for op in registry.operations() if action in op.actions))


_SOURCE_IDENTITY_CHARS = re.compile(r"[^A-Za-z0-9_+=,.@-]")


def source_identity_for(username: str) -> str:
    """The person as STS's SourceIdentity allows it: 2-64 of ASCII letters, digits and _+=,.@- (the STS API
    reference). Accents are dropped (NFKD: josé.muñoz -> jose.munoz), anything else becomes "-"; when a
    letter had no ASCII form, or the result is too short or too long, a digest of the whole name keeps it
    distinct and stable (Иван -> user-3d9c…)."""
    decomposed = unicodedata.normalize("NFKD", username)
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    cleaned = _SOURCE_IDENTITY_CHARS.sub("-", base)
    if base.isascii() and 2 <= len(cleaned) <= 64:
        return cleaned
    digest = hashlib.sha256(username.encode()).hexdigest()[:12]
    return f"{cleaned.strip('-')[:51] or 'user'}-{digest}"


_TAG_VALUE_PUNCTUATION = frozenset("_.:/=+-@")
TAG_VALUE_MAX = 256


def session_tag_value(text: str) -> str:
    """A person's name as an STS session tag's value allows it: at most 256 of letters, digits, spaces and _.:/=+-@
    (Unicode letters included: the pattern [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]* of the STS API reference, Tag);
    anything else becomes "-"."""
    kept = (
        ch if unicodedata.category(ch)[0] in "LNZ" or ch in _TAG_VALUE_PUNCTUATION else "-"
        for ch in unicodedata.normalize("NFC", text)
    )
    return "".join(kept)[:TAG_VALUE_MAX]
