"""Every write of the event path: claim queued coin_metrics rows, predict, store — all in one transaction."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from modelregistry.models import ActiveModel
from modelregistry.serving import ModelCache, ServedModel, active_served_models
from predictions import selectors
from predictions.engine import CoinEvent, EngineOutput, ModelResult, run_models, tag_for
from pumpserver import metrics

logger = logging.getLogger(__name__)

# Classic-target models (operator/value, no horizon) are judged this long after their prediction, the default the
# spec recommends; the existing server could not store them at all.
CLASSIC_HORIZON = timedelta(minutes=10)

CLAIM_SQL = """
DELETE FROM coin_metrics_queue
 WHERE id IN (SELECT id FROM coin_metrics_queue ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING mint, data_timestamp, phase_id, enqueued_at
"""

INSERT_PREDICTIONS_SQL = """
INSERT INTO model_predictions (
    coin_id, model_id, active_model_id, model_version, prediction, probability, tag, status,
    prediction_timestamp, evaluation_timestamp, prediction_duration_ms,
    price_close_at_prediction, price_open_at_prediction, price_high_at_prediction, price_low_at_prediction,
    market_cap_at_prediction, volume_at_prediction, phase_id_at_prediction, created_at, updated_at)
SELECT coin, training_id, model, version, prediction, probability, tag, 'aktiv', ts, due, ms,
       close, open, high, low, cap, volume, phase, %s, %s
  FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::int[], %s::smallint[], %s::float8[], %s::text[],
              %s::timestamptz[], %s::timestamptz[], %s::float8[], %s::numeric[], %s::numeric[], %s::numeric[],
              %s::numeric[], %s::numeric[], %s::numeric[], %s::int[])
       AS t(coin, training_id, model, version, prediction, probability, tag, ts, due, ms,
            close, open, high, low, cap, volume, phase)
ON CONFLICT (active_model_id, coin_id, prediction_timestamp) DO NOTHING
RETURNING active_model_id
"""

UPSERT_SCAN_CACHE_SQL = """
INSERT INTO coin_scan_cache (coin_id, active_model_id, last_scan_at, last_prediction, last_probability, was_alert,
                             ignore_until, ignore_reason, created_at, updated_at)
SELECT coin, model, %s, prediction, probability, was_alert, until, reason, %s, %s
  FROM unnest(%s::text[], %s::bigint[], %s::smallint[], %s::float8[], %s::bool[], %s::timestamptz[], %s::text[])
       AS t(coin, model, prediction, probability, was_alert, until, reason)
ON CONFLICT (coin_id, active_model_id) DO UPDATE SET
    last_scan_at = EXCLUDED.last_scan_at, last_prediction = EXCLUDED.last_prediction,
    last_probability = EXCLUDED.last_probability, was_alert = EXCLUDED.was_alert,
    ignore_until = EXCLUDED.ignore_until, ignore_reason = EXCLUDED.ignore_reason, updated_at = EXCLUDED.updated_at
"""

COUNT_PREDICTIONS_SQL = """
UPDATE prediction_active_models m
   SET total_predictions = m.total_predictions + c.n, last_prediction_at = %s
  FROM unnest(%s::bigint[], %s::bigint[]) AS c(id, n)
 WHERE m.id = c.id
