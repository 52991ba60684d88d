"""S3's refusals when a bucket is emptied, where moto is lenient (issue 28 section 3, point 1). Each is a switch of
sandbox/strict.py's Strictness, checked before moto answers, and tested in tests/test_sandbox_s3_rules.py;
docs/testing.md's "What AWS enforces that the sandbox did not" cites what each relies on. Nothing here imports Django.

Object Lock needs no rule: moto already answers DeleteObjects with a per-key AccessDenied for a version under
retention or a legal hold, as AWS does (S3 User Guide, "Locking objects with Object Lock"), in a 200."""

import re
import threading
from urllib.parse import parse_qs

from sandbox.refusals import Listing

# The buckets whose versioning configuration has MFA Delete enabled: (account, bucket). moto keeps only the
# versioning Status and drops MfaDelete, so the layer remembers what it was told (by anyone, the harness too:
# on AWS only the root user with its MFA device can turn it on).
_MFA_DELETE: set[tuple[str, str]] = set()
_LOCK = threading.Lock()
_MFA_DELETE_SETTING = re.compile(rb"<MfaDelete>\s*(Enabled|Disabled)\s*</MfaDelete>")


def _refusal(code: str, message: str, status: int):
    from sandbox.strict import Refusal

    return Refusal(code, message, status)


def _query(call) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(call.query, keep_blank_values=True).items()}


def reset() -> None:
    """Forget every bucket's MFA Delete (the sandbox's reset empties moto's buckets)."""
    with _LOCK:
        _MFA_DELETE.clear()


def observe(call, caller) -> None:
    """After a PutBucketVersioning moto accepted: remember whether it turned MFA Delete on or off."""
    if call.service != "s3" or call.method != "PUT" or "versioning" not in _query(call):
        return
    setting = _MFA_DELETE_SETTING.search(call.body or b"")
    if setting is None:
        return
    with _LOCK:
        if setting.group(1) == b"Enabled":
            _MFA_DELETE.add((caller.account, call.bucket))
        else:
            _MFA_DELETE.discard((caller.account, call.bucket))


def check_mfa_delete(layer, call, caller):
    """On a bucket with MFA Delete enabled, deleting an object version without the x-amz-mfa header is refused,
    and DeleteObjects naming any version fails as a whole "even if there are non-versioned objects" (S3 API
    reference, DeleteObjects and DeleteObject; S3 User Guide, "Deleting an object from an MFA delete-enabled
    bucket"). The answer's code and words are assumed: AccessDenied, "Mfa Authentication must be used for this
    request". moto deletes them. GetBucketVersioning answers MfaDelete Enabled, which moto forgets."""
    if call.service != "s3" or call.headers.get("x-amz-mfa"):
        return None
    with _LOCK:
        protected = (caller.account, call.bucket) in _MFA_DELETE
    if not protected:
        return None
    query = _query(call)
    if call.method == "GET" and "versioning" in query and call.path.strip("/") == call.bucket:
        # moto's own answer would leave MfaDelete out.
        return Listing(
            '<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration '
            'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>'
            "</VersioningConfiguration>"
        )
    deleting_objects = call.method == "POST" and "delete" in query and b"<VersionId>" in (call.body or b"")
    deleting_version = call.method == "DELETE" and query.get("versionId")
    if deleting_objects or deleting_version:
        return _refusal("AccessDenied", "Mfa Authentication must be used for this request", 403)
    return None


def check_bucket_acl_ownership(layer, call, caller):
    """PutBucketOwnershipControls with BucketOwnerEnforced on a bucket whose ACL grants anything to anyone but the
    bucket owner answers 400 InvalidBucketAclWithObjectOwnership (S3 User Guide, "Troubleshooting" of Object
    Ownership: "the bucket ACL must give full control only to the bucket owner"); moto applies it."""
    from moto.s3.models import OWNER, s3_backends

    query = _query(call)
    if call.service != "s3" or call.method != "PUT" or "ownershipControls" not in query:
        return None
    if b"BucketOwnerEnforced" not in (call.body or b""):
        return None
    bucket = s3_backends[caller.account]["aws"].buckets.get(call.bucket)
    grants = bucket.acl.grants if bucket is not None and bucket.acl is not None else []
    if all(grantee.id == OWNER for grant in grants for grantee in grant.grantees):
        return None
    return _refusal(
        "InvalidBucketAclWithObjectOwnership",
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        400,
    )


CHECKS = (("mfa_delete", check_mfa_delete), ("bucket_acl_ownership", check_bucket_acl_ownership))
