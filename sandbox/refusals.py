"""AWS's other refusals, where moto is lenient (issue 28 section 2). Each is a switch of sandbox/strict.py's
Strictness, checked before moto answers, and tested on its own in tests/test_sandbox_refusals.py; docs/testing.md's
"What AWS enforces that the sandbox did not" cites what each relies on. Nothing here imports Django."""

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any
from urllib.parse import parse_qs, urlparse

from sandbox import clock

# AWS's default quotas (IAM User Guide, "IAM and AWS STS quotas"; GetAccountSummary's AttachedPoliciesPerUserQuota
# and PolicySizeQuota): 10 managed policies per user, 6,144 characters of a managed policy without whitespace.
ATTACHED_POLICIES_PER_USER = 10
POLICY_SIZE = 6144


def _refusal(code: str, message: str, status: int):
    from sandbox.strict import Refusal

    return Refusal(code, message, status)


def _unknown_key(call):
    """What AWS answers a key it does not accept, in each protocol."""
    if call.protocol == "rest-xml":
        return _refusal("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403)
    if call.protocol == "json":
        return _refusal("UnrecognizedClientException", "The security token included in the request is invalid.", 400)
    return _refusal("InvalidClientTokenId", "The security token included in the request is invalid.", 403)


def check_inactive_key(layer, call, caller):
    """A user's access key that is Inactive cannot sign requests (IAM API reference, AccessKey: "Active means
    that the key is valid for API calls, while Inactive means it is not"); moto accepts it."""
    from moto.iam.models import iam_backends

    if caller.issued is not None:  # a role session's keys are not a user's
        return None
    key = iam_backends[caller.account]["aws"].access_keys.get(call.access_key_id)
    if key is None or key.status != "Inactive":
        return None
    return _unknown_key(call)


def check_foreign_bucket(layer, call, caller):
    """HeadBucket on a bucket of another account, with no bucket policy granting it, answers 403 (S3 API
    reference, HeadBucket: 200 only "if the bucket exists and you have permission to access it"); moto
    answers 200, which would tell Onramp a name another account holds is one it may use."""
    from moto.s3.models import s3_backends

    if call.service != "s3" or call.method != "HEAD" or not call.bucket or call.path.strip("/") != call.bucket:
        return None
    owner = s3_backends.bucket_accounts.get(call.bucket)
    if owner is None or owner[1] == caller.account:
        return None
    return _refusal("403", "Forbidden", 403)


# The account that takes a bucket name first in check_bucket_taken_at_create (a stranger's, as AWS's names are global).
SQUATTER_ACCOUNT = "999988887777"


def check_bucket_taken_at_create(layer, call, caller):
    """A bucket name free when Onramp checked it and taken by another account before the run creates it: S3's
    names are global, so AWS answers that CreateBucket BucketAlreadyExists (S3 API reference, CreateBucket). The
    first CreateBucket for a name in Strictness.bucket_taken_at_create makes the name SQUATTER_ACCOUNT's just
    before moto answers it; once only (the name leaves the switch), so a retry after the bucket is gone creates it."""
    from moto.s3.models import s3_backends

    names = [name for name in layer.config.bucket_taken_at_create.split(",") if name]
    if call.service != "s3" or call.operation != "CreateBucket" or call.bucket not in names:
        return None
    layer.config.bucket_taken_at_create = ",".join(name for name in names if name != call.bucket)
    if call.bucket not in s3_backends.bucket_accounts and caller.account != SQUATTER_ACCOUNT:
        s3_backends[SQUATTER_ACCOUNT]["aws"].create_bucket(call.bucket, call.region)
    return None


def _size(document: str) -> int:
    return len(re.sub(r"\s", "", document))


def check_policy_quotas(layer, call, caller):
    """AttachUserPolicy past the user's AttachedPoliciesPerUserQuota, and CreatePolicy/CreatePolicyVersion with a
    document past the managed-policy size, answer LimitExceeded as AWS does; moto takes any number and size."""
    from moto.iam.models import iam_backends

    if call.service != "iam":
        return None
    if call.operation == "AttachUserPolicy":
        user = iam_backends[caller.account]["aws"].users.get(call.params.get("UserName", ""))
        attached = user.managed_policies if user is not None else {}
        if call.params.get("PolicyArn") not in attached and len(attached) >= ATTACHED_POLICIES_PER_USER:
            return _refusal(
                "LimitExceeded", f"Cannot exceed quota for PoliciesPerUser: {ATTACHED_POLICIES_PER_USER}", 409
            )
    big = _size(call.params.get("PolicyDocument", "")) > POLICY_SIZE
    if call.operation in ("CreatePolicy", "CreatePolicyVersion") and big:
        return _refusal("LimitExceeded", f"Cannot exceed quota for PolicySize: {POLICY_SIZE}", 409)
    return None


# The Regions an account must enable before it can use them (AWS Account Management Reference Guide, "Enable or
# disable AWS Regions in your account"); tests/test_sandbox_refusals.py checks that provisioning/aws/errors.py's
# OPT_IN_REGIONS names the same ones.
OPT_IN_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)


