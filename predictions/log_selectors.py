"""Reads behind the prediction-log endpoints: `GET /api/model-predictions` (L1), coin details (L3), the
legacy `GET /api/predictions*` (P2/P3) and the CSV exports, all on `model_predictions`.

(Kept apart from predictions/selectors.py, which holds the listener's batch reads.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterator

from django.db.models import CharField, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf

from modelregistry.models import ActiveModel
from predictions.models import CoinMetric, ModelPrediction, PredictionStatus, Tag, coin_filter

OPERATORS = {">": "gt", "<": "lt", "=": "exact", ">=": "gte", "<=": "lte"}
EVALUATION_STATUSES = ("success", "failed", "not_applicable", "wait")

# Hard bounds on what one coin-details answer carries (a window of a day at 5 s buckets is 17 280 rows).
DETAILS_MAX_ROWS = 20_000


def _compare(field: str, operator: str | None, value) -> Q:
    if operator is None or value is None:
        return Q()
    return Q(**{f"{field}__{OPERATORS[operator]}": value})


def model_predictions_filter(
    *,
    model_id: int | None = None,
    active_model_id: int | None = None,
    tag: str | None = None,
    status: str | None = None,
    coin_id: str | None = None,
    probability_operator: str | None = None,
    probability_value: float | None = None,
    prediction_statuses: list[str] | None = None,
    evaluation_statuses: list[str] | None = None,
    ath_highest_operator: str | None = None,
    ath_highest_value: float | None = None,
    ath_lowest_operator: str | None = None,
    ath_lowest_value: float | None = None,
    actual_change_operator: str | None = None,
    actual_change_value: float | None = None,
    alert_time_from: datetime | None = None,
    alert_time_to: datetime | None = None,
    evaluation_time_from: datetime | None = None,
    evaluation_time_to: datetime | None = None,
) -> Q:
    """The L1 filters, ANDed. `evaluation_statuses` is the union of its values (`wait` = not yet evaluated);
    the existing server dropped the other values as soon as `wait` was among them (weakness 12)."""
    condition = Q()
    if model_id is not None:
        condition &= Q(model_id=model_id)
    if active_model_id is not None:
        condition &= Q(active_model_id=active_model_id)
    if tag:
        condition &= Q(tag=tag)
    if status:
        condition &= Q(status=status)
    if coin_id:
        condition &= coin_filter(coin_id)
    condition &= _compare("probability", probability_operator, probability_value)
    if prediction_statuses:
        condition &= Q(tag__in=prediction_statuses)
    if evaluation_statuses:
        results = [value for value in evaluation_statuses if value != "wait"]
        union = Q(evaluation_result__in=results) if results else Q(pk__in=[])
        if "wait" in evaluation_statuses:
            union |= Q(evaluation_result__isnull=True) | Q(status=PredictionStatus.PENDING)
        condition &= union
    condition &= _compare("ath_highest_pct", ath_highest_operator, ath_highest_value)
    condition &= _compare("ath_lowest_pct", ath_lowest_operator, ath_lowest_value)
    condition &= _compare("actual_price_change_pct", actual_change_operator, actual_change_value)
    if alert_time_from is not None:
        condition &= Q(prediction_timestamp__gte=alert_time_from)
    if alert_time_to is not None:
        condition &= Q(prediction_timestamp__lte=alert_time_to)
    if evaluation_time_from is not None:
        condition &= Q(evaluation_timestamp__gte=evaluation_time_from)
    if evaluation_time_to is not None:
        condition &= Q(evaluation_timestamp__lte=evaluation_time_to)
    return condition


def model_target_text(model: ActiveModel | None) -> str | None:
    """A model's target in words, e.g. "Price rise of at least 5.0%" (the existing server said it in German)."""
    if model is None:
        return None
    percent = model.price_change_percent
    if percent is None:
        return "No target defined"
    if model.target_direction == "up":
        return f"Price rise of at least {float(percent):.1f}%"
    if model.target_direction == "down":
        return f"Price drop of at least {float(percent):.1f}%"
    return f"{float(percent):.1f}% ({model.target_direction})"


