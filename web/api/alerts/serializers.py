from rest_framework import serializers

from alerts.legacy_selectors import STATUSES
from web.api.common import PageQuerySerializer, id_field

# --- statistics (S1, M9, S2, S3) ------------------------------------------------------------------------------------


class AlertStatisticsQuerySerializer(serializers.Serializer):
    active_model_id = id_field(required=False, help_text="Only this model's rows (wins over model_id).")
    model_id = id_field(required=False, help_text="Also an active_model_id (as in the existing server).")
    date_from = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp >= it.")
    date_to = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp <= it.")


class ModelAlertSummarySerializer(serializers.Serializer):
    """One model's alerts (rows tagged alert); total = success + failed + pending + expired."""

    model_id = serializers.IntegerField(help_text="Training-service id, or the active id when the model has none.")
    model_name = serializers.CharField()
    total = serializers.IntegerField(help_text="The model's alerts.")
    success = serializers.IntegerField(help_text="Alerts judged success (only).")
    failed = serializers.IntegerField(help_text="Alerts judged failed.")
    pending = serializers.IntegerField(help_text="Alerts waiting for their horizon.")
    expired = serializers.IntegerField(help_text="Alerts judged not_applicable (no price in time).")
    success_rate = serializers.FloatField(help_text="Percent of judged alerts (success + failed); 0 when none.")


class AlertStatisticsSerializer(serializers.Serializer):
    """Figures without `non_alerts_` in their name are about alerts (rows tagged alert) and add up:
    total_alerts = alerts_above_threshold = pending + success + failed + expired = Σ by_model[].total."""

    total_predictions = serializers.IntegerField(
        help_text="Every prediction (all tags): what the existing server reported as total_alerts."
    )
    total_alerts = serializers.IntegerField(help_text="Alerts (rows tagged alert); the existing server counted every row.")
    pending = serializers.IntegerField(help_text="Alerts waiting for their horizon.")
    success = serializers.IntegerField(help_text="Alerts judged success.")
    failed = serializers.IntegerField(help_text="Alerts judged failed.")
    expired = serializers.IntegerField(help_text="Alerts judged not_applicable (no price in time).")
    alerts_above_threshold = serializers.IntegerField(help_text="Same as total_alerts.")
    non_alerts_count = serializers.IntegerField()
    alerts_success = serializers.IntegerField()
    alerts_failed = serializers.IntegerField()
    alerts_pending = serializers.IntegerField()
    non_alerts_success = serializers.IntegerField()
    non_alerts_failed = serializers.IntegerField()
    non_alerts_pending = serializers.IntegerField()
    alerts_success_rate = serializers.FloatField()
    non_alerts_success_rate = serializers.FloatField()
    success_rate = serializers.FloatField(help_text="Percent of judged alerts; same as alerts_success_rate.")
    total_performance_pct = serializers.FloatField()
    alerts_profit_pct = serializers.FloatField()
    alerts_loss_pct = serializers.FloatField()
    by_model = ModelAlertSummarySerializer(many=True)


class ModelsAlertStatisticsQuerySerializer(serializers.Serializer):
    active_model_ids = serializers.ListField(
        child=id_field(), required=False, max_length=100,
        help_text="Repeatable; default: every active model.",
    )


class ModelAlertCountsSerializer(serializers.Serializer):
    total_predictions = serializers.IntegerField()
    positive_predictions = serializers.IntegerField(help_text="prediction = 1")
    negative_predictions = serializers.IntegerField(help_text="prediction = 0")
    alerts_total = serializers.IntegerField()
    alerts_success = serializers.IntegerField()
    alerts_failed = serializers.IntegerField()
    alerts_pending = serializers.IntegerField()
    alerts_expired = serializers.IntegerField()


class ModelStatisticsSerializer(serializers.Serializer):
    total_predictions = serializers.IntegerField()
    positive_predictions = serializers.IntegerField()
    negative_predictions = serializers.IntegerField()
    avg_probability = serializers.FloatField(allow_null=True)
    avg_probability_positive = serializers.FloatField(allow_null=True)
    avg_probability_negative = serializers.FloatField(allow_null=True)
    min_probability = serializers.FloatField(allow_null=True)
    max_probability = serializers.FloatField(allow_null=True)
    avg_duration_ms = serializers.FloatField(allow_null=True)
    first_prediction = serializers.DateTimeField(allow_null=True)
    last_prediction = serializers.DateTimeField(allow_null=True)
    unique_coins = serializers.IntegerField()
    alerts_count = serializers.IntegerField(help_text="Rows tagged alert.")
    positive_rate_percent = serializers.FloatField()
    negative_rate_percent = serializers.FloatField()
    alert_threshold = serializers.FloatField(allow_null=True, help_text="The model's threshold.")
    webhook_total = serializers.IntegerField()
    webhook_success = serializers.IntegerField()
    webhook_failed = serializers.IntegerField()
    webhook_success_rate = serializers.FloatField(allow_null=True)
    probability_distribution = serializers.DictField(
        child=serializers.IntegerField(), help_text='{"0.0-0.1": n, …, "0.9-1.0": n}, only buckets with rows.'
    )


class ResetStatisticsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    active_model_id = serializers.IntegerField()
    deleted_predictions = serializers.IntegerField(help_text="Always 0: no legacy predictions table here.")


# --- legacy alerts (A1–A3), backed by model_predictions rows tagged `alert` -----------------------------------------


class AlertsQuerySerializer(PageQuerySerializer):
    status = serializers.ChoiceField(choices=STATUSES, required=False)
    model_id = id_field(required=False, help_text="Training-service model id.")
    active_model_id = id_field(required=False)
    coin_id = serializers.CharField(max_length=255, required=False)
    prediction_type = serializers.ChoiceField(choices=["time_based", "classic"], required=False)
    date_from = serializers.DateTimeField(required=False, help_text="ISO-8601; alert_timestamp >= it.")
    date_to = serializers.DateTimeField(required=False, help_text="ISO-8601; alert_timestamp <= it.")
    unique_coins = serializers.BooleanField(default=True, help_text="One row per coin (its newest alert).")
    include_non_alerts = serializers.BooleanField(default=False, help_text="Accepted, no effect.")


def _nullable_float(**kwargs):
    return serializers.FloatField(allow_null=True, **kwargs)


def _nullable_int(**kwargs):
    return serializers.IntegerField(allow_null=True, **kwargs)


class AlertRowSerializer(serializers.Serializer):
    """An alert (`model_predictions` row tagged alert) in the legacy `alert_evaluations` shape."""

    id = serializers.IntegerField()
    prediction_id = serializers.IntegerField()
    coin_id = serializers.CharField()
    model_id = _nullable_int(help_text="Training-service id.")
    active_model_id = serializers.IntegerField()
    prediction_type = serializers.ChoiceField(choices=["time_based", "classic"])
    probability = serializers.FloatField()
    target_variable = serializers.CharField(allow_null=True)
    future_minutes = _nullable_int()
    price_change_percent = _nullable_float()
    target_direction = serializers.CharField(allow_null=True)
    target_operator = serializers.CharField(allow_null=True)
    target_value = _nullable_float()
    alert_timestamp = serializers.DateTimeField()
    price_close_at_alert = _nullable_float()
    price_open_at_alert = _nullable_float()
    price_high_at_alert = _nullable_float()
    price_low_at_alert = _nullable_float()
    market_cap_close_at_alert = _nullable_float()
    market_cap_open_at_alert = _nullable_float()
    volume_sol_at_alert = _nullable_float()
    volume_usd_at_alert = _nullable_float()
    buy_volume_sol_at_alert = _nullable_float()
    sell_volume_sol_at_alert = _nullable_float()
    num_buys_at_alert = _nullable_int()
    num_sells_at_alert = _nullable_int()
    unique_wallets_at_alert = _nullable_int()
    phase_id_at_alert = _nullable_int()
    evaluation_timestamp = serializers.DateTimeField(allow_null=True)
    price_close_at_evaluation = _nullable_float()
    price_open_at_evaluation = _nullable_float()
    price_high_at_evaluation = _nullable_float()
    price_low_at_evaluation = _nullable_float()
    market_cap_close_at_evaluation = _nullable_float()
    market_cap_open_at_evaluation = _nullable_float()
    volume_sol_at_evaluation = _nullable_float()
    volume_usd_at_evaluation = _nullable_float()
    buy_volume_sol_at_evaluation = _nullable_float()
    sell_volume_sol_at_evaluation = _nullable_float()
    num_buys_at_evaluation = _nullable_int()
    num_sells_at_evaluation = _nullable_int()
    unique_wallets_at_evaluation = _nullable_int()
    phase_id_at_evaluation = _nullable_int()
    actual_price_change_pct = _nullable_float()
    actual_value_at_evaluation = _nullable_float()
    status = serializers.ChoiceField(choices=["pending", "success", "failed", "expired"])
    evaluated_at = serializers.DateTimeField(allow_null=True)
    evaluation_note = serializers.CharField(allow_null=True)
    ath_price_change_pct = _nullable_float()
    ath_timestamp = serializers.DateTimeField(allow_null=True)
    ath_price_close = _nullable_float()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    remaining_seconds = _nullable_int(help_text="Seconds until evaluation_timestamp (pending only).")
    model_name = serializers.CharField()
    other_alerts_count = serializers.IntegerField(help_text="The coin's other alerts (all models); 0 unless unique_coins.")
    alert_threshold = serializers.FloatField()