"""


@dataclass
class StoredPrediction:
    model: ServedModel
    event: CoinEvent
    probability: float
    prediction: int
    tag: str


@dataclass
class BatchReport:
    claimed: int = 0
    coins: int = 0
    stored: list[StoredPrediction] = field(default_factory=list)
    capped: list[StoredPrediction] = field(default_factory=list)  # predicted but over a max-log cap: not stored
    failures: list = field(default_factory=list)


def newest_per_coin(claimed_rows) -> list[CoinEvent]:
    """Several queued rows of one coin collapse to its newest; features always use the newest rows anyway."""
    newest: dict[str, CoinEvent] = {}
    for mint, timestamp, phase_id, _enqueued in claimed_rows:
        current = newest.get(mint)
        if current is None or timestamp > current.timestamp:
            newest[mint] = CoinEvent(mint, timestamp, phase_id)
    return sorted(newest.values(), key=lambda e: (e.timestamp, e.mint))


def ignore_window(model: ServedModel, probability: float, prediction: int, now: datetime):
    """(ignore_until, reason) after a stored prediction; alert uses the probability, the others the 0/1 output."""
    if probability >= model.alert_threshold and model.ignore_alert_seconds > 0:
        return now + timedelta(seconds=model.ignore_alert_seconds), "alert"
    if prediction == 1 and model.ignore_positive_seconds > 0:
        return now + timedelta(seconds=model.ignore_positive_seconds), "positive"
    if prediction == 0 and model.ignore_bad_seconds > 0:
        return now + timedelta(seconds=model.ignore_bad_seconds), "bad"
    return None, None


def process_pending_batch(*, limit: int, cache: ModelCache, history_limit: int) -> BatchReport:
    """Claim up to `limit` queued rows and predict them with every active model, in one transaction.

    The claim (DELETE … SKIP LOCKED) commits together with the predictions: a crash before the commit leaves the
    rows queued for the next listener, and two listeners never claim the same row.
    """
    report = BatchReport()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(CLAIM_SQL, [limit])
            claimed = cursor.fetchall()
        if not claimed:
            return report
        report.claimed = len(claimed)
        events = newest_per_coin(claimed)
        report.coins = len(events)
        models = active_served_models()
        metrics.ACTIVE_MODELS.set(len(models))
        now = timezone.now()
        if models:
            mints = [e.mint for e in events]
            output = run_models(
                models=models,
                events=events,
                scan_states=selectors.scan_states(mints=mints, model_ids=[m.id for m in models]),
                load_histories=lambda requests: selectors.coin_histories(requests=requests, limit=history_limit),
                cache=cache,
                now=now,
            )
            _store(output, report, now)
    _observe(claimed, report)
    return report


def _store(output: EngineOutput, report: BatchReport, now: datetime, *, apply_caps: bool = True) -> None:
    from modelregistry.services import mark_model_errored

    for failure in output.failures:
        report.failures.append(failure)
        mark_model_errored(model_id=failure.model.id, error=failure.error)
        metrics.ERRORS.labels(type=failure.kind).inc()
        logger.error("model %s (%s) skipped: %s", failure.model.id, failure.model.name, failure.error)
    if not output.results:
        return

    predicted = [
        StoredPrediction(result.model, event, float(p), int(y), tag_for(float(p), result.model.alert_threshold))
        for result in output.results
        for event, p, y in zip(result.events, result.probabilities, result.predictions)
    ]
    capped_models = [r.model.id for r in output.results if apply_caps and any(r.model.caps.values())]
    pending = selectors.pending_tag_counts(
        mints=sorted({p.event.mint for p in predicted if p.model.id in capped_models}), model_ids=capped_models
    )
    for item in predicted:
        cap = item.model.caps[item.tag] if item.model.id in capped_models else 0
        if cap and pending.get((item.model.id, item.event.mint, item.tag), 0) >= cap:
            report.capped.append(item)
        else:
            report.stored.append(item)

    ms_per_row = {r.model.id: 1000 * r.seconds / max(len(r.events), 1) for r in output.results}
    _insert_predictions(report.stored, ms_per_row, now)
    _update_scan_cache(report.stored, now)
    ActiveModel.objects.filter(pk__in=[r.model.id for r in output.results], load_error__isnull=False).update(
        load_error=None, load_error_at=None
    )
    for result in output.results:
        labels = {"model_id": str(result.model.model_id or result.model.id), "model_name": result.model.name}
        metrics.PREDICTIONS.labels(**labels).inc(len(result.events))
        metrics.PREDICTIONS_BY_MODEL.labels(**labels).inc(len(result.events))
        metrics.PREDICTION_SECONDS.labels(model_id=labels["model_id"]).observe(result.seconds)


def _insert_predictions(items: list[StoredPrediction], ms_per_row: dict, now: datetime) -> None:
    if not items:
        return
    snapshots = selectors.price_snapshots(events=sorted({(i.event.mint, i.event.timestamp) for i in items}))
    empty = (None,) * 7
    columns = [[] for _ in range(17)]
    for item in items:
        model, event = item.model, item.event
        horizon = timedelta(minutes=model.future_minutes) if model.future_minutes else CLASSIC_HORIZON
        snapshot = snapshots.get(event.mint, empty)
        values = (
            event.mint, model.model_id, model.id, model.artifact_version, item.prediction, item.probability,
            item.tag, event.timestamp, event.timestamp + horizon, ms_per_row[model.id], *snapshot[:6],
            event.phase_id if event.phase_id is not None else snapshot[6],
        )
        for column, value in zip(columns, values):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(INSERT_PREDICTIONS_SQL, [now, now, *columns])
        inserted = [model_id for (model_id,) in cursor.fetchall()]
        counts: dict[int, int] = {}
        for model_id in inserted:
            counts[model_id] = counts.get(model_id, 0) + 1
        if counts:
            cursor.execute(COUNT_PREDICTIONS_SQL, [now, list(counts), list(counts.values())])


def _update_scan_cache(items: list[StoredPrediction], now: datetime) -> None:
    if not items:
        return
    columns = [[] for _ in range(7)]
    for item in items:
        until, reason = ignore_window(item.model, item.probability, item.prediction, now)
        values = (item.event.mint, item.model.id, item.prediction, item.probability,
                  item.probability >= item.model.alert_threshold, until, reason)
        for column, value in zip(columns, values):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_SCAN_CACHE_SQL, [now, now, now, *columns])


def _observe(claimed, report: BatchReport) -> None:
    metrics.BATCH_ROWS.observe(len(claimed))
    committed = time.time()
    for *_row, enqueued_at in claimed:
        metrics.EVENT_LAG_SECONDS.observe(max(0.0, committed - enqueued_at.timestamp()))


class NoActiveModels(Exception):
    def __init__(self, message: str, *, status_code: int):
        super().__init__(message)
        self.status_code = status_code


# Loaded models of this (web) process for manual predictions; the listener keeps its own.
_manual_cache = ModelCache(size=10)


def predict_coin(*, coin_id: str, model_ids: list[int] | None = None, timestamp: datetime | None = None) -> dict:
    """Predict one coin with every active model (or those with the given training ids) and store the results.

    Unlike the stream, no whitelist, phase, ignore or cap applies. Features use the coin's rows up to `timestamp`
    (the existing server ignored it and always used the newest rows).
    """
    models = active_served_models()
    if not models:
        raise NoActiveModels("Keine aktiven Modelle gefunden", status_code=400)
    if model_ids:
        models = [m for m in models if m.model_id in set(model_ids)]
        if not models:
            raise NoActiveModels("Keine der angegebenen Modelle sind aktiv", status_code=404)
    now = timezone.now()
    timestamp = timestamp or now
    report = BatchReport()
    with transaction.atomic():
        output = run_models(
            models=models,
            events=[CoinEvent(coin_id, timestamp, None)],
            scan_states={},
            load_histories=lambda requests: selectors.coin_histories(
                requests=requests, limit=settings.FEATURE_HISTORY_SIZE, until=timestamp
            ),
            cache=_manual_cache,
            now=now,
            apply_filters=False,
        )
        _store(output, report, now, apply_caps=False)
    return {
        "coin_id": coin_id,
        "timestamp": timestamp,
        "predictions": [
            {
                "model_id": item.model.model_id,
                "active_model_id": item.model.id,
                "model_name": item.model.name,
                "prediction": item.prediction,
                "probability": item.probability,
            }
            for item in report.stored
        ],
        "total_models": len(models),
    }
