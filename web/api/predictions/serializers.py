from django.db import models as db_models
from rest_framework import serializers

from predictions.log_selectors import EVALUATION_STATUSES, OPERATORS
from predictions.models import ModelPrediction, PredictionStatus, Tag
from web.api.common import PageQuerySerializer, id_field


class PredictRequestSerializer(serializers.Serializer):
    coin_id = serializers.CharField(max_length=64)
    model_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, allow_empty=False,
        help_text="Training-service model ids; default: every active model.",
    )
    timestamp = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="Data time to predict as of (default: now); features use the coin's rows up to it.",
    )


class PredictionResultSerializer(serializers.Serializer):
    model_id = serializers.IntegerField(allow_null=True)
    active_model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    prediction = serializers.ChoiceField(choices=[0, 1])
    probability = serializers.FloatField(min_value=0, max_value=1)


class PredictResponseSerializer(serializers.Serializer):
    coin_id = serializers.CharField()
    timestamp = serializers.DateTimeField()
    predictions = PredictionResultSerializer(many=True)
    total_models = serializers.IntegerField()


# --- prediction log (L1–L4) and legacy predictions (P2, P3) ---------------------------------------------------------

OPERATOR_CHOICES = list(OPERATORS)


def _number_field(**kwargs):
    return serializers.FloatField(min_value=-1e12, max_value=1e12, **kwargs)


class ModelPredictionsQuerySerializer(PageQuerySerializer):
    """Query parameters of GET /api/model-predictions; every filter is optional, all are ANDed."""

    model_id = id_field(required=False, help_text="Training-service model id.")
    active_model_id = id_field(required=False)
    tag = serializers.ChoiceField(choices=Tag.values, required=False)
    status = serializers.ChoiceField(choices=PredictionStatus.values, required=False)
    coin_id = serializers.CharField(max_length=255, required=False)
    probability_operator = serializers.ChoiceField(choices=OPERATOR_CHOICES, required=False)
    probability_value = serializers.FloatField(min_value=0, max_value=1, required=False)
    prediction_statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=Tag.values), required=False, max_length=20,
        help_text="Tags (repeatable): tag IN (…).",
    )
    evaluation_statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=EVALUATION_STATUSES), required=False, max_length=20,
        help_text="Repeatable; the union of the given verdicts, `wait` = not evaluated yet.",
    )
    ath_highest_operator = serializers.ChoiceField(choices=OPERATOR_CHOICES, required=False)
    ath_highest_value = _number_field(required=False, help_text="Percent.")
    ath_lowest_operator = serializers.ChoiceField(choices=OPERATOR_CHOICES, required=False)
    ath_lowest_value = _number_field(required=False, help_text="Percent.")
    actual_change_operator = serializers.ChoiceField(choices=OPERATOR_CHOICES, required=False)
    actual_change_value = _number_field(required=False, help_text="Percent.")
    alert_time_from = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp >= it.")
    alert_time_to = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp <= it.")
    evaluation_time_from = serializers.DateTimeField(required=False, help_text="ISO-8601; evaluation_timestamp >= it.")
    evaluation_time_to = serializers.DateTimeField(required=False, help_text="ISO-8601; evaluation_timestamp <= it.")


def _row_fields() -> list[str]:
    """Every column in table order, the note as users read it in place of the stored one."""
    names = [field.name for field in ModelPrediction._meta.concrete_fields
             if field.name not in ("id", "active_model", "coin_key")]
    return ["id", "active_model_id", *("evaluation_note" if name == "stored_note" else name for name in names)]


class ModelPredictionRowSerializer(serializers.ModelSerializer):
    """A `model_predictions` row, every column; NUMERIC columns as JSON numbers."""

    active_model_id = serializers.IntegerField()
    # The note as readers see it (rows come from ModelPrediction.objects.readable(): stored or derived).
    evaluation_note = serializers.CharField(allow_null=True, allow_blank=True, required=False)

    class Meta:
        model = ModelPrediction
        fields = _row_fields()

    def build_standard_field(self, field_name, model_field):
        if isinstance(model_field, db_models.DecimalField):
            return serializers.FloatField, {"allow_null": model_field.null, "read_only": True}
        return super().build_standard_field(field_name, model_field)


class ModelPredictionsResponseSerializer(serializers.Serializer):
    predictions = ModelPredictionRowSerializer(many=True)
    model_target = serializers.CharField(allow_null=True, help_text="Only with active_model_id of an existing model.")
    total = serializers.IntegerField(help_text="Rows matching the filters (all pages).")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class DeleteModelPredictionsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    deleted_predictions = serializers.IntegerField()


class DeleteOldLogsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    deleted_alert_evaluations = serializers.IntegerField(help_text="Always 0: no legacy alert table here.")
    deleted_predictions = serializers.IntegerField(help_text="Always 0: no legacy predictions table here.")
    deleted_model_predictions = serializers.IntegerField()
    deleted_test_entries = serializers.IntegerField(help_text="Always 0: other models' `Test…` rows are kept.")
    total_deleted = serializers.IntegerField()


