"""Serving feature engine of the original pump server, bit-exact and vectorised over coins.

The original server built one pandas DataFrame per (model, coin) from the coin's newest
<= 1000 ``coin_metrics`` rows, engineered features on it and handed the NEWEST row to the
model. This module reproduces those vectors bit for bit (normative description:
``shared/spec/features-and-models.md`` §3, "serving" column of §4) for many coins in one
call, with numpy only.

Public API
----------
``HISTORY_COLUMNS``
    ``coin_metrics`` column names in platform-schema order (``mint`` and ``timestamp``
    first). Use it as the SELECT list of the history query.

``CoinHistories``
    Many coins' histories in one columnar CSR block (see the class docstring).
    ``CoinHistories.from_rows(rows, column_names)`` converts DB rows;
    ``.select_rows(phases=..., max_rows=1000)`` applies a model's phase filter and the
    1000-row limit; ``.concat``/``.take`` combine and pick coins.

``build_features(histories, *, feature_names, engineered, windows, has_data_flags=False)``
    -> ``(n_coins, len(feature_names))`` float64 matrix: each coin's vector at its newest
    row, NaN/±inf already replaced by 0 (the model input, in the model's column order).

``required_feature_names(*, features, n_features_in, target_operator, target_variable)``
    -> the model's input column names (spec §3.4 path B, steps 2-3).

``pandas_rolling_mean_sum(values, lengths, lane_series, lane_window, lags=(0,))``
    the rolling engine on its own (spec §3.12); exposed for tests.

Typical use (one listener batch)::

    histories = CoinHistories.from_rows(rows, HISTORY_COLUMNS)  # ORDER BY mint, timestamp
    for model in active_models:
        model_histories, kept = histories.select_rows(phases=model.phases)
        names = required_feature_names(features=model.features, n_features_in=...,
                                       target_operator=..., target_variable=...)
        X = build_features(model_histories, feature_names=names,
                           engineered=..., windows=...)  # X[i] is for mints[kept[i]]

How exactness is achieved
-------------------------
* float32 columns (spec §3.3): per column and per coin, a column is "float32" if every
  non-NaN value survives the float32 round trip within 5e-4 (pandas
  ``to_numeric(downcast="float")``). Values of such columns are stored already rounded to
  float32 (held in float64 arrays). An arithmetic step that numpy would have executed in
  float32 is computed in float64 and then rounded to float32 for exactly those coins;
  for + - * / this equals native float32 arithmetic, because float64 has more than
  2 × 24 + 2 significand bits (double rounding is innocuous). Python scalars meet a
  float32 column as float32 (numpy's weak-scalar rule), so e.g. ``+ 0.001`` adds
  ``float32(0.001)`` for those coins.
* Rolling mean/sum (spec §3.12) replay pandas' algorithm: its compensated (Kahan) window
  sum is stepped through time, one step for all coins and all (series, window) lanes at
  once; its counters (observations, negatives, run of equal values) are read off the
  requested windows directly. Only the newest row (and the one before, for
  ``ath_approach_w``) is materialised.
* Layout: coins are processed in chunks sorted by history length; each chunk is padded
  into time-major ``(rows, coins)`` arrays, left-aligned (row 0 = oldest loaded row),
  so shifts are row offsets and the rolling loop can drop coins whose history has ended.

Only the requested features (and what they depend on) are computed. The phase filter and
the 1000-row limit are applied by ``CoinHistories.select_rows``, not by ``build_features``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "HISTORY_COLUMNS",
    "VALUE_COLUMNS",
    "HISTORY_LIMIT",
    "DEFAULT_WINDOWS",
    "CoinHistories",
    "build_features",
    "required_feature_names",
    "pandas_rolling_mean_sum",
]

HISTORY_COLUMNS: tuple[str, ...] = (
    "mint",
    "timestamp",
    "phase_id_at_time",
    "price_open",
    "price_high",
    "price_low",
    "price_close",
    "market_cap_close",
    "bonding_curve_pct",
    "virtual_sol_reserves",
    "is_koth",
    "volume_sol",
    "buy_volume_sol",
    "sell_volume_sol",
    "num_buys",
    "num_sells",
    "unique_wallets",
    "num_micro_trades",
    "dev_sold_amount",
    "max_single_buy_sol",
    "max_single_sell_sol",
    "net_volume_sol",
    "volatility_pct",
    "avg_trade_size_sol",
    "whale_buy_volume_sol",
    "whale_sell_volume_sol",
    "num_whale_buys",
    "num_whale_sells",
    "buy_pressure_ratio",
    "unique_signer_ratio",
)

# The history columns a model may use directly as features (everything but the key).
VALUE_COLUMNS: tuple[str, ...] = HISTORY_COLUMNS[2:]

# The original server hard-coded this limit on the history query (spec §3.2).
HISTORY_LIMIT = 1000

DEFAULT_WINDOWS = (5, 10, 15)

# pandas keeps a column as float32 if the round trip moves no value by more than this.
_FLOAT32_TOLERANCE = 5e-4

_NS_PER_SECOND = 1e9

# Coins are processed in chunks: large enough that each per-time-step numpy operation
# works on long vectors, small enough to bound the memory of the padded arrays
# (rows x coins cells per series; the rolling stack holds about a dozen series).
_CHUNK_MAX_COINS = 1024
_CHUNK_MIN_COINS = 64
_CHUNK_MAX_CELLS = 500_000


# ---------------------------------------------------------------------------------------
# Histories
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CoinHistories:
    """Histories of many coins in one columnar block (CSR layout).

    * ``mints[i]`` labels coin i (labels may repeat, e.g. the same mint "as of" several
      points in time).
    * ``offsets`` (int64, ``n_coins + 1``): coin i's rows are ``offsets[i]:offsets[i+1]``,
      ascending by time (newest last). Every coin has at least one row.
    * ``timestamps_ns`` (int64): UTC nanoseconds since the epoch, one per row.
    * ``columns``: name -> float64 array, one value per row; NaN = SQL NULL; a value is
      the correctly rounded double of the stored decimal; ``is_koth`` is 0/1/NaN.
    """

    mints: list[str]
    offsets: np.ndarray
    timestamps_ns: np.ndarray
    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64)
        timestamps = np.asarray(self.timestamps_ns, dtype=np.int64)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "timestamps_ns", timestamps)
        object.__setattr__(
            self,
            "columns",
            {name: np.asarray(values, dtype=np.float64) for name, values in self.columns.items()},
        )
        n_rows = len(timestamps)
        if offsets.ndim != 1 or len(offsets) != len(self.mints) + 1:
            raise ValueError("offsets must have one entry per coin plus one")
        if offsets[0] != 0 or offsets[-1] != n_rows:
            raise ValueError("offsets must start at 0 and end at the number of rows")
        if np.any(np.diff(offsets) <= 0):
            raise ValueError("every coin needs at least one history row")
        for name, values in self.columns.items():
            if values.shape != (n_rows,):
                raise ValueError(f"column {name!r} has {values.shape} values, expected {n_rows}")
        if n_rows > 1:
            # A step backwards in time is only allowed where a new coin starts.
            backwards = np.flatnonzero(np.diff(timestamps) < 0) + 1
            if not np.all(np.isin(backwards, offsets)):
                raise ValueError("each coin's rows must be sorted ascending by timestamp")

    @property
    def n_coins(self) -> int:
        return len(self.mints)

    @property
    def lengths(self) -> np.ndarray:
        """Number of history rows per coin."""
        return np.diff(self.offsets)

    @classmethod
    def empty(cls, column_names: Iterable[str] = VALUE_COLUMNS) -> CoinHistories:
        return cls(
            mints=[],
            offsets=np.zeros(1, np.int64),
            timestamps_ns=np.zeros(0, np.int64),
            columns={name: np.zeros(0) for name in column_names},
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[object]], column_names: Sequence[str]) -> CoinHistories:
        """Build the block from DB rows ordered by ``mint``, then ``timestamp`` ascending.

        Values as psycopg returns them: ``Decimal`` / ``int`` / ``float`` / ``bool`` /
        ``None``; ``timestamp`` as (time-zone aware) ``datetime``. ``column_names`` must
        contain ``mint`` and ``timestamp``; every other column is kept.

        ``Decimal`` -> float is correctly rounded (numpy calls ``Decimal.__float__``). Rows
        fetched as float8 (``numeric::float8`` in SQL, which PostgreSQL converts through the
        decimal text, so also correctly rounded) convert much faster than ``Decimal``.
        """
        names = list(column_names)
        for key in ("mint", "timestamp"):
            if key not in names:
                raise ValueError(f"column_names must include {key!r}")
        if len(rows) == 0:
            return cls.empty([n for n in names if n not in ("mint", "timestamp")])

        by_column = list(zip(*rows))  # transpose once, in C
        if len(by_column) != len(names):
            raise ValueError(f"rows have {len(by_column)} values, column_names has {len(names)}")
        mint_per_row = np.array(by_column[names.index("mint")], dtype=object)
        timestamps = _timestamps_to_ns(by_column[names.index("timestamp")])

        coin_starts = np.flatnonzero(np.r_[True, mint_per_row[1:] != mint_per_row[:-1]])
        mints = [str(m) for m in mint_per_row[coin_starts]]
        if len(set(mints)) != len(mints):
            raise ValueError("rows must be grouped by mint (ORDER BY mint, timestamp)")

        columns = {
            name: np.array(values, dtype=np.float64)  # None -> NaN, Decimal/int/bool -> float
            for name, values in zip(names, by_column)
            if name not in ("mint", "timestamp")
        }
        return cls(
            mints=mints,
            offsets=np.r_[coin_starts, len(rows)].astype(np.int64),
            timestamps_ns=timestamps,
            columns=columns,
        )

    @classmethod
    def concat(cls, parts: Sequence[CoinHistories]) -> CoinHistories:
        """All coins of ``parts`` in order (the parts must hold the same columns)."""
        if not parts:
            return cls.empty()
        names = list(parts[0].columns)
        if any(set(p.columns) != set(names) for p in parts):
            raise ValueError("all parts must hold the same columns")
        row_starts = np.cumsum([0] + [len(p.timestamps_ns) for p in parts])
        offsets = np.concatenate(
            [np.zeros(1, np.int64)] + [p.offsets[1:] + start for p, start in zip(parts, row_starts)]
        )
        return cls(
            mints=[m for p in parts for m in p.mints],
            offsets=offsets,
            timestamps_ns=np.concatenate([p.timestamps_ns for p in parts]),
            columns={n: np.concatenate([p.columns[n] for p in parts]) for n in names},
        )

    def take(self, coin_indices: Sequence[int] | np.ndarray) -> CoinHistories:
        """The given coins (in the given order) as a new block."""
        coin_indices = np.asarray(coin_indices, dtype=np.int64)
        row_index, offsets = _rows_of_coins(self.offsets, coin_indices)
        return CoinHistories(
            mints=[self.mints[i] for i in coin_indices],
            offsets=offsets,
            timestamps_ns=self.timestamps_ns[row_index],
            columns={name: values[row_index] for name, values in self.columns.items()},
        )

    def select_rows(
        self, *, phases: Sequence[int] | None, max_rows: int = HISTORY_LIMIT
    ) -> tuple[CoinHistories, np.ndarray]:
        """What the original history query read for a model (spec §3.2).

        With a non-empty ``phases`` list only rows whose ``phase_id_at_time`` is in it are
        kept (NULL phase never matches, SQL ``= ANY``); then each coin keeps its newest
        ``max_rows`` rows. Coins left without rows cannot be predicted and are dropped.
        Returns ``(histories, kept)``: ``kept`` are the indices of the surviving coins in
        ``self``.

        ``self`` must hold every row the query could have returned: with a phase filter
        the newest ``max_rows`` matching rows may reach back past the newest ``max_rows``
        rows overall.
        """
        n_rows = len(self.timestamps_ns)
        coin_of_row = np.repeat(np.arange(self.n_coins), self.lengths)
        if phases:
            keep = np.isin(self.columns["phase_id_at_time"], np.asarray(list(phases), dtype=np.float64))
        else:
            keep = np.ones(n_rows, dtype=bool)
        # Rank of each kept row among its coin's kept rows, counted from the newest (0).
        kept_so_far = np.cumsum(keep)
        kept_by_coin_end = kept_so_far[self.offsets[1:] - 1]
        rank_from_newest = kept_by_coin_end[coin_of_row] - kept_so_far
        keep &= rank_from_newest < max_rows

        kept_counts = np.bincount(coin_of_row[keep], minlength=self.n_coins)
        kept = np.flatnonzero(kept_counts > 0)
        offsets = np.r_[0, np.cumsum(kept_counts[kept])].astype(np.int64)
        return (
            CoinHistories(
                mints=[self.mints[i] for i in kept],
                offsets=offsets,
                timestamps_ns=self.timestamps_ns[keep],
                columns={name: values[keep] for name, values in self.columns.items()},
            ),
            kept,
        )


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _timestamps_to_ns(values: Sequence[object]) -> np.ndarray:
    """``datetime`` (aware; naive ones are taken as UTC) or ``datetime64`` -> int64 ns.

    Integer timedelta arithmetic is exact and, per value, ~10x faster than numpy's own
    conversion of aware datetimes (which also warns about dropping the zone).
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if isinstance(values[0], np.datetime64):
        return np.array(values, dtype="datetime64[ns]").astype(np.int64)
    epoch = _EPOCH_UTC if values[0].tzinfo is not None else _EPOCH_NAIVE
    micros = np.fromiter(((v - epoch) // _ONE_MICROSECOND for v in values), np.int64, len(values))
    return micros * 1000


def _rows_of_coins(offsets: np.ndarray, coin_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat row indices of the given coins (concatenated) and their new CSR offsets."""
    starts = offsets[coin_indices]
    lengths = offsets[coin_indices + 1] - starts
    new_offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    row_index = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1] - starts, lengths)
    return row_index, new_offsets


# ---------------------------------------------------------------------------------------
# Model input names (spec §3.4, path B)
# ---------------------------------------------------------------------------------------


def required_feature_names(
    *,
    features: Sequence[str],
    n_features_in: int | None,
    target_operator: str | None,
    target_variable: str | None,
) -> list[str]:
    """The model's input columns for a training-service model (no ``feature_names_in_``).

    ``n_features_in`` is the loaded model's ``n_features_in_`` (None: use the list length).
    If the model expects fewer columns than listed, a time-based model first drops its
    target variable from the list; then the first ``n_features_in`` names are the input
    (a wrong list shifts later columns exactly as the original did, spec §7.7).
    """
    listed = list(features)
    expected = len(listed) if n_features_in is None else int(n_features_in)
    time_based = target_operator is None
    if expected < len(listed) and time_based and target_variable in listed:
        listed = [name for name in listed if name != target_variable]
    if len(listed) < expected:
        raise ValueError(
            f"model expects {expected} input columns but its feature list has only {len(listed)}; "
            "filling the gap from frame columns (spec §3.4 path B step 4) is not supported"
        )
    return listed[:expected]


# ---------------------------------------------------------------------------------------
# Rolling engine (spec §3.12)
# ---------------------------------------------------------------------------------------


def pandas_rolling_mean_sum(
    values: np.ndarray,
    lengths: np.ndarray,
    lane_series: Sequence[int],
    lane_window: Sequence[int],
    lags: Sequence[int] = (0,),
) -> tuple[np.ndarray, np.ndarray]:
    """pandas ``rolling(w, min_periods=1).mean()`` / ``.sum()`` at chosen rows, many coins at once.

    ``values``: ``(rows, n_series, n_coins)``, time-major, coin c's history in rows
    ``0 .. lengths[c]-1`` (oldest first); later rows are ignored. A "lane" is one
    (series, window) pair. Returns ``(mean, sum)``, each ``(len(lags), n_lanes, n_coins)``:
    the lane's value at row ``lengths[c] - 1 - lag`` (NaN if that row does not exist).

    pandas' state per window (spec §3.12): a running sum with separate Kahan compensations
    for added and removed values, the number of observations, the number of negative
    observations, and the run of equal consecutive added values with the last one (a window
    that is one run returns that value exactly). ±inf count as missing. Only the Kahan sum
    depends on the whole sequence of additions and removals, so only it is stepped through
    time; the other parts are read off each requested window directly.
    """
    values = np.asarray(values, dtype=np.float64)
    n_rows, _, n_coins = values.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    lane_series = np.asarray(lane_series, dtype=np.int64)
    lane_window = np.asarray(lane_window, dtype=np.int64)
    lags = tuple(int(lag) for lag in lags)
    n_lanes = len(lane_series)
    out_mean = np.full((len(lags), n_lanes, n_coins), np.nan)
    out_sum = np.full((len(lags), n_lanes, n_coins), np.nan)
    if n_lanes == 0 or n_coins == 0:
        return out_mean, out_sum
    if np.any(lane_window < 1):
        raise ValueError("rolling windows must be >= 1 row")
    if np.any(lengths > n_rows) or np.any(lengths < 1):
        raise ValueError("lengths must be between 1 and the number of rows")

    # Sorting coins by length lets each time step work on the tail of still-active coins.
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    # NaN rows before the history start, so "remove row t - w" needs no bounds test.
    widest = int(lane_window.max())
    padded = np.full((widest + n_rows, values.shape[1], n_coins), np.nan)
    padded[widest:] = values[:, :, order]
    padded[np.isinf(padded)] = np.nan  # pandas treats ±inf as missing

    totals = _kahan_window_sums(padded, widest, sorted_lengths, lane_series, lane_window, lags)
    coins = np.arange(n_coins)
    for lane, (series, window) in enumerate(zip(lane_series, lane_window)):
        for lag_index, lag in enumerate(lags):
            row = sorted_lengths - 1 - lag
            exists = row >= 0
            row, coin = row[exists], coins[exists]
            counters = _window_counters(padded[widest:, series, :], row, coin, int(window))
            mean, total = _rolling_results(totals[lag_index, lane, coin], *counters)
            out_mean[lag_index, lane, order[coin]] = mean
            out_sum[lag_index, lane, order[coin]] = total
    return out_mean, out_sum


def _kahan_window_sums(
    padded: np.ndarray,
    widest: int,
    sorted_lengths: np.ndarray,
    lane_series: np.ndarray,
    lane_window: np.ndarray,
    lags: tuple[int, ...],
) -> np.ndarray:
    """pandas' compensated running window sum per lane, at row ``length - 1 - lag``.

    ``padded``: the values with ``widest`` NaN rows in front (row t is ``padded[widest + t]``).
    Row t first removes row t - w (if present), then adds row t; missing values are
    neither added nor removed. Removal is computed as ``y = -(v + c)``, bit-identical to
    pandas' ``y = -v - c`` because round-to-nearest is symmetric in sign.
    """
    n_rows = padded.shape[0] - widest
    n_coins = padded.shape[2]
    n_lanes = len(lane_series)
    narrowest = int(lane_window.min())

    total = np.zeros((n_lanes, n_coins))
    compensation_add = np.zeros((n_lanes, n_coins))
    compensation_remove = np.zeros((n_lanes, n_coins))
    totals = np.full((len(lags), n_lanes, n_coins), np.nan)
    first_active = np.searchsorted(sorted_lengths, np.arange(n_rows), side="right")
    # coins whose row t is the row asked for by each lag: length == t + 1 + lag
    snapshot_bounds = [
        (np.searchsorted(sorted_lengths, np.arange(n_rows) + 1 + lag, side="left"),
         np.searchsorted(sorted_lengths, np.arange(n_rows) + 1 + lag, side="right"))
        for lag in lags
    ]
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(int(sorted_lengths[-1])):
            a = int(first_active[t])  # coins a.. have a row t
            total_t = total[:, a:]
            if t >= narrowest:
                leaving = padded[widest + t - lane_window, lane_series, a:]
                present = np.isfinite(leaving)
                comp = compensation_remove[:, a:]
                u = leaving + comp
                new_total = total_t - u
                np.copyto(comp, (new_total - total_t) + u, where=present)
                np.copyto(total_t, new_total, where=present)

            arriving = padded[widest + t][lane_series, a:]
            present = np.isfinite(arriving)
            comp = compensation_add[:, a:]
            y = arriving - comp
            new_total = total_t + y
            np.copyto(comp, (new_total - total_t) - y, where=present)
            np.copyto(total_t, new_total, where=present)

            for lag_index, (lows, highs) in enumerate(snapshot_bounds):
                lo, hi = lows[t], highs[t]
                if lo < hi:
                    totals[lag_index, :, lo:hi] = total[:, lo:hi]
    return totals


def _window_counters(values: np.ndarray, row: np.ndarray, coin: np.ndarray, window: int):
    """The non-sum part of pandas' window state for the windows ending at ``row``.

    ``values``: one series, ``(rows, coins)``, NaN = missing. Returns ``(n_obs,
    n_negative, all_equal, last_added)``. pandas tracks the run of equal consecutive
    added values; "the run covers all n_obs observations of the window" is the same as
    "all present values of the window are equal" (== is transitive on non-NaN floats,
    -0.0 == 0.0 included), and with n_obs >= 1 the last added value lies in the window.
    """
    offsets = np.arange(1 - window, 1)  # oldest .. newest row of the window
    window_rows = row[:, None] + offsets[None, :]
    in_range = window_rows >= 0
    cells = np.where(in_range, values[np.maximum(window_rows, 0), coin[:, None]], np.nan)
    present = ~np.isnan(cells)
    n_obs = present.sum(axis=1)
    n_negative = (present & np.signbit(cells)).sum(axis=1)
    all_equal = np.fmin.reduce(cells, axis=1) == np.fmax.reduce(cells, axis=1)
    newest_present = window - 1 - np.argmax(present[:, ::-1], axis=1)
    last_added = cells[np.arange(len(row)), newest_present]  # NaN if none present (n_obs 0)
    return n_obs, n_negative, all_equal, last_added


def _rolling_results(total, n_obs, n_negative, all_equal, last_added):
    """pandas' calc_mean / calc_sum for min_periods=1 (``all_equal``: run length >= n_obs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_obs
    mean = np.where(
        all_equal,
        last_added,
        np.where(
            ((n_negative == 0) & (mean < 0)) | ((n_negative == n_obs) & (mean > 0)), 0.0, mean
        ),
    )
    total_out = np.where(all_equal, last_added * n_obs, total)
    empty = n_obs == 0
    mean[empty] = np.nan
    total_out[empty] = np.nan
    return mean, total_out


# ---------------------------------------------------------------------------------------
# Frame: one chunk of coins, padded time-major, with the original server's dtypes
# ---------------------------------------------------------------------------------------


def _round_float32(values: np.ndarray, float32: np.ndarray | bool) -> np.ndarray:
    """Round to float32 where the original frame computed in float32 (per coin)."""
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = values.astype(np.float32).astype(np.float64)
    return np.where(float32, rounded, values)


def _scalar(value: float, float32: np.ndarray) -> np.ndarray:
    """A Python scalar as numpy applies it per coin: cast to float32 against float32 data."""
    return np.where(float32, float(np.float32(value)), float(value))


def _flag(condition: np.ndarray) -> np.ndarray:
    return condition.astype(np.float64)


def _minutes(delta_ns: np.ndarray) -> np.ndarray:
    # pandas: Timedelta.total_seconds() = ns / 1e9, then / 60, all in float64.
    return delta_ns / _NS_PER_SECOND / 60


class _ColumnTypes:
    """Per history column and coin: was the column float32 in the original frame? (§3.3)

    pandas ``to_numeric(downcast="float")`` makes the whole column float32 iff no non-NaN
    value moves by more than 5e-4 in the float32 round trip; the server built one frame
    per coin, so the decision is per coin over its loaded history. The boolean
    ``is_koth`` is never converted; its 0/1 values are exact either way.
    """

    def __init__(self, histories: CoinHistories):
        self._histories = histories
        self._float32: dict[str, np.ndarray] = {}

    def float32(self, name: str) -> np.ndarray:
        if name not in self._float32:
            values = self._histories.columns[name]
            with np.errstate(over="ignore", invalid="ignore"):
                error = np.abs(values.astype(np.float32).astype(np.float64) - values)
            error[np.isnan(error)] = 0.0  # NULLs do not count
            worst = np.maximum.reduceat(error, self._histories.offsets[:-1])
            self._float32[name] = ~(worst > _FLOAT32_TOLERANCE) | (name == "is_koth")
        return self._float32[name]


class _Frame:
    """The per-coin DataFrames of the original server for one chunk of coins.

    Full series are padded ``(rows, coins)`` float64 arrays, left-aligned (row 0 = the
    oldest loaded row of each coin; rows past a coin's end are padding, never read).
    Values of float32 columns are already rounded to float32. ``float32(name)`` tells per
    coin whether the original column (or derived series) was float32.
    """

    def __init__(self, histories: CoinHistories, types: _ColumnTypes, coin_index: np.ndarray):
        self._histories = histories
        self._types = types
        self._coin_index = coin_index
        self.lengths = histories.lengths[coin_index]
        self.n_coins = len(coin_index)
        self.n_rows = int(self.lengths.max())
        self.last_row = self.lengths - 1
        self._first_flat_row = histories.offsets[coin_index]
        rows = np.arange(self.n_rows)[:, None]
        self.in_history = rows < self.lengths[None, :]
        # Flat row index of every padded cell; padding repeats the coin's newest row.
        self._flat_index = self._first_flat_row[None, :] + np.minimum(rows, self.last_row[None, :])
        self._series: dict[str, np.ndarray] = {}
        self._float32: dict[str, np.ndarray] = {}
        self._rolling: dict[tuple[str, int], int] = {}
        self._rolling_mean = self._rolling_sum = np.empty((2, 0, self.n_coins))

    # -- series ---------------------------------------------------------------------

    def series(self, name: str) -> np.ndarray:
        """The whole (padded) series ``name``: a history column or a derived series."""
        if name not in self._series:
            if name in _DERIVED_SERIES:
                values, float32 = _DERIVED_SERIES[name](self)
            else:
                float32 = self.float32(name)
                values = _round_float32(self._column(name)[self._flat_index], float32)
                values[~self.in_history] = np.nan
            self._series[name] = values
            self._float32[name] = float32
        return self._series[name]

    def float32(self, name: str) -> np.ndarray:
        if name in _DERIVED_SERIES:
            self.series(name)
            return self._float32[name]
        self._column(name)  # clear error if not loaded
        return self._types.float32(name)[self._coin_index]

    def at(self, name: str, lag: int = 0) -> np.ndarray:
        """Value of ``name`` at row ``newest - lag`` of each coin (NaN before the start)."""
        row = self.last_row - lag
        exists = row >= 0
        row = np.maximum(row, 0)
        if name in _DERIVED_SERIES or name in self._series:
            values = self.series(name)[row, np.arange(self.n_coins)]
        else:  # a single row of a history column: read it without padding the column
            values = _round_float32(self._column(name)[self._first_flat_row + row], self.float32(name))
        return np.where(exists, values, np.nan)

    def timestamps_ns(self) -> np.ndarray:
        return self._histories.timestamps_ns[self._flat_index]

    def _column(self, name: str) -> np.ndarray:
        try:
            return self._histories.columns[name]
        except KeyError:
            raise ValueError(f"history column {name!r} is needed but was not loaded") from None

    # -- rolling --------------------------------------------------------------------

    def run_rolling(self, lanes: Iterable[tuple[str, int]]) -> None:
        """Compute the rolling mean/sum of every (series, window) lane at the newest row
        and the row before it (all lanes in one pass over time)."""
        lanes = sorted(set(lanes))
        if not lanes:
            return
        series_names = sorted({name for name, _ in lanes})
        stacked = np.empty((self.n_rows, len(series_names), self.n_coins))
        for i, name in enumerate(series_names):
            stacked[:, i, :] = self.series(name)
        self._rolling = {lane: i for i, lane in enumerate(lanes)}
        self._rolling_mean, self._rolling_sum = pandas_rolling_mean_sum(
            stacked,
            self.lengths,
            lane_series=[series_names.index(name) for name, _ in lanes],
            lane_window=[w for _, w in lanes],
            lags=(0, 1),
        )

    def mean(self, name: str, window: int, lag: int = 0) -> np.ndarray:
        return self._rolling_mean[lag, self._rolling[(name, window)]]

    def sum(self, name: str, window: int) -> np.ndarray:
        return self._rolling_sum[0, self._rolling[(name, window)]]


# Derived per-row series (spec §3.6 and the fill0 inputs of §3.5). Each returns
# (values, float32-per-coin).


def _filled(column: str) -> Callable[[_Frame], tuple[np.ndarray, np.ndarray]]:
    def build(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
        values = frame.series(column)
        return np.where(np.isnan(values), 0.0, values), frame.float32(column)

    return build


def _rolling_ath(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    # cummax: a NULL row yields NaN there, the running maximum goes on past it.
    high = frame.series("price_high")
    running_max = np.fmax.accumulate(high, axis=0)
    return np.where(np.isnan(high), np.nan, running_max), frame.float32("price_high")


def _ath_distance_pct(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    ath = frame.series("rolling_ath")
    close = frame.series("price_close")
    float32 = frame.float32("rolling_ath") & frame.float32("price_close")
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = _round_float32(ath - close, float32)
        distance = _round_float32(distance / ath, float32)
        distance = _round_float32(distance * 100, float32)
    # NaN (no ATH yet, NULL close, 0/0) -> 100; ±inf (ATH 0) survives until the cleanup.
    return np.where(np.isnan(distance), 100.0, distance), float32


def _ath_breakout(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    high = frame.series("price_high")
    previous_ath = np.full_like(high, np.nan)
    previous_ath[1:] = frame.series("rolling_ath")[:-1]
    with np.errstate(invalid="ignore"):
        breakout = high > previous_ath  # NaN on either side, or the first row: no breakout
    return _flag(breakout), np.zeros(frame.n_coins, dtype=bool)


def _minutes_since_ath(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    # The original: every row gets minutes since the LAST breakout of the window (negative
    # before it); rows before the FIRST breakout, or all rows if there is none, get minutes
    # since the first loaded row.
    breakout = frame.series("ath_breakout") > 0
    breakout &= frame.in_history
    timestamps = frame.timestamps_ns()
    coins = np.arange(frame.n_coins)
    has_breakout = breakout.any(axis=0)
    first_breakout = np.argmax(breakout, axis=0)
    last_breakout = frame.n_rows - 1 - np.argmax(breakout[::-1], axis=0)
    since_start = _minutes(timestamps - timestamps[0][None, :])
    since_last_breakout = _minutes(timestamps - timestamps[last_breakout, coins][None, :])
    after_first = has_breakout[None, :] & (np.arange(frame.n_rows)[:, None] >= first_breakout[None, :])
    return np.where(after_first, since_last_breakout, since_start), np.zeros(frame.n_coins, dtype=bool)


def _ath_breakout_volume(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    # int flag × float32 volume -> float64 in numpy; the product is exact either way.
    return frame.series("ath_breakout") * frame.series("volume_sol"), np.zeros(frame.n_coins, dtype=bool)


# NULL -> 0 versions of four columns (the server's fillna(0) inputs of §3.5).
_DEV = "dev_sold_amount:filled"
_BUY_PRESSURE = "buy_pressure_ratio:filled"
_WHALE_BUY = "whale_buy_volume_sol:filled"
_WHALE_SELL = "whale_sell_volume_sol:filled"

_DERIVED_SERIES: dict[str, Callable[[_Frame], tuple[np.ndarray, np.ndarray]]] = {
    _DEV: _filled("dev_sold_amount"),
    _BUY_PRESSURE: _filled("buy_pressure_ratio"),
    _WHALE_BUY: _filled("whale_buy_volume_sol"),
    _WHALE_SELL: _filled("whale_sell_volume_sol"),
    "rolling_ath": _rolling_ath,
    "ath_distance_pct": _ath_distance_pct,
    "ath_breakout": _ath_breakout,
    "minutes_since_ath": _minutes_since_ath,
    "ath_breakout_volume": _ath_breakout_volume,
}


# ---------------------------------------------------------------------------------------
# Features at the newest row
# ---------------------------------------------------------------------------------------

# Row features: name -> f(frame) -> value per coin at the newest row (spec §3.5, §3.6).


def _minutes_since_ath_now(frame: _Frame) -> np.ndarray:
    return frame.at("minutes_since_ath")


def _dev_sold_cumsum(frame: _Frame) -> np.ndarray:
    # pandas cumsum accumulates sequentially in the column dtype (float32 for most coins).
    dev = frame.series(_DEV)
    in_float32 = np.cumsum(dev.astype(np.float32), axis=0).astype(np.float64)
    in_float64 = np.cumsum(dev, axis=0)
    running = np.where(frame.float32(_DEV), in_float32, in_float64)
    return running[frame.last_row, np.arange(frame.n_coins)]


def _whale_net_volume(frame: _Frame) -> np.ndarray:
    float32 = frame.float32(_WHALE_BUY) & frame.float32(_WHALE_SELL)
    return _round_float32(frame.at(_WHALE_BUY) - frame.at(_WHALE_SELL), float32)


def _whale_dominance(frame: _Frame) -> np.ndarray:
    whale_float32 = frame.float32(_WHALE_BUY) & frame.float32(_WHALE_SELL)
    volume_float32 = frame.float32("volume_sol")
    whale = _round_float32(frame.at(_WHALE_BUY) + frame.at(_WHALE_SELL), whale_float32)
    volume = _round_float32(frame.at("volume_sol") + _scalar(0.001, volume_float32), volume_float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = _round_float32(whale / volume, whale_float32 & volume_float32)
    return np.where(np.isnan(dominance), 0.0, dominance)


def _buy_sell_ratio(frame: _Frame) -> np.ndarray:
    sells_float32 = frame.float32("num_sells")
    denominator = _round_float32(frame.at("num_sells") + 1, sells_float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _round_float32(frame.at("num_buys") / denominator, sells_float32 & frame.float32("num_buys"))
    return np.where(np.isnan(ratio), 1.0, ratio)


_ROW_FEATURES: dict[str, Callable[[_Frame], np.ndarray]] = {
    "rolling_ath": lambda f: f.at("rolling_ath"),
    "ath_distance_pct": lambda f: f.at("ath_distance_pct"),
    "prev_rolling_ath": lambda f: f.at("rolling_ath", lag=1),
    "ath_breakout": lambda f: f.at("ath_breakout"),
    "minutes_since_ath": _minutes_since_ath_now,
    "ath_age_hours": lambda f: _minutes_since_ath_now(f) / 60,
    "ath_is_recent": lambda f: _flag(_minutes_since_ath_now(f) < 60),
    "ath_is_old": lambda f: _flag(_minutes_since_ath_now(f) > 1440),
    "dev_sold_flag": lambda f: _flag(f.at(_DEV) > 0),
    "dev_sold_cumsum": _dev_sold_cumsum,
    "whale_net_volume": _whale_net_volume,
    "whale_dominance": _whale_dominance,
    "buy_sell_ratio": _buy_sell_ratio,
}


@dataclass(frozen=True)
class _WindowFeature:
    """A per-window family ``<name>_<w>`` (spec §3.5).

    ``rolls``: the (series, window multiplier) lanes it reads, so that all rolling
    aggregates of a chunk are computed in one pass; ``compute(frame, w)`` gives the value
    per coin at the newest row.
    """

    rolls: tuple[tuple[str, int], ...]
    compute: Callable[[_Frame, int], np.ndarray]


def _difference(frame: _Frame, column: str, w: int, lag: int = 0) -> np.ndarray:
    """diff_w(column) at row newest - lag, in the column's dtype."""
    return _round_float32(frame.at(column, lag) - frame.at(column, lag + w), frame.float32(column))


def _price_roc(frame: _Frame, w: int) -> np.ndarray:
    float32 = frame.float32("price_close")
    base = frame.at("price_close", w)
    base = np.where(base == 0, np.nan, base)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = _round_float32(_difference(frame, "price_close", w) / base, float32)
    return _round_float32(change * 100, float32)


def _price_acceleration(frame: _Frame, w: int) -> np.ndarray:
    change_now = _difference(frame, "price_close", w)
    change_before = _difference(frame, "price_close", w, lag=w)
    return _round_float32(change_now - change_before, frame.float32("price_close"))


def _volume_flip(frame: _Frame, w: int) -> np.ndarray:
    # NaN on either side (including rows before the start) compares unequal -> 1.
    now, before = frame.at("net_volume_sol"), frame.at("net_volume_sol", w)
    return _flag(~(np.sign(now) == np.sign(before)))


def _volume_ratio(frame: _Frame, w: int) -> np.ndarray:
    mean = frame.mean("volume_sol", w)
    with np.errstate(divide="ignore", invalid="ignore"):
        return frame.at("volume_sol") / np.where(mean == 0, np.nan, mean)


def _ath_approach(frame: _Frame, w: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return _flag(frame.mean("ath_distance_pct", w) - frame.mean("ath_distance_pct", w, lag=1) < 0)


_WINDOW_FEATURES: dict[str, _WindowFeature] = {
    "dev_sold_spike": _WindowFeature(
        ((_DEV, 1),), lambda f, w: _flag(f.at(_DEV) > 2 * f.mean(_DEV, w))
    ),
    "buy_pressure_ma": _WindowFeature(((_BUY_PRESSURE, 1),), lambda f, w: f.mean(_BUY_PRESSURE, w)),
    "buy_pressure_trend": _WindowFeature(  # the RAW ratio: NULL stays NaN -> 0 at the end
        ((_BUY_PRESSURE, 1),), lambda f, w: f.at("buy_pressure_ratio") - f.mean(_BUY_PRESSURE, w)
    ),
    "whale_activity": _WindowFeature(
        ((_WHALE_BUY, 1), (_WHALE_SELL, 1)), lambda f, w: f.sum(_WHALE_BUY, w) + f.sum(_WHALE_SELL, w)
    ),
    "volatility_ma": _WindowFeature(
        (("volatility_pct", 1),), lambda f, w: f.mean("volatility_pct", w)
    ),
    "volatility_spike": _WindowFeature(
        (("volatility_pct", 1),),
        lambda f, w: _flag(f.at("volatility_pct") > 1.5 * f.mean("volatility_pct", w)),
    ),
    "wash_trading_flag": _WindowFeature(
        (("unique_signer_ratio", 1),), lambda f, w: _flag(f.mean("unique_signer_ratio", w) < 0.3)
    ),
    "net_volume_ma": _WindowFeature(
        (("net_volume_sol", 1),), lambda f, w: f.mean("net_volume_sol", w)
    ),
    "volume_flip": _WindowFeature((), _volume_flip),
    "price_change": _WindowFeature((), lambda f, w: _difference(f, "price_close", w)),
    "price_roc": _WindowFeature((), _price_roc),
    "price_acceleration": _WindowFeature((), _price_acceleration),
    "volume_ratio": _WindowFeature((("volume_sol", 1),), _volume_ratio),
    "volume_spike": _WindowFeature(  # note the doubled window
        (("volume_sol", 2),), lambda f, w: _flag(f.at("volume_sol") > 2 * f.mean("volume_sol", 2 * w))
    ),
    "mcap_velocity": _WindowFeature((), lambda f, w: _difference(f, "market_cap_close", w)),
    "ath_distance_trend": _WindowFeature(
        (("ath_distance_pct", 1),), lambda f, w: f.mean("ath_distance_pct", w)
    ),
    "ath_approach": _WindowFeature((("ath_distance_pct", 1),), _ath_approach),
    "ath_breakout_count": _WindowFeature(
        (("ath_breakout", 1),), lambda f, w: f.sum("ath_breakout", w)
    ),
    "ath_breakout_volume_ma": _WindowFeature(
        (("ath_breakout_volume", 1),), lambda f, w: f.mean("ath_breakout_volume", w)
    ),
    "ath_age_trend": _WindowFeature(
        (("minutes_since_ath", 1),), lambda f, w: f.mean("minutes_since_ath", w)
    ),
}

# Values of names the frame does not have (spec §3.9); anything else missing -> 0.0.
_MISSING_FEATURE_DEFAULTS = {
    "sol_price_usd": 150.0,
    "sol_price_ma_5": 150.0,
    "sol_price_change_pct": 0.0,
    "sol_price_volatility": 0.0,
}


def _split_window_name(name: str) -> tuple[str, int] | None:
    """'price_roc_10' -> ('price_roc', 10) if it names a per-window family."""
    family, _, window = name.rpartition("_")
    if family in _WINDOW_FEATURES and window.isdigit() and str(int(window)) == window:
        return family, int(window)
    return None


# A resolved feature: computes its value per coin at the newest row, lists its lanes.
@dataclass(frozen=True)
class _Recipe:
    compute: Callable[[_Frame], np.ndarray]
    rolls: tuple[tuple[str, int], ...] = ()


def _constant(value: float) -> _Recipe:
    return _Recipe(lambda f: np.full(f.n_coins, value))


def _resolve(
    name: str, *, engineered: bool, windows: Sequence[int], has_data_flags: bool
) -> _Recipe:
    """How the original frame produced the column ``name`` (or §3.9 if it had none)."""
    if name == "mint":
        raise ValueError("'mint' is not a numeric feature")
    if name in VALUE_COLUMNS:
        return _Recipe(lambda f: f.at(name))
    if engineered:
        if name in _ROW_FEATURES:
            return _Recipe(_ROW_FEATURES[name])
        split = _split_window_name(name)
        if split is not None and split[1] in windows:
            family, w = split
            feature = _WINDOW_FEATURES[family]
            return _Recipe(
                lambda f: feature.compute(f, w), tuple((s, w * k) for s, k in feature.rolls)
            )
        if has_data_flags:
            # Path A only (spec §3.7): minutes are compared with a row count, as the original did.
            if name == "coin_age_minutes":
                return _Recipe(_coin_age_minutes)
            split = _split_window_name(name.removesuffix("_has_data")) if name.endswith("_has_data") else None
            if split is not None and split[1] in windows:
                family, w = split
                threshold = 2 * w if family == "volume_spike" else w
                return _Recipe(lambda f: _flag(_coin_age_minutes(f) >= threshold))
    if name == "whale_dominance":  # §3.9 computes it even without engineering
        return _Recipe(_whale_dominance)
    return _constant(_MISSING_FEATURE_DEFAULTS.get(name, 0.0))


def _coin_age_minutes(frame: _Frame) -> np.ndarray:
    """Minutes from the first loaded row to the newest row."""
    timestamps = frame.timestamps_ns()
    return _minutes(timestamps[frame.last_row, np.arange(frame.n_coins)] - timestamps[0])


def _chunks_by_length(lengths: np.ndarray) -> list[np.ndarray]:
    """Coin indices in chunks of similar history length (less padding), each at most
    ``_CHUNK_MAX_COINS`` coins and about ``_CHUNK_MAX_CELLS`` padded cells per series."""
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    chunks, start = [], 0
    while start < len(order):
        size = min(_CHUNK_MAX_COINS, len(order) - start)
        while size > _CHUNK_MIN_COINS and size * sorted_lengths[start + size - 1] > _CHUNK_MAX_CELLS:
            size //= 2
        chunks.append(order[start : start + size])
        start += size
    return chunks


def build_features(
    histories: CoinHistories,
    *,
    feature_names: Sequence[str],
    engineered: bool,
    windows: Sequence[int] | None = DEFAULT_WINDOWS,
    has_data_flags: bool = False,
) -> np.ndarray:
    """The original server's model input for every coin: ``(n_coins, len(feature_names))``.

    ``histories``: each coin's rows as the history query returned them (already phase
    filtered and limited, see ``CoinHistories.select_rows``). ``feature_names``: the model's
    input columns in order (``required_feature_names``). ``engineered``:
    ``params.use_engineered_features``; ``windows``: ``params.feature_engineering_windows``
    (None -> [5, 10, 15]). ``has_data_flags``: only for models carrying
    ``feature_names_in_`` with ``*_has_data`` names (spec §3.4 path A).

    Row i is coin i's vector at its newest row; NaN and ±inf are 0 (spec §3.8/§3.9).
    """
    windows = [int(w) for w in (DEFAULT_WINDOWS if windows is None else windows)]
    if engineered and any(w < 1 for w in windows):
        raise ValueError(f"feature windows must be >= 1 row, got {windows}")
    recipes = [
        _resolve(name, engineered=engineered, windows=windows, has_data_flags=has_data_flags)
        for name in feature_names
    ]
    lanes = {lane for recipe in recipes for lane in recipe.rolls}

    result = np.zeros((histories.n_coins, len(recipes)))
    if histories.n_coins == 0 or not recipes:
        return result
    types = _ColumnTypes(histories)
    for coin_index in _chunks_by_length(histories.lengths):
        frame = _Frame(histories, types, coin_index)
        frame.run_rolling(lanes)
        for column, recipe in enumerate(recipes):
            result[coin_index, column] = recipe.compute(frame)
    # Cleanup (spec §3.8): NaN -> 0, then ±inf -> 0.
    result[~np.isfinite(result)] = 0.0
    return result
