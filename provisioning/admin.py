"""Django admin: customers for Admins; runs and audit read-only for everyone."""

from django.contrib import admin

from provisioning.models import AuditEvent, Customer, Run


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "aws_account_id", "default_region", "account_alias", "is_active")
    search_fields = ("name", "aws_account_id", "account_alias")
    list_filter = ("is_active", "default_region")
    prepopulated_fields = {"slug": ("name",)}
    exclude = ("access_key_id",)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "status", "started_by", "created_at")
    list_filter = ("status",)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "outcome", "target")
    list_filter = ("outcome",)
