"""The app's private S3 bucket (ACLs off), in the spec's region; and its removal (emptied only when its name was
typed)."""

from provisioning import documents
from provisioning.registry import (
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    ops,
    removal_kind,
    shown,
)

KEY = "s3.bucket"
REMOVAL_KEY = "remove.s3.bucket"
ORDER = 70


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


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    if seen["region"] != params["region"]:
        # Onramp will not use a bucket in another region: nothing else about it is worth correcting.
        return [Difference("region", params["region"], seen["region"], repairable=False)]
    found = []
    if seen["ownership"] != documents.OBJECT_OWNERSHIP:
        found.append(Difference("object ownership", "BucketOwnerEnforced (ACLs off)", shown(seen["ownership"])))
    return found


KIND = StepKind(
    key=KEY,
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
    compare=compare,
    removal=(REMOVAL_KEY,),
    # NoSuchBucket: a plan's or a drift check's read of a bucket not made yet, or removed by hand.
    absent=("NoSuchBucket", "OwnershipControlsNotFoundError"),
    exists=("BucketAlreadyOwnedByYou",),
    noun="bucket",
)
REMOVAL = removal_kind(
    REMOVAL_KEY,
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
)
KINDS = (KIND, REMOVAL)
