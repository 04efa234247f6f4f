"""The legacy alert endpoints (`GET /api/alerts`, `GET /api/alerts/{id}`), re-backed by `model_predictions`.

The existing server read them from `alert_evaluations`, a table nothing writes any more (weakness 13). Here an
*alert* is a `model_predictions` row tagged `alert`, shown in the legacy row shape:

| legacy field | from |
|---|---|
| `id`, `prediction_id` | the row's id |
| `status` | `aktiv` → `pending`; evaluated → `success` / `failed`; `not_applicable` → `expired` |
| `alert_timestamp` | `prediction_timestamp` |
| `*_at_alert` | the `*_at_prediction` snapshot (`market_cap_close_at_alert` = `market_cap_at_prediction`, `volume_sol_at_alert` = `volume_at_prediction`); figures not stored here are null |
| `prediction_type` | `classic` for operator/value models without a percentage target, else `time_based` |
| target fields | the model's current target |
| `ath_price_change_pct`, `ath_timestamp` | `ath_highest_pct`, `ath_highest_timestamp` |

`non_alert` rows do not exist in this shape (a non-alert is a row with another tag); `include_non_alerts` is a
no-op, as it effectively was before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, Q, QuerySet
from django.utils import timezone

from alerts.selectors import ALERT, FAILED, NOT_APPLICABLE, PENDING, SUCCEEDED
from modelregistry.models import ActiveModel
from predictions.models import (
    CoinMetric,
    EvaluationResult,
    ModelPrediction,
    PredictionStatus,
    coin_filter,
    coins_filter,
)

STATUSES = ("pending", "success", "failed", "expired", "non_alert")
STATUS_FILTERS = {
    "pending": PENDING,
    "success": SUCCEEDED,
    "failed": FAILED,
    "expired": NOT_APPLICABLE,
    "non_alert": Q(pk__in=[]),
}
CLASSIC = Q(
    active_model__price_change_percent__isnull=True,
    active_model__target_operator__isnull=False,
    active_model__target_value__isnull=False,
)
CHART_MAX_ROWS = 20_000
OTHER_ALERTS_MAX = 1_000

SNAPSHOT_FIELDS = ("price_close", "price_open", "price_high", "price_low")
COIN_VALUE_FIELDS = (
    "price_close", "price_open", "price_high", "price_low", "market_cap_close", "market_cap_open", "volume_sol",
    "volume_usd", "buy_volume_sol", "sell_volume_sol", "num_buys", "num_sells", "unique_wallets", "phase_id",
)


def _float(value):
    return float(value) if isinstance(value, Decimal) else value


def legacy_status(row: ModelPrediction) -> str:
    if row.status == PredictionStatus.PENDING:
        return "pending"
    return {EvaluationResult.SUCCESS: "success", EvaluationResult.FAILED: "failed"}.get(row.evaluation_result, "expired")


def prediction_type(model: ActiveModel) -> str:
    classic = model.price_change_percent is None and model.target_operator and model.target_value is not None
    return "classic" if classic else "time_based"


def model_name(model: ActiveModel | None, model_id: int | None = None) -> str:
    if model is not None and (model.custom_name or model.model_name):
        return model.custom_name or model.model_name
    return f"ID: {model_id}"


def alert_row(row: ModelPrediction, *, now: datetime, other_alerts_count: int = 0) -> dict:
    """One alert in the legacy `alert_evaluations` shape plus the derived fields of `GET /api/alerts`."""
    model = row.active_model
    status = legacy_status(row)
    remaining = None
    if status == "pending" and row.evaluation_timestamp is not None:
        remaining = max(0, int((row.evaluation_timestamp - now).total_seconds()))
    at_alert = {f"{field}_at_alert": _float(getattr(row, f"{field}_at_prediction")) for field in SNAPSHOT_FIELDS}
    at_evaluation = {
        f"{field}_at_evaluation": _float(getattr(row, f"{field}_at_evaluation")) for field in SNAPSHOT_FIELDS
    }
    return {
        "id": row.id,
        "prediction_id": row.id,
        "coin_id": row.coin_id,
        "model_id": row.model_id,
        "active_model_id": row.active_model_id,
        "prediction_type": prediction_type(model),
        "probability": row.probability,
        "target_variable": model.target_variable,
        "future_minutes": model.future_minutes,
        "price_change_percent": _float(model.price_change_percent),
        "target_direction": model.target_direction,
        "target_operator": model.target_operator,
        "target_value": _float(model.target_value),
        "alert_timestamp": row.prediction_timestamp,
        **at_alert,
        "market_cap_close_at_alert": _float(row.market_cap_at_prediction),
        "market_cap_open_at_alert": None,
        "volume_sol_at_alert": _float(row.volume_at_prediction),
        "volume_usd_at_alert": None,
        "buy_volume_sol_at_alert": None,
        "sell_volume_sol_at_alert": None,
        "num_buys_at_alert": None,
        "num_sells_at_alert": None,
        "unique_wallets_at_alert": None,
        "phase_id_at_alert": row.phase_id_at_prediction,
        "evaluation_timestamp": row.evaluation_timestamp,
        **at_evaluation,
        "market_cap_close_at_evaluation": _float(row.market_cap_at_evaluation),
        "market_cap_open_at_evaluation": None,
        "volume_sol_at_evaluation": _float(row.volume_at_evaluation),
        "volume_usd_at_evaluation": None,
        "buy_volume_sol_at_evaluation": None,
        "sell_volume_sol_at_evaluation": None,
        "num_buys_at_evaluation": None,
        "num_sells_at_evaluation": None,
        "unique_wallets_at_evaluation": None,
        "phase_id_at_evaluation": row.phase_id_at_evaluation,
        "actual_price_change_pct": _float(row.actual_price_change_pct),
        "actual_value_at_evaluation": None,
        "status": status,
        "evaluated_at": row.evaluated_at,
        "evaluation_note": row.evaluation_note,
        "ath_price_change_pct": _float(row.ath_highest_pct),
        "ath_timestamp": row.ath_highest_timestamp,
        "ath_price_close": None,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "remaining_seconds": remaining,
        "model_name": model_name(model, row.model_id),
        "other_alerts_count": other_alerts_count,
        "alert_threshold": float(model.alert_threshold) if model.alert_threshold is not None else 0.7,
    }


def alerts_filter(
    *,
    status: str | None = None,
    model_id: int | None = None,
    active_model_id: int | None = None,
    coin_id: str | None = None,
    prediction_type: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> Q:
    condition = ALERT
    if status:
        condition &= STATUS_FILTERS[status]
    if model_id is not None:
        condition &= Q(model_id=model_id)
    if active_model_id is not None:
        condition &= Q(active_model_id=active_model_id)
    if coin_id:
        condition &= coin_filter(coin_id)
    if prediction_type == "classic":
        condition &= CLASSIC
    elif prediction_type == "time_based":
        condition &= ~CLASSIC
    if date_from is not None:
        condition &= Q(prediction_timestamp__gte=date_from)
    if date_to is not None:
        condition &= Q(prediction_timestamp__lte=date_to)
    return condition


def alerts_page(*, filters: dict, unique_coins: bool = True, limit: int = 100, offset: int = 0) -> dict:
    """`GET /api/alerts`: a page of alerts and the status counts over the same filters (spec A1).

    `unique_coins`: the newest alert per coin, ordered by coin id, `total` = number of coins, each row with the
    number of the coin's other alerts (all models). Otherwise newest first and `total` = number of rows.
    Three to four queries whatever the page size.
    """
    now = timezone.now()
    rows: QuerySet = ModelPrediction.objects.filter(alerts_filter(**filters)).select_related("active_model")
    counts = rows.order_by().aggregate(
        total_rows=Count("id"),
        pending=Count("id", filter=PENDING),
        success=Count("id", filter=SUCCEEDED),
        failed=Count("id", filter=FAILED),
        expired=Count("id", filter=NOT_APPLICABLE),
    )
    if unique_coins:
        page = list(rows.readable().order_by("coin_id", "-prediction_timestamp", "-id")
                    .distinct("coin_id")[offset: offset + limit])
        total = rows.order_by().values("coin_id").distinct().count() if counts["total_rows"] else 0
        per_coin = dict(
            ModelPrediction.objects.filter(ALERT, coins_filter({row.coin_id for row in page}))
            .order_by()
            .values("coin_id")
            .annotate(n=Count("id"))
            .values_list("coin_id", "n")
        )
        alerts = [alert_row(row, now=now, other_alerts_count=max(0, per_coin.get(row.coin_id, 1) - 1)) for row in page]
    else:
        page = list(rows.readable().order_by("-prediction_timestamp", "-id")[offset: offset + limit])
        total = counts["total_rows"]
        alerts = [alert_row(row, now=now) for row in page]
    return {
        "alerts": alerts,
        "total": total,
        "pending": counts["pending"],
        "success": counts["success"],
        "failed": counts["failed"],
        "expired": counts["expired"],
    }


def _coin_values(*, coin_id: str, at: datetime | None, fallback: ModelPrediction, when: str) -> dict | None:
    """The coin's figures in its newest metrics row at or before `at`; the stored snapshot if there is none."""
    if at is None:
        return None
    metric = CoinMetric.objects.filter(mint=coin_id, timestamp__lte=at).order_by("-timestamp").first()
    if metric is not None:
        values = {field: _float(getattr(metric, field, None)) for field in COIN_VALUE_FIELDS}
        values["phase_id"] = metric.phase_id_at_time
        return values
    values = dict.fromkeys(COIN_VALUE_FIELDS)
    for field in SNAPSHOT_FIELDS:
        values[field] = _float(getattr(fallback, f"{field}_at_{when}"))
    values["market_cap_close"] = _float(getattr(fallback, f"market_cap_at_{when}"))
    values["volume_sol"] = _float(getattr(fallback, f"volume_at_{when}"))
    values["phase_id"] = getattr(fallback, f"phase_id_at_{when}")
    return values