def check_opt_in_region(layer, call, caller):
    """A call signed for an opt-in Region the account has not enabled (Strictness.enabled_regions) is refused: the
    account's credentials are not valid there. The answer's code is assumed (AWS documents that such a Region
    cannot be used, not the code): InvalidClientTokenId, as for a key AWS does not know, in each protocol."""
    if call.region not in OPT_IN_REGIONS or call.region in layer.config.enabled_regions.split(","):
        return None
    return _unknown_key(call)


def check_describe_regions(layer, call, caller):
    """EC2 DescribeRegions says which opt-in Regions the account has enabled (EC2 API reference, DescribeRegions:
    with AllRegions, each Region's OptInStatus is opt-in-not-required, opted-in or not-opted-in); moto answers
    opt-in-not-required for every Region, so Onramp's region check could never see one it must not use."""
    if call.service != "ec2" or call.operation != "DescribeRegions":
        return None
    from botocore.session import get_session

    enabled = set(layer.config.enabled_regions.split(","))
    asked = [value for name, value in call.params.items() if name.startswith("RegionName.")]
    names = asked or [*get_session().get_available_regions("ec2"), *sorted(OPT_IN_REGIONS)]
    every = call.params.get("AllRegions", "").lower() == "true"
    items = []
    for name in dict.fromkeys(names):
        status = "opt-in-not-required"
        if name in OPT_IN_REGIONS:
            status = "opted-in" if name in enabled else "not-opted-in"
        if status == "not-opted-in" and not every and not asked:
            continue  # without AllRegions, only the Regions the account can use are listed
        items.append(
            f"<item><regionName>{_escape(name)}</regionName><regionEndpoint>ec2.{_escape(name)}.amazonaws.com"
            f"</regionEndpoint><optInStatus>{status}</optInStatus></item>"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>{uuid.uuid4()}</requestId><regionInfo>{''.join(items)}</regionInfo></DescribeRegionsResponse>"
    )
    return Listing(body)


_TEMPLATE_OPERATIONS = ("CreateStack", "UpdateStack", "CreateChangeSet", "ValidateTemplate", "GetTemplateSummary")


def template_location(url: str) -> tuple[str, str]:
    """(bucket, key) of a TemplateURL: path-style (s3.REGION.amazonaws.com/BUCKET/KEY, or the sandbox's own
    address) or virtual-hosted (BUCKET.s3.REGION.amazonaws.com/KEY)."""
    parts = urlparse(url)
    host = parts.hostname or ""
    path = parts.path.lstrip("/")
    if host.startswith("s3") or not host.endswith("amazonaws.com"):
        bucket, _, key = path.partition("/")
        return bucket, key
    return host.split(".s3", 1)[0], path


