"""Every rule of the onboarding form, through the view: the message sits next to its field, and a spec
file with the same mistake fails with the same message (one schema: provisioning.spec)."""

import html
import re

import pytest

from provisioning.forms import OnboardingForm, TeamFormSet, onboarding_validate
from provisioning.models import Customer
from provisioning.spec import SpecError, spec_parse
from tests.conftest import CUSTOMER_ACCOUNT, form_data, spec_data

pytestmark = pytest.mark.django_db


def field_errors(content: bytes, name: str) -> list[str]:
    """The messages rendered in the error block of one field (inside that field's own wrapper)."""
    page = content.decode()
    block = re.search(
        rf'<div class="field has-error" id="field-{re.escape(name)}">(.*?)<div class="error" id="[^"]+_error" '
        rf'data-error-for="{re.escape(name)}">(.*?)</div>',
        page,
        re.S,
    )
    if block is None:
        return []
    return [html.unescape(m) for m in re.findall(r"<p>(.*?)</p>", block.group(2), re.S)]


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


def post(client, **overrides):
    response = client.post("/onboard/", form_data(**overrides))
    assert response.status_code == 200, "an invalid form is shown again, with its messages (never a 500)"
    return response


def spec_message(field: str, **overrides) -> list[str]:
    with pytest.raises(SpecError) as caught:
        spec_parse(spec_data(**overrides))
    return caught.value.errors[field]


# (form field, bad value, the message, the spec's overrides when they differ from {field: value})
RULES = [
    ("account_id", "12345", "An AWS account id is exactly 12 digits.", None),
    ("account_id", "1111222233334", "An AWS account id is exactly 12 digits.", None),
    ("account_id", "11112222333a", "An AWS account id is exactly 12 digits.", None),
    ("region", "us-gov-west-1", "Choose one of the AWS commercial regions.", None),
    ("region", "cn-north-1", "Choose one of the AWS commercial regions.", None),
    ("role_arn", "arn:aws:iam::111122223333:user/bob", "A role ARN looks like", None),
    ("role_arn", "arn:aws:iam::11112222333:role/Onramp", "A role ARN looks like", None),
    (
        "role_arn",
        "arn:aws:iam::999988887777:role/OnrampAccess",
        "This role is in account 999988887777, not in the customer's account 111122223333.",
        None,
    ),
    ("bucket", "ab", "A bucket name is 3 to 63 characters long.", None),
    ("bucket", "a" * 64, "A bucket name is 3 to 63 characters long.", None),
    ("bucket", "Acme-Media", "A bucket name uses lowercase letters, digits, dots and hyphens", None),
    ("bucket", "acme_media", "A bucket name uses lowercase letters, digits, dots and hyphens", None),
    ("bucket", "-acme-media", "starts and ends with a letter or digit", None),
    ("bucket", "acme-media-", "starts and ends with a letter or digit", None),
    ("bucket", "192.168.10.12", "A bucket name cannot look like an IP address.", None),
    ("bucket", "acme..media", "A bucket name cannot contain two dots in a row.", None),
    ("bucket", "xn--acme-media", "A bucket name cannot start with xn--, sthree-", None),
    ("bucket", "sthree-acme", "A bucket name cannot start with xn--, sthree-", None),
    ("bucket", "acme-media-s3alias", "A bucket name cannot end with -s3alias, --ol-s3", None),
    ("bucket", "acme-media--ol-s3", "A bucket name cannot end with -s3alias, --ol-s3", None),
    ("app_name", "acme app", "An IAM user name is 1 to 64 characters", None),
    ("app_name", "a" * 65, "An IAM user name is 1 to 64 characters", None),
    ("app_name", "acme/app", "An IAM user name is 1 to 64 characters", None),
    ("group_name", "Apps!", "A group name is 1 to 128 characters", None),
    ("account_alias", "ab", "An account alias is 3 to 63 lowercase letters", None),
    ("account_alias", "-acme", "An account alias is 3 to 63 lowercase letters", None),
    ("account_alias", "acme-", "An account alias is 3 to 63 lowercase letters", None),
    ("account_alias", "Acme", "An account alias is 3 to 63 lowercase letters", None),
    ("ecr_repository", "Acme", "An ECR repository name is 2 to 256 lowercase letters", None),
    ("ecr_repository", "a", "An ECR repository name is 2 to 256 lowercase letters", None),
    ("ecr_repository", "acme//app", "An ECR repository name is 2 to 256 lowercase letters", None),
    ("ecr_repository", "acme-", "An ECR repository name is 2 to 256 lowercase letters", None),
    ("app_origin", "http://acme.example.com", "The app's origin must start with https://", None),
    ("app_origin", "ftp://acme.example.com", "The app's origin must start with https://", None),
    ("app_origin", "https://acme.example.com/app", "The app's origin is a scheme and host only", None),
    ("app_origin", "https://acme.example.com?x=1", "The app's origin is a scheme and host only", None),
    ("app_origin", "acme.example.com", "The app's origin must start with https://", None),
    ("external_id", "x", "An external id is 2 to 1224 characters", None),
    # Names AWS refuses (its patterns' \w is ASCII, applied to the whole value): issue 13, point 6.
    ("account_alias", "acme--corp", "nor have two hyphens in a row", None),
    ("group_name", "Appsé", "A group name is 1 to 128 characters", None),
    ("group_name", "Apps Team", "A group name is 1 to 128 characters", None),
    ("app_name", "josé", "An IAM user name is 1 to 64 characters", None),
]


