"""AWS's errors in words: which codes are retried, which mean an expired session or an opt-in region, and a
refusal explained with the action, the resource and the role's condition (error_translate)."""

import re

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from provisioning.audit.chain import redact
from provisioning.errors import AwsError, OnrampError
from provisioning.kinds import REGISTRY
from provisioning.registry import (
    MANAGED_BY_WORDS,
    ONRAMP_PATH,
    ROLE_TEMPLATE_VERSION,
)

EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "ServiceFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ConcurrentModification",
        "ConcurrentModificationException",
        "OperationAborted",
    }
)
_EXPLAINED = {
    "UnauthorizedOperation": "Onramp's identity in the customer's account is not allowed to do this.",
    "InvalidClientTokenId": "The access key Onramp uses for this customer is not valid. Replace it in the admin.",
    "SignatureDoesNotMatch": "The secret key Onramp uses for this customer is wrong. Replace it in the admin.",
    "LimitExceeded": "The account reached an IAM limit for this (for access keys: two per user). "
    "Remove an unused one and retry.",
    "EntityTemporarilyUnmodifiable": "AWS is still settling this IAM entity. Retry in a minute.",
    "MalformedPolicyDocument": "AWS refused the policy document as malformed.",
    "NoSuchBucket": "The bucket is not in the customer's account: it was deleted outside Onramp, or AWS had not "
    "finished creating it. Retry the failed steps in a minute; if it is still missing, start the onboarding "
    "again (a new run creates the bucket).",
    "PasswordPolicyViolation": "The account's password policy refused the console password Onramp generated "
    "(24 characters with upper- and lower-case letters, digits and symbols): it asks for more, such as a "
    "longer minimum length, or refuses a password used before. Relax it in IAM (Account settings, Password "
    "policy), then retry the failed steps.",
}
# A session Onramp renews by itself (RoleSession); said only if AWS still refuses the renewed one.
_EXPIRED = (
    "AWS says Onramp's session in the customer's account expired, even after Onramp renewed it. Check the "
    "portal machine's clock (AWS refuses requests more than 5 minutes off), then retry the failed steps."
)
_UNRECOGNIZED_KEY = frozenset({"InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure"})
# Regions an account must enable before anything works there (AWS Account Management, "opt-in Regions").
OPT_IN_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)
# AWS's AccessDenied names the action: "User: arn:… is not authorized to perform: iam:CreateUser on resource: …"
PORTAL_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")

_DENIED_ACTION = re.compile(r"not authorized to perform:? ([a-z0-9-]+:[A-Za-z0-9*]+)")
_DENIED_CALLER = re.compile(r"User: (\S+) is not authorized")
# AWS's message names the resource it checked ("… on resource: arn:aws:iam::…:user/bob because …"); it never says
# whether a condition failed, only the kind of deny.
_DENIED_RESOURCE = re.compile(r" on resource: (.+?)(?: because | with an explicit deny|$)")
# The actions that Onramp's own identity calls, on the customer's role (its trust policy allows them too).


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "") or ""


# What a boto3 call raises when AWS gave no usable answer (ClientError is AWS's own refusal).
NO_ANSWER_ERRORS = (BotoCoreError, ResponseParserError)


def _denied(aws_message: str, operation: str) -> str:
    """Which action AWS refused, quoted from its message, and whose policy lacks it."""
    found = _DENIED_ACTION.search(aws_message)
    action = found.group(1) if found else ""
    caller = _DENIED_CALLER.search(aws_message)
    if operation == "AssumeRole" and caller and ":assumed-role/" in caller.group(1):
        # AWS keeps the first source identity through role chaining and refuses another (IAM User Guide, "Monitor
        # and control actions taken with assumed roles"); its AccessDenied does not say that is why.
        return (
            f"AWS refused sts:AssumeRole on the customer's role to Onramp's own identity, which is itself a role "
            f"session ({caller.group(1)}). A role session assumed with a source identity keeps it through role "
            "chaining and AWS refuses to change it, so Onramp cannot name the person who started this in the "
            "customer's CloudTrail: run Onramp with an identity that carries no source identity (its own role or "
            "IAM user, not a session someone assumed with --source-identity). If it carries none, the role's trust "
            "policy or Onramp's own policy refused it: deploy the CloudFormation template from the customer's "
            "admin page again."
        )
    if operation == "AssumeRole" or action in PORTAL_ACTIONS:
        return (
            f"AWS refused {action or 'sts:AssumeRole'} on the customer's role. Either Onramp's own identity lacks it "
            '(its policy is on the customer\'s admin page and in docs/deploying.md, "Going to real AWS"), or the '
            "role's trust policy does not allow it for Onramp's account with this external id: deploy the "
            "CloudFormation template from the customer's admin page again."
        )
    if not action:
        return (
            "Onramp's identity in the customer's account is not allowed to do this. Check the role's permissions "
            "(the CloudFormation template on the customer's admin page has them all)."
        )
    if caller and ":user/" in caller.group(1):
        return (
            "Onramp's identity in the customer's account is not allowed to do this: the IAM user whose keys Onramp "
            f"uses lacks {action}. Give it the policy of the CloudFormation template on the customer's admin page, "
            "which grants every action Onramp calls."
        )
    resource = _DENIED_RESOURCE.search(aws_message)
    return _role_denied(action, resource.group(1).strip() if resource else "")


