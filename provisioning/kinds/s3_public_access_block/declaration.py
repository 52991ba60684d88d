"""The bucket's Block Public Access, all four flags on."""

from provisioning import documents
from provisioning.kinds.s3_bucket import declaration as s3_bucket
from provisioning.registry import (
    ApiCall,
    Difference,
    StepKind,
    document_differences,
    ops,
)

KEY = "s3.public_access_block"
ORDER = 80


def put_public_access_block(bucket: str) -> ApiCall:
    return ApiCall(
        "s3",
        "PutPublicAccessBlock",
        {"Bucket": bucket, "PublicAccessBlockConfiguration": documents.public_access_block_document()},
    )


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    return document_differences("Block Public Access", documents.public_access_block_document(), seen["config"])


KIND = StepKind(
    key=KEY,
    branch="s3",
    title=lambda p: "Block Public Access (all four flags)",
    instances=lambda spec: [{"bucket": spec.bucket}],
    after=(s3_bucket.KEY,),
    part_of=s3_bucket.KEY,
    calls=lambda p: [put_public_access_block(p["bucket"])],
    documents=lambda p: {"public_access_block": documents.public_access_block_document()},
    document_titles=(("public_access_block", "S3 Block Public Access configuration"),),
    operations=ops("s3", "GetPublicAccessBlock", "PutPublicAccessBlock"),
    compare=compare,
    absent=("NoSuchBucket", "NoSuchPublicAccessBlockConfiguration"),
    noun="bucket setting",
    found_words=lambda identity, seen: (
        "The bucket's own Block Public Access configuration" + (" is there." if seen.get("config") else ": none.")
    ),
)
KINDS = (KIND,)
