"""Replaying a model over recorded market rows, each row as if it had just arrived and been handled on its own.

For every row that passes the model's coin filters (whitelist, phases) the probability is what the listener computes
when that row is the coin's newest: features from `inference.as_of` (the newest `history_limit` rows up to it, after
the phase filter), scored by the same ready model. The per-coin scan rules (ignore windows, minimum scan interval)
then decide, in time order, which of those rows the listener would have predicted; the row's own time stands for the
listener's clock. A row's probability never depends on whether earlier rows were kept, so every candidate is scored
at once and the rules only choose among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from inference.as_of import features_of_loaded_rows
from inference.engine import ignore_rule, tags_for
from inference.history import HistoryRows
from inference.scoring import ReadyModel, ServedModel

_MICROS_PER_SECOND = 1_000_000


@dataclass
class ReplayedRows:
    """The rows the model predicted, in the order of the input rows: coin index, coin_metrics id, time (µs),
    probability, 0/1, tag."""

    coin: np.ndarray
    row_ids: np.ndarray
    timestamps_us: np.ndarray
    probabilities: np.ndarray
    predictions: np.ndarray
    tags: np.ndarray

    def __len__(self) -> int:
        return len(self.coin)


class ScanRules:
    """The listener's per-coin scan state (last scan, ignore window), carried across the chunks of one replay."""

    def __init__(self, model: ServedModel):
        self.model = model
        self.state: dict[str, tuple[int, int | None]] = {}  # mint → (last scan µs, ignore until µs)

    @property
    def active(self) -> bool:
        model = self.model
        return bool(model.min_scan_interval_seconds or model.ignore_alert_seconds or model.ignore_positive_seconds
                    or model.ignore_bad_seconds)

    def keep(self, mints: Sequence[str], coin: np.ndarray, timestamps_us: np.ndarray, probabilities: np.ndarray,
             predictions: np.ndarray) -> np.ndarray:
        """Which candidates the listener would have predicted; rows must be in time order within each coin."""
        kept = np.ones(len(coin), dtype=bool)
        if not self.active:
            return kept
        interval_us = self.model.min_scan_interval_seconds * _MICROS_PER_SECOND
        for k in range(len(coin)):
            mint, now = mints[coin[k]], int(timestamps_us[k])
            state = self.state.get(mint)
            if state is not None:
                last_scan, ignore_until = state
                if (ignore_until is not None and ignore_until > now) or (interval_us and last_scan > now - interval_us):
                    kept[k] = False
                    continue
            seconds, reason = ignore_rule(self.model, float(probabilities[k]), int(predictions[k]))
            self.state[mint] = (now, now + seconds * _MICROS_PER_SECOND if reason else None)
        return kept


def replay(
    *, model: ServedModel, ready: ReadyModel, rows: HistoryRows, mints: Sequence[str], since_us: int,
    rules: ScanRules, threshold: float, history_limit: int,
) -> ReplayedRows:
    """Predict every row from `since_us` on that the listener would have predicted, coin by coin in time order.

    `rows` holds, per coin `mints[k]`, its rows under the model's phase filter, ascending by time: the
    `history_limit` - 1 rows before `since_us` (the history of its first replayed row) and the rows to replay
    (what `inference.history.replay_rows` reads). Coins off the model's whitelist are left out."""
    timestamps_us = rows.timestamps_ns // 1000
    coin_of_row = np.repeat(np.arange(len(mints)), np.diff(rows.bounds))
    replayed = timestamps_us >= since_us
    if model.whitelist is not None:
        allowed = np.fromiter((mint in model.whitelist for mint in mints), bool, len(mints))
        replayed &= allowed[coin_of_row]
    picked = np.flatnonzero(replayed)
    coin = coin_of_row[picked]
    X = features_of_loaded_rows(
        row_ts=timestamps_us, values={name: rows.values[j] for j, name in enumerate(rows.columns)},
        bounds=rows.bounds, slot=coin, ends=picked + 1, feature_names=ready.input_names, engineered=model.engineered,
        windows=model.windows, history_limit=history_limit,
    )
    probabilities, predictions = ready.predict_proba_positive(X)
    kept = rules.keep(mints, coin, timestamps_us[picked], probabilities, predictions)
    probabilities, predictions = np.asarray(probabilities)[kept], np.asarray(predictions)[kept]
    return ReplayedRows(
        coin=coin[kept],
        row_ids=rows.ids[picked][kept],
        timestamps_us=timestamps_us[picked][kept],
        probabilities=probabilities,
        predictions=predictions,
        tags=tags_for(probabilities, threshold),
    )
