"""Feature drift, the writes: each model's reference distribution, and hourly bin counts of live features.

Feature values are never stored with predictions, so both sides are recomputed with `inference.as_of` (the vectors
the listener computed for those rows) on a sample: up to REFERENCE_ROWS rows for the reference, up to HOUR_ROWS of
the model's predictions per hour. The reference's bin edges are frozen when it is built; live hours are counted into
them, so any window's PSI comes from summed hour counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backtests.models import BacktestRun, RunState
from inference.as_of import RowNotFound, features_as_of
from inference.history import EPOCH_MICROS_SQL
from inference.scoring import ReadyModel, ServedModel
from modelregistry.models import ActiveModel
from modelregistry.serving import model_cache, served_model_by_id
from quality import stats
from quality.models import DriftHour, FeatureReference

REFERENCE_ROWS = 2000
HOUR_ROWS = 300
BINS = 10
LIVE_REFERENCE_DAY = timedelta(days=1)
CATCH_UP_HOURS = 48  # hours counted at most per run (older ones are not recounted after an outage)

MARKET_SAMPLE_SQL = f"""
SELECT m.mint, {EPOCH_MICROS_SQL}
  FROM coin_metrics m
 WHERE m."timestamp" >= %(start)s AND m."timestamp" <= %(end)s
   AND (%(phases)s::int[] IS NULL OR m.phase_id_at_time = ANY (%(phases)s::int[]))
 ORDER BY random()
 LIMIT %(limit)s
"""

PREDICTION_SAMPLE_SQL = """
SELECT p.coin_id, (extract(epoch FROM date_trunc('second', p.prediction_timestamp))::int8 * 1000000
                   + mod(extract(microseconds FROM p.prediction_timestamp)::int8, 1000000))
  FROM model_predictions p
 WHERE p.active_model_id = %(model)s AND p.prediction_timestamp >= %(start)s AND p.prediction_timestamp < %(end)s
 ORDER BY random()
 LIMIT %(limit)s
"""


def _vectors(model: ServedModel, ready: ReadyModel, sample: list[tuple[str, int]]) -> np.ndarray | None:
    """The as-of feature vectors of (mint, µs) rows; None when there are none or a row is gone."""
    if not sample:
        return None
    mints = sorted({mint for mint, _ in sample})
    index = {mint: k for k, mint in enumerate(mints)}
    try:
        return features_as_of(
            mints=mints, coin=np.array([index[mint] for mint, _ in sample], dtype=np.int64),
            timestamps_us=np.array([micros for _, micros in sample], dtype=np.int64),
            feature_names=ready.input_names, engineered=model.engineered, windows=model.windows,
            phases=model.phases, history_limit=settings.FEATURE_HISTORY_SIZE,
        )
    except RowNotFound:
        return None


def _sample(sql: str, params: dict) -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(mint, int(micros)) for mint, micros in cursor.fetchall()]


def _importance(ready: ReadyModel) -> dict[str, float]:
    values = ready.loaded.feature_importances()
    if values is None or len(values) != len(ready.input_names):
        return {}
    return {name: float(value) for name, value in zip(ready.input_names, values)}


def reference_window(model: ActiveModel, *, now: datetime) -> tuple[str, datetime, datetime] | None:
    """Where the model's reference comes from: its training window, else its latest backtest, else its first live
    day (once a day of predictions exists); None while there is none yet."""
    details = model.training_details or {}
    builtin = details.get("builtin_training") or {}
    start = parse_datetime(str(details.get("train_start") or builtin.get("since") or ""))
    end = parse_datetime(str(details.get("train_end") or builtin.get("split_at") or ""))
    if start and end and end > start and _has_rows(start, end):
        return "training", start, end
    run = (BacktestRun.objects.filter(active_model=model, state=RunState.DONE).order_by("-finished_at").first())
    if run is not None:
        return "backtest", run.start, run.end
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(prediction_timestamp) FROM model_predictions WHERE active_model_id = %s",
                       [model.pk])
        first = cursor.fetchone()[0]
    if first is not None and first + LIVE_REFERENCE_DAY <= now:
        return "live", first, first + LIVE_REFERENCE_DAY
    return None


def _has_rows(start: datetime, end: datetime) -> bool:
    with connection.cursor() as cursor:
        cursor.execute('SELECT EXISTS (SELECT 1 FROM coin_metrics WHERE "timestamp" >= %s AND "timestamp" <= %s)',
                       [start, end])
        return bool(cursor.fetchone()[0])


def build_reference(*, active_model_id: int, source: str, start: datetime, end: datetime) -> FeatureReference | None:
    """(Re)build the model's reference from a sample of the window; None when the window yields no rows."""
    model = served_model_by_id(active_model_id=active_model_id)
    ready = model_cache(size=1).get(model)
    if source == "live":
        sample = _sample(PREDICTION_SAMPLE_SQL, {"model": active_model_id, "start": start, "end": end,
                                                 "limit": REFERENCE_ROWS})
    else:
        sample = _sample(MARKET_SAMPLE_SQL, {"start": start, "end": end, "limit": REFERENCE_ROWS,
                                             "phases": list(model.phases) if model.phases else None})
    X = _vectors(model, ready, sample)
    if X is None:
        return None
    features = {}
    for column, name in enumerate(ready.input_names):
        edges = stats.quantile_edges(X[:, column], bins=BINS)
        counts = np.asarray(stats.bin_counts(X[:, column], edges), dtype=np.float64)
        features[name] = {"edges": edges, "shares": (counts / counts.sum()).tolist()}
    reference, _ = FeatureReference.objects.update_or_create(
        active_model_id=active_model_id,
        defaults={"source": source, "start": start, "end": end, "rows": len(X), "features": features,
                  "importance": _importance(ready)},
    )
    DriftHour.objects.filter(active_model_id=active_model_id).delete()  # counted in the old bins
    return reference


def count_hours(*, active_model_id: int, now: datetime | None = None) -> int:
    """Count the complete hours since the last counted one (at most CATCH_UP_HOURS); returns how many were counted."""
    reference = FeatureReference.objects.filter(active_model_id=active_model_id).first()
    if reference is None:
        return 0
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    last = DriftHour.objects.filter(active_model_id=active_model_id).order_by("-hour").first()
    hour = max(this_hour - timedelta(hours=CATCH_UP_HOURS),
               (last.hour + timedelta(hours=1)) if last else this_hour - timedelta(hours=CATCH_UP_HOURS))
    model = served_model_by_id(active_model_id=active_model_id)
    ready = model_cache(size=1).get(model)
    counted = 0
    while hour < this_hour:
        sample = _sample(PREDICTION_SAMPLE_SQL, {"model": active_model_id, "start": hour,
                                                 "end": hour + timedelta(hours=1), "limit": HOUR_ROWS})
        X = _vectors(model, ready, sample)
        counts = {}
        if X is not None:
            for column, name in enumerate(ready.input_names):
                if name in reference.features:
                    counts[name] = stats.bin_counts(X[:, column], reference.features[name]["edges"])
        DriftHour.objects.update_or_create(active_model_id=active_model_id, hour=hour,
                                           defaults={"rows": 0 if X is None else len(X), "counts": counts})
        counted += 1
        hour += timedelta(hours=1)
    return counted


def ensure_reference(*, model: ActiveModel, now: datetime) -> FeatureReference | None:
    """The model's reference, built when it has none and a source exists."""
    existing = FeatureReference.objects.filter(active_model=model).first()
    if existing is not None:
        return existing
    window = reference_window(model, now=now)
    if window is None:
        return None
    source, start, end = window
    return build_reference(active_model_id=model.pk, source=source, start=start, end=end)
