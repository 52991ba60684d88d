"""S3 steps: the private bucket, Block Public Access, CORS."""

from botocore.exceptions import ClientError

from provisioning import documents
from provisioning.aws import error_code, error_translate
from provisioning.spec import Spec
from provisioning.steps.base import StepContext, StepFailed, StepResult


def _location(s3, bucket: str) -> str:
    # us-east-1 answers with no LocationConstraint at all.
    return s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"


def _adopt_bucket(s3, spec: Spec, outputs: dict) -> StepResult:
    """The bucket is this account's already: adopt it where the spec wants it."""
    region = _location(s3, spec.bucket)
    if region != spec.region:
        raise StepFailed(
            f"The bucket {spec.bucket} is already in this account but in {region}, not {spec.region}. "
            "Use that region or another bucket name.",
            code="BucketInOtherRegion",
        )
    return StepResult(adopted=True, outputs=outputs)


def bucket(ctx: StepContext, spec: Spec) -> StepResult:
    s3 = ctx.client("s3")
    name = spec.bucket
    outputs = {"bucket": name, "region": spec.region, "arn": f"arn:aws:s3:::{name}"}
    try:
        try:
            if spec.region == "us-east-1":
                # A repeated create in us-east-1 succeeds even for a bucket we own, so ownership is
                # checked first there: our account's bucket list is the proof.
                if any(b["Name"] == name for b in s3.list_buckets().get("Buckets", [])):
                    return _adopt_bucket(s3, spec, outputs)
                s3.create_bucket(Bucket=name, ACL="private")
            else:
                # Elsewhere AWS answers BucketAlreadyOwnedByYou itself: create first, read only then.
                s3.create_bucket(
                    Bucket=name, ACL="private", CreateBucketConfiguration={"LocationConstraint": spec.region}
                )
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
            return _adopt_bucket(s3, spec, outputs)
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


def _made_by_this_run(ctx: StepContext) -> bool:
    """A bucket this run created has no configuration to adopt: put it without reading it first."""
    return bool(ctx.outputs_of("s3.bucket").get("created"))


def public_access_block(ctx: StepContext, spec: Spec) -> StepResult:
    s3 = ctx.client("s3")
    wanted = documents.public_access_block_document()
    try:
        current = None
        if not _made_by_this_run(ctx):
            try:
                current = s3.get_public_access_block(Bucket=spec.bucket)["PublicAccessBlockConfiguration"]
            except ClientError as exc:
                if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                    raise
        if current == wanted:
            return StepResult(adopted=True, outputs=wanted)
        s3.put_public_access_block(Bucket=spec.bucket, PublicAccessBlockConfiguration=wanted)
    except ClientError as exc:
        raise error_translate(exc, doing="Blocking public access") from None
    return StepResult(adopted=False, outputs=wanted)


def _normal_rules(rules: list[dict]) -> list[dict]:
    keys = ("AllowedOrigins", "AllowedHeaders", "AllowedMethods", "MaxAgeSeconds", "ExposeHeaders")
    return [{k: rule[k] for k in keys if rule.get(k)} for rule in rules]


def cors(ctx: StepContext, spec: Spec) -> StepResult:
    s3 = ctx.client("s3")
    wanted = documents.cors_document(app_origin=spec.app_origin)
    outputs = {"rules": len(wanted["CORSRules"]), "upload_origin": spec.app_origin}
    try:
        current = []
        if not _made_by_this_run(ctx):
            try:
                current = s3.get_bucket_cors(Bucket=spec.bucket)["CORSRules"]
            except ClientError as exc:
                if error_code(exc) != "NoSuchCORSConfiguration":
                    raise
        if _normal_rules(current) == _normal_rules(wanted["CORSRules"]):
            return StepResult(adopted=True, outputs=outputs)
        s3.put_bucket_cors(Bucket=spec.bucket, CORSConfiguration=wanted)
    except ClientError as exc:
        raise error_translate(exc, doing="Setting the bucket's CORS") from None
    return StepResult(adopted=False, outputs=outputs)
