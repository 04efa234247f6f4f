from django.contrib import admin

from audit.admin import AuditedAdminMixin
from modelregistry.models import ActiveModel, ModelArtifact


class ModelArtifactInline(admin.TabularInline):
    model = ModelArtifact
    fields = ["version", "format", "sha256", "size_bytes", "is_current", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False  # artifacts arrive through import, upload or training, which validate them


@admin.register(ActiveModel)
class ActiveModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id", "display_name", "model_id", "model_type", "source", "is_active", "alert_threshold",
        "total_predictions", "last_prediction_at", "load_error",
    ]
    list_display_links = ["id", "display_name"]
    list_filter = ["is_active", "model_type", "source", "target_direction", "n8n_enabled", "coin_filter_mode"]
    search_fields = ["model_name", "custom_name", "=model_id", "description"]
    readonly_fields = [
        "model_id", "source", "model_name", "model_type", "target_variable", "target_operator", "target_value",
        "future_minutes", "price_change_percent", "target_direction", "features", "phases", "params",
        "local_model_path", "model_file_url", "load_error", "load_error_at", "total_predictions",
        "last_prediction_at", "downloaded_at", "activated_at", "created_at", "updated_at", "training_accuracy",
        "training_f1", "training_precision", "training_recall", "roc_auc", "mcc", "confusion_matrix",
        "simulated_profit_pct", "training_details",
    ]
    fieldsets = [
        ("Identity", {"fields": ["custom_name", "model_name", "model_id", "source", "model_type", "description"]}),
        ("State", {"fields": ["is_active", "load_error", "load_error_at", "total_predictions", "last_prediction_at",
                              "activated_at", "downloaded_at", "created_at", "updated_at"]}),
        ("Target", {"fields": ["target_variable", "target_operator", "target_value", "future_minutes",
                               "price_change_percent", "target_direction"]}),
        ("Inputs", {"fields": ["features", "phases", "params", "local_model_path", "model_file_url"]}),
        ("Alerts and n8n", {"fields": ["alert_threshold", "n8n_webhook_url", "n8n_enabled", "n8n_send_mode",
                                       "send_ignored_to_n8n"]}),
        ("Coin filter and pacing", {"fields": [
            "coin_filter_mode", "coin_whitelist", "ignore_bad_seconds", "ignore_positive_seconds",
            "ignore_alert_seconds", "min_scan_interval_seconds", "max_log_entries_per_coin_negative",
            "max_log_entries_per_coin_positive", "max_log_entries_per_coin_alert"]}),
        ("Training metrics", {"classes": ["collapse"], "fields": [
            "training_accuracy", "training_f1", "training_precision", "training_recall", "roc_auc", "mcc",
            "confusion_matrix", "simulated_profit_pct", "training_details"]}),
    ]
    inlines = [ModelArtifactInline]

    def has_add_permission(self, request):
        return False  # models enter through register_model, import, upload or training
