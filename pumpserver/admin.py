from django.contrib import admin

from pumpserver.models import ProcessHeartbeat, RuntimeSetting


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(admin.ModelAdmin):
    """Read-only: each process writes its own row."""

    list_display = ["name", "kind", "hostname", "pid", "started_at", "last_seen"]
    list_filter = ["kind"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RuntimeSetting)
class RuntimeSettingAdmin(admin.ModelAdmin):
    """Read-only here: the settings page and /api/config validate what is written."""

    list_display = ["key", "value", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
