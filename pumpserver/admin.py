from django.contrib import admin

from pumpserver.models import ApiToken, ProcessHeartbeat, RuntimeSetting
from pumpserver.tokens import revoke_token


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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """List and revoke API tokens. Keys are never shown (only a hash is stored); create tokens on the /tokens/ page
    or with `manage.py create_api_token`, where the key is shown once."""

    list_display = ["prefix", "name", "user", "scope_list", "model_list", "created_at", "expires_at", "last_used_at",
                    "state"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "user", "scopes", "model_ids", "created_at", "expires_at", "last_used_at",
                       "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, token):
        return ", ".join(token.scopes)

    @admin.display(description="models")
    def model_list(self, token):
        return ", ".join(str(model_id) for model_id in token.model_ids) if token.model_ids else "all"

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        revoked = sum(1 for token in queryset if token.revoked_at is None and revoke_token(token=token))
        self.message_user(request, f"{revoked} token(s) revoked; clients using them are refused from now on.")

    def has_add_permission(self, request, obj=None):
        return False
