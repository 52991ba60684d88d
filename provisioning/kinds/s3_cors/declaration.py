"""The bucket's CORS: GET from anywhere, uploads from the app's origin."""

from provisioning import documents
from provisioning.kinds.s3_bucket import declaration as s3_bucket
from provisioning.kinds.s3_public_access_block import declaration as s3_public_access_block
from provisioning.registry import (
    ApiCall,
    Difference,
    StepKind,
    counted,
    document_differences,
    ops,
)

KEY = "s3.cors"
ORDER = 90


def put_bucket_cors(bucket: str, origin: str) -> ApiCall:
    return ApiCall(
        "s3", "PutBucketCors", {"Bucket": bucket, "CORSConfiguration": documents.cors_document(app_origin=origin)}
    )


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    wanted = documents.cors_rules_normal(documents.cors_document(app_origin=params["origin"])["CORSRules"])
    return document_differences("CORS rules", wanted, seen["rules"])


KIND = StepKind(
    key=KEY,
    branch="s3",
    title=lambda p: f"CORS: GET from anywhere, uploads from {p['origin']}",
    instances=lambda spec: [{"bucket": spec.bucket, "origin": spec.app_origin}],
    after=(s3_public_access_block.KEY,),
    part_of=s3_bucket.KEY,
    calls=lambda p: [put_bucket_cors(p["bucket"], p["origin"])],
    documents=lambda p: {"cors": documents.cors_document(app_origin=p["origin"])},
    document_titles=(("cors", "S3 CORS configuration"),),
    operations=ops("s3", "GetBucketCors", "PutBucketCors"),
    compare=compare,
    absent=("NoSuchBucket", "NoSuchCORSConfiguration"),
    noun="bucket setting",
    found_words=lambda identity, seen: (
        f"The bucket has its own CORS configuration ({counted(len(seen.get('rules', [])), 'rule')})."
    ),
)
KINDS = (KIND,)