def _bucket_policy_grants(bucket, action: str, arn: str, caller) -> bool:
    from sandbox.iam_eval import ALLOW, policies_decide

    if not bucket.policy:
        return False
    document = json.loads(bucket.policy)
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    named = []
    for statement in statements:
        principal = statement.get("Principal", {})
        names = principal.get("AWS", []) if isinstance(principal, dict) else [principal]
        names = [names] if isinstance(names, str) else names
        if {"*", caller.account, f"arn:aws:iam::{caller.account}:root", caller.arn} & set(names):
            named.append(statement)
    return policies_decide([{"Statement": named}], action=action, resource=arn, context={}) == ALLOW


def check_template_url(layer, call, caller):
    """CloudFormation reads a TemplateURL with the caller's own access: the S3 object must exist, the caller's
    policies must allow s3:GetObject on it, and a bucket of another account must grant it in its bucket policy
    (CloudFormation API reference, TemplateURL: "located in an Amazon S3 bucket"; the ValidationError's words are
    AWS's as observed). moto reads any account's object."""
    from moto.s3.models import s3_backends

    from sandbox.iam_eval import ALLOW, identity_policies, policies_decide

    url = call.params.get("TemplateURL")
    if call.service != "cloudformation" or call.operation not in _TEMPLATE_OPERATIONS or not url:
        return None
    refusal = _refusal("ValidationError", "TemplateURL must reference a valid S3 object to which you have access.", 400)
    bucket_name, key = template_location(url)
    owner = s3_backends.bucket_accounts.get(bucket_name)
    if owner is None:
        return refusal
    bucket = s3_backends[owner[1]][owner[0]].buckets.get(bucket_name)
    if bucket is None or key not in bucket.keys:
        return refusal
    arn = f"arn:aws:s3:::{bucket_name}/{key}"
    if policies_decide(identity_policies(caller), action="s3:GetObject", resource=arn, context={}) != ALLOW:
        return refusal
    if owner[1] != caller.account and not _bucket_policy_grants(bucket, "s3:GetObject", arn, caller):
        return refusal
    return None


class Listing:
    """A 200 answer the layer gives itself (in CHECKS, where a check's result is answered with .respond)."""

    def __init__(self, body: str):
        self.body = body.encode()

    def respond(self, call, start_response):
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(self.body)))]
        start_response("200 OK", headers + [("x-amz-request-id", str(uuid.uuid4()))])
        return [self.body]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_list_buckets_page(layer, call, caller):
    """ListBuckets answers one page at most (Strictness.list_buckets_page buckets, standing for AWS's 10,000) with a
    ContinuationToken for the next (S3 API reference, ListBuckets: MaxBuckets, ContinuationToken, Prefix);
    moto's answer has every bucket and never a token."""
    from moto.s3.models import s3_backends

    if call.service != "s3" or call.method != "GET" or call.path.strip("/"):
        return None
    query = {name: values[0] for name, values in parse_qs(call.query).items()}
    page = layer.config.list_buckets_page
    if query.get("max-buckets", "").isdigit():
        page = min(page, int(query["max-buckets"]))
    prefix = query.get("prefix", "")
    after = base64.urlsafe_b64decode(query["continuation-token"]).decode() if query.get("continuation-token") else ""
    buckets = sorted(
        (b for b in s3_backends[caller.account]["aws"].buckets.values() if b.name.startswith(prefix)),
        key=lambda b: b.name,
    )
    buckets = [b for b in buckets if b.name > after]
    shown, more = buckets[:page], len(buckets) > page
    items = "".join(
        f"<Bucket><Name>{_escape(b.name)}</Name><CreationDate>"
        f"{b.creation_date.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</CreationDate>"
        f"<BucketRegion>{b.region_name}</BucketRegion></Bucket>"
        for b in shown
    )
    token = base64.urlsafe_b64encode(shown[-1].name.encode()).decode() if more and shown else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>{caller.account}</ID></Owner><Buckets>{items}</Buckets>"
        + (f"<ContinuationToken>{token}</ContinuationToken>" if token else "")
        + (f"<Prefix>{_escape(prefix)}</Prefix>" if prefix else "")
        + "</ListAllMyBucketsResult>"
    )
    return Listing(body)


