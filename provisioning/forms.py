"""The onboarding form and its team formset. Validation is the spec's (provisioning.spec)."""

from typing import cast

from django import forms
from django.contrib.auth import get_user_model
from django.forms import formset_factory

from provisioning.customers import CUSTOMER_SORTS, RunFilters
from provisioning.models import Customer, Run
from provisioning.spec import COMMERCIAL_REGIONS, FIELDS, MAX_TEAM, MEMBER_POLICIES, Spec, SpecError, spec_parse
from provisioning.vocabulary import Access, MediaScope, MemberRole, RunKind

_TEXT = {"autocomplete": "off", "spellcheck": "false"}


class OnboardingForm(forms.Form):
    """The fields of a spec. They are plain text here on purpose (no max_length, no choice check):
    spec_parse checks them, so the form and a spec file give the same message for the same mistake."""

    customer = forms.ModelChoiceField(
        queryset=Customer.objects.filter(is_active=True),
        required=False,
        empty_label="— New customer —",
        help_text="Pick a customer on record, or leave this and name a new one.",
        error_messages={"invalid_choice": "Pick a customer from the list, or name a new one."},
    )
    new_customer_name = forms.CharField(label="New customer's name", max_length=200, required=False)
    account_id = forms.CharField(
        label="AWS account id",
        required=False,
        widget=forms.TextInput(attrs={**_TEXT, "inputmode": "numeric", "placeholder": "123456789012"}),
        help_text="12 digits: the account menu at the top right of the AWS console.",
    )
    region = forms.CharField(widget=forms.Select(choices=COMMERCIAL_REGIONS), initial="us-east-1", required=False)
    access = forms.CharField(
        label="How Onramp reaches the account",
        widget=forms.RadioSelect(choices=Access.choices),
        initial=Access.ROLE,
        required=False,
    )
    role_arn = forms.CharField(
        label="Role ARN",
        required=False,
        widget=forms.TextInput(attrs={**_TEXT, "placeholder": "arn:aws:iam::123456789012:role/OnrampAccess"}),
    )
    external_id = forms.CharField(
        label="External id",
        required=False,
        widget=forms.TextInput(attrs=_TEXT),
        help_text="The sts:ExternalId condition of the role's trust policy.",
    )
    access_key_id = forms.CharField(
        label="Access key id",
        max_length=128,
        required=False,
        widget=forms.TextInput(attrs=_TEXT),
        help_text="An IAM user's key, never the root user's.",
    )
    secret_access_key = forms.CharField(
        label="Secret access key",
        max_length=128,
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    account_alias = forms.CharField(
        label="Account alias (optional)",
        required=False,
        widget=forms.TextInput(attrs=_TEXT),
        help_text="The sign-in URL becomes https://ALIAS.signin.aws.amazon.com/console.",
    )
    group_name = forms.CharField(label="IAM group", initial="Apps", required=False, widget=forms.TextInput(attrs=_TEXT))
    app_name = forms.CharField(
        label="App name (IAM user)",
        required=False,
        widget=forms.TextInput(attrs=_TEXT),
        help_text="The app's IAM user: letters, digits and + = , . @ _ -",
    )
    bucket = forms.CharField(label="S3 bucket", required=False, widget=forms.TextInput(attrs=_TEXT))
    app_origin = forms.CharField(
        label="App origin for uploads (CORS)",
        required=False,
        widget=forms.TextInput(attrs={**_TEXT, "inputmode": "url", "placeholder": "https://app.example.com"}),
        help_text="Where the app's pages are served: uploads are allowed from there only.",
    )
    ecr_repository = forms.CharField(label="ECR repository", required=False, widget=forms.TextInput(attrs=_TEXT))
    media_scope = forms.CharField(
        label="MediaManagement policy scope",
        widget=forms.RadioSelect(choices=MediaScope.choices),
        initial=MediaScope.BUCKET,
        required=False,
    )

    # How Onramp reaches an account on record: the customer's record holds them, and only an Admin
    # changes them there (or here); everyone else sees them read-only and the run uses the record's.
    CONNECTION_FIELDS = ("access", "role_arn", "external_id", "access_key_id", "secret_access_key")

    def __init__(self, *args, lock_connection: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # An offboarded customer starts no run until an Admin reactivates them: not offered in the list. A form
        # posted with one still validates, so the view refuses it with the reason (and audits the refusal).
        picker = cast(forms.ModelChoiceField, self.fields["customer"])
        assert picker.queryset is not None  # set in the field's declaration above
        offered = picker.queryset.filter(offboarded_at__isnull=True)
        picker.choices = [("", picker.empty_label), *((c.pk, picker.label_from_instance(c)) for c in offered)]
        self.connection_locked: Customer | None = None
        if lock_connection:
            self._lock_connection()

    def _lock_connection(self) -> None:
        picked = self.data.get("customer") if self.is_bound else self.initial.get("customer")
        picked = getattr(picked, "pk", picked)
        if not str(picked or "").isdigit():
            return
        customer = Customer.objects.filter(pk=int(str(picked)), is_active=True).first()
        if customer is None:
            return
        self.connection_locked = customer
        record = {
            "access": customer.access,
            "role_arn": customer.role_arn,
            "external_id": customer.external_id,
            "access_key_id": customer.access_key_id,
            "secret_access_key": "",
        }
        for name in self.CONNECTION_FIELDS:
            # A disabled field ignores what is posted and cleans to its initial value: the record's.
            self.fields[name].disabled = True
            self.initial[name] = record[name]

    def spec_data(self) -> dict:
        # The spec's own fields; the customer and the team come from the choice and the formset.
        data = {name: self.cleaned_data.get(name, "") for name in FIELDS if name not in ("customer", "team")}
        customer = self.cleaned_data.get("customer")
        data["customer"] = customer.name if customer else self.cleaned_data.get("new_customer_name", "")
        return data


class TeamMemberForm(forms.Form):
    email = forms.CharField(label="Work email", required=False, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.CharField(
        widget=forms.Select(choices=list(reversed(MemberRole.choices))),
        initial=MemberRole.MEMBER,
        required=False,
    )
    policy = forms.CharField(label="Policy (members)", widget=forms.Select(choices=MEMBER_POLICIES), required=False)
    console = forms.BooleanField(label="Console access", required=False, initial=True)


class BaseTeamFormSet(forms.BaseFormSet):
    # The spec's words for the same limit.
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": f"At most {MAX_TEAM} team members per onboarding.",
    }

    def add_fields(self, form, index):
        super().add_fields(form, index)
        # Without JavaScript, a row is removed by ticking this; onramp.js turns it into a button
        # that takes the row out of the form.
        form.fields["DELETE"].label = "Remove this member"


# absolute_max: a forged TOTAL_FORMS builds at most this many forms (Django's default allows 1,000 more).
TeamFormSet = formset_factory(
    TeamMemberForm,
    formset=BaseTeamFormSet,
    extra=1,
    max_num=MAX_TEAM,
    validate_max=True,
    absolute_max=MAX_TEAM,
    can_delete=True,
)


def _add_error(form: forms.Form, field: str | None, message: str) -> None:
    """One message per field: the first mistake found (the form's own check, or the spec's)."""
    if field is not None and field in form.errors:
        return
    form.add_error(field, message)


def _team_rows(formset) -> tuple[list[dict], list[forms.Form]]:
    """The team members typed, and the row each came from (an empty row is left out: the formset always
    offers one)."""
    members, member_forms = [], []
    for member_form in formset.forms:
        cd = getattr(member_form, "cleaned_data", None) or {}
        if not (cd.get("email") or member_form.errors) or cd.get("DELETE"):
            continue
        members.append(
            {
                "email": cd.get("email", ""),
                "role": cd.get("role", ""),
                "policy": cd.get("policy", ""),
                "console": bool(cd.get("console")),
            }
        )
        member_forms.append(member_form)
    return members, member_forms


def _check_customer(form: OnboardingForm, data: dict) -> None:
    """One customer per account: the one picked owns the account id, and a new one takes no known account."""
    customer = form.cleaned_data.get("customer")
    if customer is None and "customer" not in form.errors and not form.cleaned_data.get("new_customer_name"):
        _add_error(form, "new_customer_name", "Pick a customer or name a new one.")
    if customer is not None and data["account_id"] and customer.aws_account_id != data["account_id"]:
        _add_error(form, "account_id", f"{customer.name}'s AWS account is {customer.aws_account_id}.")
    if customer is None and data["account_id"]:
        other = Customer.objects.filter(aws_account_id=data["account_id"]).first()
        if other is not None:
            _add_error(form, "account_id", f"This account belongs to the customer {other.name}: pick it above.")


def _check_keys(form: OnboardingForm, kept_key_id: str) -> None:
    """With the customer's IAM user keys: both the id and its secret, unless stored or kept in the draft."""
    customer = form.cleaned_data.get("customer")
    has_stored = customer is not None and customer.has_stored_keys
    key_id = form.cleaned_data.get("access_key_id", "")
    secret = form.cleaned_data.get("secret_access_key", "")
    if key_id and key_id == kept_key_id:
        secret = secret or "kept"
    if not has_stored and not (key_id and secret):
        _add_error(form, "access_key_id", "Enter the IAM user's access key id and secret, or use a role.")
    elif bool(key_id) != bool(secret):
        _add_error(form, "secret_access_key", "Enter both the access key id and its secret.")


def _place_spec_errors(form: OnboardingForm, formset, member_forms: list, errors: dict[str, list[str]]) -> None:
    """Each of the spec's messages next to the field it is about (team.N.field on the member's row)."""
    for name, messages in errors.items():
        target, field = form, None
        if name.startswith("team."):
            parts = name.split(".")
            index = int(parts[1]) if parts[1].isdigit() else -1
            if not 0 <= index < len(member_forms):
                formset._non_form_errors.extend(messages)
                continue
            target, field = member_forms[index], (parts[2] if len(parts) > 2 else None)
        elif name == "customer":
            if "customer" in form.errors:
                continue
            field = "new_customer_name"
        elif name in form.fields:
            field = name
        elif name == "team":
            formset._non_form_errors.extend(messages)
            continue
        for message in messages[:1] if field else messages:
            _add_error(target, field, message)


def onboarding_validate(form: OnboardingForm, formset: forms.BaseFormSet, *, kept_key_id: str = "") -> Spec | None:
    """Run the spec's validator over the form and the formset; put each message next to its field.

    Every field is checked even when another one is wrong, so the user sees all the mistakes at once.
    kept_key_id: the access key id whose secret the session draft already holds (encrypted), so
    "Edit" then "Preview" again does not ask for the secret a second time.
    """
    form.is_valid()
    formset.is_valid()
    data = form.spec_data()
    data["team"], member_forms = _team_rows(formset)
    _check_customer(form, data)
    if data["access"] == Access.KEYS and form.connection_locked is not None:
        if not form.connection_locked.has_stored_keys:
            _add_error(form, "access", "This customer has no stored keys: ask an Admin to set them on its record.")
    elif data["access"] == Access.KEYS:
        _check_keys(form, kept_key_id)
    try:
        spec = spec_parse(data)
    except SpecError as exc:
        _place_spec_errors(form, formset, member_forms, exc.errors)
        return None
    if form.errors or formset.non_form_errors() or any(f.errors for f in formset.forms):
        return None
    return spec


def onboarding_form_data(*, spec: dict, customer: Customer | None) -> dict:
    """A spec as the onboarding form posts it (team rows included), to open the form on it: "Edit and start
    again" from a run, "Change team / settings" from a customer's current desired state."""
    data = {name: str(spec.get(name) or "") for name in FIELDS if name not in ("customer", "team")}
    data |= {
        "customer": str(customer.pk) if customer else "",
        "new_customer_name": "" if customer else spec.get("customer", ""),
        "access_key_id": customer.access_key_id if customer else "",
    }
    team = spec.get("team", [])
    data |= {"team-TOTAL_FORMS": str(len(team)), "team-INITIAL_FORMS": "0"}
    data |= {"team-MIN_NUM_FORMS": "0", "team-MAX_NUM_FORMS": str(MAX_TEAM)}
    for index, member in enumerate(team):
        data |= {f"team-{index}-{name}": str(member.get(name) or "") for name in ("email", "role", "policy")}
        if member.get("console"):
            data[f"team-{index}-console"] = "on"
    return data


_SEARCH = {"type": "search", "autocomplete": "off", "spellcheck": "false"}


class RunFilterForm(forms.Form):
    """The Runs page's filters (GET): any of customer, kind, status and person, and a customer name search."""

    customer = forms.ModelChoiceField(
        queryset=Customer.objects.order_by("name"), to_field_name="slug", required=False, empty_label="Any customer"
    )
    kind = forms.ChoiceField(choices=[("", "Any kind"), *RunKind.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *Run.Status.choices], required=False)
    person = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(runs__isnull=False).distinct().order_by("username"),
        to_field_name="username",
        required=False,
        empty_label="Anyone",
        label="Started by",
    )
    q = forms.CharField(label="Customer name contains", max_length=200, required=False, widget=forms.TextInput(_SEARCH))

    def filters(self) -> RunFilters:
        data = self.cleaned_data
        return RunFilters(
            customer_id=data["customer"].pk if data.get("customer") else None,
            kind=data.get("kind", ""),
            status=data.get("status", ""),
            person_id=data["person"].pk if data.get("person") else None,
            q=data.get("q", "").strip(),
        )


class CustomerSearchForm(forms.Form):
    """The Customers list's search and order (GET)."""

    q = forms.CharField(
        label="Name or account id contains", max_length=200, required=False, widget=forms.TextInput(_SEARCH)
    )
    sort = forms.ChoiceField(
        choices=[(name, name) for name in CUSTOMER_SORTS], required=False, widget=forms.HiddenInput
    )
