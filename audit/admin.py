"""The admin door: saves and deletes through the Django admin recorded with their fields before and after
(AuditedAdminMixin, applied to every app's admin classes), and the trail itself, read-only."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin

from audit.models import AuditEntry
from audit.services import MASK, record_change, record_deleted, record_deleted_many, record_object_change, snapshot


def _with_relations(obj) -> dict:
    """The stored fields and the many-to-many ids (a user's groups are their role)."""
    values = snapshot(obj)
    for field in obj._meta.many_to_many:
        values[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
    return values


class AuditedAdminMixin:
    """Put before admin.ModelAdmin in the bases: every save and delete of the admin lands in the audit trail.

    A save is recorded once its many-to-many fields are saved too (save_related runs after save_model)."""

    def save_model(self, request, obj, form, change):
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change and obj.pk is not None else None
        request._audit_before = _with_relations(stored) if stored is not None else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before = getattr(request, "_audit_before", None)
        record_object_change(action="update" if before is not None else "create", obj=form.instance, before=before,
                             after=_with_relations(form.instance))

    def user_change_password(self, request, id, form_url=""):
        """The user admin's own password form (it saves without save_model): recorded as a masked change."""
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # saved; a refused form answers 200
            record_change(action="update", object_type="auth.user", object_id=id, before={"password": MASK},
                          after={"password": "(changed)"})
        return response

    def delete_model(self, request, obj):
        record_deleted(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        record_deleted_many(queryset)
        super().delete_queryset(request, queryset)


# The kernel's and Django's own admin classes (users, groups, runtime settings, tokens, …) are registered before this
# module runs and cannot import the audit app: they get the mixin here, each admin class kept as it is otherwise.
AUDITED_ELSEWHERE = ("auth", "pumpserver")


def _audit_registered_admins(app_labels: tuple[str, ...]) -> None:
    for app_label in app_labels:
        for model in apps.get_app_config(app_label).get_models():
            if not admin.site.is_registered(model):
                continue
            current = admin.site.get_model_admin(model)
            if isinstance(current, AuditedAdminMixin):
                continue
            admin.site.unregister(model)
            admin.site.register(model, type(f"Audited{type(current).__name__}", (AuditedAdminMixin, type(current)), {}))


_audit_registered_admins(AUDITED_ELSEWHERE)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the doors, and removed only by retention (AUDIT_RETENTION_DAYS)."""

    list_display = ["at", "username", "door", "action", "object_type", "object_id", "target", "allowed"]
    list_filter = ["door", "action", "allowed", "object_type"]
    search_fields = ["=object_id", "username", "target", "=token_hash"]
    date_hierarchy = "at"
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