@pytest.mark.parametrize(("field", "value", "message", "_"), RULES, ids=[f"{r[0]}={r[1][:20]}" for r in RULES])
def test_each_rule_shows_its_message_next_to_the_field_and_the_spec_says_the_same(as_alice, field, value, message, _):
    response = post(as_alice, **{field: value})
    shown = field_errors(response.content, field)
    assert len(shown) == 1 and message in shown[0], shown
    assert b"before the plan can be checked" in response.content  # the summary at the top
    # The same mistake in a spec file (manage.py onboard --spec) fails with the same words.
    assert spec_message(field, **{field: value}) == shown


def test_a_required_field_left_empty_says_so_next_to_it(as_alice):
    response = post(as_alice, bucket="", app_origin="")
    assert field_errors(response.content, "bucket") == ["This field is required."]
    assert field_errors(response.content, "app_origin") == ["This field is required."]
    assert b"Fix these fields" in response.content
    assert spec_message("bucket", bucket="") == ["This field is required."]


def test_every_mistake_is_shown_at_once(as_alice):
    response = post(as_alice, account_id="12", bucket="acme..media", app_origin="http://acme.example.com")
    assert field_errors(response.content, "account_id")
    assert field_errors(response.content, "bucket")
    assert field_errors(response.content, "app_origin")
    assert not field_errors(response.content, "ecr_repository")


@pytest.mark.parametrize(
    ("origin", "stored"),
    [("http://localhost:3000", "http://localhost:3000"), ("https://acme.example.com/", "https://acme.example.com")],
)
def test_http_is_allowed_for_localhost_only_and_a_trailing_slash_is_dropped(as_alice, origin, stored):
    response = as_alice.post("/onboard/", form_data(app_origin=origin))
    assert response.status_code == 302
    assert as_alice.session["onboarding_draft"]["spec"]["app_origin"] == stored


def test_a_bucket_with_dots_and_digits_is_fine(as_alice):
    response = as_alice.post("/onboard/", form_data(bucket="media.acme-2024"))
    assert response.status_code == 302


def test_a_member_email_must_be_valid(as_alice):
    response = post(as_alice, **{"team-1-email": "not-an-email"})
    assert field_errors(response.content, "team-1-email") == ["Enter a valid email address."]
    assert not field_errors(response.content, "team-0-email")
    team = [{"email": "not-an-email", "role": "member"}]
    assert spec_message("team.0.email", team=team) == ["Enter a valid email address."]


def test_member_emails_are_unique_in_the_form(as_alice):
    response = post(as_alice, **{"team-1-email": "LEAD@agency.example"})
    assert field_errors(response.content, "team-1-email") == ["This email is already in the team."]
    team = [{"email": "lead@agency.example", "role": "tech_lead"}, {"email": "Lead@agency.example", "role": "member"}]
    assert spec_message("team.1.email", team=team) == ["This email is already in the team."]


def test_a_member_policy_must_be_one_of_the_list(as_alice):
    response = post(as_alice, **{"team-1-policy": "AdministratorAccess"})
    message = "Choose one of the listed AWS managed policies, or none."
    assert field_errors(response.content, "team-1-policy") == [message]
    assert spec_message("team.0.policy", team=[{"email": "a@b.example", "policy": "AdministratorAccess"}]) == [message]


def test_an_empty_member_row_is_ignored(as_alice):
    response = as_alice.post(
        "/onboard/", form_data(**{"team-TOTAL_FORMS": "3", "team-2-email": "", "team-2-role": "member"})
    )
    assert response.status_code == 302
    assert len(as_alice.session["onboarding_draft"]["spec"]["team"]) == 2


def test_a_customer_is_picked_or_named(as_alice):
    response = post(as_alice, new_customer_name="")
    assert field_errors(response.content, "new_customer_name") == ["Pick a customer or name a new one."]


