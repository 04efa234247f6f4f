"""Live model quality as the REST API (and the MCP tools) show it: the window asked for, one model's figures, several
models side by side with McNemar's test per pair, and a model's quality settings.

Rates and probabilities are fractions (0..1); a figure is null where nothing is judged (or it is undefined, e.g. ROC
AUC with one class only).
"""

from __future__ import annotations

from rest_framework import serializers

from quality import selectors as quality_selectors
from web.api.common import BIGINT_MAX

WINDOWS = list(quality_selectors.WINDOWS)  # 1h, 24h, 7d, all
DEFAULT_WINDOW = "24h"
MIN_COMPARED, MAX_COMPARED = 2, 6
INT_MAX = 2**31 - 1  # min_judged_alerts is a PostgreSQL integer


def _fraction(help_text: str = "", **kwargs):
    return serializers.FloatField(allow_null=True, help_text=help_text, **kwargs)


# --- the window ------------------------------------------------------------------------------------------------------


class WindowQuerySerializer(serializers.Serializer):
    """A named window ending now, or a range from `start` to `end`; validated into window, start (null: all time)
    and end."""

    window = serializers.ChoiceField(
        choices=WINDOWS, required=False,
        help_text=f"Named window ending now (default {DEFAULT_WINDOW}); not together with start/end.",
    )
    start = serializers.DateTimeField(required=False, help_text="Range start, ISO-8601 (without an offset: UTC); "
                                                                "needs end.")
    end = serializers.DateTimeField(required=False, help_text="Range end (exclusive), ISO-8601; needs start.")

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if "window" in attrs and (start is not None or end is not None):
            raise serializers.ValidationError({"window": ["Give either window or start and end, not both."]})
        if (start is None) != (end is None):
            missing = "end" if end is None else "start"
            raise serializers.ValidationError({missing: ["start and end go together; this one is missing."]})
        if start is not None:
            if start >= end:
                raise serializers.ValidationError({"end": ["Must be after start."]})
            return {**attrs, "window": "custom", "start": start, "end": end}
        window = attrs.get("window", DEFAULT_WINDOW)
        start, end = quality_selectors.window_bounds(window)
        return {**attrs, "window": window, "start": start, "end": end}


def parse_ids(value: str) -> list[int]:
    """`1,2,3` → [1, 2, 3]: two to six different ids; raises serializers.ValidationError saying what is wrong."""
    parts = [part.strip() for part in str(value).split(",") if part.strip()]
    ids = []
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= BIGINT_MAX:
            raise serializers.ValidationError(f"{part!r} is not a model id (a positive whole number).")
        ids.append(int(part))
    if len(set(ids)) != len(ids):
        raise serializers.ValidationError("Each model may be listed once.")
    if not MIN_COMPARED <= len(ids) <= MAX_COMPARED:
        raise serializers.ValidationError(
            f"Give {MIN_COMPARED} to {MAX_COMPARED} comma-separated model ids, not {len(ids)}.")
    return ids


class CompareQuerySerializer(WindowQuerySerializer):
    ids = serializers.CharField(max_length=200, help_text=f"{MIN_COMPARED} to {MAX_COMPARED} comma-separated model "
                                                          "ids (active_model_id), e.g. 1,2.")

    def validate_ids(self, value: str) -> list[int]:
        return parse_ids(value)


# --- one model's figures ---------------------------------------------------------------------------------------------


class CalibrationBinSerializer(serializers.Serializer):
    bin_low = serializers.FloatField()
    bin_high = serializers.FloatField()
    predicted = _fraction("Mean predicted probability of the bin's judged predictions.")
    observed = _fraction("Share of them whose event happened.")
    n = serializers.IntegerField()


class TrainingReferenceSerializer(serializers.Serializer):
    accuracy = _fraction()
    precision = _fraction()
    recall = _fraction()
    f1 = _fraction()


class BacktestReferenceSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    success_rate = _fraction()
    roc_auc = _fraction()
    base_rate = _fraction()
    alerts = serializers.IntegerField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)


class ReferenceSerializer(serializers.Serializer):
    training = TrainingReferenceSerializer(help_text="The model's training metrics (its metadata).")
    backtest = BacktestReferenceSerializer(allow_null=True, help_text="Its latest finished backtest, if any.")
    success_rate = _fraction("The success rate the live one is held against: the backtest's, else the training "
                             "precision.")
    success_rate_source = serializers.ChoiceField(choices=["backtest", "training precision"], allow_null=True)


class DriftReferenceSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="training, backtest or live")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = serializers.IntegerField()


class QualitySerializer(serializers.Serializer):
    active_model_id = serializers.IntegerField()
    name = serializers.CharField(help_text="The model's display name.")
    window = serializers.ChoiceField(choices=[*WINDOWS, "custom"], help_text="custom: a start/end range.")
    start = serializers.DateTimeField(allow_null=True, help_text="null: all time.")
    end = serializers.DateTimeField()
    judged_predictions = serializers.IntegerField(help_text="Predictions judged success or failed.")
    judged_alerts = serializers.IntegerField(help_text="Alerts judged success or failed.")
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = _fraction("success / judged_alerts.")
    success_rate_low = _fraction("Wilson 95 % interval, low end.")
    success_rate_high = _fraction("Wilson 95 % interval, high end.")
    precision = _fraction("Of the 0/1 prediction, over judged predictions.")
    recall = _fraction()
    f1 = _fraction()
    roc_auc = _fraction("Of the probability.")
    brier = _fraction("Mean squared error of the probability.")
    base_rate = _fraction("Share of judged predictions whose event happened.")
    calibration = CalibrationBinSerializer(many=True, help_text="10 equal-width probability bins.")
    avg_price_change_pct = serializers.FloatField(allow_null=True, help_text="Of judged alerts, in percent.")
    sum_price_change_pct = serializers.FloatField(allow_null=True)
    avg_ath_gain_pct = serializers.FloatField(allow_null=True, help_text="Highest price after the alert, in percent.")
    psi = serializers.DictField(child=serializers.FloatField(allow_null=True),
                                help_text="Population stability index per feature against the reference (null: "
                                          "no live rows counted); empty without a reference.")
    psi_rows = serializers.IntegerField(help_text="Sampled live rows the PSI rests on.")
    drifted_features = serializers.ListField(child=serializers.CharField(),
                                             help_text="Important features past the PSI threshold, most drifted first.")
    drift_reference = DriftReferenceSerializer(allow_null=True)
    degraded = serializers.BooleanField(help_text="Flagged by the worker's last check.")
    degraded_reasons = serializers.ListField(child=serializers.CharField())
    reference = ReferenceSerializer()


# --- several models --------------------------------------------------------------------------------------------------


class PairedSerializer(serializers.Serializer):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    shared_events = serializers.IntegerField(help_text="Coin events (coin, data time) both models were judged on.")
    only_first_right = serializers.IntegerField()
    only_second_right = serializers.IntegerField()
    discordant = serializers.IntegerField()
    p_value = _fraction("Exact McNemar test, two-sided; null without discordant events.")
    better = serializers.ChoiceField(choices=["first", "second"], allow_null=True,
                                     help_text="The model right more often at p < 0.05; null: no clear difference.")


class CompareSerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=[*WINDOWS, "custom"])
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField()
    models = QualitySerializer(many=True)
    pairs = PairedSerializer(many=True)


# --- settings --------------------------------------------------------------------------------------------------------


class QualitySettingsSerializer(serializers.Serializer):
    active_model_id = serializers.IntegerField()
    margin = serializers.FloatField(help_text="How far below its reference success rate a model may fall (0..1).")
    min_judged_alerts = serializers.IntegerField(help_text="Judged alerts needed before a verdict on the rate.")
    psi_threshold = serializers.FloatField(help_text="Feature PSI above which a feature counts as drifted.")
    auto_pause = serializers.BooleanField(help_text="Deactivate the model when it is found degraded.")
    degraded = serializers.BooleanField()
    degraded_reasons = serializers.ListField(child=serializers.CharField())
    degraded_since = serializers.DateTimeField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)


class QualitySettingsChangeSerializer(serializers.Serializer):
    """A partial update: only the fields sent change; unknown fields are refused."""

    margin = serializers.FloatField(required=False, min_value=0, max_value=1)
    min_judged_alerts = serializers.IntegerField(required=False, min_value=1, max_value=INT_MAX)
    psi_threshold = serializers.FloatField(required=False, help_text="Above 0.")
    auto_pause = serializers.BooleanField(required=False)

    def validate_psi_threshold(self, value: float) -> float:
        if not value > 0:
            raise serializers.ValidationError("Must be above 0.")
        return value

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs
