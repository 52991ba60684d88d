"""S3 steps: the private bucket (ACLs off), Block Public Access, CORS."""

from botocore.exceptions import ClientError

from provisioning import documents, registry
from provisioning.aws import error_code, error_translate
from provisioning.errors import StepFailed
from provisioning.steps.base import StepContext, StepResult

# GetBucketLocation's answers that are not a region's name: none for us-east-1, and "EU" for buckets
# made in eu-west-1 by the oldest APIs.
_LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def bucket_region(s3, bucket: str) -> str:
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return _LEGACY_LOCATIONS.get(location, location)


def _read(call, *, missing: str, default):
    """A bucket's configuration, or `default` when AWS answers that it has none (`missing`)."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) != missing:
            raise
        return default


def _ownership(s3, bucket: str) -> str:
    controls = _read(
        lambda: s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"],
        missing="OwnershipControlsNotFoundError",
        default={"Rules": []},
    )
    return controls["Rules"][0].get("ObjectOwnership", "") if controls["Rules"] else ""


def _adopt_bucket(ctx: StepContext, params: dict, outputs: dict) -> StepResult:
    """The bucket is this account's already: adopt it where the spec wants it, with ACLs off."""
    s3 = ctx.client("s3")
    region = bucket_region(s3, params["bucket"])
    if region != params["region"]:
        raise StepFailed(
            f"The bucket {params['bucket']} is already in this account but in {region}, not {params['region']}. "
            "Use that region or another bucket name.",
            code="BucketInOtherRegion",
        )
    if _ownership(s3, params["bucket"]) == documents.OBJECT_OWNERSHIP:
        return StepResult(adopted=True, outputs=outputs)
    ctx.send(registry.put_bucket_ownership_controls(params["bucket"]))
    return StepResult(adopted=False, outputs=outputs, note="The bucket's ACLs were switched off (BucketOwnerEnforced).")


def bucket(ctx: StepContext, params: dict) -> StepResult:
    s3 = ctx.client("s3")
    name = params["bucket"]
    outputs = {"bucket": name, "region": params["region"], "arn": f"arn:aws:s3:::{name}"}
    try:
        try:
            # A repeated create in us-east-1 succeeds even for a bucket we own, so ownership is checked
            # first there: our account's bucket list is the proof.
            if params["region"] == "us-east-1" and any(b["Name"] == name for b in s3.list_buckets().get("Buckets", [])):
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


def public_access_block(ctx: StepContext, params: dict) -> StepResult:
    s3 = ctx.client("s3")
    wanted = documents.public_access_block_document()
    fresh = ctx.created_by_run("s3.bucket")  # a bucket made by this run has no configuration to adopt
    try:
        current = None
        if not fresh:
            current = _read(
                lambda: s3.get_public_access_block(Bucket=params["bucket"])["PublicAccessBlockConfiguration"],
                missing="NoSuchPublicAccessBlockConfiguration",
                default=None,
            )
        if current == wanted:
            return StepResult(adopted=True, outputs=wanted)
        ctx.send(registry.put_public_access_block(params["bucket"]), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing="Blocking public access") from None
    return StepResult(adopted=False, outputs=wanted)


def _normal_rules(rules: list[dict]) -> list[dict]:
    keys = ("AllowedOrigins", "AllowedHeaders", "AllowedMethods", "MaxAgeSeconds", "ExposeHeaders")
    return [{k: rule[k] for k in keys if rule.get(k)} for rule in rules]


def cors(ctx: StepContext, params: dict) -> StepResult:
    s3 = ctx.client("s3")
    wanted = documents.cors_document(app_origin=params["origin"])
    outputs = {"rules": len(wanted["CORSRules"]), "upload_origin": params["origin"]}
    fresh = ctx.created_by_run("s3.bucket")
    try:
        current = []
        if not fresh:
            current = _read(
                lambda: s3.get_bucket_cors(Bucket=params["bucket"])["CORSRules"],
                missing="NoSuchCORSConfiguration",
                default=[],
            )
        if _normal_rules(current) == _normal_rules(wanted["CORSRules"]):
            return StepResult(adopted=True, outputs=outputs)
        ctx.send(registry.put_bucket_cors(params["bucket"], params["origin"]), settling=fresh)
    except ClientError as exc:
        raise error_translate(exc, doing="Setting the bucket's CORS") from None
    return StepResult(adopted=False, outputs=outputs)
