"""Creating the bucket (or adopting it), reading it back, what it holds, and deleting it."""

from botocore.exceptions import ClientError

from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_code, error_translate
from provisioning.errors import StepFailed
from provisioning.kinds.common_aws import (
    delete,
    gone,
    s3_config_read,
)
from provisioning.kinds.s3_bucket import declaration
from provisioning.steps.base import StepContext, StepResult

# GetBucketLocation's answers that are not a region's name: none for us-east-1, and "EU" for buckets
# made in eu-west-1 by the oldest APIs.
_LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def bucket_region(s3, bucket: str) -> str:
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return _LEGACY_LOCATIONS.get(location, location)


def _ownership(s3, bucket: str) -> str:
    controls = s3_config_read(
        lambda: s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"],
        missing="OwnershipControlsNotFoundError",
        default={"Rules": []},
    )
    return controls["Rules"][0].get("ObjectOwnership", "") if controls and controls["Rules"] else ""


def bucket_is_ours(s3, name: str) -> bool:
    """Whether this account owns the bucket: its bucket list, asked for names starting with this one and read page
    by page (AWS refuses an unpaginated ListBuckets past 10,000 buckets; S3 API reference, ListBuckets)."""
    pages = s3.get_paginator("list_buckets").paginate(Prefix=name)
    return any(b["Name"] == name for page in pages for b in page.get("Buckets", []))


def read(account: AwsAccount, params: dict) -> dict | None:
    """The bucket as this account has it (None if the account does not own one by that name)."""
    s3 = account.client("s3")
    if not bucket_is_ours(s3, params["bucket"]):
        return None
    return _bucket_state(s3, params["bucket"])


def _bucket_state(s3, name: str) -> dict:
    return {"region": bucket_region(s3, name), "ownership": _ownership(s3, name)}


def _adopt_bucket(ctx: StepContext, params: dict, outputs: dict) -> StepResult:
    """The bucket is this account's already (AWS said so, or our bucket list): adopt it where the spec wants
    it, with ACLs off."""
    seen = _bucket_state(ctx.client("s3"), params["bucket"])
    differences = declaration.KIND.compare(params, seen, None)
    if any(not d.repairable for d in differences):
        raise StepFailed(
            f"The bucket {params['bucket']} is already in this account but in {seen['region']}, not "
            f"{params['region']}. Use that region or another bucket name.",
            code="BucketInOtherRegion",
        )
    if not differences:
        return StepResult(adopted=True, outputs=outputs)
    try:
        ctx.send(declaration.put_bucket_ownership_controls(params["bucket"]))
    except ClientError as exc:
        if error_code(exc) != "InvalidBucketAclWithObjectOwnership":
            raise
        # AWS turns ACLs off only when the bucket's ACL grants nothing beyond its owner's full control.
        raise StepFailed(
            f"The bucket {params['bucket']} has an ACL that grants access to others (another account, or a group "
            "such as everyone or S3's log delivery). Onramp turns the bucket's ACLs off (Bucket owner enforced), "
            "which AWS refuses while the ACL grants anything beyond the owner. Move those grants to a bucket "
            "policy if they are still needed, set the bucket's ACL back to private (S3 console, the bucket, "
            "Permissions, Access control list), then retry.",
            code="BucketAclGrantsOthers",
        ) from None
    return StepResult(adopted=False, outputs=outputs, note="The bucket's ACLs were switched off (BucketOwnerEnforced).")


def execute(ctx: StepContext, params: dict) -> StepResult:
    s3 = ctx.client("s3")
    name = params["bucket"]
    outputs = {"bucket": name, "region": params["region"], "arn": f"arn:aws:s3:::{name}"}
    if ctx.known:  # the plan read it in this account: correct it in place
        return _adopt_bucket(ctx, params, outputs)
    try:
        try:
            # A repeated create in us-east-1 succeeds even for a bucket we own, so ownership is checked
            # first there: our account's bucket list is the proof.
            if params["region"] == "us-east-1" and bucket_is_ours(s3, name):
                return _adopt_bucket(ctx, params, outputs)
            # Elsewhere AWS answers BucketAlreadyOwnedByYou itself: create first, read only then.
            ctx.send(declaration.create_bucket(name, params["region"]))
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
            return _adopt_bucket(ctx, params, outputs)
        outputs["created"] = True  # the next steps know it holds no configuration yet
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyExists":
            raise StepFailed(
                f"The bucket name {name} is taken by another AWS account. "
                "Bucket names are global: choose another name and start again.",
                code="BucketAlreadyExists",
            ) from None
        raise error_translate(exc, doing=f"Creating the bucket {name}") from None
    return StepResult(adopted=False, outputs=outputs)


# A plan counts a bucket's objects over this many pages of ListObjectVersions (1,000 versions each) at most;
# beyond, it says "more than".
HOLDINGS_PAGES = 10


