"""Issue 28 section 3: defects AWS would show and the lenient sandbox did not. Each test is named after its point
and failed before the fix. Steps are called directly (provisioning/steps), in the strict sandbox, as the customer's
role Onramp's template made."""

import datetime

import pytest

from provisioning.aws.accounts import account_connect
from provisioning.errors import AwsError, StepFailed
from provisioning.kinds.s3_bucket import aws as s3_bucket
from provisioning.models import StepRun
from provisioning.steps.base import StepContext
from provisioning.steps.tables import tables
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, EXAMPLE_KEY_ID_2, EXTERNAL_ID, customer_for, spec_data

pytestmark = pytest.mark.strict(consistency_window=0.0)
BUCKET = "acme-app-media"
MFA = "arn:aws:iam::111122223333:mfa/root-account-mfa-device 123456"


def _account(region: str = "us-west-2"):
    customer = customer_for(spec_data())
    return account_connect(customer=customer, region=region, session_name="defects", source_identity="alice")


def _context(account, key: str, params: dict, *, known: bool = False) -> StepContext:
    return StepContext(run=None, step=StepRun(key=key), account=account, params=params, known=known)


def _bucket_removal(account, name: str = BUCKET):
    params = {"name": name, "confirmed": True}
    return s3_bucket.remove(_context(account, f"remove.s3.bucket:{name}", params), params)


def _admin_s3(sandbox):
    return account_session(sandbox.url, CUSTOMER_ACCOUNT, "us-west-2").s3


def _remaining(admin, name: str = BUCKET) -> list[str]:
    page = admin.list_object_versions(Bucket=name)
    return sorted(v["Key"] for v in page.get("Versions", []))


def test_point_1_object_lock_per_key_errors_stop_the_removal_with_what_blocked_it(db, aws):
    admin = _admin_s3(aws)
    admin.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}, ObjectLockEnabledForBucket=True
    )
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    admin.put_object(
        Bucket=BUCKET, Key="kept.txt", Body=b"k", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    admin.put_object(Bucket=BUCKET, Key="held.txt", Body=b"h", ObjectLockLegalHoldStatus="ON")
    admin.put_object(Bucket=BUCKET, Key="free.txt", Body=b"f")

    with pytest.raises(StepFailed) as refused:
        _bucket_removal(_account())
    assert refused.value.code == "ObjectLocked"
    assert "Object Lock protects 2 object version(s) (held.txt, kept.txt)" in str(refused.value)
    assert "legal hold" in str(refused.value)
    assert _remaining(admin) == ["held.txt", "kept.txt"]  # what could go went; the bucket stays
    assert BUCKET in {b["Name"] for b in admin.list_buckets()["Buckets"]}


def test_point_1_mfa_delete_refuses_the_whole_request_and_only_root_can_empty_it(db, aws):
    admin = _admin_s3(aws)
    admin.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    admin.put_bucket_versioning(
        Bucket=BUCKET, MFA=MFA, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"}
    )
    admin.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")

    with pytest.raises(StepFailed) as refused:
        _bucket_removal(_account())
    assert refused.value.code == "MfaDelete"
    assert "only the account's root user" in str(refused.value)
    assert _remaining(admin) == ["a.txt"]


def test_point_1_versions_are_deleted_page_by_page(db, aws):
    admin = _admin_s3(aws)
    admin.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    admin.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for n in range(3):
        admin.put_object(Bucket=BUCKET, Key=f"k{n}.txt", Body=b"x")
    account = _account()
    client = account.client("s3")
    listed: list[dict] = []

    # The sandbox answers 1,000 per page like AWS; a smaller page, asked for at the client boundary, shows that
    # each DeleteObjects carries one page and never the whole bucket.
    def small_page(params, **kwargs):
        params.setdefault("MaxKeys", 2)

    client.meta.events.register("provide-client-params.s3.ListObjectVersions", small_page)
    client.meta.events.register(
        "provide-client-params.s3.DeleteObjects", lambda params, **kw: listed.append(params["Delete"])
    )
    result = _bucket_removal(account)
    assert result.outputs["removed"] == [BUCKET]
    assert [len(batch["Objects"]) for batch in listed] == [2, 1]
    assert BUCKET not in {b["Name"] for b in admin.list_buckets()["Buckets"]}


def test_point_2_a_bucket_past_the_first_list_page_is_found_as_ours(db, aws):
    admin = _admin_s3(aws)
    for name in ("aaa-first", "aaa-second", BUCKET):
        admin.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    aws.configure(list_buckets_page=1)
    found = s3_bucket.read(_account(), {"bucket": BUCKET})
    assert found == {"region": "us-west-2", "ownership": found["ownership"]}


def test_point_3_a_removed_users_virtual_mfa_device_is_deleted_not_only_deactivated(db, aws):
    iam = account_session(aws.url, CUSTOMER_ACCOUNT, "us-west-2").iam
    iam.create_user(UserName="lead", Path="/onramp/", Tags=[{"Key": "managed-by", "Value": "onramp"}])
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="lead-phone")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName="lead", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )

    params = {"name": "lead"}
    result = tables().executors["remove.user.mfa_devices"](
        _context(_account(), "remove.user.mfa_devices:lead", params), params
    )
    assert result.outputs["removed"] == [serial]
    assert iam.list_mfa_devices(UserName="lead")["MFADevices"] == []
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []


