from django.contrib import admin

from audit.admin import AuditedAdminMixin
from backtests.models import BacktestRun


@admin.register(BacktestRun)
class BacktestRunAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Read-only: runs are created and run through the command, the API, MCP or the model page."""

    list_display = ["id", "active_model", "start", "end", "threshold", "state", "progress", "created_at"]
    list_filter = ["state"]
    readonly_fields = [field.name for field in BacktestRun._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