def test_a_picked_customer_keeps_its_account(as_alice):
    customer = Customer.objects.create(name="Globex", slug="globex", aws_account_id="444455556666")
    response = post(as_alice, customer=str(customer.pk), new_customer_name="")
    assert field_errors(response.content, "account_id") == ["Globex's AWS account is 444455556666."]


def test_a_new_customer_cannot_take_an_account_on_record(as_alice):
    Customer.objects.create(name="Globex", slug="globex", aws_account_id=CUSTOMER_ACCOUNT)
    response = post(as_alice)
    assert field_errors(response.content, "account_id") == [
        "This account belongs to the customer Globex: pick it above."
    ]


def test_keys_access_asks_for_both_the_key_and_its_secret(as_alice):
    response = post(as_alice, access="keys", role_arn="", external_id="")
    assert field_errors(response.content, "access_key_id") == [
        "Enter the IAM user's access key id and secret, or use a role."
    ]
    response = as_alice.post(
        "/onboard/", form_data(access="keys", access_key_id="AKIAEXAMPLEKEY000001", secret_access_key="s" * 40)
    )
    assert response.status_code == 302
    draft = as_alice.session["onboarding_draft"]
    # The role is dropped for keys access; the secret is only in the draft as ciphertext.
    assert draft["spec"]["role_arn"] == "" and draft["keys"]["access_key_id"] == "AKIAEXAMPLEKEY000001"
    assert "s" * 40 not in str(draft)


@pytest.mark.parametrize(
    "garbage",
    [
        {"team-TOTAL_FORMS": "many"},
        {"team-TOTAL_FORMS": "100000"},
        {"customer": "not-a-number"},
        {"customer": "999999"},
        {"access": "root"},
        {"media_scope": "everything"},
        {"new_customer_name": "A" * 500},
        {"team-0-role": "owner"},
    ],
    ids=lambda g: next(iter(g)),
)
def test_a_tampered_post_gets_the_form_back_with_a_message(as_alice, garbage):
    response = post(as_alice, **garbage)
    assert b'class="error' in response.content
    assert "onboarding_draft" not in as_alice.session


def test_a_forged_team_size_builds_no_more_than_the_limit(as_alice):
    response = post(as_alice, **{"team-TOTAL_FORMS": "100000"})
    page = response.content.decode()
    assert page.count('<fieldset class="member"') <= 51  # the rows, and the template for new ones
    message = "At most 50 team members per onboarding."
    assert message in page
    assert spec_message("team", team=[{"email": f"u{i}@agency.example"} for i in range(51)]) == [message]


def test_the_form_and_the_validator_agree_without_the_view():
    form = OnboardingForm(form_data(bucket="acme..media"))
    formset = TeamFormSet(form_data(), prefix="team")
    assert onboarding_validate(form, formset) is None
    assert form.errors["bucket"] == ["A bucket name cannot contain two dots in a row."]
    form = OnboardingForm(form_data())
    formset = TeamFormSet(form_data(), prefix="team")
    spec = onboarding_validate(form, formset)
    assert spec is not None and spec == spec_parse(spec_data(customer="Acme Corp"))


@pytest.mark.parametrize(
    ("service", "operation", "member"),
    [
        ("iam", "CreateAccountAlias", "AccountAlias"),
        ("iam", "CreateUser", "UserName"),
        ("iam", "CreateGroup", "GroupName"),
        ("iam", "CreatePolicy", "PolicyName"),
        ("ecr", "CreateRepository", "repositoryName"),
    ],
)
def test_the_name_rules_are_botocores_service_model_read_at_run_time(service, operation, member):
    """Not copied: the pattern and lengths the spec applies are the model's own, compiled ASCII."""
    import re

    import botocore.session

    from provisioning.spec import _model_rule

    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    rules = shape.members[member].metadata
    pattern, shortest, longest = _model_rule(service, operation, member)
    assert (pattern.pattern, shortest, longest) == (rules["pattern"], rules["min"], rules["max"])
    assert pattern.flags & re.ASCII


@pytest.mark.parametrize("name", ["acme__app", "acme--app", "team/acme.app"])
def test_ecr_names_aws_allows_and_the_old_pattern_refused_pass(as_alice, name):
    assert as_alice.post("/onboard/", form_data(ecr_repository=name)).status_code == 302


def test_the_scoped_policys_name_is_checked_too():
    from django.core.exceptions import ValidationError

    from provisioning.spec import validate_policy_name

    validate_policy_name("MediaManagement-acme.media-2024")
    with pytest.raises(ValidationError, match="not a valid IAM policy name"):
        validate_policy_name("MediaManagement-" + "a" * 120)