class CoinDetailsQuerySerializer(serializers.Serializer):
    prediction_id = id_field(required=False, help_text="A model_predictions id of this coin and model.")
    time_window_minutes = serializers.IntegerField(min_value=1, max_value=1440, default=60)
    time_offset_minutes = serializers.IntegerField(min_value=-525_600, max_value=525_600, default=0)


class PricePointSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    price_open = serializers.FloatField(allow_null=True)
    price_high = serializers.FloatField(allow_null=True)
    price_low = serializers.FloatField(allow_null=True)
    price_close = serializers.FloatField(allow_null=True)
    volume_sol = serializers.FloatField(allow_null=True)
    market_cap_close = serializers.FloatField(allow_null=True)


class CoinDetailsPredictionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prediction_timestamp = serializers.DateTimeField()
    evaluation_timestamp = serializers.DateTimeField(allow_null=True)
    timestamp = serializers.DateTimeField(help_text="= prediction_timestamp")
    prediction = serializers.IntegerField(allow_null=True, help_text="1 tag positiv, 0 tag negativ, null tag alert.")
    probability = serializers.FloatField()
    alert_threshold = serializers.FloatField()
    is_alert = serializers.BooleanField()


class CoinDetailsEvaluationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    evaluation_timestamp = serializers.DateTimeField(allow_null=True, help_text="When it was evaluated.")
    prediction_timestamp = serializers.DateTimeField()
    status = serializers.CharField(help_text="success, failed or not_applicable")
    actual_price_change = serializers.FloatField(allow_null=True, help_text="A fraction (percent / 100); 0 → null.")
    expected_price_change = serializers.FloatField(allow_null=True, help_text="Percent.")
    probability = serializers.FloatField()


class CoinDetailsSerializer(serializers.Serializer):
    coin_id = serializers.CharField()
    model_id = serializers.IntegerField(help_text="The active_model_id.")
    prediction_timestamp = serializers.DateTimeField()
    price_history = PricePointSerializer(many=True)
    predictions = CoinDetailsPredictionSerializer(many=True)
    evaluations = CoinDetailsEvaluationSerializer(many=True)


class CoinIdSerializer(serializers.Serializer):
    coin_id = serializers.CharField(max_length=255)


class PredictionsQuerySerializer(PageQuerySerializer):
    coin_id = serializers.CharField(max_length=255, required=False)
    model_id = id_field(required=False, help_text="Training-service model id.")
    active_model_id = id_field(required=False)
    prediction = serializers.ChoiceField(choices=[0, 1], required=False)
    min_probability = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_probability = serializers.FloatField(min_value=0, max_value=1, required=False)
    phase_id = serializers.IntegerField(min_value=-(2**31), max_value=2**31 - 1, required=False)
    date_from = serializers.DateTimeField(required=False, help_text="ISO-8601; created_at >= it.")
    date_to = serializers.DateTimeField(required=False, help_text="ISO-8601; created_at <= it.")


class LatestPredictionQuerySerializer(serializers.Serializer):
    model_id = id_field(required=False, help_text="Training-service model id.")


class PredictionDetailSerializer(serializers.Serializer):
    """The legacy `predictions` row shape, filled from `model_predictions`."""

    id = serializers.IntegerField()
    coin_id = serializers.CharField()
    data_timestamp = serializers.DateTimeField(source="prediction_timestamp")
    model_id = serializers.IntegerField(allow_null=True)
    active_model_id = serializers.IntegerField(allow_null=True)
    prediction = serializers.ChoiceField(choices=[0, 1])
    probability = serializers.FloatField()
    phase_id_at_time = serializers.IntegerField(source="phase_id_at_prediction", allow_null=True)
    features = serializers.SerializerMethodField(help_text="Not stored here: always null.")
    prediction_duration_ms = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_features(self, row) -> dict | None:
        return None

    def get_prediction_duration_ms(self, row) -> int | None:
        return None if row.prediction_duration_ms is None else round(row.prediction_duration_ms)


class PredictionsResponseSerializer(serializers.Serializer):
    predictions = PredictionDetailSerializer(many=True)
    total = serializers.IntegerField(help_text="Rows matching the filters (all pages).")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class PredictionsCsvQuerySerializer(serializers.Serializer):
    """Filters of `GET /api/models/{id}/predictions.csv` (those of the model page, and the verdicts)."""

    coin_id = serializers.CharField(max_length=255, required=False)
    tag = serializers.ChoiceField(choices=Tag.values, required=False)
    evaluation_statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=EVALUATION_STATUSES), required=False, max_length=20,
        help_text="Repeatable; the union of the given verdicts, `wait` = not evaluated yet.",
    )
    date_from = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp >= it.")
    date_to = serializers.DateTimeField(required=False, help_text="ISO-8601; prediction_timestamp <= it.")

    def filters(self) -> dict:
        """The prediction log's filters (log_selectors.model_predictions_filter) for these parameters."""
        data = self.validated_data
        names = {"coin_id": "coin_id", "tag": "tag", "evaluation_statuses": "evaluation_statuses",
                 "date_from": "alert_time_from", "date_to": "alert_time_to"}
        return {names[key]: value for key, value in data.items()}

