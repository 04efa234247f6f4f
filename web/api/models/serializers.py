"""Request and response shapes of the model-management API (spec §1.1 ModelInfo, §1.2 M1–M8, §1.4 C1–C8).

Field names are the existing server's; numeric ranges come from services.SETTING_RANGES, so the documented bounds
are the enforced ones.
"""

from __future__ import annotations

from rest_framework import serializers

from modelregistry.models import SEND_MODES, CoinFilterMode, ModelType, TargetDirection, TargetOperator
from modelregistry.services import SETTING_RANGES
from modelregistry.serving import send_modes
from quality import selectors as quality_selectors


def _ranged(setting: str, field_class=serializers.IntegerField, **kwargs):
    low, high = SETTING_RANGES[setting]
    return field_class(min_value=low, max_value=high, **kwargs)


class SendModesField(serializers.ListField):
    """n8n_send_mode as a list; a legacy scalar value is shown as a one-element list."""

    child = serializers.ChoiceField(choices=SEND_MODES)

    def to_representation(self, value):
        return list(send_modes(value))


# --- ModelInfo -------------------------------------------------------------------------------------------------------


class PredictionCountsSerializer(serializers.Serializer):
    total_predictions = serializers.IntegerField(source="prediction_count")
    positive_predictions = serializers.IntegerField(
        source="alert_count", help_text="Rows tagged alert (the existing server's name for them)."
    )
    negative_predictions = serializers.IntegerField(source="non_alert_count", help_text="Rows not tagged alert.")
    alerts_count = serializers.IntegerField(source="alert_count")


class ModelInfoSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="active_model_id: the local id every per-model endpoint takes.")
    model_id = serializers.IntegerField(allow_null=True, help_text="Training-service id (null for uploads).")
    name = serializers.CharField(source="model_name", help_text="Training model name.")
    custom_name = serializers.CharField(allow_null=True, help_text="Local display name; wins over name.")
    model_type = serializers.ChoiceField(choices=ModelType.values)
    target_variable = serializers.CharField()
    target_operator = serializers.ChoiceField(choices=TargetOperator.values, allow_null=True)
    target_value = serializers.FloatField(allow_null=True)
    future_minutes = serializers.IntegerField(allow_null=True)
    price_change_percent = serializers.FloatField(allow_null=True)
    target_direction = serializers.ChoiceField(choices=TargetDirection.values, allow_null=True)
    features = serializers.ListField(child=serializers.CharField())
    phases = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    params = serializers.DictField(allow_null=True)
    is_active = serializers.BooleanField()
    total_predictions = serializers.IntegerField(source="prediction_count", help_text="Stored prediction rows.")
    average_probability = serializers.FloatField(allow_null=True)
    last_prediction_at = serializers.DateTimeField(allow_null=True)
    alert_threshold = _ranged("alert_threshold", serializers.FloatField)
    n8n_webhook_url = serializers.CharField(allow_null=True)
    n8n_send_mode = SendModesField()
    n8n_enabled = serializers.BooleanField()
    coin_filter_mode = serializers.ChoiceField(choices=CoinFilterMode.values)
    coin_whitelist = serializers.ListField(child=serializers.CharField(), allow_null=True)
    ignore_bad_seconds = _ranged("ignore_bad_seconds")
    ignore_positive_seconds = _ranged("ignore_positive_seconds")
    ignore_alert_seconds = _ranged("ignore_alert_seconds")
    max_log_entries_per_coin_negative = _ranged("max_log_entries_per_coin_negative")
    max_log_entries_per_coin_positive = _ranged("max_log_entries_per_coin_positive")
    max_log_entries_per_coin_alert = _ranged("max_log_entries_per_coin_alert")
    send_ignored_to_n8n = serializers.BooleanField()
    accuracy = serializers.FloatField(source="training_accuracy", allow_null=True)
    f1_score = serializers.FloatField(source="training_f1", allow_null=True)
    precision = serializers.FloatField(source="training_precision", allow_null=True)
    recall = serializers.FloatField(source="training_recall", allow_null=True)
    roc_auc = serializers.FloatField(allow_null=True)
    mcc = serializers.FloatField(allow_null=True)
    simulated_profit_pct = serializers.FloatField(allow_null=True)
    positive_predictions = serializers.IntegerField(source="alert_count", help_text="Rows tagged alert.")
    stats = PredictionCountsSerializer(source="*")
    model_file_exists = serializers.BooleanField(help_text="A current model file (artifact) is stored.")
    created_at = serializers.DateTimeField()
    load_error = serializers.CharField(allow_null=True, help_text="Why the model cannot load or run; null if fine.")
    versions = serializers.IntegerField(source="artifact_versions", help_text="Stored artifact versions.")
    artifact_version = serializers.IntegerField(allow_null=True, help_text="Version of the current artifact.")
    degraded = serializers.SerializerMethodField(help_text="Flagged degraded by the last live-quality check.")
    degraded_reasons = serializers.SerializerMethodField(help_text="Why it is flagged (empty when it is not).")

    def _quality_state(self, model) -> dict:
        state = getattr(model, "quality_state", None)
        if state is None:  # not attached in bulk (with_quality_state): read for this model alone
            state = quality_selectors.degradation_states(active_model_ids=[model.pk])[model.pk]
            model.quality_state = state
        return state

    def get_degraded(self, model) -> bool:
        return bool(self._quality_state(model)["degraded"])

    def get_degraded_reasons(self, model) -> list[str]:
        return list(self._quality_state(model)["degraded_reasons"] or [])