def holdings(account: AwsAccount, params: dict) -> dict | None:
    """Whether the bucket holds any object version, and what a tech lead weighs before deleting or keeping it:
    its objects (current versions) and their bytes; `more` when there was more to count (None if the bucket is
    gone)."""
    s3 = account.client("s3")
    query = {"Bucket": params["name"]}
    held, objects, size, more = False, 0, 0, False
    for page_number in range(HOLDINGS_PAGES):
        try:
            page = s3.list_object_versions(**query)
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucket" and page_number == 0:
                return None
            raise
        versions = page.get("Versions") or []
        held = held or bool(versions or page.get("DeleteMarkers"))
        current = [version for version in versions if version.get("IsLatest")]
        objects += len(current)
        size += sum(int(version.get("Size") or 0) for version in current)
        if not page.get("IsTruncated"):
            break
        query.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
    else:
        more = True
    return {"holds_data": held, "objects": objects, "bytes": size, "more": more}


# How many keys a sentence names: enough to find them, short enough to read.
_NAMED_KEYS = 5


def _page_versions(s3, name: str) -> tuple[list[dict], bool]:
    """The first page (up to 1,000) of the bucket's object versions and delete markers, and whether there are
    more. Always the first page: the one before it was deleted, so the listing never holds the whole bucket."""
    page = s3.list_object_versions(Bucket=name)
    found = [
        {"Key": item["Key"], "VersionId": item["VersionId"]}
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
    ]
    return found, bool(page.get("IsTruncated"))


def _keys_named(errors: list[dict]) -> str:
    keys = sorted({error["Key"] for error in errors})
    more = f" and {len(keys) - _NAMED_KEYS} more" if len(keys) > _NAMED_KEYS else ""
    return ", ".join(keys[:_NAMED_KEYS]) + more


def _locked(s3, name: str) -> bool:
    """Whether Object Lock is on for the bucket (AWS answers ObjectLockConfigurationNotFoundError when not)."""
    try:
        config = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    except ClientError as exc:
        if error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return config.get("ObjectLockEnabled") == "Enabled"


def _blocked(s3, name: str, errors: list[dict]) -> StepFailed:
    """DeleteObjects answered 200 with per-key Errors: what kept those keys, in a sentence."""
    if _locked(s3, name) and all(error.get("Code") == "AccessDenied" for error in errors):
        return StepFailed(
            f"The bucket {name} cannot be emptied: Object Lock protects {len(errors)} object version(s) "
            f"({_keys_named(errors)}) with a retention period that has not ended or a legal hold. Onramp deleted "
            "what it could. Wait until the retention ends or have the legal hold removed (a governance-mode "
            "retention can be bypassed by someone allowed s3:BypassGovernanceRetention), then retry.",
            code="ObjectLocked",
        )
    reasons = sorted({f"{error.get('Code')}: {error.get('Message')}" for error in errors})
    return StepFailed(
        f"The bucket {name} cannot be emptied: AWS refused to delete {len(errors)} object version(s) "
        f"({_keys_named(errors)}), saying {'; '.join(reasons)}. Onramp deleted what it could; retry once that is "
        "resolved.",
        code="ObjectsNotDeleted",
    )


def _mfa_delete_on(s3, name: str) -> bool:
    return s3.get_bucket_versioning(Bucket=name).get("MFADelete") == "Enabled"


def _bucket_empty(s3, name: str) -> None:
    """Delete every object version and delete marker, a page at a time (DeleteObjects takes 1,000 keys, a listing
    page holds as many). DeleteObjects answers 200 even when keys stay (Object Lock): its Errors are read."""
    while True:
        versions, _ = _page_versions(s3, name)
        if not versions:
            return
        try:
            answer = s3.delete_objects(Bucket=name, Delete={"Objects": versions, "Quiet": True})
        except ClientError as exc:
            # MFA Delete refuses the whole request, whatever else it names (S3 API reference, DeleteObjects).
            if error_code(exc) == "AccessDenied" and _mfa_delete_on(s3, name):
                raise StepFailed(
                    f"The bucket {name} has MFA Delete on: only the account's root user, signed in with its MFA "
                    "device, can delete its object versions. Ask the account's owner to empty it (or turn MFA "
                    "Delete off) as root, then retry.",
                    code="MfaDelete",
                ) from None
            raise
        if answer.get("Errors"):
            raise _blocked(s3, name, answer["Errors"])


def remove(ctx: StepContext, params: dict) -> StepResult:
    s3, name = ctx.client("s3"), params["name"]
    try:
        versions, more = _page_versions(s3, name)
        if versions and not params.get("confirmed"):
            count = f"at least {len(versions)}" if more else str(len(versions))
            raise StepFailed(
                f"The bucket {name} holds {count} object version(s). Onramp deletes a bucket that holds "
                "objects only when its name was typed in the plan: plan again and type it, or empty it yourself.",
                code="BucketNotEmpty",
            )
        _bucket_empty(s3, name)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return gone(name)
        raise error_translate(exc, doing=f"Emptying the bucket {name}") from None
    return delete(ctx, params, gone_codes=("NoSuchBucket",))