@dataclass
class PredictionPage:
    predictions: list[ModelPrediction]
    model_target: str | None
    total: int
    limit: int
    offset: int


def model_predictions_page(*, filters: dict, limit: int, offset: int) -> PredictionPage:
    """One page of the prediction log, newest `prediction_timestamp` first, and the count with the same filters.

    The count uses the same indexes as the page ((active_model, prediction_timestamp), (coin_id, …)); with no
    selective filter it is a full count of the table (weakness 23: acceptable for the log page, which always
    filters by model).
    """
    queryset = ModelPrediction.objects.filter(model_predictions_filter(**filters))
    rows = list(queryset.readable().order_by("-prediction_timestamp", "-id")[offset: offset + limit])
    total = queryset.count() if rows or offset else 0
    model = None
    if filters.get("active_model_id") is not None:
        model = ActiveModel.objects.filter(pk=filters["active_model_id"]).first()
    return PredictionPage(rows, model_target_text(model), total, limit, offset)


# --- coin details (L3) ----------------------------------------------------------------------------------------------


class NotFound(LookupError):
    """The model, the prediction or any prediction of the coin does not exist; the message is the 404 detail."""


def _float(value):
    return float(value) if isinstance(value, Decimal) else value


def price_history(*, coin_id: str, start: datetime, end: datetime, limit: int = DETAILS_MAX_ROWS) -> list[dict]:
    rows = (
        CoinMetric.objects.filter(mint=coin_id, timestamp__gte=start, timestamp__lte=end)
        .order_by("timestamp")
        .values("timestamp", "price_open", "price_high", "price_low", "price_close", "volume_sol", "market_cap_close")[
            :limit
        ]
    )
    return [{key: _float(value) for key, value in row.items()} for row in rows]