def with_quality_state(models: list) -> list:
    """The models with their degradation state attached (one query for all), as ModelInfoSerializer reads it."""
    states = quality_selectors.degradation_states(active_model_ids=[model.pk for model in models])
    for model in models:
        model.quality_state = states[model.pk]
    return models


class ModelListQuerySerializer(serializers.Serializer):
    include_inactive = serializers.CharField(
        default="false", allow_blank=True, help_text='Only the text "true" (any case) includes inactive models.'
    )

    def validate_include_inactive(self, value: str) -> bool:
        return value.lower() == "true"


class ModelListSerializer(serializers.Serializer):
    models = ModelInfoSerializer(many=True)
    total = serializers.IntegerField()


# --- lifecycle answers -----------------------------------------------------------------------------------------------


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class ModelActionSerializer(MessageSerializer):
    active_model_id = serializers.IntegerField()


class DeletedModelSerializer(ModelActionSerializer):
    model_id = serializers.IntegerField(allow_null=True)
    model_name = serializers.CharField()


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RenameSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=255, allow_blank=True, trim_whitespace=False, required=False,
        help_text="New display name, stored verbatim; empty or blank is refused (400).",
    )
    custom_name = serializers.CharField(
        max_length=255, allow_blank=True, trim_whitespace=False, required=False,
        help_text="Same as name (the field ModelInfo reports); name wins when both are sent.",
    )
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Ignored.")

    def validate(self, attrs):
        if "name" not in attrs and "custom_name" not in attrs:
            raise serializers.ValidationError({"name": ["This field is required (or send custom_name)."]})
        return {"custom_name": attrs.get("name", attrs.get("custom_name"))}


# --- per-model settings ----------------------------------------------------------------------------------------------


class AlertThresholdSerializer(serializers.Serializer):
    alert_threshold = _ranged("alert_threshold", serializers.FloatField)


class AlertThresholdResponseSerializer(ModelActionSerializer):
    alert_threshold = _ranged("alert_threshold", serializers.FloatField)


def _drop_nulls(attrs: dict, fields: tuple[str, ...]) -> dict:
    """Null means "leave unchanged" for these fields: drop them before they reach the service."""
    return {key: value for key, value in attrs.items() if not (key in fields and value is None)}


class N8nSettingsSerializer(serializers.Serializer):
    n8n_webhook_url = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text='"" clears the model\'s URL.'
    )
    n8n_send_mode = serializers.ChoiceField(
        choices=SEND_MODES, required=False, allow_null=True, help_text="One mode; stored as a one-element list."
    )
    n8n_enabled = serializers.BooleanField(required=False, allow_null=True)

    def validate(self, attrs):
        return _drop_nulls(attrs, ("n8n_webhook_url", "n8n_send_mode", "n8n_enabled"))


