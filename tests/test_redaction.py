"""Redaction: one function between request parameters, error messages and the audit log."""

import json

import pytest
from botocore.stub import Stubber

from provisioning import documents
from provisioning.audit.chain import REDACTED, CallLog, audit_record, audit_verify, redact, redact_text
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.calls import current_call_log
from provisioning.aws.errors import error_translate
from provisioning.models import AuditEvent

# The shape of an AWS secret access key (40 characters of base64), as AWS documents its example.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PASSWORD = "Xy7!horse-Battery-staple"


def _flat(value) -> str:
    return json.dumps(value, default=str)


def test_secret_keys_are_redacted_at_any_depth_in_dicts_and_lists():
    params = {
        "UserName": "acme-app",
        "LoginProfile": {"UserName": "lead", "Password": PASSWORD, "PasswordResetRequired": True},
        "Items": [{"name": "a", "secret": "s1-value"}, ({"SecretAccessKey": SECRET},), "plain"],
        "Credentials": {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": SECRET, "SessionToken": "tok"},
        "deep": {"deeper": {"deepest": [{"NewPassword": "n3w-pass", "OldPassword": "0ld-pass"}]}},
    }
    out = redact(params)
    assert out["UserName"] == "acme-app"
    assert out["LoginProfile"] == {"UserName": "lead", "Password": REDACTED, "PasswordResetRequired": True}
    assert out["Items"][0] == {"name": "a", "secret": REDACTED}
    assert out["Items"][1] == [{"SecretAccessKey": REDACTED}]  # tuples become lists, redacted inside
    assert out["Items"][2] == "plain"
    assert out["Credentials"] == REDACTED  # the whole STS credentials block, whatever it holds
    assert out["deep"]["deeper"]["deepest"] == [{"NewPassword": REDACTED, "OldPassword": REDACTED}]
    text = _flat(out)
    for secret in (PASSWORD, SECRET, "s1-value", "n3w-pass", "0ld-pass", "tok"):
        assert secret not in text
    assert params["LoginProfile"]["Password"] == PASSWORD  # a copy: the call's own parameters are untouched


def test_secret_key_names_match_whatever_their_case():
    out = redact({"PASSWORD": "a-b-c-d", "Secret_Access_Key": "e-f-g-h", "aws_secret_access_key": "i-j-k-l"})
    assert set(out.values()) == {REDACTED}


@pytest.mark.parametrize(
    "message",
    [
        f"The security token included in the request is invalid: SecretAccessKey={SECRET}",
        f'Invalid input {{"password": "{PASSWORD}", "user": "lead"}}',
        f"password: {PASSWORD} does not conform to the account password policy",
        f"session token = {PASSWORD}",
        # A response quoted whole (botocore does so when it cannot parse one): XML elements.
        f"<AssumeRoleResult><SessionToken>{PASSWORD}</SessionToken><SecretAccessKey>{SECRET}</SecretAccessKey>",
        f"Key {SECRET} rejected",  # no key name at all: caught by the shape of an AWS secret
        # AWS's validation errors echo the value before naming the member.
        f"1 validation error detected: Value '{PASSWORD}' at 'password' failed to satisfy constraint",
        f"1 validation error detected: Value '{PASSWORD}' at 'loginProfile.newPassword' failed to satisfy constraint",
    ],
)
def test_error_messages_that_echo_input_lose_the_secret(message):
    redacted = redact_text(message)
    assert PASSWORD not in redacted and SECRET not in redacted
    assert REDACTED in redacted
    assert redact({"error_message": message})["error_message"] == redacted  # strings are redacted wherever they are


def test_what_is_not_secret_stays_readable():
    """Access key ids, ARNs, request ids and policy documents are what a reader of the log needs."""
    policy = documents.media_policy_document(scope="bucket", bucket="acme-app-media")
    params = {
        "UserName": "acme-app",
        "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "PolicyArn": "arn:aws:iam::111122223333:policy/onramp/AcmeAppMediaManagement",
        "PolicyDocument": json.dumps(policy),
        "CORSConfiguration": documents.cors_document(app_origin="https://acme-app.herokuapp.com"),
        "PublicAccessBlockConfiguration": documents.public_access_block_document(),
        "lifecyclePolicyText": json.dumps(documents.lifecycle_policy_document()),
        "RequestId": "c6104cbe-af31-11e0-8154-cbc7ccf896c7",
        "Tags": [{"Key": "managed-by", "Value": "onramp"}],
        "MaxItems": 100,
        "Enabled": False,
        "Empty": None,
    }
    assert redact(params) == params


def test_values_that_are_not_json_become_safe_text():
    from datetime import UTC, datetime

    out = redact({"Body": b"\x00binary secret bytes", "When": datetime(2025, 3, 10, tzinfo=UTC), "n": 1.5})
    assert out == {"Body": "<20 bytes>", "When": "2025-03-10T00:00:00+00:00", "n": 1.5}


def test_audit_rows_hold_the_redacted_details_and_their_hash_covers_them(db):
    event = audit_record(
        action="test.redaction",
        actor_label="tester",
        details={"params": {"Password": PASSWORD}, "message": f"SecretAccessKey={SECRET}"},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert PASSWORD not in _flat(stored.details) and SECRET not in _flat(stored.details)
    assert stored.details["params"]["Password"] == REDACTED
    assert audit_verify() == (1, None)


def _account() -> AwsAccount:
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return AwsAccount(keys, region="us-east-1", account_id="111122223333", access="keys")


@pytest.mark.lenient  # the hook's redaction, not AWS's rules: any keys will do
def test_the_aws_hook_redacts_parameters_and_never_sees_responses(aws):
    """A real call to the sandbox with a password in its parameters and a secret in its response."""
    iam = _account().client("iam")
    log = CallLog(actor_label="tester", actor_id=None, customer_id=None)
    token = current_call_log.set(log)
    try:
        iam.create_user(UserName="lead")
        iam.create_login_profile(UserName="lead", Password=PASSWORD, PasswordResetRequired=True)
        secret = iam.create_access_key(UserName="lead")["AccessKey"]["SecretAccessKey"]
    finally:
        current_call_log.reset(token)
    events = log.drain()
    assert [e.action for e in events] == ["aws.iam.CreateUser", "aws.iam.CreateLoginProfile", "aws.iam.CreateAccessKey"]
    assert events[1].details["params"] == {"UserName": "lead", "Password": REDACTED, "PasswordResetRequired": True}
    text = _flat([e.details for e in events])
    assert PASSWORD not in text and secret not in text


def test_the_aws_hook_redacts_an_error_message_that_echoes_the_password(db):
    """The sandbox does not echo input in its errors; AWS's validation errors do, so stub that one."""
    iam = _account().client("iam")
    log = CallLog(actor_label="tester", actor_id=None, customer_id=None)
    message = f"1 validation error detected: Value '{PASSWORD}' at 'password' failed to satisfy constraint"
    with Stubber(iam) as stub:
        stub.add_client_error(
            "create_login_profile", service_error_code="ValidationError", service_message=message, http_status_code=400
        )
        token = current_call_log.set(log)
        try:
            with pytest.raises(Exception) as caught:
                iam.create_login_profile(UserName="lead", Password=PASSWORD)
        finally:
            current_call_log.reset(token)
    (event,) = log.drain()
    assert event.outcome == "error" and event.error_code == "ValidationError"
    assert event.details["http_status"] == 400
    assert PASSWORD not in _flat(event.details) and REDACTED in event.details["error_message"]
    # The sentence shown to the tech lead (and put in the step's audit row) is redacted too.
    assert PASSWORD not in str(error_translate(caught.value, doing="Creating the console password"))
