"""S3's refusals when a bucket is emptied, in the strict sandbox (sandbox/s3_rules.py, issue 28 section 3 point 1):
each shown refusing what AWS refuses and, switched off, moto letting it by; and Object Lock, which moto already
refuses per key as AWS does."""

import datetime

import pytest

from tests.conftest import CUSTOMER_ACCOUNT
from tests.test_sandbox import _client, _error, _user

pytestmark = pytest.mark.strict(consistency_window=0.0, session_max_age=0.0)


def _versions(s3, bucket: str) -> list[dict]:
    page = s3.list_object_versions(Bucket=bucket)
    return [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]


def test_mfa_delete_refuses_a_whole_delete_objects_naming_a_version(aws):
    admin = aws.admin(CUSTOMER_ACCOUNT).client("s3", endpoint_url=aws.url, region_name="us-east-1")
    admin.create_bucket(Bucket="guarded-bucket")
    admin.put_bucket_versioning(
        Bucket="guarded-bucket",
        MFA="arn:aws:iam::111122223333:mfa/root-account-mfa-device 123456",
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    admin.put_object(Bucket="guarded-bucket", Key="a.txt", Body=b"a")
    admin.put_object(Bucket="guarded-bucket", Key="b.txt", Body=b"b")
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:*"), "s3", region="us-east-1")
    assert s3.get_bucket_versioning(Bucket="guarded-bucket")["MFADelete"] == "Enabled"
    versions = _versions(s3, "guarded-bucket")
    objects = [*versions, {"Key": "never-versioned.txt"}]
    error = _error(lambda: s3.delete_objects(Bucket="guarded-bucket", Delete={"Objects": objects, "Quiet": True}))
    assert error["Code"] == "AccessDenied" and "Mfa Authentication" in error["Message"]
    error = _error(lambda: s3.delete_object(Bucket="guarded-bucket", **versions[0]))
    assert error["Code"] == "AccessDenied"
    assert len(_versions(s3, "guarded-bucket")) == 2  # the whole request failed: nothing went

    aws.configure(mfa_delete=False)
    s3.delete_objects(Bucket="guarded-bucket", Delete={"Objects": versions, "Quiet": True})
    assert _versions(s3, "guarded-bucket") == []


def test_mfa_delete_turned_off_lets_versions_go(aws):
    admin = aws.admin(CUSTOMER_ACCOUNT).client("s3", endpoint_url=aws.url, region_name="us-east-1")
    admin.create_bucket(Bucket="guarded-bucket")
    mfa = "arn:aws:iam::111122223333:mfa/root-account-mfa-device 123456"
    admin.put_bucket_versioning(
        Bucket="guarded-bucket", MFA=mfa, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"}
    )
    admin.put_object(Bucket="guarded-bucket", Key="a.txt", Body=b"a")
    admin.put_bucket_versioning(
        Bucket="guarded-bucket", MFA=mfa, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"}
    )
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:*"), "s3", region="us-east-1")
    s3.delete_objects(Bucket="guarded-bucket", Delete={"Objects": _versions(s3, "guarded-bucket"), "Quiet": True})
    assert _versions(s3, "guarded-bucket") == []


def test_object_lock_answers_200_with_a_per_key_error(aws):
    admin = aws.admin(CUSTOMER_ACCOUNT).client("s3", endpoint_url=aws.url, region_name="us-east-1")
    admin.create_bucket(Bucket="locked-bucket", ObjectLockEnabledForBucket=True)
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    admin.put_object(
        Bucket="locked-bucket", Key="kept.txt", Body=b"k", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    admin.put_object(Bucket="locked-bucket", Key="held.txt", Body=b"h", ObjectLockLegalHoldStatus="ON")
    admin.put_object(Bucket="locked-bucket", Key="free.txt", Body=b"f")
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:*"), "s3", region="us-east-1")
    answer = s3.delete_objects(
        Bucket="locked-bucket", Delete={"Objects": _versions(s3, "locked-bucket"), "Quiet": True}
    )
    assert sorted((e["Key"], e["Code"]) for e in answer["Errors"]) == [
        ("held.txt", "AccessDenied"),
        ("kept.txt", "AccessDenied"),
    ]
    assert sorted(v["Key"] for v in _versions(s3, "locked-bucket")) == ["held.txt", "kept.txt"]


def test_bucket_owner_enforced_is_refused_while_the_acl_grants_others(aws):
    admin = aws.admin(CUSTOMER_ACCOUNT).client("s3", endpoint_url=aws.url, region_name="us-east-1")
    admin.create_bucket(Bucket="shared-bucket", ObjectOwnership="ObjectWriter", ACL="public-read")
    admin.create_bucket(Bucket="private-bucket", ObjectOwnership="ObjectWriter")
    s3 = _client(aws, _user(aws, CUSTOMER_ACCOUNT, "s3:*"), "s3", region="us-east-1")
    enforced = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    error = _error(lambda: s3.put_bucket_ownership_controls(Bucket="shared-bucket", OwnershipControls=enforced))
    assert error["Code"] == "InvalidBucketAclWithObjectOwnership"
    s3.put_bucket_ownership_controls(Bucket="private-bucket", OwnershipControls=enforced)

    aws.configure(bucket_acl_ownership=False)
    s3.put_bucket_ownership_controls(Bucket="shared-bucket", OwnershipControls=enforced)