class N8nSettingsResponseSerializer(ModelActionSerializer):
    """The request, echoed (fields not sent are null)."""

    n8n_webhook_url = serializers.CharField(allow_null=True, default=None)
    n8n_send_mode = serializers.ChoiceField(choices=SEND_MODES, allow_null=True, default=None)
    n8n_enabled = serializers.BooleanField(allow_null=True, default=None)


class AlertConfigSerializer(serializers.Serializer):
    """Omitted n8n_enabled, n8n_send_mode, alert_threshold, coin_filter_mode and send_ignored_to_n8n take their
    defaults (the existing server's contract); omitted or null n8n_webhook_url, coin_whitelist and
    min_scan_interval_seconds stay unchanged."""

    n8n_webhook_url = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text='Null: unchanged; "" clears the URL.'
    )
    n8n_enabled = serializers.BooleanField(default=True)
    n8n_send_mode = serializers.ListField(
        child=serializers.ChoiceField(choices=SEND_MODES), allow_empty=False, default=["all"],
        help_text="Send modes, OR-combined.",
    )
    alert_threshold = _ranged("alert_threshold", serializers.FloatField, default=0.7)
    coin_filter_mode = serializers.ChoiceField(choices=CoinFilterMode.values, default=CoinFilterMode.ALL)
    coin_whitelist = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True,
        help_text="Null: unchanged; a list replaces the stored list.",
    )
    min_scan_interval_seconds = _ranged(
        "min_scan_interval_seconds", required=False, allow_null=True, help_text="Null: unchanged."
    )
    send_ignored_to_n8n = serializers.BooleanField(default=False)

    def validate(self, attrs):
        return _drop_nulls(attrs, ("n8n_webhook_url", "coin_whitelist", "min_scan_interval_seconds"))


class AlertConfigEchoSerializer(serializers.Serializer):
    """The request after defaulting (fields not sent and without a default are null)."""

    n8n_webhook_url = serializers.CharField(allow_null=True, default=None)
    n8n_enabled = serializers.BooleanField()
    n8n_send_mode = serializers.ListField(child=serializers.ChoiceField(choices=SEND_MODES))
    alert_threshold = _ranged("alert_threshold", serializers.FloatField)
    coin_filter_mode = serializers.ChoiceField(choices=CoinFilterMode.values)
    coin_whitelist = serializers.ListField(child=serializers.CharField(), allow_null=True, default=None)
    min_scan_interval_seconds = _ranged("min_scan_interval_seconds", allow_null=True, default=None)


class AlertConfigResponseSerializer(ModelActionSerializer):
    config = AlertConfigEchoSerializer()


class IgnoreSettingsSerializer(serializers.Serializer):
    """Seconds a coin is skipped by the model after a bad / positive / alert result (0 = never)."""

    ignore_bad_seconds = _ranged("ignore_bad_seconds", default=0)
    ignore_positive_seconds = _ranged("ignore_positive_seconds", default=0)
    ignore_alert_seconds = _ranged("ignore_alert_seconds", default=0)


class IgnoreSettingsResponseSerializer(ModelActionSerializer, IgnoreSettingsSerializer):
    pass


class MaxLogEntriesSerializer(serializers.Serializer):
    """Per coin and tag, at most this many pending predictions are stored (0 = unlimited)."""

    max_log_entries_per_coin_negative = _ranged("max_log_entries_per_coin_negative", default=0)
    max_log_entries_per_coin_positive = _ranged("max_log_entries_per_coin_positive", default=0)
    max_log_entries_per_coin_alert = _ranged("max_log_entries_per_coin_alert", default=0)


class MaxLogEntriesResponseSerializer(ModelActionSerializer, MaxLogEntriesSerializer):
    pass


class N8nStatusSerializer(serializers.Serializer):
    """Keys depend on the case (spec §4.6): `message` only without an attempt, `last_*` only after one."""

    status = serializers.ChoiceField(choices=["ok", "error", "unknown", "no_url"])
    message = serializers.CharField(required=False)
    n8n_url = serializers.CharField(required=False, help_text="Target URL, cut to 50 characters plus '...'.")
    last_attempt = serializers.DateTimeField(required=False)
    last_status = serializers.IntegerField(required=False, allow_null=True)
    last_error = serializers.CharField(required=False, allow_null=True)

