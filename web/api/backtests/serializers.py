"""Backtest runs as the REST API (and the MCP tools) show them: the request, the run with its state, progress and
summary, pages of replayed rows."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backtests.models import RunState
from web.api.common import PageQuerySerializer


class BacktestRequestSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="First data time replayed (ISO-8601; without an offset it is UTC).")
    end = serializers.DateTimeField(help_text="Last data time replayed, inclusive; at most BACKTEST_MAX_RANGE_DAYS "
                                              "after start.")
    threshold = serializers.FloatField(
        required=False, allow_null=True, min_value=0, max_value=1,
        help_text="Alert threshold the replayed rows are tagged by (above 0, at most 1); default: the model's.",
    )


# --- the summary (stored by the run when it is done) ---------------------------------------------------------------


class ThresholdRowSerializer(serializers.Serializer):
    threshold = serializers.FloatField()
    alerts = serializers.IntegerField(help_text="Rows with probability >= threshold.")
    success = serializers.IntegerField(help_text="Of those, judged rows whose predicted event happened.")
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True, help_text="success / (success + failed), 0..1.")
    avg_price_change_pct = serializers.FloatField(allow_null=True)


class LiveDifferenceSerializer(serializers.Serializer):
    coin_id = serializers.CharField()
    timestamp = serializers.DateTimeField()
    live_probability = serializers.FloatField()
    replay_probability = serializers.FloatField(allow_null=True, help_text="null: the replay has no such row.")
    reason = serializers.CharField()


class LiveComparisonSerializer(serializers.Serializer):
    live_predictions = serializers.IntegerField(help_text="The model's stored live predictions in the range.")
    reproduced = serializers.IntegerField(help_text="Of those, replayed with exactly the same probability.")
    differing = serializers.IntegerField()
    differences = LiveDifferenceSerializer(many=True, help_text="The first 50 that differ, each with its reason.")


class VerdictCountsSerializer(serializers.Serializer):
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    not_applicable = serializers.IntegerField()
    pending = serializers.IntegerField()


class BacktestSummarySerializer(serializers.Serializer):
    """Documents the stored summary (the same as `manage.py backtest --json`); answers pass it through."""

    model_id = serializers.IntegerField(help_text="The registry id (active_model_id).")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    threshold = serializers.FloatField()
    rows_replayed = serializers.IntegerField(help_text="coin_metrics rows of the range.")
    predictions = serializers.IntegerField(help_text="Rows the model's filters and scan rules let through.")
    alerts = serializers.IntegerField(help_text="Predictions tagged alert (probability >= threshold).")
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    not_applicable = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Alerts whose horizon lies beyond the recorded data.")
    success_rate = serializers.FloatField(allow_null=True, help_text="Of the alerts: success / (success + failed).")
    avg_price_change_pct = serializers.FloatField(allow_null=True)
    sum_price_change_pct = serializers.FloatField(allow_null=True)
    all_predictions = VerdictCountsSerializer(help_text="Verdicts of every prediction, alerts or not.")
    base_rate = serializers.FloatField(allow_null=True, help_text="Share of judged predictions whose event happened.")
    roc_auc = serializers.FloatField(allow_null=True)
    thresholds = ThresholdRowSerializer(many=True, help_text="One row per threshold 0.50, 0.55, … 0.95.")
    data_end = serializers.DateTimeField(allow_null=True, help_text="Newest coin_metrics time when judged.")
    duration_s = serializers.FloatField()
    rows_per_s = serializers.FloatField(allow_null=True)
    live = LiveComparisonSerializer()


# --- the run ------------------------------------------------------------------------------------------------------


class BacktestLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    rows = serializers.CharField(help_text="Replayed rows, paged JSON.")
    rows_csv = serializers.CharField(help_text="Every replayed row as CSV.")
    page = serializers.CharField(help_text="The run's page (charts).")


def run_links(run) -> dict:
    rows = reverse("backtest-rows", args=[run.pk])
    return {"self": reverse("backtest-detail", args=[run.pk]), "rows": rows, "rows_csv": f"{rows}?format=csv",
            "page": reverse("backtests:run", args=[run.pk])}


class BacktestRunSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    active_model_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=RunState.values, help_text="queued, running, done or failed "
                                                                       "(crashed or cancelled: see error).")
    progress = serializers.FloatField(help_text="Share of the range's rows replayed, 0..1.")
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    threshold = serializers.FloatField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    error = serializers.CharField(help_text="Why a failed run failed; empty otherwise.")
    cancel_requested = serializers.BooleanField()
    requested_by = serializers.CharField()
    settings = serializers.DictField(help_text="The model settings the replay applies (kept with the run).")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    summary = serializers.SerializerMethodField(help_text="null until the run is done.")
    links = serializers.SerializerMethodField()

    @extend_schema_field(BacktestSummarySerializer(allow_null=True))
    def get_summary(self, run) -> dict | None:
        return run.summary if run.state == RunState.DONE else None

    @extend_schema_field(BacktestLinksSerializer)
    def get_links(self, run) -> dict:
        return run_links(run)


class BacktestRunBriefSerializer(BacktestRunSerializer):
    """A run in a list: the run without its settings and summary, with the summary's headline figures."""

    predictions = serializers.SerializerMethodField()
    alerts = serializers.SerializerMethodField()
    success_rate = serializers.SerializerMethodField(help_text="Of the alerts, 0..1; null until done or if none "
                                                               "was judged.")

    def get_fields(self):
        fields = super().get_fields()
        fields.pop("settings")
        fields.pop("summary")
        return fields

    def _figure(self, run, key):
        return run.summary.get(key) if run.state == RunState.DONE and run.summary else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_predictions(self, run) -> int | None:
        return self._figure(run, "predictions")

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_alerts(self, run) -> int | None:
        return self._figure(run, "alerts")

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_success_rate(self, run) -> float | None:
        return self._figure(run, "success_rate")


class BacktestListSerializer(serializers.Serializer):
    backtests = BacktestRunBriefSerializer(many=True, help_text="Newest first.")
    total = serializers.IntegerField(help_text="The model's runs over all pages.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


# --- replayed rows --------------------------------------------------------------------------------------------------


class BacktestRowsQuerySerializer(PageQuerySerializer):
    format = serializers.ChoiceField(
        choices=["json", "csv"], required=False,
        help_text="csv streams every row (as `manage.py backtest --rows-csv`), as does `Accept: text/csv`; "
                  "limit and offset page the JSON answer.",
    )


class BacktestRowSerializer(serializers.Serializer):
    coin_id = serializers.CharField()
    timestamp = serializers.DateTimeField(source="prediction_timestamp", help_text="Data time of the replayed row.")
    probability = serializers.FloatField()
    prediction = serializers.IntegerField()
    tag = serializers.ChoiceField(choices=["negativ", "positiv", "alert"])
    evaluation_result = serializers.ChoiceField(
        choices=["success", "failed", "not_applicable"], allow_null=True,
        help_text="null: the horizon lies beyond the recorded data.",
    )
    actual_price_change_pct = serializers.FloatField(allow_null=True)


class BacktestRowsPageSerializer(serializers.Serializer):
    rows = BacktestRowSerializer(many=True, help_text="In data-time order.")
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