def alert_details(*, alert_id: int, chart_before_minutes: int = 10, chart_after_minutes: int = 10) -> dict | None:
    """`GET /api/alerts/{id}` (spec A2) for an alert row; None if there is no alert with that id."""
    row = ModelPrediction.objects.readable().filter(ALERT, pk=alert_id).select_related("active_model").first()
    if row is None:
        return None
    now = timezone.now()
    alert = alert_row(row, now=now)
    status = alert["status"]
    start = row.prediction_timestamp - timedelta(minutes=chart_before_minutes)
    end = (row.evaluation_timestamp or now) + timedelta(minutes=chart_after_minutes)
    chart = list(
        CoinMetric.objects.filter(mint=row.coin_id, timestamp__gte=start, timestamp__lte=end)
        .order_by("timestamp")
        .values("timestamp", "price_close", "price_high", "price_low", "volume_sol", "market_cap_close")[
            :CHART_MAX_ROWS
        ]
    )
    others = (
        ModelPrediction.objects.readable().filter(ALERT, coin_filter(row.coin_id))
        .exclude(pk=row.pk)
        .select_related("active_model")
        .order_by("-prediction_timestamp", "-id")[:OTHER_ALERTS_MAX]
    )
    model_rows = ModelPrediction.objects.filter(ALERT, active_model_id=row.active_model_id).order_by()
    figures = model_rows.aggregate(
        total=Count("id"), success=Count("id", filter=SUCCEEDED), failed=Count("id", filter=FAILED)
    )
    time_based = prediction_type(row.active_model) == "time_based"
    successes = model_rows.filter(SUCCEEDED, actual_price_change_pct__isnull=False)
    average = successes.aggregate(actual=Avg("actual_price_change_pct"))["actual"] if time_based else None
    expected = row.active_model.price_change_percent if time_based and figures["success"] else None
    judged = figures["success"] + figures["failed"]
    return {
        "alert": alert,
        "coin_values_at_alert": _coin_values(
            coin_id=row.coin_id, at=row.prediction_timestamp, fallback=row, when="prediction"
        ),
        "coin_values_at_evaluation": _coin_values(
            coin_id=row.coin_id, at=row.evaluation_timestamp, fallback=row, when="evaluation"
        ) if status in ("success", "failed") else None,
        "price_history": [
            {
                "timestamp": point["timestamp"],
                "price_close": _float(point["price_close"]),
                "price_high": _float(point["price_high"]),
                "price_low": _float(point["price_low"]),
            }
            for point in chart
        ],
        "volume_history": [{"timestamp": p["timestamp"], "volume_sol": _float(p["volume_sol"])} for p in chart],
        "market_cap_history": [
            {"timestamp": p["timestamp"], "market_cap_close": _float(p["market_cap_close"])} for p in chart
        ],
        "other_alerts": [
            {
                "id": other.id,
                "alert_timestamp": other.prediction_timestamp,
                "model_name": model_name(other.active_model, other.model_id),
                "status": legacy_status(other),
                "probability": other.probability,
            }
            for other in others
        ],
        "statistics": {
            "model_total_alerts": figures["total"],
            "model_success_count": figures["success"],
            "model_failed_count": figures["failed"],
            "model_success_rate": 100.0 * figures["success"] / judged if judged else 0.0,
            "model_avg_actual_change": _float(average),
            "model_avg_expected_change": _float(expected),
        },
    }

