"""Alert and prediction statistics shared by the REST API, the pages and the MCP tools (spec §2.7).

Every figure comes from `model_predictions` (the legacy `predictions`/`alert_evaluations` tables are not written any
more, weakness 13), each function in a few aggregate queries with FILTER clauses and none per model (weakness 19).
Counts are ints, percentages 0–100 floats, sums of percentage points floats.

One meaning of each word everywhere (weakness 9): an *alert* is a row tagged `alert`; *positive*/*negative* are the
model's 0/1 `prediction`; *evaluated* is `status='inaktiv'`; `expired` is the API's name for `not_applicable`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Avg, Count, F, Max, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Floor, Least
from django.utils import timezone

from modelregistry.models import ActiveModel
from predictions.models import EvaluationResult, ModelPrediction, PredictionStatus, Tag, WebhookLog

PENDING = Q(status=PredictionStatus.PENDING)
EVALUATED = Q(status=PredictionStatus.EVALUATED)
SUCCEEDED = EVALUATED & Q(evaluation_result=EvaluationResult.SUCCESS)
FAILED = EVALUATED & Q(evaluation_result=EvaluationResult.FAILED)
NOT_APPLICABLE = EVALUATED & Q(evaluation_result=EvaluationResult.NOT_APPLICABLE)
ALERT = Q(tag=Tag.ALERT)
NON_ALERT = ~ALERT
POSITIVE = Q(prediction=1)
NEGATIVE = Q(prediction=0)
WEBHOOK_2XX = Q(response_status__gte=200, response_status__lt=300)


def _count(condition: Q | None = None) -> Count:
    return Count("id", filter=condition)


def _rate(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _float(value) -> float | None:
    return None if value is None else float(value)


def _predictions(*, active_model_id: int | None = None, date_from: datetime | None = None,
                 date_to: datetime | None = None) -> QuerySet:
    rows = ModelPrediction.objects.order_by()
    if active_model_id is not None:
        rows = rows.filter(active_model_id=active_model_id)
    if date_from is not None:
        rows = rows.filter(prediction_timestamp__gte=date_from)
    if date_to is not None:
        rows = rows.filter(prediction_timestamp__lte=date_to)
    return rows


def alert_statistics(*, active_model_id: int | None = None, date_from: datetime | None = None,
                     date_to: datetime | None = None) -> dict:
    """`GET /api/alerts/statistics` (§2.7.1), `by_model` included; two queries.

    Every figure without `non_alerts_` in its name is about alerts, so they add up: `total_alerts` =
    `alerts_above_threshold` = `pending` + `success` + `failed` + `expired` = the sum of `by_model[].total`. The
    existing server counted every prediction (all tags) in `total_alerts`, `pending`, `success`, `failed`,
    `expired`, `success_rate` and `by_model` (weakness 9), which put "101 alerts" beside "10 above threshold";
    that count of every prediction is `total_predictions` here. `by_model[].success` counts only successes (the
    existing server added the failures).
    """
    rows = _predictions(active_model_id=active_model_id, date_from=date_from, date_to=date_to)
    judged_alert_change = ALERT & Q(actual_price_change_pct__isnull=False)
    figures = rows.aggregate(
        total_predictions=_count(),
        total_alerts=_count(ALERT),
        pending=_count(ALERT & PENDING),
        success=_count(ALERT & SUCCEEDED),
        failed=_count(ALERT & FAILED),
        expired=_count(ALERT & NOT_APPLICABLE),
        alerts_above_threshold=_count(ALERT),
        alerts_success=_count(ALERT & SUCCEEDED),
        alerts_failed=_count(ALERT & FAILED),
        alerts_pending=_count(ALERT & PENDING),
        non_alerts_success=_count(NON_ALERT & SUCCEEDED),
        non_alerts_failed=_count(NON_ALERT & FAILED),
        non_alerts_pending=_count(NON_ALERT & PENDING),
        total_performance_pct=Sum("actual_price_change_pct", filter=judged_alert_change & (SUCCEEDED | FAILED)),
        alerts_profit_pct=Sum("actual_price_change_pct", filter=judged_alert_change & SUCCEEDED),
        alerts_loss_pct=Sum("actual_price_change_pct", filter=judged_alert_change & FAILED),
    )
    for total in ("total_performance_pct", "alerts_profit_pct", "alerts_loss_pct"):
        figures[total] = float(figures[total] or 0)
    return {
        **figures,
        "non_alerts_count": figures["non_alerts_success"] + figures["non_alerts_failed"]
        + figures["non_alerts_pending"],
        "alerts_success_rate": _rate(figures["alerts_success"], figures["alerts_success"] + figures["alerts_failed"]),
        "non_alerts_success_rate": _rate(
            figures["non_alerts_success"], figures["non_alerts_success"] + figures["non_alerts_failed"]
        ),
        "success_rate": _rate(figures["success"], figures["success"] + figures["failed"]),
        "by_model": _by_model(rows.filter(ALERT)),
    }


def _by_model(alerts: QuerySet) -> list[dict]:
    """Per model with alerts among `alerts`: its alerts and their verdicts, most alerts first."""
    per_model = (
        alerts.values("active_model_id")
        .annotate(
            training_id=F("active_model__model_id"),
            custom_name=F("active_model__custom_name"),
            model_name=F("active_model__model_name"),
            total=_count(),
            success=_count(SUCCEEDED),
            failed=_count(FAILED),
            pending=_count(PENDING),
            expired=_count(NOT_APPLICABLE),
        )
        .order_by("-total", "active_model_id")
    )
    entries = []
    for row in per_model:
        # A deleted model's rows go with it (FK cascade), so the active id stands in only for a missing training id.
        model_id = row["training_id"] if row["training_id"] is not None else row["active_model_id"]
        entries.append({
            "model_id": model_id,
            "model_name": row["custom_name"] or row["model_name"] or f"ID: {model_id}",
            "total": row["total"],
            "success": row["success"],
            "failed": row["failed"],
            "pending": row["pending"],
            "expired": row["expired"],
            "success_rate": _rate(row["success"], row["success"] + row["failed"]),
        })
    return entries


MODEL_ALERT_FIELDS = ("total_predictions", "positive_predictions", "negative_predictions", "alerts_total",
                      "alerts_success", "alerts_failed", "alerts_pending", "alerts_expired")


def models_alert_statistics(*, active_model_ids: list[int] | None = None) -> dict[str, dict]:
    """Per-model alert counts (§2.7.2) keyed by the active model id as a string; all active models by default."""
    if active_model_ids is None:
        active_model_ids = list(ActiveModel.objects.filter(is_active=True).values_list("id", flat=True))
    counted = (
        ModelPrediction.objects.filter(active_model_id__in=active_model_ids)
        .values("active_model_id")
        .annotate(
            total_predictions=_count(),
            positive_predictions=_count(POSITIVE),
            negative_predictions=_count(NEGATIVE),
            alerts_total=_count(ALERT),
            alerts_success=_count(ALERT & SUCCEEDED),
            alerts_failed=_count(ALERT & FAILED),
            alerts_pending=_count(ALERT & PENDING),
            alerts_expired=_count(ALERT & NOT_APPLICABLE),
        )
        .order_by()
    )
    by_id = {row["active_model_id"]: {field: row[field] for field in MODEL_ALERT_FIELDS} for row in counted}
    zeros = dict.fromkeys(MODEL_ALERT_FIELDS, 0)
    return {str(model_id): by_id.get(model_id, dict(zeros)) for model_id in active_model_ids}


def model_statistics(*, active_model_id: int) -> dict:
    """One model's prediction statistics (§2.7.3) from `model_predictions`, every field present even without rows.

    The existing server read the legacy table (so it always failed or returned zeros). Changes that follow from
    `model_predictions`, in the spirit of weakness 9: `alerts_count` counts rows tagged `alert` and
    `alert_threshold` is the model's own threshold (the legacy figure used the global 0.7); webhook attempts count
    when their coin is one the model predicted and their data time is at or after the model's first prediction's
    data time. `positive_rate_percent`/`negative_rate_percent` are the MCP tool's extra fields.
    """
    rows = _predictions(active_model_id=active_model_id)
    figures = rows.aggregate(
        total_predictions=_count(),
        positive_predictions=_count(POSITIVE),
        negative_predictions=_count(NEGATIVE),
        avg_probability=Avg("probability"),
        avg_probability_positive=Avg("probability", filter=POSITIVE),
        avg_probability_negative=Avg("probability", filter=NEGATIVE),
        min_probability=Min("probability"),
        max_probability=Max("probability"),
        avg_duration_ms=Avg("prediction_duration_ms"),
        first_prediction=Min("created_at"),
        last_prediction=Max("created_at"),
        first_data_time=Min("prediction_timestamp"),
        unique_coins=Count("coin_id", distinct=True),
        alerts_count=_count(ALERT),
    )
    first_data_time = figures.pop("first_data_time")
    webhooks = {"total": 0, "success": 0}
    if first_data_time is not None:
        webhooks = WebhookLog.objects.filter(
            data_timestamp__gte=first_data_time, coin_id__in=rows.values("coin_id")
        ).aggregate(total=_count(), success=_count(WEBHOOK_2XX))
    bucket = Least(Floor(F("probability") * 10), Value(9.0))
    distribution = rows.annotate(bucket=bucket).values("bucket").annotate(n=_count()).order_by("bucket")
    threshold = ActiveModel.objects.filter(pk=active_model_id).values_list("alert_threshold", flat=True).first()
    total = figures["total_predictions"]
    return {
        **figures,
        "positive_rate_percent": _rate(figures["positive_predictions"], total),
        "negative_rate_percent": _rate(figures["negative_predictions"], total),
        "alert_threshold": _float(threshold),
        "webhook_total": webhooks["total"],
        "webhook_success": webhooks["success"],
        "webhook_failed": webhooks["total"] - webhooks["success"],
        "webhook_success_rate": _rate(webhooks["success"], webhooks["total"]) if webhooks["total"] else None,
        "probability_distribution": {
            f"{int(row['bucket']) / 10:.1f}-{(int(row['bucket']) + 1) / 10:.1f}": row["n"] for row in distribution
        },
    }


def system_stats(*, now: datetime | None = None) -> dict:
    """`GET /api/stats` (§2.7.4, the SHOULD column): live figures from `model_predictions` and the webhook log."""
    now = now or timezone.now()
    predictions = ModelPrediction.objects.order_by().aggregate(
        total_predictions=_count(),
        predictions_last_hour=_count(Q(created_at__gte=now - timedelta(hours=1))),
        predictions_last_24h=_count(Q(created_at__gte=now - timedelta(days=1))),
        predictions_last_7d=_count(Q(created_at__gte=now - timedelta(days=7))),
        coins_tracked=Count("coin_id", distinct=True),
        avg_prediction_time_ms=Avg("prediction_duration_ms"),
    )
    webhooks = WebhookLog.objects.order_by().aggregate(
        webhook_total=_count(), webhook_success=_count(WEBHOOK_2XX)
    )
    return {
        **predictions,
        "active_models": ActiveModel.objects.filter(is_active=True).count(),
        "webhook_total": webhooks["webhook_total"],
        "webhook_success": webhooks["webhook_success"],
        "webhook_failed": webhooks["webhook_total"] - webhooks["webhook_success"],
    }
