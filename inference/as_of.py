"""Feature vectors "as of" past rows: for each (coin, timestamp) row, the vector the listener computes when that row
is the coin's newest, i.e. from the coin's newest `history_limit` rows up to and including it, after the model's
phase filter. Training fits on these vectors, and a backtest replays them.

The histories the rows need are read once per coin (one query for all coins) and cut into as-of prefixes in bulk.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Sequence

import numpy as np

from inference.features import VALUE_COLUMNS, CoinHistories, build_features
from inference.features.every_row import build_features_every_row
from inference.history import HistoryRequest, from_micros, read_history_rows

# As-of histories are built in blocks of about this many rows (~230 bytes per row and copy).
_BLOCK_ROWS = 300_000
# features_as_of reads and computes the rows of at most this many coins at once: with full histories (1,000 rows of
# 12 columns) about 10 MB per copy of a block's histories, however many rows a drift reference or a training asks for.
_COINS_PER_BLOCK = 100
# Coins computed at every row at once, in blocks of about this many rows (~1 kB per row while a block is built).
_EVERY_ROW_BLOCK = 60_000

# timestamptz has microsecond resolution: "timestamp < t" is "timestamp <= t - 1 µs".
_ONE_MICROSECOND = timedelta(microseconds=1)


class RowNotFound(LookupError):
    """A requested (coin, timestamp) row is not in coin_metrics (under the phase filter)."""


def features_as_of(
    *,
    mints: Sequence[str],
    coin: np.ndarray,
    timestamps_us: np.ndarray,
    feature_names: Sequence[str],
    engineered: bool,
    windows: Sequence[int],
    phases: Sequence[int] | None,
    history_limit: int,
) -> np.ndarray:
    """The feature vector of each row k (coin `mints[coin[k]]`, timestamp `timestamps_us[k]` in µs since the epoch)
    as of that row: ``(len(coin), len(feature_names))``. Every row must exist in coin_metrics and pass the phase
    filter, else RowNotFound.

    The rows are computed in blocks of at most _COINS_PER_BLOCK coins, so what is held at once (the histories read
    and their copies) stays bounded however many coins are asked for; a row's vector depends on its own coin only.
    """
    n = len(coin)
    X = np.zeros((n, len(feature_names)))
    if n == 0:
        return X
    by_coin = np.argsort(coin, kind="stable")
    sorted_coins = coin[by_coin]
    coin_starts = np.flatnonzero(np.r_[True, sorted_coins[1:] != sorted_coins[:-1]])
    block_starts = np.r_[coin_starts[::_COINS_PER_BLOCK], n]
    for lo, hi in zip(block_starts[:-1], block_starts[1:]):
        rows = by_coin[lo:hi]
        X[rows] = _features_as_of_block(
            mints=mints, coin=coin[rows], timestamps_us=timestamps_us[rows], feature_names=feature_names,
            engineered=engineered, windows=windows, phases=phases, history_limit=history_limit,
        )
    return X


def _features_as_of_block(
    *,
    mints: Sequence[str],
    coin: np.ndarray,
    timestamps_us: np.ndarray,
    feature_names: Sequence[str],
    engineered: bool,
    windows: Sequence[int],
    phases: Sequence[int] | None,
    history_limit: int,
) -> np.ndarray:
    """features_as_of of rows of a few coins: their histories read at once (through a server-side cursor, in
    slices: never one result set of Python tuples) and cut into as-of prefixes in bulk."""
    n = len(coin)
    used, slot = np.unique(coin, return_inverse=True)
    firsts = np.full(len(used), np.iinfo(np.int64).max)
    lasts = np.full(len(used), np.iinfo(np.int64).min)
    np.minimum.at(firsts, slot, timestamps_us)
    np.maximum.at(lasts, slot, timestamps_us)
    # Per coin: the history_limit - 1 rows before its first requested row (what the serving history query can reach
    # back to), then every row from it up to its last requested row.
    phase_filter = tuple(phases) if phases else None
    before_first = [from_micros(first) - _ONE_MICROSECOND for first in firsts]
    earlier = read_history_rows(
        [HistoryRequest(mints[c], phase_filter, until=until) for c, until in zip(used, before_first)],
        limit=history_limit - 1, server_side=True,
    )
    spanned = read_history_rows(
        [HistoryRequest(mints[c], phase_filter, after=after, until=from_micros(last))
         for c, after, last in zip(used, before_first, lasts)],
        limit=None, server_side=True,
    )
    # Coin s's rows: bounds[s]:bounds[s + 1], ascending by time (its earlier rows, then its spanned ones).
    coin_of_row = np.r_[np.repeat(np.arange(len(used)), np.diff(earlier.bounds)),
                        np.repeat(np.arange(len(used)), np.diff(spanned.bounds))]
    order = np.argsort(coin_of_row, kind="stable")
    bounds = np.searchsorted(coin_of_row[order], np.arange(len(used) + 1))
    row_ts = np.concatenate([earlier.timestamps_ns, spanned.timestamps_ns])[order] // 1000
    all_values = np.concatenate([earlier.values, spanned.values], axis=1)[:, order]
    values = {name: all_values[j] for j, name in enumerate(VALUE_COLUMNS)}

    # Each row -> its position among its coin's loaded rows; its history is the newest history_limit rows up to
    # and including it.
    ends = np.empty(n, dtype=np.int64)
    by_slot = np.argsort(slot, kind="stable")
    group_bounds = np.searchsorted(slot[by_slot], np.arange(len(used) + 1))
    for s in range(len(used)):
        mine = by_slot[group_bounds[s] : group_bounds[s + 1]]
        lo, hi = bounds[s], bounds[s + 1]
        pos = lo + np.searchsorted(row_ts[lo:hi], timestamps_us[mine])
        if np.any(pos >= hi) or np.any(row_ts[np.minimum(pos, hi - 1)] != timestamps_us[mine]):
            raise RowNotFound(f"a row of {mints[used[s]]} is not in coin_metrics (any more)")
        ends[mine] = pos + 1
    return features_of_loaded_rows(
        row_ts=row_ts, values=values, bounds=bounds, slot=slot, ends=ends, feature_names=feature_names,
        engineered=engineered, windows=windows, history_limit=history_limit,
    )


_NOT_LOADED = "is needed but was not loaded"


def columns_read(*, feature_names: Sequence[str], engineered: bool, windows: Sequence[int]) -> tuple[str, ...]:
    """The VALUE_COLUMNS the as-of features of `feature_names` read (in VALUE_COLUMNS order): a replay reads only
    these (each column costs PostgreSQL a numeric-to-float8 conversion per row).

    Found by building the features, in both ways features_of_loaded_rows builds them, of a few synthetic coins with
    none of the columns and adding each column the builders ask for. A column a feature would read only for some
    data is not left out silently: the builders raise for a column that was not loaded."""
    rng = np.random.default_rng(0)
    lengths = np.array([1, 2, 7, 40])
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    n = int(offsets[-1])
    timestamps_ns = (np.arange(n, dtype=np.int64) * 5 + rng.integers(1, 4, n)) * 1_000_000_000
    data = {name: np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 10.0 ** rng.integers(-9, 9, n))
            for name in VALUE_COLUMNS}
    data["is_koth"] = (rng.random(n) < 0.5).astype(np.float64)
    data["phase_id_at_time"] = rng.integers(1, 4, n).astype(np.float64)
    needed: list[str] = []
    for build in (build_features, build_features_every_row):
        while True:
            histories = CoinHistories(mints=[str(k) for k in range(len(lengths))], offsets=offsets,
                                      timestamps_ns=timestamps_ns, columns={name: data[name] for name in needed})
            try:
                build(histories, feature_names=feature_names, engineered=engineered, windows=windows)
                break
            except (KeyError, ValueError) as exc:
                missing = next((name for name in VALUE_COLUMNS if repr(name) in str(exc) and name not in needed),
                               None)
                if missing is None or (isinstance(exc, ValueError) and _NOT_LOADED not in str(exc)):
                    raise
                needed.append(missing)
    return tuple(name for name in VALUE_COLUMNS if name in needed)


def features_of_loaded_rows(
    *,
    row_ts: np.ndarray,
    values: dict[str, np.ndarray],
    bounds: np.ndarray,
    slot: np.ndarray,
    ends: np.ndarray,
    feature_names: Sequence[str],
    engineered: bool,
    windows: Sequence[int],
    history_limit: int,
) -> np.ndarray:
    """The as-of vectors of rows already loaded: coin s's rows are `bounds[s]:bounds[s + 1]` of `row_ts` (µs) and
    `values` (one array per VALUE_COLUMNS column), ascending by time and reaching back at least `history_limit` - 1
    rows before its first requested row (or to the coin's first row); requested row k is row `ends[k] - 1` of
    coin `slot[k]`. Returns ``(len(slot), len(feature_names))``.

    A row whose history starts at its coin's first loaded row (at most `history_limit` rows up to it) is computed
    with every other such row of its coin in one pass (build_features_every_row); any other row has a window of its
    own and gets it cut out and built on its own.
    """
    n = len(slot)
    X = np.zeros((n, len(feature_names)))
    starts = np.maximum(bounds[slot], ends - history_limit)
    from_first = starts == bounds[slot]
    if from_first.any():
        _every_row_features(X, np.flatnonzero(from_first), row_ts, values, bounds, slot[from_first], ends[from_first],
                            feature_names, engineered, windows)
    windowed = np.flatnonzero(~from_first)
    if len(windowed):
        X[windowed] = _windowed_features(
            row_ts, values, starts[windowed], ends[windowed], feature_names, engineered, windows
        )
    return X


def _every_row_features(X, into, row_ts, values, bounds, slot, ends, feature_names, engineered, windows) -> None:
    """Rows whose history is their coin's loaded rows up to them (row k of `slot`/`ends` into row `into[k]` of X):
    each coin's rows up to its furthest requested row, through build_features_every_row, in blocks of about
    _EVERY_ROW_BLOCK rows."""
    used, inverse = np.unique(slot, return_inverse=True)
    reach = np.zeros(len(used), dtype=np.int64)
    np.maximum.at(reach, inverse, ends)
    first = bounds[used]
    lengths = reach - first
    by_coin = np.argsort(inverse, kind="stable")
    coin_bounds = np.searchsorted(inverse[by_coin], np.arange(len(used) + 1))
    block_start = 0
    while block_start < len(used):
        block_end = block_start + 1
        total = lengths[block_start]
        while block_end < len(used) and total + lengths[block_end] <= _EVERY_ROW_BLOCK:
            total += lengths[block_end]
            block_end += 1
        part = slice(block_start, block_end)
        offsets = np.r_[0, np.cumsum(lengths[part])].astype(np.int64)
        row_index = np.arange(offsets[-1]) + np.repeat(first[part] - offsets[:-1], lengths[part])
        histories = CoinHistories(
            mints=[str(i) for i in range(block_start, block_end)],
            offsets=offsets,
            timestamps_ns=row_ts[row_index] * 1000,
            columns={name: column[row_index] for name, column in values.items()},
        )
        every_row = build_features_every_row(histories, feature_names=feature_names, engineered=engineered,
                                             windows=windows)
        mine = by_coin[coin_bounds[block_start] : coin_bounds[block_end]]
        X[into[mine]] = every_row[offsets[inverse[mine] - block_start] + ends[mine] - first[inverse[mine]] - 1]
        del every_row
        block_start = block_end


def _windowed_features(row_ts, values, starts, ends, feature_names, engineered, windows) -> np.ndarray:
    """Rows with a window of their own (the newest history_limit rows up to them): each window cut out and built as
    a coin of its own, in blocks of about _BLOCK_ROWS history rows."""
    n = len(starts)
    X = np.zeros((n, len(feature_names)))
    lengths = ends - starts
    block_start = 0
    while block_start < n:
        block_end = block_start + 1
        total = lengths[block_start]
        while block_end < n and total + lengths[block_end] <= _BLOCK_ROWS:
            total += lengths[block_end]
            block_end += 1
        part = slice(block_start, block_end)
        part_lengths = lengths[part]
        offsets = np.r_[0, np.cumsum(part_lengths)].astype(np.int64)
        row_index = np.arange(offsets[-1]) + np.repeat(starts[part] - offsets[:-1], part_lengths)
        histories = CoinHistories(
            mints=[str(i) for i in range(block_start, block_end)],
            offsets=offsets,
            timestamps_ns=row_ts[row_index] * 1000,
            columns={name: column[row_index] for name, column in values.items()},
        )
        X[part] = build_features(histories, feature_names=feature_names, engineered=engineered, windows=windows)
        block_start = block_end
    return X
