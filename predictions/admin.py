"""Admin for raw data. Market data and logs are read-only: they are facts written by collectors and processes."""

from django.contrib import admin

from audit.admin import AuditedAdminMixin
from predictions.models import (
    CoinMetric,
    CoinPhase,
    CoinScanCache,
    ModelPrediction,
    PendingCoinMetric,
    WebhookDelivery,
    WebhookLog,
)
from predictions.webhook_services import redeliver


class ReadOnlyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CoinPhase)
class CoinPhaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "interval_seconds", "min_age_minutes", "max_age_minutes"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CoinMetric)
class CoinMetricAdmin(ReadOnlyAdmin):
    list_display = ["mint", "timestamp", "phase_id_at_time", "price_close", "market_cap_close", "volume_sol",
                    "buy_pressure_ratio", "num_buys", "num_sells", "is_koth"]
    list_filter = ["phase_id_at_time", "is_koth"]
    search_fields = ["=mint"]
    date_hierarchy = "timestamp"
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is slow

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PendingCoinMetric)
class PendingCoinMetricAdmin(ReadOnlyAdmin):
    list_display = ["id", "mint", "data_timestamp", "phase_id", "coin_metric_id", "enqueued_at"]
    search_fields = ["=mint"]


@admin.register(ModelPrediction)
class ModelPredictionAdmin(ReadOnlyAdmin):
    list_display = ["id", "coin_id", "active_model", "model_version", "tag", "probability", "prediction", "status",
                    "evaluation_result", "actual_price_change_pct", "prediction_timestamp", "evaluation_timestamp"]
    list_filter = ["tag", "status", "evaluation_result", "active_model"]
    search_fields = ["=coin_id"]
    date_hierarchy = "prediction_timestamp"
    list_select_related = ["active_model"]
    show_full_result_count = False
    # The note as every other reader shows it: stored, or derived (predictions/notes.py).
    exclude = ["stored_note"]
    readonly_fields = ["evaluation_note"]

    def get_queryset(self, request):
        return super().get_queryset(request).readable()

    @admin.display(description="evaluation note")
    def evaluation_note(self, obj):
        return obj.evaluation_note


@admin.register(CoinScanCache)
class CoinScanCacheAdmin(ReadOnlyAdmin):
    list_display = ["coin_id", "active_model", "last_scan_at", "last_probability", "was_alert", "ignore_until",
                    "ignore_reason"]
    list_filter = ["ignore_reason", "was_alert", "active_model"]
    search_fields = ["=coin_id"]
    list_select_related = ["active_model"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["delivery_id", "webhook_url", "coin_id", "status", "attempts", "last_response_status",
                    "next_attempt_at", "created_at", "delivered_at"]
    list_filter = ["status"]
    search_fields = ["=coin_id", "=delivery_id", "webhook_url"]
    actions = ["redeliver_selected"]

    @admin.action(description="Redeliver selected webhooks", permissions=["redeliver"])
    def redeliver_selected(self, request, queryset):
        count = redeliver(delivery_ids=queryset.values_list("delivery_id", flat=True))
        self.message_user(request, f"{count} webhook(s) queued for delivery; pending ones were left as they are.")

    def has_redeliver_permission(self, request):
        # The admin pages are read-only, but resending is an operator's decision: the model's change permission.
        return request.user.has_perm("predictions.change_webhookdelivery")


@admin.register(WebhookLog)
class WebhookLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "webhook_url", "coin_id", "response_status", "error_message", "attempt", "duration_ms",
                    "created_at"]
    list_filter = ["response_status"]
    search_fields = ["=coin_id", "webhook_url"]
    date_hierarchy = "created_at"