class AlertsResponseSerializer(serializers.Serializer):
    alerts = AlertRowSerializer(many=True)
    total = serializers.IntegerField(help_text="Coins with unique_coins, else rows; over all pages.")
    pending = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()


class AlertDetailsQuerySerializer(serializers.Serializer):
    chart_before_minutes = serializers.IntegerField(min_value=0, max_value=1440, default=10)
    chart_after_minutes = serializers.IntegerField(min_value=0, max_value=1440, default=10)


class CoinValuesSerializer(serializers.Serializer):
    price_close = _nullable_float()
    price_open = _nullable_float()
    price_high = _nullable_float()
    price_low = _nullable_float()
    market_cap_close = _nullable_float()
    market_cap_open = _nullable_float()
    volume_sol = _nullable_float()
    volume_usd = _nullable_float()
    buy_volume_sol = _nullable_float()
    sell_volume_sol = _nullable_float()
    num_buys = _nullable_int()
    num_sells = _nullable_int()
    unique_wallets = _nullable_int()
    phase_id = _nullable_int()


class PriceHistoryPointSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    price_close = _nullable_float()
    price_high = _nullable_float()
    price_low = _nullable_float()


class VolumeHistoryPointSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    volume_sol = _nullable_float()


class MarketCapHistoryPointSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    market_cap_close = _nullable_float()


class OtherAlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    alert_timestamp = serializers.DateTimeField()
    model_name = serializers.CharField()
    status = serializers.CharField(help_text="pending, success, failed or expired")
    probability = serializers.FloatField()


class AlertModelStatisticsSerializer(serializers.Serializer):
    model_total_alerts = serializers.IntegerField()
    model_success_count = serializers.IntegerField()
    model_failed_count = serializers.IntegerField()
    model_success_rate = serializers.FloatField(help_text="Percent, 0 if none judged.")
    model_avg_actual_change = _nullable_float(help_text="Average change of successful time-based alerts, percent.")
    model_avg_expected_change = _nullable_float(help_text="The target change, percent.")


class AlertDetailsSerializer(serializers.Serializer):
    alert = AlertRowSerializer()
    coin_values_at_alert = CoinValuesSerializer(allow_null=True)
    coin_values_at_evaluation = CoinValuesSerializer(allow_null=True, help_text="Only for success/failed.")
    price_history = PriceHistoryPointSerializer(many=True)
    volume_history = VolumeHistoryPointSerializer(many=True)
    market_cap_history = MarketCapHistoryPointSerializer(many=True)
    other_alerts = OtherAlertSerializer(many=True)
    statistics = AlertModelStatisticsSerializer()


class DeleteAlertsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    active_model_id = serializers.IntegerField()
    deleted_alerts = serializers.IntegerField()


ALERT_CSV_STATUSES = {"pending": "wait", "success": "success", "failed": "failed", "expired": "not_applicable"}


class AlertsCsvQuerySerializer(serializers.Serializer):
    """Filters of `GET /api/alerts.csv` (those of the alerts page)."""

    active_model_id = id_field(required=False, help_text="Only this model's alerts.")
    status = serializers.ChoiceField(choices=list(ALERT_CSV_STATUSES), required=False)
    coin_id = serializers.CharField(max_length=255, required=False)
    date_from = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp >= it.")
    date_to = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp <= it.")

    def filters(self) -> dict:
        """The prediction log's filters (log_selectors.model_predictions_filter) for these parameters."""
        data = self.validated_data
        filters = {"tag": "alert"}
        if "active_model_id" in data:
            filters["active_model_id"] = data["active_model_id"]
        if "status" in data:
            filters["evaluation_statuses"] = [ALERT_CSV_STATUSES[data["status"]]]
        if data.get("coin_id"):
            filters["coin_id"] = data["coin_id"]
        if "date_from" in data:
            filters["alert_time_from"] = data["date_from"]
        if "date_to" in data:
            filters["alert_time_to"] = data["date_to"]
        return filters

