"""S3 steps: the private bucket (ACLs off), Block Public Access, CORS; and what each looks like now."""

from botocore.exceptions import ClientError

from provisioning import documents, registry
from provisioning.aws import AwsAccount, error_code, error_translate
from provisioning.errors import StepFailed
from provisioning.steps.base import StepContext, StepResult

# GetBucketLocation's answers that are not a region's name: none for us-east-1, and "EU" for buckets
# made in eu-west-1 by the oldest APIs.
_LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def bucket_region(s3, bucket: str) -> str:
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return _LEGACY_LOCATIONS.get(location, location)


def _read(call, *, missing: str, default):
    """A bucket's configuration, or `default` when AWS answers that it has none (`missing`); None when the
    bucket itself is not there."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return None
        if error_code(exc) != missing:
            raise
        return default


def _ownership(s3, bucket: str) -> str:
    controls = _read(
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


# --- Readers: what the account has ------------------------------------------------------------


def bucket_read(account: AwsAccount, params: dict) -> dict | None:
    """The bucket as this account has it (None if the account does not own one by that name)."""
    s3 = account.client("s3")
    if not bucket_is_ours(s3, params["bucket"]):
        return None
    return _bucket_state(s3, params["bucket"])


def _bucket_state(s3, name: str) -> dict:
    return {"region": bucket_region(s3, name), "ownership": _ownership(s3, name)}


def public_access_block_read(account: AwsAccount, params: dict) -> dict | None:
    s3 = account.client("s3")
    config = _read(
        lambda: {"config": s3.get_public_access_block(Bucket=params["bucket"])["PublicAccessBlockConfiguration"]},
        missing="NoSuchPublicAccessBlockConfiguration",
        default={"config": None},
    )
    return config


def cors_read(account: AwsAccount, params: dict) -> dict | None:
    s3 = account.client("s3")
    rules = _read(
        lambda: s3.get_bucket_cors(Bucket=params["bucket"])["CORSRules"],
        missing="NoSuchCORSConfiguration",
        default=[],
    )
    return None if rules is None else {"rules": documents.cors_rules_normal(rules)}


# --- Steps ------------------------------------------------------------------------------------


def _adopt_bucket(ctx: StepContext, params: dict, outputs: dict) -> StepResult:
    """The bucket is this account's already (AWS said so, or our bucket list): adopt it where the spec wants
    it, with ACLs off."""
    seen = _bucket_state(ctx.client("s3"), params["bucket"])
    differences = registry.BUCKET.compare(params, seen, None)
    if any(not d.repairable for d in differences):
        raise StepFailed(
            f"The bucket {params['bucket']} is already in this account but in {seen['region']}, not "
            f"{params['region']}. Use that region or another bucket name.",
            code="BucketInOtherRegion",
        )
    if not differences:
        return StepResult(adopted=True, outputs=outputs)
    try:
        ctx.send(registry.put_bucket_ownership_controls(params["bucket"]))
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


def bucket(ctx: StepContext, params: dict) -> StepResult:
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
            ctx.send(registry.create_bucket(name, params["region"]))
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


def _configure(ctx: StepContext, params: dict, kind, read, put, doing: str, outputs: dict) -> StepResult:
    """A bucket's configuration: put it on a bucket this run made (there is nothing to read); otherwise read
    it, compare, and put it only when it differs."""
    fresh = ctx.created_by_run("s3.bucket")
    try:
        if not fresh and not kind.compare(params, read(ctx.account, params) or {"config": None, "rules": None}, None):
            return StepResult(adopted=True, outputs=outputs)
        ctx.send(put, settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing=doing) from None
    return StepResult(adopted=False, outputs=outputs)


def public_access_block(ctx: StepContext, params: dict) -> StepResult:
    return _configure(
        ctx,
        params,
        registry.PUBLIC_ACCESS_BLOCK,
        public_access_block_read,
        registry.put_public_access_block(params["bucket"]),
        "Blocking public access",
        documents.public_access_block_document(),
    )


def cors(ctx: StepContext, params: dict) -> StepResult:
    rules = len(documents.cors_document(app_origin=params["origin"])["CORSRules"])
    return _configure(
        ctx,
        params,
        registry.CORS,
        cors_read,
        registry.put_bucket_cors(params["bucket"], params["origin"]),
        "Setting the bucket's CORS",
        {"rules": rules, "upload_origin": params["origin"]},
    )


# A plan counts a bucket's objects over this many pages of ListObjectVersions (1,000 versions each) at most;
# beyond, it says "more than".
HOLDINGS_PAGES = 10


def bucket_holds_data(account: AwsAccount, params: dict) -> dict | None:
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