def coin_details(
    *,
    active_model_id: int,
    coin_id: str,
    prediction_id: int | None = None,
    time_window_minutes: int = 60,
    time_offset_minutes: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict:
    """Prices, predictions and verdicts of one coin for one model around a prediction (spec L3).

    With `prediction_id`: from its prediction time − 10 min to its evaluation time + 10 min. Without: a window of
    `time_window_minutes` starting 5 min before the coin's first prediction by this model, moved by
    `time_offset_minutes` (the existing server took that first prediction from the legacy `predictions` table).
    With `start` and `end` (MCP `get_coin_details`): exactly that window, predictions or not
    (`prediction_timestamp` is then null).
    """
    model = ActiveModel.objects.filter(pk=active_model_id).first()
    if model is None:
        raise NotFound(f"Model {active_model_id} not found")
    own = ModelPrediction.objects.filter(coin_filter(coin_id), active_model_id=active_model_id)
    if start is not None and end is not None:
        anchor = None
    elif prediction_id is not None:
        anchor = own.filter(pk=prediction_id).first()
        if anchor is None:
            raise NotFound(f"Prediction {prediction_id} not found for coin {coin_id} and model {active_model_id}")
        start = anchor.prediction_timestamp - timedelta(minutes=10)
        end = (anchor.evaluation_timestamp or anchor.prediction_timestamp) + timedelta(minutes=10)
    else:
        anchor = own.order_by("prediction_timestamp", "id").first()
        if anchor is None:
            raise NotFound(f"No predictions for coin {coin_id} and model {active_model_id}")
        start = anchor.prediction_timestamp - timedelta(minutes=5) + timedelta(minutes=time_offset_minutes)
        end = start + timedelta(minutes=time_window_minutes)
    in_window = own.filter(prediction_timestamp__gte=start, prediction_timestamp__lte=end).order_by(
        "prediction_timestamp", "id"
    )
    threshold = float(model.alert_threshold)
    predictions = [
        {
            "id": row.id,
            "prediction_timestamp": row.prediction_timestamp,
            "evaluation_timestamp": row.evaluation_timestamp,
            "timestamp": row.prediction_timestamp,
            "prediction": {Tag.POSITIV: 1, Tag.NEGATIV: 0}.get(row.tag),
            "probability": row.probability,
            "alert_threshold": threshold,
            "is_alert": row.tag == Tag.ALERT,
        }
        for row in in_window[:DETAILS_MAX_ROWS]
    ]
    expected = _float(model.price_change_percent)
    evaluations = [
        {
            "id": row.id,
            "evaluation_timestamp": row.evaluated_at,
            "prediction_timestamp": row.prediction_timestamp,
            "status": row.evaluation_result,
            "actual_price_change": (float(row.actual_price_change_pct) / 100) if row.actual_price_change_pct else None,
            "expected_price_change": expected,
            "probability": row.probability,
        }
        for row in in_window.filter(status=PredictionStatus.EVALUATED)[:DETAILS_MAX_ROWS]
    ]
    return {
        "coin_id": coin_id,
        "model_id": model.pk,
        "prediction_timestamp": anchor.prediction_timestamp if anchor is not None else None,
        "price_history": price_history(coin_id=coin_id, start=start, end=end),
        "predictions": predictions,
        "evaluations": evaluations,
    }


# --- legacy /api/predictions (P2, P3) ------------------------------------------------------------------------------


def predictions_filter(
    *,
    coin_id: str | None = None,
    model_id: int | None = None,
    active_model_id: int | None = None,
    prediction: int | None = None,
    min_probability: float | None = None,
    max_probability: float | None = None,
    phase_id: int | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> Q:
    condition = Q()
    if coin_id:
        condition &= coin_filter(coin_id)
    if model_id is not None:
        condition &= Q(model_id=model_id)
    if active_model_id is not None:
        condition &= Q(active_model_id=active_model_id)
    if prediction is not None:
        condition &= Q(prediction=prediction)
    if min_probability is not None:
        condition &= Q(probability__gte=min_probability)
    if max_probability is not None:
        condition &= Q(probability__lte=max_probability)
    if phase_id is not None:
        condition &= Q(phase_id_at_prediction=phase_id)
    if date_from is not None:
        condition &= Q(created_at__gte=date_from)
    if date_to is not None:
        condition &= Q(created_at__lte=date_to)
    return condition


def predictions_page(*, filters: dict, limit: int, offset: int) -> tuple[list[ModelPrediction], int]:
    """Legacy prediction list on `model_predictions`, newest `created_at` first, with the filtered count."""
    queryset: QuerySet = ModelPrediction.objects.filter(predictions_filter(**filters))
    rows = list(queryset.order_by("-created_at", "-id")[offset: offset + limit])
    total = queryset.count() if rows or offset else 0
    return rows, total


def latest_prediction(*, coin_id: str, model_id: int | None = None) -> ModelPrediction | None:
    """The newest prediction of a coin (by data time), optionally of one training-service model id."""
    queryset = ModelPrediction.objects.filter(coin_filter(coin_id))
    if model_id is not None:
        queryset = queryset.filter(model_id=model_id)
    return queryset.order_by("-prediction_timestamp", "-id").first()


# --- CSV exports ------------------------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id", "prediction_timestamp", "coin_id", "active_model_id", "model_name", "model_id", "model_version",
    "prediction", "probability", "tag", "status", "evaluation_result", "evaluation_timestamp", "evaluated_at",
    "price_close_at_prediction", "price_close_at_evaluation", "actual_price_change_pct", "ath_highest_pct",
    "ath_lowest_pct", "market_cap_at_prediction", "volume_at_prediction", "phase_id_at_prediction",
    "evaluation_note", "created_at",
)
EXPORT_CHUNK_ROWS = 2000


def export_rows(*, filters: dict) -> Iterator[tuple]:
    """Every prediction the prediction-log `filters` select, newest data time first, as tuples of EXPORT_COLUMNS.

    No cap: the rows come from a server-side cursor, EXPORT_CHUNK_ROWS at a time, so memory stays flat however
    many there are. Close the iterator when stopping early (that closes the cursor).
    """
    display_name = Coalesce(NullIf(F("active_model__custom_name"), Value("")), F("active_model__model_name"),
                            output_field=CharField())
    return (
        ModelPrediction.objects.readable().filter(model_predictions_filter(**filters))
        .annotate(model_name=display_name)
        .order_by("-prediction_timestamp", "-id")
        .values_list(*EXPORT_COLUMNS)
        .iterator(chunk_size=EXPORT_CHUNK_ROWS)
    )

