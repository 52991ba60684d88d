"""The onboarding spec: one schema, one validator.

The browser form, `manage.py onboard --spec` and the plan all go through
`spec_parse`, so a spec file fails with the same messages as the form.
"""

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from provisioning import documents
from provisioning.vocabulary import Access, MediaScope, MemberRole, validate_customer_name

COMMERCIAL_REGIONS = (
    ("us-east-1", "US East (N. Virginia)"),
    ("us-east-2", "US East (Ohio)"),
    ("us-west-1", "US West (N. California)"),
    ("us-west-2", "US West (Oregon)"),
    ("af-south-1", "Africa (Cape Town)"),
    ("ap-east-1", "Asia Pacific (Hong Kong)"),
    ("ap-south-1", "Asia Pacific (Mumbai)"),
    ("ap-south-2", "Asia Pacific (Hyderabad)"),
    ("ap-southeast-1", "Asia Pacific (Singapore)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
    ("ap-southeast-3", "Asia Pacific (Jakarta)"),
    ("ap-southeast-4", "Asia Pacific (Melbourne)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "Asia Pacific (Seoul)"),
    ("ap-northeast-3", "Asia Pacific (Osaka)"),
    ("ca-central-1", "Canada (Central)"),
    ("ca-west-1", "Canada West (Calgary)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("eu-central-2", "Europe (Zurich)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("eu-west-2", "Europe (London)"),
    ("eu-west-3", "Europe (Paris)"),
    ("eu-south-1", "Europe (Milan)"),
    ("eu-south-2", "Europe (Spain)"),
    ("eu-north-1", "Europe (Stockholm)"),
    ("il-central-1", "Israel (Tel Aviv)"),
    ("me-south-1", "Middle East (Bahrain)"),
    ("me-central-1", "Middle East (UAE)"),
    ("sa-east-1", "South America (São Paulo)"),
)
REGION_CODES = frozenset(code for code, _ in COMMERCIAL_REGIONS)

# AWS managed policies a team member (not a tech lead) may be given.
MEMBER_POLICIES = (
    ("", "No policy"),
    ("ReadOnlyAccess", "ReadOnlyAccess"),
    ("PowerUserAccess", "PowerUserAccess"),
    ("AmazonS3FullAccess", "AmazonS3FullAccess"),
    ("AmazonEC2ContainerRegistryPowerUser", "AmazonEC2ContainerRegistryPowerUser"),
    ("job-function/ViewOnlyAccess", "job-function/ViewOnlyAccess"),
    ("job-function/Billing", "job-function/Billing"),
)
MEMBER_POLICY_NAMES = frozenset(name for name, _ in MEMBER_POLICIES)
TECH_LEAD_POLICIES = ("AdministratorAccess", "job-function/Billing")
MAX_TEAM = 50

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# AWS's patterns are ASCII: a Unicode \w or \d (a Cyrillic "А", an Arabic-Indic digit) is not in them.
_ROLE_ARN = re.compile(r"^arn:aws:iam::([0-9]{12}):role/(?:[A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


def validate_account_id(value: str) -> None:
    if not _ACCOUNT.match(value or ""):
        raise ValidationError("An AWS account id is exactly 12 digits.")


def validate_region(value: str) -> None:
    if value not in REGION_CODES:
        raise ValidationError("Choose one of the AWS commercial regions.")


@functools.cache
def _service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def _model_rule(service: str, operation: str, member: str) -> tuple[re.Pattern | None, int, int]:
    """The pattern and lengths of a request parameter, from botocore's service model: AWS's own rule, read at
    run time. Its patterns use \\w, which AWS means as ASCII: compiled with re.ASCII, applied to the whole value."""
    shape = _service_model(service).operation_model(operation).input_shape.members[member]
    rules = shape.metadata
    pattern = re.compile(rules["pattern"], re.ASCII) if "pattern" in rules else None
    return pattern, rules.get("min", 0), rules.get("max", 2**31)


def model_allows(value: str, *, service: str, operation: str, member: str) -> bool:
    pattern, shortest, longest = _model_rule(service, operation, member)
    return shortest <= len(value) <= longest and (pattern is None or pattern.fullmatch(value) is not None)


def validate_iam_user_name(value: str) -> None:
    if not model_allows(value or "", service="iam", operation="CreateUser", member="UserName"):
        raise ValidationError("An IAM user name is 1 to 64 characters of letters, digits and + = , . @ _ - only.")


def validate_group_name(value: str) -> None:
    if not model_allows(value or "", service="iam", operation="CreateGroup", member="GroupName"):
        raise ValidationError("A group name is 1 to 128 characters of letters, digits and + = , . @ _ - only.")


def validate_policy_name(value: str) -> None:
    if not model_allows(value or "", service="iam", operation="CreatePolicy", member="PolicyName"):
        raise ValidationError(
            f"The policy's name {value[:140]} is not a valid IAM policy name "
            "(1 to 128 characters of letters, digits and + = , . @ _ -)."
        )


def validate_account_alias(value: str) -> None:
    if not model_allows(value or "", service="iam", operation="CreateAccountAlias", member="AccountAlias"):
        raise ValidationError(
            "An account alias is 3 to 63 lowercase letters, digits and hyphens; it does not start or end "
            "with a hyphen, nor have two hyphens in a row."
        )


def validate_bucket_name(value: str) -> None:
    value = value or ""
    if not 3 <= len(value) <= 63:
        raise ValidationError("A bucket name is 3 to 63 characters long.")
    if not _BUCKET.match(value):
        raise ValidationError(
            "A bucket name uses lowercase letters, digits, dots and hyphens, "
            "and starts and ends with a letter or digit."
        )
    if ".." in value:
        raise ValidationError("A bucket name cannot contain two dots in a row.")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        pass
    else:
        raise ValidationError("A bucket name cannot look like an IP address.")
    if value.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        raise ValidationError("A bucket name cannot start with xn--, sthree- or amzn-s3-demo-.")
    if value.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")):
        raise ValidationError("A bucket name cannot end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3.")


def validate_bucket(value: str) -> None:
    """The bucket's own rules, and the policy named after it (MediaManagement-<bucket>) must be a valid name."""
    validate_bucket_name(value)
    validate_policy_name(documents.media_policy_name(scope=MediaScope.BUCKET, bucket=value))


def validate_ecr_name(value: str) -> None:
    if not model_allows(value or "", service="ecr", operation="CreateRepository", member="repositoryName"):
        raise ValidationError(
            "An ECR repository name is 2 to 256 lowercase letters and digits, in parts separated by '.', '_', "
            "'__', hyphens or '/'."
        )


def _ascii_host(host: str) -> str | None:
    """A host name in its ASCII form (IDNA: bücher.example is xn--bcher-kva.example), or None when it is
    not one: labels of letters, digits and inner hyphens, 63 at most each, 253 in all, not all digits."""
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return ascii_host


_ORIGIN_SHAPE = (
    "The app's origin is a scheme and host only (and an optional port), like https://app.example.com: "
    "no path, query, wildcard or space."
)


def _origin_parts(value: str) -> tuple[str, str, int | None]:
    """(scheme, ASCII host, port or None) of an origin, or ValidationError. Nothing but those three: no
    path, query, fragment, user, wildcard or space, not even an empty `?` or `#`."""
    if any(c.isspace() or c in "?#*\\" for c in value) or not value.isprintable():
        raise ValidationError(_ORIGIN_SHAPE)
    parts = urlsplit(value)
    host = parts.hostname or ""
    local = host in _LOCAL_HOSTS
    if parts.scheme not in ({"https", "http"} if local else {"https"}):
        raise ValidationError("The app's origin must start with https:// (http:// only for localhost).")
    if not host or parts.path not in ("", "/") or "@" in parts.netloc:
        raise ValidationError(_ORIGIN_SHAPE)
    try:
        port = parts.port  # parsing the port is the check
    except ValueError as exc:
        raise ValidationError("The app's origin has an invalid port.") from exc
    if port == 0:
        raise ValidationError("The app's origin has an invalid port.")
    ascii_host = host if local else _ascii_host(host)
    if ascii_host is None:
        raise ValidationError("The app's origin needs a valid host name, like app.example.com.")
    return parts.scheme, ascii_host, port


def validate_origin(value: str) -> None:
    _origin_parts(value or "")


def validate_role_arn(value: str, account_id: str | None = None) -> None:
    match = _ROLE_ARN.match(value or "")
    if not match:
        raise ValidationError("A role ARN looks like arn:aws:iam::123456789012:role/OnrampAccess.")
    if account_id and match.group(1) != account_id:
        raise ValidationError(f"This role is in account {match.group(1)}, not in the customer's account {account_id}.")


def validate_external_id(value: str) -> None:
    if not _EXTERNAL_ID.match(value or ""):
        raise ValidationError("An external id is 2 to 1224 characters of letters, digits and + = , . @ : / _ -.")


def normalize_origin(value: str) -> str:
    """The origin as a browser sends it in its Origin header: ASCII host, no default port, no slash."""
    try:
        scheme, host, port = _origin_parts(value)
    except ValidationError:
        return value.rstrip("/")
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


@dataclass(frozen=True)
class TeamMember:
    email: str
    role: str = MemberRole.MEMBER
    policy: str = ""  # for members: an AWS managed policy name, or ""
    console: bool = True

    @property
    def is_tech_lead(self) -> bool:
        return self.role == MemberRole.TECH_LEAD

    @property
    def policies(self) -> tuple[str, ...]:
        if self.is_tech_lead:
            return TECH_LEAD_POLICIES
        return (self.policy,) if self.policy else ()


@dataclass(frozen=True)
class Spec:
    customer: str
    account_id: str
    region: str
    app_name: str
    bucket: str
    app_origin: str
    ecr_repository: str
    access: str = Access.ROLE
    role_arn: str = ""
    external_id: str = ""
    account_alias: str = ""
    group_name: str = "Apps"
    media_scope: str = MediaScope.BUCKET  # least privilege by default; ALL is the runbook's
    team: tuple[TeamMember, ...] = field(default_factory=tuple)

    @property
    def uses_role(self) -> bool:
        return self.access == Access.ROLE

    @property
    def covers_all_buckets(self) -> bool:
        return self.media_scope == MediaScope.ALL

    @property
    def has_tech_lead(self) -> bool:
        return any(member.is_tech_lead for member in self.team)

    def to_json(self) -> dict:
        data = asdict(self)
        data["team"] = [asdict(member) for member in self.team]
        return data


class SpecError(Exception):
    """The spec is not valid; `errors` maps each field (team.N.field for members) to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()))


# The spec's fields, as the Spec dataclass declares them: the required ones have no default.
FIELDS = tuple(f.name for f in fields(Spec))
_FIELDS = frozenset(FIELDS)
_REQUIRED = tuple(f.name for f in fields(Spec) if f.default is MISSING and f.default_factory is MISSING)


def _text(data: dict, name: str, errors: dict, limit: int = 2048) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.setdefault(name, []).append("Enter text.")
        return ""
    try:
        value = str(value).strip()
    except ValueError:  # an int past Python's 4300-digit str() limit
        errors.setdefault(name, []).append(f"Keep this under {limit} characters.")
        return ""
    if len(value) > limit:
        errors.setdefault(name, []).append(f"Keep this under {limit} characters.")
        return ""
    if "\x00" in value:  # PostgreSQL cannot store NUL in text or jsonb
        errors.setdefault(name, []).append("Remove the NUL character (\\x00).")
        return ""
    return value


def _check(errors: dict, name: str, validator, *args) -> None:
    try:
        validator(*args)
    except ValidationError as exc:
        errors.setdefault(name, []).extend(exc.messages)


def _parse_member(index: int, raw, errors: dict) -> TeamMember | None:
    prefix = f"team.{index}."
    if not isinstance(raw, dict):
        errors.setdefault(f"team.{index}", []).append("A team member is an object with email, role, policy, console.")
        return None
    local: dict[str, list[str]] = {}
    email = _text(raw, "email", local, 254).lower()
    if not email:
        local.setdefault("email", []).append("Enter the member's work email.")
    else:
        _check(local, "email", validate_email, email)
        if "email" not in local:
            _check(local, "email", validate_iam_user_name, email)
    role = _text(raw, "role", local, 20) or MemberRole.MEMBER
    if role not in MemberRole.values:
        local.setdefault("role", []).append("The role is tech_lead or member.")
    policy = _text(raw, "policy", local, 128)
    if role == MemberRole.TECH_LEAD:
        policy = ""
    elif policy not in MEMBER_POLICY_NAMES:
        local.setdefault("policy", []).append("Choose one of the listed AWS managed policies, or none.")
    console = raw.get("console", True)
    if not isinstance(console, bool):
        local.setdefault("console", []).append("Console access is true or false.")
    for name, messages in local.items():
        errors.setdefault(prefix + name, []).extend(messages)
    if local:
        return None
    return TeamMember(email=email, role=role, policy=policy, console=console)


# Each named field's validator, run when the field has a value.
_VALIDATORS = {
    "account_id": validate_account_id,
    "region": validate_region,
    "app_name": validate_iam_user_name,
    "customer": validate_customer_name,
    "bucket": validate_bucket,
    "app_origin": validate_origin,
    "ecr_repository": validate_ecr_name,
    "account_alias": validate_account_alias,
}


def _parse_fields(data: dict, errors: dict) -> dict:
    """Every text field, checked; defaults filled in."""
    v = {name: _text(data, name, errors) for name in FIELDS if name != "team"}
    for name in _REQUIRED:
        if not v[name] and name not in errors:
            errors.setdefault(name, []).append("This field is required.")
    v["customer"] = v["customer"][:200]
    for name, validator in _VALIDATORS.items():
        if v[name]:
            _check(errors, name, validator, v[name])
    if v["app_origin"]:
        v["app_origin"] = normalize_origin(v["app_origin"])
    v["group_name"] = v["group_name"] or "Apps"
    _check(errors, "group_name", validate_group_name, v["group_name"])
    v["media_scope"] = v["media_scope"] or MediaScope.BUCKET
    if v["media_scope"] not in MediaScope.values:
        errors.setdefault("media_scope", []).append("The MediaManagement scope is bucket (this bucket only) or all.")
    _parse_access(v, errors)
    return v


def _parse_access(v: dict, errors: dict) -> None:
    """How Onramp reaches the account: a role needs its ARN (in the spec's account) and external id."""
    v["access"] = v["access"] or Access.ROLE
    if v["access"] not in Access.values:
        errors.setdefault("access", []).append(
            "Onramp reaches the account by a role (role) or an IAM user's keys (keys)."
        )
    elif v["access"] == Access.ROLE:
        if not v["role_arn"]:
            errors.setdefault("role_arn", []).append("Enter the role Onramp assumes in the customer's account.")
        else:
            # Compare with the account only when that id is itself valid: one mistake, one message.
            account = v["account_id"] if "account_id" not in errors and v["account_id"] else None
            _check(errors, "role_arn", validate_role_arn, v["role_arn"], account)
        if not v["external_id"]:
            errors.setdefault("external_id", []).append("Enter the external id of the role's trust policy.")
        else:
            _check(errors, "external_id", validate_external_id, v["external_id"])


def _parse_team(raw_team, app_name: str, errors: dict) -> tuple[TeamMember, ...]:
    if raw_team is None:
        raw_team = []
    if not isinstance(raw_team, list):
        errors.setdefault("team", []).append("The team is a list of members.")
        return ()
    if len(raw_team) > MAX_TEAM:
        errors.setdefault("team", []).append(f"At most {MAX_TEAM} team members per onboarding.")
        return ()
    team: list[TeamMember] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_team):
        member = _parse_member(index, raw, errors)
        if member is None:
            continue
        if member.email in seen:
            errors.setdefault(f"team.{index}.email", []).append("This email is already in the team.")
        elif member.email == app_name.lower():
            errors.setdefault(f"team.{index}.email", []).append("This email is the app's IAM user name.")
        else:
            seen.add(member.email)
            team.append(member)
    return tuple(team)


def spec_parse(data: Mapping[str, Any]) -> Spec:
    """Validate raw spec data (from JSON or a form) and return a Spec, or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError({"spec": ["The spec is a JSON object."]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        errors["spec"] = [f"Unknown field(s): {', '.join(unknown)[:300]}."]
    values = _parse_fields(data, errors)
    team = _parse_team(data.get("team", []), values["app_name"], errors)
    if errors:
        raise SpecError(errors)
    if values["access"] == Access.KEYS:
        values["role_arn"] = values["external_id"] = ""
    return Spec(team=team, **values)


def spec_from_json(data: dict) -> Spec:
    """A Spec from what Spec.to_json() stored on a run: it was validated when it was stored, so each of
    the run's steps rebuilds it without validating it again."""
    return Spec(**{**data, "team": tuple(TeamMember(**member) for member in data.get("team", []))})
