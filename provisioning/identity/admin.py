"""The admin of people and groups, in place of Django's stock one: every change audited through
provisioning.identity.people, and what makes someone an administrator kept for superusers. Also the guard every
ModelAdmin of ours carries against filtering on secret fields."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.constants import LOOKUP_SEP

from provisioning.identity import people
from provisioning.models import ProviderIdentity

# Fields that hold vault ciphertext. An admin filter on them (?secret_access_key_ciphertext__regex=…, or
# through a relation: ?customer__secret_access_key_ciphertext__startswith=…) answers whether a guess
# matches, which reads the ciphertext one character at a time.
SECRET_FIELDS = frozenset({"secret_access_key_ciphertext", "ciphertext"})


class SecretLookupsRefused(admin.ModelAdmin):
    """No admin list filters on a secret field, directly or through a relation (400 Bad Request)."""

    def lookup_allowed(self, lookup, value, request=None):
        if SECRET_FIELDS.intersection(lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)


class SavedThroughService(admin.ModelAdmin):
    """Saved with its many-to-many fields by a service in save_related (after Django's save_model, which
    does nothing here), so one audit row holds the fields, the memberships and the permissions."""

    def save_model(self, request, obj, form, change):
        pass

    def save_audited(self, request, form, change):
        raise NotImplementedError  # each admin saves through its own service

    def save_related(self, request, form, formsets, change):
        self.save_audited(request, form, change)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


def _m2m(form, name: str) -> list | None:
    """The chosen objects of a many-to-many field, or None when the form does not have it (read-only)."""
    return list(form.cleaned_data[name]) if name in form.cleaned_data else None


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(SecretLookupsRefused, SavedThroughService, DjangoUserAdmin):
    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += [f for f in people.SUPERUSER_ONLY_FIELDS if f not in fields]
        return fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and not people.may_edit_user(actor=request.user, user=obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not people.may_edit_user(actor=request.user, user=obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_audited(self, request, form, change):
        people.user_save(
            user=form.instance,
            actor=request.user,
            created=not change,
            changed=list(form.changed_data),
            groups=_m2m(form, "groups"),
            permissions=_m2m(form, "user_permissions"),
        )

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        if user is not None and not people.may_set_password(actor=request.user, user=user):
            raise PermissionDenied
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            # Django's view answers a redirect once the form has saved the password, and only then.
            if request.method == "POST" and response.status_code == 302 and user is not None:
                user.refresh_from_db()
                people.user_password_recorded(user=user, actor=request.user)
        return response

    def delete_model(self, request, obj):
        people.user_delete(user=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        users = list(queryset)
        if any(not people.may_edit_user(actor=request.user, user=user) for user in users):
            raise PermissionDenied
        for user in users:
            people.user_delete(user=user, actor=request.user)


@admin.register(Group)
class GroupAdmin(SecretLookupsRefused, SavedThroughService, DjangoGroupAdmin):
    def save_audited(self, request, form, change):
        people.group_save(
            group=form.instance,
            actor=request.user,
            created=not change,
            changed=list(form.changed_data),
            permissions=_m2m(form, "permissions"),
        )

    def delete_model(self, request, obj):
        people.group_delete(group=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            people.group_delete(group=group, actor=request.user)


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(SecretLookupsRefused, admin.ModelAdmin):
    """Which identity at the provider is which user: made at the first sign-in, never edited here; an Admin
    may only unlink one (audited), so that another identity with the user's email is linked next."""

    list_display = ("user", "issuer", "subject", "created_at")
    search_fields = ("user__username", "subject")
    readonly_fields = ("user", "issuer", "subject", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not people.may_edit_user(actor=request.user, user=obj.user):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        people.provider_identity_unlink(identity=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        identities = list(queryset.select_related("user"))
        if any(not people.may_edit_user(actor=request.user, user=i.user) for i in identities):
            raise PermissionDenied
        for identity in identities:
            people.provider_identity_unlink(identity=identity, actor=request.user)