# --- Windows right after a change (IAM's eventual consistency) -------------------------------------------------
# When a call the windows depend on was let through to moto: (account, what, name) -> clock.monotonic(). Entries
# outlive a reset by at most a window's length, and only ever name an account and user again.
_RECENT: dict[tuple[str, str, str], float] = {}
_RECENT_LOCK = threading.Lock()


def _remember(account: str, what: str, name: str) -> None:
    with _RECENT_LOCK:
        _RECENT[(account, what, name)] = clock.monotonic()


def _within(account: str, what: str, name: str, window: float) -> float | None:
    """When (clock.monotonic()) `what` happened to `name` if it is less than `window` seconds ago, else None."""
    with _RECENT_LOCK:
        made = _RECENT.get((account, what, name))
    return made if made is not None and clock.monotonic() - made < window else None


def check_login_profile_window(layer, call, caller):
    """For a moment after CreateLoginProfile, DeleteLoginProfile and UpdateLoginProfile on that user answer
    EntityTemporarilyUnmodifiable (IAM API reference: the error exists for both; how long it lasts is assumed,
    terraform-provider-aws retries it)."""
    if call.service != "iam":
        return None
    user = call.params.get("UserName", "")
    if call.operation == "CreateLoginProfile":
        _remember(caller.account, "login_profile", user)
        return None
    if call.operation in ("DeleteLoginProfile", "UpdateLoginProfile") and _within(
        caller.account, "login_profile", user, layer.config.login_profile_window
    ):
        return _refusal(
            "EntityTemporarilyUnmodifiable",
            f"Login Profile for User {user} cannot be modified while login profile is being created.",
            409,
        )
    return None


def check_new_key_window(layer, call, caller):
    """A key made by CreateAccessKey cannot sign requests for a moment (IAM User Guide, "Changes that I make are
    not always immediately visible"; how long is assumed): InvalidClientTokenId, as for a key AWS does not know.
    Keys the harness makes (the control API's users) are never new in this sense."""
    from moto.iam.models import iam_backends

    if call.service == "iam" and call.operation == "CreateAccessKey":
        _remember(caller.account, "access_key", call.params.get("UserName") or caller.arn.rsplit("/", 1)[-1])
    if caller.issued is not None:
        return None
    key = iam_backends[caller.account]["aws"].access_keys.get(call.access_key_id)
    asked = _within(caller.account, "access_key", caller.arn.rsplit("/", 1)[-1], layer.config.new_key_window)
    if key is None or asked is None:
        return None
    made = key.create_date if key.create_date.tzinfo else key.create_date.replace(tzinfo=UTC)
    if clock.age(made) > clock.monotonic() - asked:  # this key is older than the CreateAccessKey the window remembers
        return None
    return _unknown_key(call)


# What a change left behind for a while, and what it was before: (account, what, name) -> (clock.monotonic() of the
# last change, the state before the first change of the window). Emptied by reset(), as a restored sandbox starts anew.
_BEFORE: dict[tuple[str, str, str], tuple[float, object]] = {}


def _before_remember(key: tuple[str, str, str], window: float, state: Callable[[], Any]) -> None:
    """A change to `key` now: the window starts again, and what is seen during it stays what was there before the
    first change of a window still open (`state()` read now otherwise)."""
    with _RECENT_LOCK:
        earlier = _BEFORE.get(key)
        now = clock.monotonic()
        kept = earlier[1] if earlier is not None and now - earlier[0] < window else state()
        _BEFORE[key] = (now, kept)


def _value(value: Any) -> Callable[[], Any]:
    return lambda: value


def _before_within(key: tuple[str, str, str], window: float) -> tuple[bool, Any]:
    """(True, the state before) while `key` changed less than `window` seconds ago; (False, None) otherwise."""
    with _RECENT_LOCK:
        found = _BEFORE.get(key)
    if found is None or not window or clock.monotonic() - found[0] >= window:
        return False, None
    return True, found[1]


def reset() -> None:
    """Forget every change the windows remember (a reset or a restored snapshot starts with none)."""
    with _RECENT_LOCK:
        _RECENT.clear()
        _BEFORE.clear()


