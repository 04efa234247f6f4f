"""Time-based labels (spec features-and-models.md §5.1), per coin: every row of the window with the percent change
of its price k rows ahead."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from django.db import connection

from inference import history
from modelregistry.models import TargetDirection
from modelregistry.training.config import TARGET_VARIABLE, TrainingConfig


@dataclass
class Labelled:
    """Labelled rows (one entry each): coin index, timestamp (µs), label, timestamp of the look-ahead row."""

    mints: list[str]
    coin: np.ndarray
    ts_us: np.ndarray
    label: np.ndarray
    future_ts_us: np.ndarray
    loaded_rows: int
    first_us: int | None
    last_us: int | None


def _phase_intervals() -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, interval_seconds FROM ref_coin_phases")
        return {int(pid): int(interval) for pid, interval in cursor.fetchall() if interval is not None}


def label_rows(config: TrainingConfig) -> Labelled:
    """Every row in the window with its per-coin time-based label; rows without a future value are dropped."""
    rows = history.coin_rows(
        columns=("phase_id_at_time", TARGET_VARIABLE), phases=config.phases, since=config.since, until=config.until
    )
    n = len(rows.timestamps_ns)
    if n == 0:
        return Labelled([], *(np.zeros(0, np.int64) for _ in range(4)), loaded_rows=0, first_us=None, last_us=None)
    ts = rows.timestamps_ns // 1000
    phase = rows.columns["phase_id_at_time"]
    target = rows.columns[TARGET_VARIABLE]  # NULL -> NaN

    starts, ends = rows.offsets[:-1], rows.offsets[1:]
    lengths = ends - starts
    coin = np.repeat(np.arange(len(starts)), lengths)
    coin_end = ends[coin]

    # Rows to look ahead: from the row's phase interval; unknown phases use the coin's mean gap (spec §5.1).
    steps = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    for phase_id, interval in _phase_intervals().items():
        if interval > 0:
            here = phase == phase_id
            steps[here] = max(1, math.ceil(config.future_minutes / (interval / 60)))
            known |= here
    if not known.all():
        span_minutes = (ts[ends - 1] - ts[starts]) / 60e6
        gap = np.where(lengths > 1, span_minutes / np.maximum(lengths - 1, 1), 0.0)
        fallback = np.where(gap > 0, np.round(config.future_minutes / np.where(gap > 0, gap, 1.0)), 0).astype(np.int64)
        steps[~known] = fallback[coin[~known]]
    future = np.arange(n) + steps
    valid = (steps > 0) & (future < coin_end)
    future = np.where(valid, future, 0)
    current, ahead = target, target[future]
    valid &= np.isfinite(current) & np.isfinite(ahead) & (current != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (ahead - current) / current * 100
    if config.direction == TargetDirection.UP:
        label = pct >= config.min_percent_change
    else:
        label = pct <= -config.min_percent_change

    kept_coins, coin_index = np.unique(coin[valid], return_inverse=True)
    return Labelled(
        mints=[rows.mints[c] for c in kept_coins],
        coin=coin_index.astype(np.int64),
        ts_us=ts[valid],
        label=label[valid].astype(np.int64),
        future_ts_us=ts[future[valid]],
        loaded_rows=n,
        first_us=int(ts.min()),
        last_us=int(ts.max()),
    )

