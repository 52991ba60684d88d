"""The onboarding form and its team formset. Validation is the spec's (provisioning.spec)."""

from django import forms
from django.forms import formset_factory

from provisioning.models import Customer
from provisioning.spec import COMMERCIAL_REGIONS, MEMBER_POLICIES, Spec, SpecError, spec_parse

_TEXT = {"autocomplete": "off", "spellcheck": "false"}


class OnboardingForm(forms.Form):
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.filter(is_active=True),
        required=False,
        empty_label="— New customer —",
        help_text="Pick a customer on record, or leave this and name a new one.",
    )
    new_customer_name = forms.CharField(label="New customer's name", max_length=200, required=False)
    account_id = forms.CharField(
        label="AWS account id",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={**_TEXT, "inputmode": "numeric"}),
    )
    region = forms.ChoiceField(choices=COMMERCIAL_REGIONS, initial="us-east-1")
    access = forms.ChoiceField(
        label="How Onramp reaches the account",
        choices=[("role", "Assume a role with an external id (recommended)"), ("keys", "An IAM user's access keys")],
        initial="role",
        widget=forms.RadioSelect,
    )
    role_arn = forms.CharField(label="Role ARN", max_length=2048, required=False, widget=forms.TextInput(attrs=_TEXT))
    external_id = forms.CharField(
        label="External id", max_length=1224, required=False, widget=forms.TextInput(attrs=_TEXT)
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
        max_length=63,
        required=False,
        widget=forms.TextInput(attrs=_TEXT),
        help_text="The sign-in URL becomes https://ALIAS.signin.aws.amazon.com/console.",
    )
    group_name = forms.CharField(
        label="IAM group", max_length=128, initial="Apps", required=False, widget=forms.TextInput(attrs=_TEXT)
    )
    app_name = forms.CharField(
        label="App name (IAM user)", max_length=64, required=False, widget=forms.TextInput(attrs=_TEXT)
    )
    bucket = forms.CharField(label="S3 bucket", max_length=63, required=False, widget=forms.TextInput(attrs=_TEXT))
    app_origin = forms.CharField(
        label="App origin for uploads (CORS)",
        max_length=300,
        required=False,
        widget=forms.TextInput(attrs={**_TEXT, "placeholder": "https://app.example.com"}),
    )
    ecr_repository = forms.CharField(
        label="ECR repository", max_length=256, required=False, widget=forms.TextInput(attrs=_TEXT)
    )
    media_scope = forms.ChoiceField(
        label="MediaManagement policy scope",
        choices=[
            ("bucket", "This bucket only (least privilege)"),
            ("all", "Every bucket in the account, as the runbook has it"),
        ],
        initial="bucket",
        widget=forms.RadioSelect,
    )

    def spec_data(self) -> dict:
        data = {
            name: self.cleaned_data.get(name, "")
            for name in (
                "account_id",
                "region",
                "access",
                "role_arn",
                "external_id",
                "account_alias",
                "group_name",
                "app_name",
                "bucket",
                "app_origin",
                "ecr_repository",
                "media_scope",
            )
        }
        customer = self.cleaned_data.get("customer")
        data["customer"] = customer.name if customer else self.cleaned_data.get("new_customer_name", "")
        return data


class TeamMemberForm(forms.Form):
    email = forms.CharField(
        label="Work email", max_length=254, required=False, widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    role = forms.ChoiceField(
        choices=[("member", "Member"), ("tech_lead", "Tech lead (AdministratorAccess + Billing)")], initial="member"
    )
    policy = forms.ChoiceField(label="Policy (members)", choices=MEMBER_POLICIES, required=False)
    console = forms.BooleanField(label="Console access", required=False, initial=True)


TeamFormSet = formset_factory(TeamMemberForm, extra=1, max_num=50, validate_max=True)


def onboarding_validate(form: OnboardingForm, formset) -> Spec | None:
    """Run the spec's validator over the form and the formset; put each message next to its field."""
    if not (form.is_valid() and formset.is_valid()):
        return None
    data = form.spec_data()
    members, member_forms = [], []
    for member_form in formset.forms:
        cd = member_form.cleaned_data
        if not cd or not cd.get("email") or cd.get("DELETE"):
            continue
        members.append(
            {
                "email": cd["email"],
                "role": cd["role"],
                "policy": cd.get("policy", ""),
                "console": bool(cd.get("console")),
            }
        )
        member_forms.append(member_form)
    data["team"] = members
    customer = form.cleaned_data.get("customer")
    if customer is None and not form.cleaned_data.get("new_customer_name"):
        form.add_error("new_customer_name", "Pick a customer or name a new one.")
    if customer is not None and data["account_id"] and customer.aws_account_id != data["account_id"]:
        form.add_error("account_id", f"{customer.name}'s AWS account is {customer.aws_account_id}.")
    if customer is None and data["account_id"]:
        other = Customer.objects.filter(aws_account_id=data["account_id"]).first()
        if other is not None:
            form.add_error("account_id", f"This account belongs to the customer {other.name}: pick it above.")
    if data["access"] == "keys":
        has_stored = customer is not None and customer.has_stored_keys
        key_id = form.cleaned_data.get("access_key_id", "")
        secret = form.cleaned_data.get("secret_access_key", "")
        if not has_stored and not (key_id and secret):
            form.add_error("access_key_id", "Enter the IAM user's access key id and secret, or use a role.")
        elif bool(key_id) != bool(secret):
            form.add_error("secret_access_key", "Enter both the access key id and its secret.")
    try:
        spec = spec_parse(data)
    except SpecError as exc:
        for name, messages in exc.errors.items():
            if name.startswith("team."):
                parts = name.split(".")
                target = (
                    member_forms[int(parts[1])] if parts[1].isdigit() and int(parts[1]) < len(member_forms) else None
                )
                field = parts[2] if len(parts) > 2 else None
                for message in messages:
                    (
                        target.add_error(field, message)
                        if target is not None
                        else formset._non_form_errors.append(message)
                    )
            elif name == "customer":
                for message in messages:
                    form.add_error("new_customer_name", message)
            elif name in form.fields:
                for message in messages:
                    form.add_error(name, message)
            else:
                for message in messages:
                    form.add_error(None, message)
        return None
    if form.errors or any(f.errors for f in formset.forms):
        return None
    return spec