# TagUser/TagRole and their Untag: the entity whose tags change, by kind and parameter.
_TAG_CHANGES = {
    "TagUser": ("user", "UserName"),
    "UntagUser": ("user", "UserName"),
    "TagRole": ("role", "RoleName"),
    "UntagRole": ("role", "RoleName"),
}


def _entity_tags(account: str, kind: str, name: str) -> dict[str, str] | None:
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["aws"]
    if kind == "user":
        return {t["Key"]: t["Value"] for t in backend.list_user_tags(name)} if name in backend.users else None
    role = next((r for r in backend.roles.values() if r.name == name), None)
    return {t["Key"]: t["Value"] for t in role.tags} if role is not None else None


def check_tag_window(layer, call, caller):
    """A user's or role's tags changed by TagUser/UntagUser/TagRole/UntagRole are not seen at once by IAM's decision
    (IAM User Guide, "Changes that I make are not always immediately visible": IAM is eventually consistent; how
    long, and that a tag-conditioned call sees the old tags meanwhile, is assumed): for Strictness.tag_window
    seconds after the last change, aws:ResourceTag/* and iam:ResourceTag/* hold the tags from before it
    (tags_seen, read by sandbox/iam_eval.py). Never refuses anything itself."""
    if call.service != "iam" or call.operation not in _TAG_CHANGES:
        return None
    kind, param = _TAG_CHANGES[call.operation]
    name = call.params.get(param, "")
    _before_remember(
        (caller.account, f"{kind}_tags", name),
        layer.config.tag_window,
        lambda: _entity_tags(caller.account, kind, name),
    )
    return None


def tags_seen(account: str, kind: str, name: str, window: float) -> tuple[bool, dict | None]:
    """(True, the tags IAM's decision still sees) within tag_window of a change to them; (False, None) otherwise."""
    return _before_within((account, f"{kind}_tags", name), window)


# What a removal takes off a user, group or policy that AWS's DeleteUser/DeleteGroup/DeletePolicy refuse to delete it
# with (IAM API reference, DeleteUser: the items to remove first), and the DeleteConflict message that goes with it
# (sandbox/strict.py check_delete_conflict's words).
_USER_PART = "Cannot delete entity, must {} first."
_PREREQUISITES = {
    "DeleteLoginProfile": (("user", "UserName", _USER_PART.format("delete login profile")),),
    "DeleteAccessKey": (("user", "UserName", _USER_PART.format("delete access keys")),),
    "DeleteSigningCertificate": (("user", "UserName", _USER_PART.format("delete signing certificates")),),
    "DeleteSSHPublicKey": (("user", "UserName", _USER_PART.format("delete SSH public keys")),),
    "DeleteServiceSpecificCredential": (("user", "UserName", _USER_PART.format("delete service credentials")),),
    "DeactivateMFADevice": (("user", "UserName", _USER_PART.format("delete MFA devices")),),
    "DeleteUserPolicy": (("user", "UserName", _USER_PART.format("delete policies")),),
    "DetachUserPolicy": (
        ("user", "UserName", _USER_PART.format("detach all policies")),
        ("policy", "PolicyArn", "Cannot delete a policy attached to entities."),
    ),
    "RemoveUserFromGroup": (
        ("user", "UserName", _USER_PART.format("remove user from all groups")),
        ("group", "GroupName", _USER_PART.format("remove users from group")),
    ),
    "DeleteGroupPolicy": (("group", "GroupName", _USER_PART.format("delete policies")),),
    "DetachGroupPolicy": (
        ("group", "GroupName", _USER_PART.format("detach all policies")),
        ("policy", "PolicyArn", "Cannot delete a policy attached to entities."),
    ),
    "DetachRolePolicy": (("policy", "PolicyArn", "Cannot delete a policy attached to entities."),),
    "DeletePolicyVersion": (
        ("policy", "PolicyArn", "Cannot delete a policy with non-default versions. Delete its other versions first."),
    ),
}
_DELETES = {
    "DeleteUser": ("user", "UserName"),
    "DeleteGroup": ("group", "GroupName"),
    "DeletePolicy": ("policy", "PolicyArn"),
}


