"""Pure builders of the JSON documents Onramp sends to AWS.

The preview page, the AWS CLI equivalent and the worker all call these, so what
a tech lead reads is exactly what is sent.
"""

# The runbook's "MediaManagement" actions, in the runbook's order.
MEDIA_MANAGEMENT_ACTIONS = (
    "ListBucket",
    "DeleteObjectTagging",
    "GetBucketTagging",
    "DeleteObjectVersion",
    "GetObjectVersionTagging",
    "PutObjectVersionTagging",
    "DeleteObjectVersionTagging",
    "GetBucketVersioning",
    "GetBucketAcl",
    "PutObject",
    "GetObjectAcl",
    "GetObject",
    "GetBucketCORS",
    "GetObjectVersionAcl",
    "PutBucketAcl",
    "PutObjectTagging",
    "DeleteObject",
    "GetBucketLocation",
    "PutObjectAcl",
    "GetObjectVersion",
)

LIFECYCLE_SHA_PREFIXES = tuple("0123456789abcdef")
IMAGE_EXPIRY_DAYS = 3


def media_policy_name(*, scope: str, bucket: str) -> str:
    """ "MediaManagement" for every bucket, "MediaManagement-<bucket>" when scoped to one."""
    return "MediaManagement" if scope == "all" else f"MediaManagement-{bucket}"


def media_policy_document(*, scope: str, bucket: str) -> dict:
    """The S3 policy for the app user: the runbook's 20 actions on all buckets or on one."""
    if scope == "all":
        resources = ["arn:aws:s3:::*", "arn:aws:s3:::*/*"]
    else:
        resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MediaManagement",
                "Effect": "Allow",
                "Action": [f"s3:{action}" for action in MEDIA_MANAGEMENT_ACTIONS],
                "Resource": resources,
            }
        ],
    }


def public_access_block_document() -> dict:
    """Block Public Access with all four flags on."""
    return {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


OBJECT_OWNERSHIP = "BucketOwnerEnforced"  # ACLs disabled: the bucket's owner owns every object


def ownership_document() -> dict:
    """S3 Object Ownership with ACLs off: nothing in the runbook needs an ACL."""
    return {"Rules": [{"ObjectOwnership": OBJECT_OWNERSHIP}]}


def cors_document(*, app_origin: str) -> dict:
    """The runbook's two CORS rules: GET from anywhere, writes from the app's origin only."""
    return {
        "CORSRules": [
            {
                "AllowedOrigins": ["*"],
                "AllowedHeaders": ["Authorization"],
                "AllowedMethods": ["GET"],
                "MaxAgeSeconds": 3000,
            },
            {
                "AllowedOrigins": [app_origin],
                "AllowedHeaders": ["*"],
                "AllowedMethods": ["PUT", "POST", "DELETE"],
                "MaxAgeSeconds": 3000,
                "ExposeHeaders": ["x-amz-server-side-encryption"],
            },
        ]
    }


CORS_RULE_KEYS = ("AllowedOrigins", "AllowedHeaders", "AllowedMethods", "MaxAgeSeconds", "ExposeHeaders")


def cors_rules_normal(rules: list[dict]) -> list[dict]:
    """CORS rules as AWS gives them back, reduced to what Onramp sets (no ID, no empty lists)."""
    return [{key: rule[key] for key in CORS_RULE_KEYS if rule.get(key)} for rule in rules]


def _expire_tagged_after_days(priority: int, description: str, prefix: str) -> dict:
    return {
        "rulePriority": priority,
        "description": description,
        "selection": {
            "tagStatus": "tagged",
            "tagPrefixList": [prefix],
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": IMAGE_EXPIRY_DAYS,
        },
        "action": {"type": "expire"},
    }


def lifecycle_policy_document() -> dict:
    """The ECR lifecycle policy: 19 rules, all sha-prefix rules alike (days since push)."""
    rules = [
        {
            "rulePriority": 1,
            "description": "Keep only one untagged image",
            "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"},
        },
        _expire_tagged_after_days(2, "Expire testing images older than 3 days", "testing"),
        _expire_tagged_after_days(3, "Expire builder images older than 3 days", "builder"),
    ]
    for offset, prefix in enumerate(LIFECYCLE_SHA_PREFIXES):
        rules.append(
            _expire_tagged_after_days(4 + offset, f"Expire git sha '{prefix}' images older than 3 days", prefix)
        )
    return {"rules": rules}


def sign_in_url(*, account_id: str, alias: str = "") -> str:
    return f"https://{alias or account_id}.signin.aws.amazon.com/console"
