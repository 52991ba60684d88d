"""Django admin: customers for Admins (Tech leads read-only); runs, steps, credentials and audit
read-only for everyone. Thin: the documents, the connection check and the audited save live in
provisioning.customers."""

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from provisioning import customers, offboarding
from provisioning.identity.admin import SecretLookupsRefused
from provisioning.identity.permissions import is_admin
from provisioning.kinds.account_alias import declaration as account_alias
from provisioning.models import AuditEvent, Credential, Customer, DriftState, Run, StepRun
from provisioning.registry import ROLE_TEMPLATE_VERSION
from provisioning.role import template as role_template
from provisioning.teams import customer_team_changed
from provisioning.vocabulary import TECH_LEADS, Access, validate_customer_name

MAX_CHECKS = 20  # a connection check is a few AWS calls made in the request


class CustomerAdminForm(forms.ModelForm):
    # Write-only: never rendered back (render_value=False), stored only as vault ciphertext.
    secret_access_key = forms.CharField(
        label="Secret access key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Only for the “access keys” connection. Type it to set or replace the stored secret; "
        "leave empty to keep it. It is encrypted at once and never shown again.",
    )

    class Meta:
        model = Customer
        fields = (
            "name",
            "slug",
            "aws_account_id",
            "default_region",
            "access",
            "role_arn",
            "access_key_id",
            "team",
            "approval_rule",
            "contacts",
            "notes",
            "is_active",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The rule's default is a callable (APPROVAL_DEFAULT): compare with the record, not a hidden initial.
        if "approval_rule" in self.fields:  # not in a read-only view's form
            self.fields["approval_rule"].show_hidden_initial = False

    def clean_name(self):
        name = self.cleaned_data["name"]
        validate_customer_name(name)  # the spec's rule: the same name reaches emails and the webhook
        return name

    def clean(self):
        cleaned = super().clean() or {}
        secret = cleaned.get("secret_access_key")
        key_id = cleaned.get("access_key_id")
        if secret and not key_id:
            self.add_error("access_key_id", "Give the access key id that goes with this secret.")
        if cleaned.get("access") == Access.KEYS:
            stored = bool(self.instance.pk and self.instance.secret_access_key_ciphertext)
            if not key_id:
                self.add_error("access_key_id", "The “access keys” connection needs an access key id.")
            if not (secret or stored):
                self.add_error("secret_access_key", "The “access keys” connection needs the secret access key.")
        return cleaned


class LastRunStatusFilter(admin.SimpleListFilter):
    title = "last run status"
    parameter_name = "last_run"
    NEVER = "never"

    def lookups(self, request, model_admin):
        return [*Run.Status.choices, (self.NEVER, "Never run")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.NEVER:
            return queryset.filter(last_run_status__isnull=True)
        if value in Run.Status.values:
            return queryset.filter(last_run_status=value)
        return queryset


class RoleVersionFilter(admin.SimpleListFilter):
    title = "Onramp role"
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return [("outdated", "Out of date"), ("unknown", "Never checked"), ("current", "Current")]

    def queryset(self, request, queryset):
        roles = queryset.filter(access=Access.ROLE)
        if self.value() == "outdated":
            return roles.filter(role_version__lt=ROLE_TEMPLATE_VERSION)
        if self.value() == "unknown":
            return roles.filter(role_version__isnull=True)
        if self.value() == "current":
            return roles.filter(role_version__gte=ROLE_TEMPLATE_VERSION)
        return queryset


class OffboardedFilter(admin.SimpleListFilter):
    title = "offboarded"
    parameter_name = "offboarded"

    def lookups(self, request, model_admin):
        return [("yes", "Offboarded"), ("no", "Not offboarded")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(offboarded_at__isnull=self.value() == "no")
        return queryset


class DriftFilter(admin.SimpleListFilter):
    title = "drift"
    parameter_name = "drift"
    NEVER = "never"

    def lookups(self, request, model_admin):
        return [*DriftState.State.choices, (self.NEVER, "Never checked")]

    def queryset(self, request, queryset):
        if self.value() == self.NEVER:
            return queryset.filter(drift__isnull=True)
        if self.value() in DriftState.State.values:
            return queryset.filter(drift__state=self.value())
        return queryset


class ReadOnlyMixin:
    """What the engine writes is looked at here, never edited: no add, change or delete for anyone."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CustomerRunInline(ReadOnlyMixin, admin.TabularInline):
    model = Run
    fields = ("run_link", "status", "started_by", "created_at", "started_at", "finished_at")
    readonly_fields = fields
    ordering = ("-created_at",)
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "Runs"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("started_by")

    @admin.display(description="Run")
    def run_link(self, run):
        return format_html('<a href="{}">{}</a>', reverse("run_detail", args=[run.pk]), run.short_id)


@admin.register(Customer)
class CustomerAdmin(SecretLookupsRefused, admin.ModelAdmin):
    form = CustomerAdminForm
    list_display = (
        "name",
        "aws_account_id",
        "alias_now_display",
        "role_display",
        "default_region",
        "is_active",
        "last_run_at",
        "last_run_status_display",
        "drift_display",
        "offboarded_column",
    )
    search_fields = ("name", "aws_account_id")
    list_filter = (
        "is_active",
        "default_region",
        LastRunStatusFilter,
        RoleVersionFilter,
        DriftFilter,
        OffboardedFilter,
    )
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("team",)
    inlines = (CustomerRunInline,)

    class Media:
        css = {"all": ("css/admin.css",)}

    actions = ("check_connection", "start_onboarding", "reactivate", "rotate_external_id")
    readonly_fields = (
        "alias_now_display",
        "role_display",
        "external_id_display",
        "stored_secret",
        "trust_policy",
        "cloudformation_link",
        "portal_policy",
        "resources",
        "links",
        "created_at",
        "updated_at",
        "offboarded_display",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "slug",
                    "aws_account_id",
                    "default_region",
                    "alias_now_display",
                    "is_active",
                    "offboarded_display",
                )
            },
        ),
        (
            "How Onramp reaches the account",
            {
                "fields": (
                    "access",
                    "role_arn",
                    "role_display",
                    "external_id_display",
                    "trust_policy",
                    "cloudformation_link",
                    "portal_policy",
                    "access_key_id",
                    "stored_secret",
                    "secret_access_key",
                )
            },
        ),
        ("People and notes", {"fields": ("team", "approval_rule", "contacts", "notes")}),
        ("What Onramp did here", {"fields": ("resources", "links", "created_at", "updated_at")}),
    )

    # --- Who may do what: Admins change, Tech leads (view permission) look ---

    def has_add_permission(self, request):
        return is_admin(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return is_admin(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_admin(request.user) and super().has_delete_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # Read-only viewers get no secret input at all (there is nothing to show in it anyway).
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f != customers.SECRET_FIELD)})
            for name, opts in fieldsets
        ]

    def get_queryset(self, request):
        return customers.customers_with_last_run(super().get_queryset(request)).select_related("drift")

    # --- Columns and read-only fields ---

    @admin.display(description="last run", ordering="last_run_at", empty_value="never")
    def last_run_at(self, customer):
        when = getattr(customer, "last_run_at", None)
        return timezone.localtime(when).date() if when else None

    @admin.display(description="drift", ordering="drift__state", empty_value="never checked")
    def drift_display(self, customer):
        drift = getattr(customer, "drift", None)
        if drift is None:
            return None
        count = len(drift.differences) if drift.state == DriftState.State.DRIFTED else 0
        return f"{drift.get_state_display()}{f' ({count})' if count else ''}"

    @admin.display(description="offboarded", ordering="offboarded_at", empty_value="—")
    def offboarded_column(self, customer):
        if customer.offboarded_at is None:
            return None
        return f"{customer.get_offboard_mode_display()}, {timezone.localtime(customer.offboarded_at):%Y-%m-%d}"

    @admin.display(description="last status", ordering="last_run_status", empty_value="—")
    def last_run_status_display(self, customer):
        status = getattr(customer, "last_run_status", None)
        return Run.Status(status).label if status else None

    @admin.display(description="Onramp role", ordering="role_version")
    def role_display(self, customer):
        # Which template the customer's role was deployed from, as Check connection or a run last read it.
        if customer.access != Access.ROLE:
            return "— (access keys)"
        if customer.role_version is None:
            return "not checked yet"
        if customer.role_version < ROLE_TEMPLATE_VERSION:
            return f"out of date (v{customer.role_version}): update the stack"
        return f"v{customer.role_version} (current)"

    @admin.display(description="sign-in alias", ordering="alias_now", empty_value="none")
    def alias_now_display(self, customer):
        # What the account has as far as Onramp knows (its ledger), not a field a person types.
        if hasattr(customer, "alias_now"):
            return customer.alias_now
        row = customer.resources.filter(kind=account_alias.KEY, state="present").order_by("-id").first()
        return row.name if row else None

    @admin.display(description="Offboarded")
    def offboarded_display(self, customer):
        if not customer.offboarded_at:
            return "no"
        who = customer.offboarded_by.get_username() if customer.offboarded_by else "someone"
        when = date_format(timezone.localtime(customer.offboarded_at), "DATETIME_FORMAT")
        return f"{customer.get_offboard_mode_display()}, {when}, by {who}: no run starts until reactivated"

    @admin.display(description="External id")
    def external_id_display(self, customer):
        # An unsaved form's instance holds a default that is not the one the save will generate.
        return customer.external_id if customer.pk else "Generated when you save (random, 40 characters)."

    @admin.display(description="Stored secret access key")
    def stored_secret(self, customer):
        # Only whether one is stored: the value never leaves the vault here.
        return "stored (encrypted)" if customer.secret_access_key_ciphertext else "none"

    @admin.display(description="Trust policy for the role (paste into the role's trust relationships)")
    def trust_policy(self, customer):
        if not customer.pk:
            return "Shown once the customer is saved (it names the external id generated then)."
        document = role_template.trust_policy_document(
            portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID, external_id=customer.external_id
        )
        return format_html("<pre>{}</pre>", json.dumps(document, indent=2))

    @admin.display(description="Onramp's own identity's policy (in the agency's account, not the customer's)")
    def portal_policy(self, customer):
        # The same for every customer: shown here because the role's trust is only half of AssumeRole.
        document = role_template.portal_policy_document()
        return format_html("<pre>{}</pre>", json.dumps(document, indent=2))

    @admin.display(description="CloudFormation")
    def cloudformation_link(self, customer):
        if not customer.pk:
            return "Available once the customer is saved."
        url = reverse("admin:provisioning_customer_cloudformation", args=[customer.pk])
        link = format_html(
            '<a href="{}" download>Download the template</a> — creates the role “{}” with this trust policy '
            "and only the permissions Onramp's steps use (deploy with CAPABILITY_NAMED_IAM).",
            url,
            role_template.ROLE_NAME,
        )
        if not settings.ROLE_DEPLOY_COMMAND:
            return link
        # An installation whose customers' accounts are its own (make run's sandbox) deploys the role itself.
        return format_html(
            "{}<br>Here the accounts are this installation's own: deploy the role as the customer would with "
            '<code class="role-deploy">{} {}</code>',
            link,
            settings.ROLE_DEPLOY_COMMAND,
            customer.slug,
        )

    @admin.display(description="Resources Onramp created or adopted")
    def resources(self, customer):
        if not customer.pk:
            return "—"
        rows = customers.customer_resources(customer=customer)
        if not rows:
            return "None yet."

        def run_link(run_id):
            return format_html('<a href="{}">{}</a>', reverse("run_detail", args=[run_id]), str(run_id)[:8])

        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    r.kind,
                    r.name,
                    r.arn,
                    format_html("{} ({})", r.origin, run_link(r.created_by_run)) if r.created_by_run else r.origin,
                    r.state,
                    run_link(r.last_run) if r.last_run else "—",
                )
                for r in rows
            ),
        )
        return format_html(
            '<table class="ledger"><thead><tr><th>Kind</th><th>Name</th><th>ARN</th><th>Origin</th><th>State</th>'
            "<th>Last run</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="Links")
    def links(self, customer):
        if not customer.pk:
            return "—"
        # The audit page's customer filter takes the slug; the onboarding form takes the id.
        return format_html(
            '<a href="{}?{}">Audit history</a> · <a href="{}?customer={}">Start onboarding</a>',
            reverse("audit_history"),
            urlencode({"customer": customer.slug}),
            reverse("onboard"),
            customer.pk,
        )

    # --- The CloudFormation download ---

    def get_urls(self):
        return [
            path(
                "<path:object_id>/cloudformation/",
                self.admin_site.admin_view(self.cloudformation_view),
                name="provisioning_customer_cloudformation",
            ),
            *super().get_urls(),
        ]

    def cloudformation_view(self, request, object_id):
        customer = self.get_object(request, object_id)
        if customer is None:
            raise Http404("No such customer.")
        if not self.has_view_permission(request, customer):
            raise PermissionDenied
        template = role_template.cloudformation_template(
            customer_name=customer.name,
            portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID,
            external_id=customer.external_id,
        )
        response = JsonResponse(template, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="onramp-access-{customer.slug}.json"'
        return response

    # --- Saving: the secret through the vault, every change audited ---

    def save_model(self, request, obj, form, change):
        customers.customer_save(
            customer=obj,
            user=request.user,
            created=not change,
            changed=list(form.changed_data),
            secret_access_key=form.cleaned_data.get(customers.SECRET_FIELD) or "",
        )

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "team":  # a team is of tech leads (Admins may act on every customer anyway)
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(groups__name=TECH_LEADS).order_by(
                "username"
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        before = set(form.instance.team.values_list("pk", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        customer_team_changed(customer=form.instance, user=request.user, before=before, via="admin")

    def delete_model(self, request, obj):
        customers.customer_delete(customer=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for customer in queryset:
            customers.customer_delete(customer=customer, user=request.user)

    # --- Actions ---

    @admin.action(description="Check connection", permissions=["change"])
    def check_connection(self, request, queryset):
        picked = list(queryset[: MAX_CHECKS + 1])
        if len(picked) > MAX_CHECKS:
            self.message_user(request, f"Check at most {MAX_CHECKS} customers at a time.", messages.WARNING)
            return
        for customer in picked:
            result = customers.customer_check_connection(customer=customer, user=request.user)
            self.message_user(request, result.message, messages.SUCCESS if result.ok else messages.ERROR)

    @admin.action(description="Reactivate (after offboarding)", permissions=["change"])
    def reactivate(self, request, queryset):
        for customer in queryset:
            if offboarding.customer_reactivate(customer=customer, user=request.user):
                self.message_user(request, f"{customer.name} is reactivated: runs may start again.", messages.SUCCESS)
            else:
                self.message_user(request, f"{customer.name} was not offboarded.", messages.WARNING)

    @admin.action(description="Rotate the external id (a leaked set-up link)", permissions=["change"])
    def rotate_external_id(self, request, queryset):
        for customer in queryset:
            customers.customer_external_id_rotate(customer=customer, user=request.user)
            self.message_user(
                request,
                f"{customer.name}: a new external id waits for their stack. Send them a new set-up link: it gives the "
                "stack update with the new value; Onramp keeps using the old one until the stack has it.",
                messages.SUCCESS,
            )

    @admin.action(description="Start onboarding", permissions=["view"])
    def start_onboarding(self, request, queryset):
        picked = list(queryset[:2])
        if len(picked) != 1:
            self.message_user(request, "Pick exactly one customer to onboard.", messages.WARNING)
            return None
        return redirect(f"{reverse('onboard')}?customer={picked[0].pk}")


class ReadOnlyAdmin(SecretLookupsRefused, ReadOnlyMixin, admin.ModelAdmin):
    """What the engine writes is looked at here, never edited."""


class StepRunInline(ReadOnlyMixin, admin.TabularInline):
    model = StepRun
    fields = ("position", "key", "state", "attempts", "started_at", "finished_at", "error_code", "outputs")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "kind", "status", "started_by", "created_at", "finished_at")
    list_filter = ("kind", "status")
    list_select_related = ("customer", "started_by")
    search_fields = ("customer__name", "customer__aws_account_id")
    inlines = (StepRunInline,)


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdmin):
    list_display = ("key", "run", "state", "attempts", "finished_at")
    list_filter = ("state",)
    list_select_related = ("run__customer",)


@admin.register(Credential)
class CredentialAdmin(ReadOnlyAdmin):
    # `ciphertext` is deliberately absent from every list here.
    list_display = ("user_name", "kind", "customer", "state", "issued_to", "created_at", "expires_at")
    list_filter = ("kind", "state")
    list_select_related = ("customer", "issued_to")
    fields = (
        "kind",
        "state",
        "customer",
        "run",
        "user_name",
        "access_key_id",
        "issued_to",
        "created_at",
        "expires_at",
        "revealed_at",
        "revealed_by",
        "refused_attempts",
    )
    readonly_fields = fields


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "outcome", "target", "customer_id")
    list_filter = ("outcome",)
    search_fields = ("action", "actor_label", "target")