def _sts_answers(region: str, code: str, message: str):
    """Onramp's own STS client in `region` answers AssumeRole with this error (a stub at the boto3 client boundary:
    the sandbox has no deactivated STS region). Returns the handler, to unregister."""
    from botocore.awsrequest import AWSResponse

    from provisioning.aws.accounts import portal_account

    def answer(**kwargs):
        response = AWSResponse("https://sts.amazonaws.com/", 403, {}, None)
        return response, {
            "Error": {"Code": code, "Message": message, "Type": "Sender"},
            "ResponseMetadata": {"HTTPStatusCode": 403, "RequestId": "stub"},
        }

    client = portal_account(region).client("sts")
    client.meta.events.register_first("before-call.sts.AssumeRole", answer, unique_id="test-sts-answer")
    return client


def test_point_5_region_disabled_exception_says_sts_is_not_activated_in_the_region(db, aws):
    message = "STS is not activated in this region for account:111122223333."
    client = _sts_answers("eu-west-3", "RegionDisabledException", message)
    try:
        with pytest.raises(AwsError) as refused:
            _account(region="eu-west-3")
    finally:
        client.meta.events.unregister("before-call.sts.AssumeRole", unique_id="test-sts-answer")
    assert refused.value.code == "RegionDisabledException"
    assert "AWS STS is not activated in eu-west-3 for the customer's account" in str(refused.value)
    assert "Security Token Service (STS)" in str(refused.value)


def test_point_5_region_disabled_in_an_opt_in_region_says_to_enable_the_region(db, aws):
    client = _sts_answers("af-south-1", "RegionDisabledException", "STS is not activated in this region.")
    try:
        with pytest.raises(AwsError) as refused:
            _account(region="af-south-1")
    finally:
        client.meta.events.unregister("before-call.sts.AssumeRole", unique_id="test-sts-answer")
    assert "af-south-1, an opt-in region: it works only once enabled" in str(refused.value)


def test_point_9_adopting_a_bucket_whose_acl_grants_others_says_so_in_a_sentence(db, aws):
    admin = _admin_s3(aws)
    admin.create_bucket(
        Bucket=BUCKET,
        CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
        ObjectOwnership="ObjectWriter",
        ACL="public-read",
    )
    params = {"bucket": BUCKET, "region": "us-west-2"}
    with pytest.raises(StepFailed) as refused:
        s3_bucket.execute(_context(_account(), "s3.bucket", params, known=True), params)
    assert refused.value.code == "BucketAclGrantsOthers"
    assert "has an ACL that grants access to others" in str(refused.value)
    assert "set the bucket's ACL back to private" in str(refused.value)


def _access_key_seen(age_days: int, *, status: str = "Active") -> dict:
    return {
        "keys": [
            {
                "id": EXAMPLE_KEY_ID_2,
                "status": status,
                "created": "2026-09-08T00:00:00+00:00",
                "age_days": age_days,
            }
        ],
        "max_age_days": 90,
    }


