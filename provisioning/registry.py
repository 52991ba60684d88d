"""The core of the declarations: what a step is, and what every kind's declaration is made of.

A StepKind says, for one kind of step: its key, title, branch and what it waits for; which
instances a spec asks for (one per team member, none without an alias…) and their parameters;
its JSON documents; the write calls it sends on the way that creates its resource, exactly as
they are sent (the plan's CLI transcript is rendered from the same ApiCall objects the step sends);
every AWS operation it may call and the IAM actions those need (the customer's role policy is
derived from them); what it records as a resource; what it publishes to the run's summary.

Each kind is declared in its own folder, provisioning/kinds/<kind>/declaration.py, beside the AWS code that
carries it out (kinds/<kind>/aws.py); provisioning.kinds gathers the declarations into REGISTRY. This module
holds what they share: the types, the role's constants, and the calls and conditions of more than one kind.
Pure data and pure functions: the plan imports the declarations and reaches no AWS code.
"""

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from provisioning.spec import MEMBER_POLICY_NAMES, TECH_LEAD_POLICIES, Spec
from provisioning.vocabulary import MANAGED_BY_TAG

ASSUME_SECONDS = 3600  # the session Onramp asks for; the template's MaxSessionDuration allows exactly this
# The role customers deploy from Onramp's template, and the version of that template this Onramp needs: a
# change to the role's permissions raises it, and Check connection and each run's preflight read the
# deployed role's version (its tag) and say when the customer's stack must be updated.
ROLE_NAME = "OnrampAccess"
ROLE_VERSION_TAG = "onramp-template-version"
ROLE_TEMPLATE_VERSION = 5
# The sha256 of the role's policy (role.template.access_policy_document as canonical JSON) at each version, so a
# policy that changes without a new version fails tests/test_role_template.py. Add a line, never edit one: a
# deployed role carries the version it was made from. 3: iam:RemoveUserFromGroup without a tag condition; the
# plan's checks (GetAccountSummary, HeadBucket, ec2:DescribeRegions); bucket removal's reads (versioning, Object
# Lock); virtual MFA devices deleted; scan-on-push kept; users' and groups' writes only in the /onramp/ path.
# 4: the trust policy's sts:TagSession (ROLE_TRUST_ACTIONS), so a run names its approver in the session.
# 5: ecr:GetRepositoryPolicy and ecr:DeleteRepositoryPolicy (the kind ecr.repository_policy: none wanted).
ROLE_POLICY_SHA256 = {
    2: "cfd28e6958d31ece30098c10fec1f10381151973ef1ef008cf34a38dcfdc5701",
    3: "974186e825faea9bad7efe59bf878147ab6a470f10d8cc397227a5d6872ffb99",
    4: "974186e825faea9bad7efe59bf878147ab6a470f10d8cc397227a5d6872ffb99",  # the policy of 3: only the trust changed
    5: "e7cffe4d0c081aa14dc91ec4bf595b28202d53762d37355ef8c76eec77312565",
}
# What the role's trust policy allows Onramp's account at each version since 3 (a version may change only these):
# sts:SetSourceIdentity names the person who started a run, sts:TagSession its approver (APPROVER_TAG).
ROLE_TRUST_ACTIONS = {
    3: ("sts:AssumeRole", "sts:SetSourceIdentity"),
    4: ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
    5: ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
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
BRANCHES = {
    "preflight": "Preflight",
    "account": "Account",
    "iam": "App user and access",
    "team": "Team members",
    "s3": "S3 bucket",
    "ecr": "ECR repository",
    "remove": "Removals",
}
REMOVE_BRANCH = "remove"

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


def create_user(user: str) -> ApiCall:
    return ApiCall("iam", "CreateUser", {"UserName": user, "Path": ONRAMP_PATH, "Tags": MANAGED_TAGS})


def user_outside_sentence(user: str) -> str:
    return (
        f"The IAM user {user} exists outside Onramp's path {ONRAMP_PATH}: Onramp cannot take it over. To hand it "
        f"to Onramp, the customer moves it into the path (aws iam update-user --user-name {user} --new-path "
        f"{ONRAMP_PATH}); otherwise choose another name."
    )


def user_path_move(user: str) -> ApiCall:
    """A user Onramp made before its path existed (tagged as Onramp's), moved into the path once."""
    return ApiCall("iam", "UpdateUser", {"UserName": user, "NewPath": ONRAMP_PATH})


def tag_user(user: str) -> ApiCall:
    """An adopted user becomes Onramp's to manage (its keys, password, policies): tagged as such."""
    return ApiCall("iam", "TagUser", {"UserName": user, "Tags": MANAGED_TAGS})


def attach_user_policy(user: str, policy_arn: str) -> ApiCall:
    return ApiCall("iam", "AttachUserPolicy", {"UserName": user, "PolicyArn": policy_arn})


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


def counted(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
    key: str  # "<service>.<kind>"; the steps of a kind with many instances are "<key>:<instance>"
    branch: str
    title: Callable[[dict], str]
    instances: Callable[[Spec], list[dict]]  # each instance's parameters; [] leaves the step out
    after: tuple[str, ...] = ()  # kinds whose steps come first (none named: the `always` kinds, the preflight)
    instance_id: Callable[[dict], str] | None = None  # for kinds with many instances
    calls: Callable[[dict], list[ApiCall]] = _no_calls  # the write calls of the create path
    documents: Callable[[dict], dict] = _no_documents
    document_titles: tuple[tuple[str, str], ...] = ()  # (document, its name in the preview), for each document
    operations: tuple[Operation, ...] = ()
    resource: ResourceRecord | None = None
    publishes: tuple[Publish, ...] = ()
    reminders: Callable[[dict], list[str]] = _no_reminders
    # What differs between these parameters and what a read of the account found (the kind's aws.read),
    # given the parameters it was last applied with: the steps decide "adopt or correct" with
    # it, plans show it, drift reports it.
    compare: Callable[[dict, dict, dict | None], list[Difference]] = _no_differences
    removal: tuple[str, ...] = ()  # the kinds whose steps remove this kind's resource, in order
    # The function of the kind's aws.py that carries a step out (a removal kind's: "remove").
    runs: str = "execute"
    always: bool = False  # planned in every registry, whatever a desired state wants (the preflight)
    user: bool = False  # its resource is an IAM user (a removal takes its access keys with it)
    # A setting of another kind's resource (a bucket's CORS): the plan adopts it with that resource, and it is
    # read only when that resource is there (as is what names `read_after`: a user's keys once the user is there).
    part_of: str = ""
    read_after: str = ""
    # A list a read finds that may hold things Onramp did not make: (the list in what was read, the field naming
    # each entry, whose ledger rows name Onramp's: "self", this kind's; "users", the user kinds'). Each entry is
    # marked "onramps", so the compare can report the others as made by hand.
    owned: tuple[str, str, str] | None = None
    # AWS may still show the resource as it was for a moment after a change: a read of one a run changed moments
    # ago is read again until it shows what the run put there.
    settles: bool = False
    # AWS's answers this kind's steps expect and act on, audited as "expected", not as errors: "there is none" to a
    # read (nothing to compare, or a missing configuration to put), "it exists" to a create (read and adopt it).
    absent: tuple[str, ...] = ()
    exists: tuple[str, ...] = ()
    noun: str = ""  # what its resource is called in a plan's summary line ("remove 1 user, release 1 bucket")
    # Whether what a read found is the resource there to adopt (a user's key list with no key is not), and what
    # was found, in words, for the plan that would take it over (None: it is there / "<identity> already exists").
    found: Callable[[dict, dict], bool] | None = None
    found_words: Callable[[str, dict], str] | None = None

    def step_key(self, params: dict) -> str:
        return f"{self.key}:{self.instance_id(params)}" if self.instance_id else self.key

    @property
    def read_first(self) -> str:
        """The kind whose resource must be there for this one to be worth reading ("" when none)."""
        return self.read_after or self.part_of

    @property
    def compared(self) -> bool:
        """Whether plans and drift compare this kind with what the account has (it then needs a reader)."""
        return self.compare is not _no_differences


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
        keep = set(keys)
        return Registry(
            (kind for kind in self.kinds if kind.key in keep or kind.always or kind.branch == REMOVE_BRANCH),
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

    def waits(self, kind: StepKind) -> tuple[str, ...]:
        """The kinds whose steps come before this kind's: its `after`, or, when it names none, the kinds every
        registry plans (the preflight comes before everything)."""
        if kind.after or kind.always:
            return kind.after
        return tuple(other.key for other in self.kinds if other.always)

    def document_titles(self) -> dict[str, str]:
        return {name: title for kind in self.kinds for name, title in kind.document_titles}

    def user_kinds(self) -> tuple[str, ...]:
        """The kinds whose resource is an IAM user."""
        return tuple(kind.key for kind in self._by_key.values() if kind.user)

    def settling(self) -> frozenset[str]:
        """The kinds AWS may show as they were for a moment after a change (StepKind.settles)."""
        return frozenset(kind.key for kind in self._by_key.values() if kind.settles)

    def absent_codes(self) -> frozenset[str]:
        return frozenset(code for kind in self._by_key.values() for code in kind.absent)

    def exists_codes(self) -> frozenset[str]:
        return frozenset(code for kind in self._by_key.values() for code in kind.exists)

    def grants(self, action: str) -> list[tuple[tuple, str]]:
        """How this version of the role's template allows `action`: (condition, resource) of each statement granting
        it, [] when none does. An AccessDenied sentence tells "the role lacks it" from "a condition refused it"."""
        return list(dict.fromkeys((op.condition, op.resource) for op in self.operations() if action in op.actions))


# --- What several kinds share: conditions, the user kinds' compare, removals ---------------------

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


# The comparisons: parameters (what the spec wants) against `seen` (what a read of the account found, each kind's
# aws.read), given the parameters it was last applied with (`previous`, from the ledger). What the user kinds share:


def compare_tag(seen: dict) -> list[Difference]:
    found = [] if seen["tagged"] else [Difference(f"tag {MANAGED_BY_TAG[0]}", MANAGED_BY_TAG[1], "none")]
    # Outside the path: Onramp's own user of before the path is moved; anyone else's only the customer can move.
    path = seen.get("path", ONRAMP_PATH)
    if path != ONRAMP_PATH:
        found.append(Difference("IAM path", ONRAMP_PATH, path, repairable=bool(seen["tagged"])))
    return found


# What a read found that Onramp's ledger does not hold (steps.reading marks each such thing "onramps": False):
# reported, never removed.
NOT_ONRAMPS = "made by hand, not by Onramp (reported; Onramp leaves it)"


# --- Removing what Onramp made ------------------------------------------------------------------
# A removal kind is declared in the folder of the kind it removes. Planned from the ledger, never from a spec
# (instances: none). Each removal step's parameters name the resource ({"name": …, "arn": …, …}).


def removal_kind(key: str, title: Callable[[dict], str], operations: tuple[Operation, ...], **kwargs: Any) -> StepKind:
    return StepKind(
        key=key,
        branch=REMOVE_BRANCH,
        runs=kwargs.pop("runs", "remove"),
        title=title,
        instances=lambda spec: [],
        instance_id=lambda p: p["name"],
        operations=operations,
        **kwargs,
    )


# The plan's checks (provisioning/checks.py): read-only calls beside the plan's read and the run's preflight.
CHECK_OPERATIONS = (
    *ops("iam", "GetAccountSummary", "ListAccountAliases", "ListAccessKeys", "ListAttachedUserPolicies"),
    *ops("s3", "ListBuckets", "HeadBucket"),
    *ops("ec2", "DescribeRegions"),
)


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