def _condition_words(condition: tuple) -> str:
    words = []
    for operator, key, values in condition:
        if key.startswith("aws:ResourceTag/"):
            words.append(f"the resource is tagged {key.removeprefix('aws:ResourceTag/')}={' or '.join(values)}")
        else:
            words.append(f"{key} is {' or '.join(values)} ({operator})")
    return " and ".join(words)


def _role_denied(action: str, resource: str) -> str:
    """The customer's role was refused `action`: from the template this Onramp deploys (the preflight refuses an
    older one), whether the role lacks the action or one of its conditions refused it."""
    on = f" on {resource}" if resource else ""
    grants = REGISTRY.grants(action)
    template = f"Onramp's template (version {ROLE_TEMPLATE_VERSION})"
    if not grants:
        return (
            f"Onramp's identity in the customer's account is not allowed to do this: the customer's role lacks "
            f"{action}, and {template} does not grant it either. This is a defect of Onramp: report it with this "
            "sentence."
        )
    if any(not condition and where == "*" for condition, where in grants):
        return (
            f"Onramp's identity in the customer's account is not allowed to do this: the customer's role lacks "
            f"{action}{on}, which {template} grants without a condition. The role was changed by hand, or something "
            "beyond it refused (a service control policy, a permissions boundary, an explicit deny): update it with "
            "the CloudFormation template on the customer's admin page (Update stack), and check those."
        )
    limits = "; or ".join(
        " and ".join(filter(None, [_condition_words(condition), f"it is {where}" if where != "*" else ""]))
        for condition, where in grants
    )
    if any(where != "*" for condition, where in grants):
        # Users and groups: the role reaches only its own path (provisioning.registry ONRAMP_PATH).
        why = (
            f"Onramp acts only on the IAM users and groups in its path {ONRAMP_PATH}, those it made and those the "
            "customer moved there to hand them over: this one is outside it."
        )
    else:
        why = (
            f"Onramp acts only on what it tagged {MANAGED_BY_WORDS} when it made or adopted it: the resource was "
            "made by hand or its tag was removed."
        )
    return (
        f"Onramp's identity in the customer's account is not allowed to do this: a condition of the customer's role "
        f"refused {action}{on}. {template} allows it only when {limits}. {why}"
    )


def _explain(exc: ClientError, code: str, aws_message: str) -> str | None:
    operation = getattr(exc, "operation_name", "") or ""
    region = exc.response.get("ResponseMetadata", {}).get("OnrampRegion", "")
    if code in ("AccessDenied", "AccessDeniedException"):
        return _denied(aws_message, operation)
    if code in EXPIRED_CODES:
        return _EXPIRED
    if (code in _UNRECOGNIZED_KEY or code == "RegionDisabledException") and region in OPT_IN_REGIONS:
        return (
            f"AWS does not accept Onramp's credentials in {region}, an opt-in region: it works only once enabled "
            "in the customer's account (Account, AWS Regions) and, for a role, in Onramp's own account too. "
            "Enable it, or choose another region."
        )
    if code == "RegionDisabledException":
        # STS answers it for "the account that is being asked to generate credentials" (STS API reference):
        # for AssumeRole, the role's, the customer's.
        return (
            f"AWS STS is not activated in {region or 'this region'} for the customer's account, so AWS will not "
            "give Onramp a session there. The account's administrator activates it in the IAM console (Account "
            "settings, Security Token Service (STS), Endpoints), or choose another region; then retry."
        )
    if code in _UNRECOGNIZED_KEY and operation == "AssumeRole":
        return "Onramp's own AWS identity is not valid (its access key is unknown or deleted). Fix its credentials."
    return _EXPLAINED.get(code)


def error_translate(exc: Exception, *, doing: str = "") -> OnrampError:
    """Turn a botocore exception into an AwsError: explained, and marked retryable when it may pass."""
    prefix = f"{doing}: " if doing else ""
    if isinstance(exc, OnrampError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        aws_message = redact(exc.response.get("Error", {}).get("Message", "") or "")
        retryable = code in _RETRYABLE_CODES or status >= 500
        explained = _explain(exc, code, aws_message)
        if retryable and not explained:
            explained = "AWS is throttling or failing for now; Onramp retried with backoff and will again."
        text = explained or aws_message or "AWS refused the request."
        if explained and aws_message:
            text = f"{explained} (AWS said: {aws_message})"
        return AwsError(prefix + text, code=code or str(status), retryable=retryable)
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return AwsError(
            prefix + "Cannot reach AWS. Check the network, then retry the failed steps.",
            code="CannotReachAWS",
            retryable=True,
        )
    if isinstance(exc, ResponseParserError):
        # An answer that is not AWS's XML or JSON, e.g. a web server's own 500 page (seen from the
        # sandbox under load). botocore does not retry it; a step does, within its bounded attempts.
        return AwsError(prefix + "Onramp could not read AWS's answer.", code="UnreadableResponse", retryable=True)
    if isinstance(exc, NoCredentialsError):
        return AwsError(prefix + "Onramp has no AWS credentials of its own configured.", code="NoCredentials")
    if isinstance(exc, BotoCoreError):
        return AwsError(
            prefix + f"The AWS client failed: {type(exc).__name__}.", code=type(exc).__name__, retryable=True
        )
    return OnrampError(prefix + f"Unexpected error: {type(exc).__name__}.", code=type(exc).__name__)