def test_point_7_a_key_turning_a_day_older_or_aws_listing_in_another_order_is_not_a_stale_plan():
    from provisioning.steps.reading import seen_fingerprint

    planned = {
        "iam.access_key": _access_key_seen(89),
        "iam.group": {"arn": "arn:aws:iam::111122223333:group/acme", "members": [{"name": "a"}, {"name": "b"}]},
        "team.member:lead@agency.example": {"arn": "x", "tagged": True, "policies": ["A", "B"], "console": True},
    }
    run_time = {
        "iam.access_key": _access_key_seen(90),  # the key's age rolled over between the plan and the run
        "iam.group": {"arn": "arn:aws:iam::111122223333:group/acme", "members": [{"name": "b"}, {"name": "a"}]},
        "team.member:lead@agency.example": {"arn": "x", "tagged": True, "policies": ["B", "A"], "console": True},
    }
    assert seen_fingerprint(planned) == seen_fingerprint(run_time)
    # What a run acts on still counts: a key deactivated by hand, a member gone.
    assert seen_fingerprint(planned) != seen_fingerprint(
        {**planned, "iam.access_key": _access_key_seen(89, status="Inactive")}
    )
    assert seen_fingerprint(planned) != seen_fingerprint(
        {**planned, "iam.group": {"arn": "arn:aws:iam::111122223333:group/acme", "members": [{"name": "a"}]}}
    )


def test_point_4_removing_a_user_outside_onramps_path_names_the_roles_reach(db, aws):
    iam = account_session(aws.url, CUSTOMER_ACCOUNT, "us-west-2").iam
    iam.create_user(UserName="bob", Tags=[{"Key": "managed-by", "Value": "onramp"}])  # made by hand, even tagged
    params = {"name": "bob"}
    with pytest.raises(AwsError) as refused:
        tables().executors["remove.user"](_context(_account(), "remove.user:bob", params), params)
    assert "a condition of the customer's role refused iam:DeleteUser on arn:aws:iam::111122223333:user/bob" in str(
        refused.value
    )
    assert "only when it is arn:aws:iam::*:user/onramp/*" in str(refused.value)
    assert "only on the IAM users and groups in its path /onramp/" in str(refused.value)


def test_point_8_a_portal_role_session_carrying_a_source_identity_is_told_not_a_bare_access_denied(db, aws):
    from botocore.exceptions import ClientError

    from provisioning.aws.errors import error_translate
    from tests.test_sandbox_sts_rules import ONRAMP_ROLE, chained_session

    sts = chained_session(aws, source_identity="deploy-bot")
    request = {"RoleArn": ONRAMP_ROLE, "RoleSessionName": "onramp-run", "ExternalId": EXTERNAL_ID}
    with pytest.raises(ClientError) as refused:
        sts.assume_role(**request, SourceIdentity="alice")
    text = str(error_translate(refused.value, doing="Assuming the customer's role"))
    assert "Onramp's own identity, which is itself a role session" in text
    assert "keeps it through role chaining and AWS refuses to change it" in text


def test_point_6_no_production_code_sets_a_private_attribute_of_a_client():
    """A role's clients get its renewing session from their account's botocore session (its credential resolver),
    not by an assignment to a private attribute of a client's signer."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found = []
    for path in [*root.glob("provisioning/**/*.py"), *root.glob("portal/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                names, chain = [], target
                while isinstance(chain, ast.Attribute):
                    names.append(chain.attr)
                    chain = chain.value
                if isinstance(chain, ast.Name):
                    names.append(chain.id)
                private = [name for name in names[:-1] if name.startswith("_") and not name.startswith("__")]
                if private and ("client" in names[-1] or "_request_signer" in names):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []


def test_point_6_a_roles_account_shares_the_process_models_and_its_clients_sign_with_the_renewing_session(db, aws):
    from provisioning.aws.accounts import process_session

    loader = process_session()._session.get_component("data_loader")
    _account().client("iam").list_account_aliases()  # the process's IAM model, loaded once
    loaded = set(loader._cache)
    account = _account()
    clients = [account.client(service) for service in ("iam", "s3", "sts", "ecr")]
    assert not [key for key in set(loader._cache) - loaded if key[:2] == ("load_service_model", "iam")]
    for client in clients:
        assert client._request_signer._credentials is account.session  # read, never set
    assert ":assumed-role/OnrampAccess/" in account.client("sts").get_caller_identity()["Arn"]