def check_delete_conflict_window(layer, call, caller):
    """For a moment after the last removal of what hangs on a user, group or policy (a key, a policy, a membership,
    a version…), DeleteUser, DeleteGroup and DeletePolicy still answer DeleteConflict, naming what was removed (IAM
    User Guide, "Changes that I make are not always immediately visible"; that DeleteConflict is what shows it, and
    for how long, is assumed). The window starts again at each such removal. The conflicts that are real (something
    still there) are sandbox/strict.py's delete_conflicts."""
    if call.service != "iam" or call.operation not in _DELETES:
        return None
    kind, param = _DELETES[call.operation]
    within, message = _before_within(
        (caller.account, f"{kind}_parts", call.params.get(param, "")), layer.config.delete_conflict_window
    )
    return _refusal("DeleteConflict", message, 409) if within else None


def observe(layer, call, caller) -> None:
    """After moto answered a call of Onramp's (or a test's) with success: a removal of what hangs on a user, group
    or policy starts check_delete_conflict_window's window (a removal AWS refused starts none)."""
    if call.service != "iam" or not layer.config.delete_conflict_window:
        return
    for kind, param, message in _PREREQUISITES.get(call.operation, ()):
        name = call.params.get(param) or (caller.arn.rsplit("/", 1)[-1] if kind == "user" else "")
        key = (caller.account, f"{kind}_parts", name)
        _before_remember(key, 0.0, _value(message))  # the last removal names the conflict


def check_lifecycle_window(layer, call, caller):
    """For a moment after PutLifecyclePolicy, GetLifecyclePolicy on that repository answers what was there before:
    the previous policy, or LifecyclePolicyNotFoundException when it had none. AWS documents only that the policy
    acts on images within 24 hours (ECR User Guide, "Creating a lifecycle policy"); this read-after-write window,
    and its length, are assumed, as for IAM ("Changes that I make are not always immediately visible")."""
    from moto.ecr.models import ecr_backends

    if call.service != "ecr" or call.operation not in ("PutLifecyclePolicy", "GetLifecyclePolicy"):
        return None
    account = call.params.get("registryId") or caller.account
    name = call.params.get("repositoryName", "")
    key = (account, f"lifecycle@{call.region}", name)
    window = layer.config.lifecycle_window
    if call.operation == "PutLifecyclePolicy":
        repository = ecr_backends[account][call.region].repositories.get(name)
        _before_remember(key, window, lambda: repository.lifecycle_policy if repository is not None else None)
        return None
    within, text = _before_within(key, window)
    if not within:
        return None
    if not text:
        return _refusal(
            "LifecyclePolicyNotFoundException",
            f"Lifecycle policy does not exist for the repository with name '{name}' in the registry with id "
            f"'{account}'",
            400,
        )
    return JsonAnswer({"registryId": account, "repositoryName": name, "lifecyclePolicyText": text})


class JsonAnswer:
    """A 200 answer of a JSON API the layer gives itself (as Listing for XML)."""

    def __init__(self, document: dict):
        self.body = json.dumps(document).encode()

    def respond(self, call, start_response):
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(self.body)))]
        start_response("200 OK", headers + [("x-amzn-RequestId", str(uuid.uuid4()))])
        return [self.body]


# Authentication comes before everything else AWS checks; the others after authorization.
AUTHENTICATION = (
    ("inactive_keys", check_inactive_key),
    ("new_key_window", check_new_key_window),
    ("opt_in_regions", check_opt_in_region),
)
CHECKS = (
    ("foreign_bucket", check_foreign_bucket),
    ("bucket_taken_at_create", check_bucket_taken_at_create),
    ("policy_quotas", check_policy_quotas),
    ("list_buckets_page", check_list_buckets_page),
    ("template_url", check_template_url),
    ("login_profile_window", check_login_profile_window),
    ("opt_in_regions", check_describe_regions),
    ("tag_window", check_tag_window),
    ("delete_conflict_window", check_delete_conflict_window),
    ("lifecycle_window", check_lifecycle_window),
)
