"""Every write of the event path: claim queued coin_metrics rows, predict, store — all in one transaction."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from inference import history
from inference.engine import CoinEvent, EngineOutput, Prediction, ignore_rule, run_models
from inference.history_cache import HistoryCache
from inference.scoring import ModelCache, ServedModel
from modelregistry.services import clear_model_errors, mark_model_errored
from modelregistry.serving import active_served_models, model_cache
from predictions import selectors
from predictions.webhook_services import enqueue_deliveries
from pumpserver import metrics, sql_arrays

logger = logging.getLogger(__name__)

# Classic-target models (operator/value, no horizon) are judged this long after their prediction, the default the
# spec recommends; the existing server could not store them at all.
CLASSIC_HORIZON = timedelta(minutes=10)

# The claim returns each row with what is wrong with its price_close, if anything: a collector may write it NULL, NaN,
# zero or negative. Such rows are still predicted (features follow the spec's NULL/NaN rules), but counted as
# ml_errors_total{type="data"} and logged once per batch. One index lookup per claimed row, in the claim's round trip;
# a row whose market row is gone has no verdict.
_CLAIM_WITH_PRICE_CHECK = """
WITH claimed AS (
    DELETE FROM coin_metrics_queue
     WHERE id IN (SELECT id FROM coin_metrics_queue {lane_filter} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING mint, data_timestamp, phase_id, enqueued_at
)
SELECT c.mint, c.data_timestamp, c.phase_id, c.enqueued_at,
       (SELECT CASE WHEN m.price_close IS NULL THEN 'NULL' WHEN m.price_close = 'NaN' THEN 'NaN'
                    WHEN m.price_close <= 0 THEN 'not positive' END
          FROM coin_metrics m WHERE m.mint = c.mint AND m."timestamp" = c.data_timestamp LIMIT 1)
  FROM claimed c
"""
CLAIM_SQL = _CLAIM_WITH_PRICE_CHECK.format(lane_filter="")
# A lane's claim leaves the coins that another lane of the process has in hand queued for a later batch.
LANE_CLAIM_SQL = _CLAIM_WITH_PRICE_CHECK.format(lane_filter="WHERE NOT (mint = ANY(%s::text[]))")

# The batch travels as three small tables: its coin events, its models and one (event, model, result) row per
# prediction, as PostgreSQL array literals (pumpserver.sql_arrays). Prices at prediction are the coin's newest row at
# or before the event, read in the same statement, never through Python; MATERIALIZED makes that one lookup per coin
# event, not one per (event, model) as the inlined join would.
INSERT_PREDICTIONS_SQL = """
WITH ev AS MATERIALIZED (
    SELECT e.i, e.coin, e.ts, e.phase, s.*
      FROM unnest(%(coins)s::text[], %(times)s::timestamptz[], %(phases)s::int[])
           WITH ORDINALITY AS e(coin, ts, phase, i)
      LEFT JOIN LATERAL (
           SELECT m.price_close, m.price_open, m.price_high, m.price_low, m.market_cap_close, m.volume_sol,
                  m.phase_id_at_time
             FROM coin_metrics m
            WHERE m.mint = e.coin AND m."timestamp" <= e.ts
            ORDER BY m."timestamp" DESC
            LIMIT 1
      ) s ON true
), md AS (
    SELECT * FROM unnest(%(training_ids)s::bigint[], %(models)s::bigint[], %(versions)s::int[], %(ms)s::float8[],
                         %(horizons)s::int[]) WITH ORDINALITY AS md(training_id, model, version, ms, horizon, i)
)
INSERT INTO model_predictions (
    coin_id, model_id, active_model_id, model_version, prediction, probability, tag, status,
    prediction_timestamp, evaluation_timestamp, prediction_duration_ms,
    price_close_at_prediction, price_open_at_prediction, price_high_at_prediction, price_low_at_prediction,
    market_cap_at_prediction, volume_at_prediction, phase_id_at_prediction, created_at, updated_at)
SELECT ev.coin, md.training_id, md.model, md.version, p.prediction, p.probability, p.tag, 'aktiv',
       ev.ts, ev.ts + md.horizon * interval '1 minute', md.ms,
       ev.price_close, ev.price_open, ev.price_high, ev.price_low, ev.market_cap_close, ev.volume_sol,
       coalesce(ev.phase, ev.phase_id_at_time), %(now)s, %(now)s
  FROM unnest(%(event_of)s::int[], %(model_of)s::int[], %(predictions)s::smallint[], %(probabilities)s::float8[],
              %(tags)s::text[]) AS p(event_i, model_i, prediction, probability, tag)
  JOIN ev ON ev.i = p.event_i
  JOIN md ON md.i = p.model_i
ON CONFLICT (coin_key, prediction_timestamp, active_model_id, tag) DO NOTHING
RETURNING active_model_id, coin_id
"""

# Every batch adds to its models' counters, so concurrent batches (lanes, listeners) queue for the models' rows. They
# are taken last, just before the commit, and in id order: a batch holds them for its commit only, not while it
# writes its predictions, and two batches never wait for each other in a cycle. Holding them is also what keeps a
# batch from storing predictions of a model deleted meanwhile: `model_predictions` has no foreign key (as in the
# existing server; the per-row check cost about a sixth of the database's work per batch), and delete_model locks
# the row before it deletes the model's predictions, so either the deletion waits for this commit and takes the
# batch's rows along, or the batch finds the row gone and rolls back (ModelsDeleted).
LOCK_MODEL_ROWS_SQL = "SELECT id FROM prediction_active_models WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"
ADD_TO_MODEL_COUNTERS_SQL = """
UPDATE prediction_active_models m
   SET total_predictions = m.total_predictions + c.n, last_prediction_at = %(now)s
  FROM unnest(%(models)s::bigint[], %(counts)s::bigint[]) AS c(id, n)
 WHERE m.id = c.id
"""

# In (coin, model) order: two listeners with rows of the same coins in flight take the states' locks in one order.
UPSERT_SCAN_CACHE_SQL = """
INSERT INTO coin_scan_cache (coin_id, active_model_id, last_scan_at, last_prediction, last_probability, was_alert,
                             ignore_until, ignore_reason, created_at, updated_at)
SELECT c.coin, md.model, %(now)s, p.prediction, p.probability, p.was_alert,
       CASE WHEN p.reason IS NOT NULL THEN %(now)s::timestamptz + p.seconds * interval '1 second' END, p.reason,
       %(now)s, %(now)s
  FROM unnest(%(event_of)s::int[], %(model_of)s::int[], %(predictions)s::smallint[], %(probabilities)s::float8[],
              %(was_alert)s::bool[], %(seconds)s::int[], %(reasons)s::text[])
       AS p(event_i, model_i, prediction, probability, was_alert, seconds, reason)
  JOIN unnest(%(coins)s::text[]) WITH ORDINALITY AS c(coin, i) ON c.i = p.event_i
  JOIN unnest(%(models)s::bigint[]) WITH ORDINALITY AS md(model, i) ON md.i = p.model_i
 ORDER BY c.coin, md.model
ON CONFLICT (coin_id, active_model_id) DO UPDATE SET
    last_scan_at = EXCLUDED.last_scan_at, last_prediction = EXCLUDED.last_prediction,
    last_probability = EXCLUDED.last_probability, was_alert = EXCLUDED.was_alert,
    ignore_until = EXCLUDED.ignore_until, ignore_reason = EXCLUDED.ignore_reason, updated_at = EXCLUDED.updated_at
"""


# A scan state that can no longer hold its coin back (its last scan is older than the model's minimum interval and
# its ignore window is over) changes nothing the engine decides: a missing state lets the coin through as well.
PRUNE_SCAN_CACHE_SQL = """
DELETE FROM coin_scan_cache c
 USING prediction_active_models m
 WHERE m.id = c.active_model_id
   AND c.last_scan_at < %(before)s - m.min_scan_interval_seconds * interval '1 second'
   AND (c.ignore_until IS NULL OR c.ignore_until < %(before)s)
"""


def prune_scan_cache(*, now: datetime, idle_days: int) -> int:
    """Delete the scan states idle for `idle_days` that hold nothing back; returns how many. Without this the
    table keeps one row per (coin, model) ever predicted: tens of thousands of new coins a day."""
    with connection.cursor() as cursor:
        cursor.execute(PRUNE_SCAN_CACHE_SQL, {"before": now - timedelta(days=idle_days)})
        return cursor.rowcount


@dataclass
class _Rows:
    """Predictions as the statements take them: the coin events and models, each numbered from 1 in order of
    appearance, and per prediction its two numbers and its values (the items' order).

    Events are told apart by identity (the engine hands every model the same event objects); two equal events that
    are distinct objects merely get two numbers, which changes nothing.
    """

    events: list[CoinEvent]
    models: list[ServedModel]
    event_of: list[int]
    model_of: list[int]
    predictions: list[int]
    probabilities: list[float]
    tags: list[str]

    @classmethod
    def of(cls, items: list[Prediction]) -> _Rows:
        event_numbers: dict[int, int] = {}
        model_numbers: dict[int, int] = {}
        events, models, event_of, model_of = [], [], [], []
        for item in items:
            number = event_numbers.get(id(item.event))
            if number is None:
                events.append(item.event)
                number = event_numbers[id(item.event)] = len(events)
            event_of.append(number)
            number = model_numbers.get(item.model.id)
            if number is None:
                models.append(item.model)
                number = model_numbers[item.model.id] = len(models)
            model_of.append(number)
        return cls(events, models, event_of, model_of, [item.prediction for item in items],
                   [item.probability for item in items], [item.tag for item in items])

    def counts(self) -> Counter:
        """Predictions per model id."""
        per_number = Counter(self.model_of)
        return Counter({model.id: per_number[k] for k, model in enumerate(self.models, start=1)})

    def ignore_windows(self) -> tuple[list[int], list[str | None]]:
        """Per prediction: (seconds, reason) of the ignore window it opens (inference.engine.ignore_rule). Models
        without ignore windows (the default) open none: their predictions are not looked at one by one."""
        opening = {number for number, model in enumerate(self.models, start=1)
                   if model.ignore_alert_seconds or model.ignore_positive_seconds or model.ignore_bad_seconds}
        if not opening:
            return [0] * len(self.model_of), [None] * len(self.model_of)
        rules = [ignore_rule(self.models[number - 1], probability, prediction) if number in opening else (0, None)
                 for number, probability, prediction in zip(self.model_of, self.probabilities, self.predictions)]
        return [seconds for seconds, _reason in rules], [reason for _seconds, reason in rules]

    def alerts(self) -> list[bool]:
        """Per prediction: at or above its model's alert threshold."""
        thresholds = np.asarray([0.0] + [model.alert_threshold for model in self.models])[self.model_of]
        return (np.asarray(self.probabilities) >= thresholds).tolist()


class Lanes:
    """Lets several threads of one listener run batches side by side, so that one computes features and scores while
    the others claim, store and commit (on two cores the listener and PostgreSQL otherwise wait for each other).

    A coin is in one lane's batch at a time: a claim skips the coins other lanes hold until their batch committed, so a
    coin's ignore window, scan interval, max-log caps and history are exactly what a one-lane listener would see.
    The history cache and the engine are used by one lane at a time (`computing`). A lane that found nothing to claim
    while another has a batch in flight claims again when that one leaves the engine (`wait_for_turn`): the rows that
    arrived meanwhile are then waiting, and its features and scores overlap the other lane's writes.
    """

    def __init__(self):
        self._engine = threading.Lock()
        self._held_lock = threading.Lock()
        self._held: Counter = Counter()  # coin → lanes holding it (one, by construction; counted to be safe)
        self._turn = threading.Condition()
        self._turns = 0  # how many times a lane left the engine or ended its batch

    @contextlib.contextmanager
    def computing(self):
        with self._engine:
            yield
        self._next_turn()

    @contextlib.contextmanager
    def claiming(self):
        """Held from the claim until its coins are registered, so that two lanes never claim rows of one coin."""
        with self._held_lock:
            yield sorted(self._held)

    def hold(self, mints) -> None:
        self._held.update(mints)  # under claiming()

    def release(self, mints) -> None:
        with self._held_lock:
            self._held.subtract(mints)
            self._held = +self._held
        self._next_turn()

    def busy(self) -> bool:
        """Whether some lane has a batch in flight."""
        with self._held_lock:
            return bool(self._held)

    def turn(self) -> int:
        with self._turn:
            return self._turns

    def wait_for_turn(self, *, after: int, timeout: float) -> None:
        """Until a lane leaves the engine or ends its batch (counted from `turn()` = `after`), at most `timeout` s."""
        with self._turn:
            self._turn.wait_for(lambda: self._turns != after, timeout)

    def _next_turn(self) -> None:
        with self._turn:
            self._turns += 1
            self._turn.notify_all()


@dataclass
class BatchReport:
    claimed: int = 0
    coins: int = 0
    stored: list[Prediction] = field(default_factory=list)
    capped: list[Prediction] = field(default_factory=list)  # predicted but over a max-log cap: not stored
    failures: list = field(default_factory=list)


def newest_per_coin(claimed_rows) -> list[CoinEvent]:
    """Several queued rows of one coin collapse to its newest; features always use the newest rows anyway."""
    newest: dict[str, CoinEvent] = {}
    for mint, timestamp, phase_id, *_rest in claimed_rows:
        current = newest.get(mint)
        if current is None or timestamp > current.timestamp:
            newest[mint] = CoinEvent(mint, timestamp, phase_id)
    return sorted(newest.values(), key=lambda e: (e.timestamp, e.mint))


def process_pending_batch(
    *, limit: int, cache: ModelCache, history_limit: int, history_cache: HistoryCache | None = None,
    lanes: Lanes | None = None,
) -> BatchReport:
    """Claim up to `limit` queued rows and predict them with every active model, in one transaction.

    The claim (DELETE … SKIP LOCKED) commits together with the predictions: a crash before the commit leaves the
    rows queued for the next listener, and two listeners never claim the same row. A long-running listener passes
    its `history_cache`, so that each batch reads only the coins' new rows (same histories as a fresh read).

    Each coin's features come from its rows at or before the time of its newest claimed row, as they are committed
    during this batch: what /api/predict (predict_coin) computes for that coin and time at that moment, however
    many listeners run and whichever of them read newer rows of the coin already. `lanes`: this call is one of
    several threads of the process (see Lanes).
    """
    report = BatchReport()
    held: list[str] = []
    try:
        with transaction.atomic():
            claimed = _claim(limit, lanes, held)
            if not claimed:
                return report
            report.claimed = len(claimed)
            events = newest_per_coin(claimed)
            moments = {event.mint: event.timestamp for event in events}
            if history_cache is not None:
                load_histories = lambda requests: history_cache.histories(requests, until=moments)  # noqa: E731
            else:
                load_histories = lambda requests: history.coin_histories(  # noqa: E731
                    requests=requests, limit=history_limit, until=moments
                )
            report.coins = len(events)
            models = active_served_models()
            metrics.ACTIVE_MODELS.set(len(models))
            now = timezone.now()
            mints = [e.mint for e in events]
            scan_states = selectors.scan_states(
                mints=mints, model_ids=[m.id for m in models], now=now,
                min_scan_intervals=[m.min_scan_interval_seconds for m in models],
            ) if models else {}
            with lanes.computing() if lanes is not None else contextlib.nullcontext():
                if history_cache is not None:
                    if history_cache.limit != history_limit:
                        history_cache.clear()
                        history_cache.limit = history_limit
                    history_cache.forget_late_rows(claimed)
                output = run_models(models=models, events=events, scan_states=scan_states,
                                    load_histories=load_histories, cache=cache, now=now) if models else None
            if output is not None:
                _store(output, report, now)
    except ModelsDeleted as exc:
        # Rolled back: the rows are queued again, and the next batch predicts them with the models that remain.
        logger.info("%s: the batch of %d rows was rolled back and is predicted again", exc, report.claimed)
        report.stored, report.capped = [], []
        return report
    finally:
        if lanes is not None and held:
            lanes.release(held)  # after the commit (or the rollback): the coins' next rows may be claimed
    _observe(claimed, report)
    _report_unusable_prices(claimed)
    return report


def _claim(limit: int, lanes: Lanes | None, held: list[str]) -> list[tuple]:
    """Take up to `limit` queued rows (deleted with this transaction); with lanes, the claimed coins go in `held`."""
    with connection.cursor() as cursor:
        if lanes is None:
            cursor.execute(CLAIM_SQL, [limit])
            return cursor.fetchall()
        with lanes.claiming() as others:
            cursor.execute(LANE_CLAIM_SQL, [sql_arrays.texts(others), limit])
            claimed = cursor.fetchall()
            held.extend({row[0] for row in claimed})
            lanes.hold(held)
        return claimed


def _store(output: EngineOutput, report: BatchReport, now: datetime, *, apply_caps: bool = True) -> None:
    for failure in output.failures:
        report.failures.append(failure)
        mark_model_errored(model_id=failure.model.id, error=failure.error)
        metrics.ERRORS.labels(type=failure.kind).inc()
        logger.error("model %s (%s) skipped: %s", failure.model.id, failure.model.name, failure.error)
    if not output.results:
        return

    predicted = output.predictions()
    capped_models = {r.model.id for r in output.results if apply_caps and any(r.model.caps.values())}
    to_store, capped = predicted, []
    if capped_models:
        pending = selectors.pending_tag_counts(
            mints=sorted({p.event.mint for p in predicted if p.model.id in capped_models}),
            model_ids=sorted(capped_models),
        )
        to_store = []
        for item in predicted:
            cap = item.model.caps[item.tag] if item.model.id in capped_models else 0
            if cap and pending.get((item.model.id, item.event.mint, item.tag), 0) >= cap:
                capped.append(item)
            else:
                to_store.append(item)

    ms_per_row = {r.model.id: 1000 * r.seconds / max(len(r.events), 1) for r in output.results}
    rows = _Rows.of(to_store)
    inserted = _insert_predictions(rows, ms_per_row, now)
    stored = to_store
    if inserted is not None:  # a replayed row (already predicted) is neither stored again nor announced again
        stored = [item for item in to_store if (item.model.id, item.event.mint) in inserted]
        rows = _Rows.of(stored)
    _update_scan_cache(rows, now)
    for result in output.results:
        labels = {"model_id": str(result.model.model_id or result.model.id), "model_name": result.model.name}
        metrics.PREDICTIONS.labels(**labels).inc(len(result.events))
        metrics.PREDICTIONS_BY_MODEL.labels(**labels).inc(len(result.events))
        metrics.PREDICTION_SECONDS.labels(model_id=labels["model_id"]).observe(result.seconds)
    alerts = Counter(model for model, tag in zip(rows.model_of, rows.tags) if tag == "alert")
    for number, count in alerts.items():
        model = rows.models[number - 1]
        metrics.ALERTS_TRIGGERED.labels(model_id=str(model.model_id or model.id)).inc(count)
    # The outbox rows commit with the predictions; a worker sends them after the commit (never in this transaction).
    enqueue_deliveries(stored=stored, capped=capped, now=now)
    report.stored, report.capped = stored, capped
    _add_to_model_counters(models=[r.model.id for r in output.results], inserted=rows.counts(), now=now)
    clear_model_errors(model_ids=[r.model.id for r in output.results if r.model.load_error is not None])


def _insert_predictions(rows: _Rows, ms_per_row: dict, now: datetime) -> set[tuple[int, str]] | None:
    """Insert the rows. Returns None when every one was inserted (the rule), else the (model, coin) pairs that were:
    a replayed row hits the unique key."""
    if not rows.events:
        return None
    params = {
        "now": now,
        "coins": sql_arrays.texts(event.mint for event in rows.events),
        "times": sql_arrays.timestamps(event.timestamp for event in rows.events),
        "phases": sql_arrays.values(event.phase_id for event in rows.events),
        "training_ids": sql_arrays.values(model.model_id for model in rows.models),
        "models": sql_arrays.values(model.id for model in rows.models),
        "versions": sql_arrays.values(model.artifact_version for model in rows.models),
        "ms": sql_arrays.values(float(ms_per_row[model.id]) for model in rows.models),
        "horizons": sql_arrays.values(
            model.future_minutes or CLASSIC_HORIZON // timedelta(minutes=1) for model in rows.models
        ),
        "event_of": sql_arrays.numbers(rows.event_of),
        "model_of": sql_arrays.numbers(rows.model_of),
        "predictions": sql_arrays.numbers(rows.predictions),
        "probabilities": sql_arrays.numbers(rows.probabilities),
        "tags": sql_arrays.values(rows.tags),
    }
    with connection.cursor() as cursor:
        cursor.execute(INSERT_PREDICTIONS_SQL, params)
        if cursor.rowcount == len(rows.event_of):
            return None  # the returned rows are not even read
        return set(cursor.fetchall())


class ModelsDeleted(Exception):
    """Models of the batch were deleted while it ran: nothing of it may commit."""

    def __init__(self, model_ids: set[int]):
        super().__init__(f"model(s) {', '.join(map(str, sorted(model_ids)))} deleted while predicting")
        self.model_ids = model_ids


def _add_to_model_counters(*, models: list[int], inserted: Counter, now: datetime) -> None:
    """The batch's last writes: the rows of the models that predicted, locked in id order (LOCK_MODEL_ROWS_SQL), and
    the counters of those that stored predictions (`inserted`: model → rows). Raises ModelsDeleted if a row is gone."""
    counted = sorted(inserted)
    with connection.cursor() as cursor:
        cursor.execute(LOCK_MODEL_ROWS_SQL, [sorted(models)])
        deleted = set(models) - {model_id for (model_id,) in cursor.fetchall()}
        if deleted:
            raise ModelsDeleted(deleted)
        if counted:
            cursor.execute(ADD_TO_MODEL_COUNTERS_SQL, {
                "now": now, "models": sql_arrays.values(counted),
                "counts": sql_arrays.numbers([inserted[model] for model in counted]),
            })


def _update_scan_cache(rows: _Rows, now: datetime) -> None:
    if not rows.events:
        return
    seconds, reasons = rows.ignore_windows()
    params = {
        "now": now,
        "coins": sql_arrays.texts(event.mint for event in rows.events),
        "models": sql_arrays.values(model.id for model in rows.models),
        "event_of": sql_arrays.numbers(rows.event_of),
        "model_of": sql_arrays.numbers(rows.model_of),
        "predictions": sql_arrays.numbers(rows.predictions),
        "probabilities": sql_arrays.numbers(rows.probabilities),
        "was_alert": sql_arrays.numbers(rows.alerts()),
        "seconds": sql_arrays.numbers(seconds),
        "reasons": sql_arrays.values(reasons),
    }
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_SCAN_CACHE_SQL, params)


def _report_unusable_prices(claimed) -> None:
    """After the batch committed: count the claimed rows with an unusable price and say which coins sent them, in
    one line."""
    problems = [(mint, problem) for mint, _timestamp, _phase, _enqueued, problem in claimed if problem]
    if not problems:
        return
    metrics.ERRORS.labels(type="data").inc(len(problems))
    kinds = Counter(problem for _mint, problem in problems)
    coins = sorted({mint for mint, _problem in problems})
    more = f" and {len(coins) - 5} more" if len(coins) > 5 else ""
    logger.warning(
        "%d of %d rows in this batch have an unusable price_close (%d NULL, %d NaN, %d zero or negative), "
        "predicted anyway; coins: %s%s",
        len(problems), len(claimed), kinds["NULL"], kinds["NaN"], kinds["not positive"], ", ".join(coins[:5]), more,
    )


def _observe(claimed, report: BatchReport) -> None:
    metrics.BATCH_ROWS.observe(len(claimed))
    committed = time.time()
    for _mint, _timestamp, _phase, enqueued_at, _problem in claimed:
        metrics.EVENT_LAG_SECONDS.observe(max(0.0, committed - enqueued_at.timestamp()))


class NoActiveModels(Exception):
    def __init__(self, message: str, *, status_code: int):
        super().__init__(message)
        self.status_code = status_code


# Loaded models of this (web) process for manual predictions; the listener keeps its own.
_manual_cache = model_cache(size=10)


def predict_coin(
    *,
    coin_id: str,
    model_ids: list[int] | None = None,
    timestamp: datetime | None = None,
    active_model_ids: list[int] | None = None,
    store: bool = True,
) -> dict:
    """Predict one coin with every active model (or those with the given training ids) and store the results.

    Unlike the stream, no whitelist, phase, ignore or cap applies. Features use the coin's rows up to `timestamp`
    (the existing server ignored it and always used the newest rows). `active_model_ids` selects models by their
    local id instead (MCP `predict_coin`); `store=False` only predicts: nothing is written, no webhook is queued.
    """
    models = active_served_models()
    if not models:
        raise NoActiveModels("No active models found", status_code=400)
    if model_ids:
        models = [m for m in models if m.model_id in set(model_ids)]
        if not models:
            raise NoActiveModels("None of the given models is active", status_code=404)
    if active_model_ids:
        models = [m for m in models if m.id in set(active_model_ids)]
        if not models:
            raise NoActiveModels("None of the given models is active", status_code=404)
    now = timezone.now()
    timestamp = timestamp or now
    report = BatchReport()
    with transaction.atomic() if store else contextlib.nullcontext():
        output = run_models(
            models=models,
            events=[CoinEvent(coin_id, timestamp, None)],
            scan_states={},
            load_histories=lambda requests: history.coin_histories(
                requests=requests, limit=settings.FEATURE_HISTORY_SIZE, until=timestamp
            ),
            cache=_manual_cache,
            now=now,
            apply_filters=False,
        )
        if store:
            try:
                _store(output, report, now, apply_caps=False)
            except ModelsDeleted as exc:
                raise NoActiveModels(f"{str(exc).capitalize()}; nothing was stored", status_code=409) from exc
    results = report.stored if store else output.predictions()
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
            for item in results
        ],
        "total_models": len(models),
    }
