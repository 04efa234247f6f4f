"""The per-coin DataFrames of the original server for one group of coins: padded time-major series with the
original dtypes (float32 per coin, spec §3.3), the derived per-row series (spec §3.6) and the rolling aggregates."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from inference.features.histories import CoinHistories, rows_of_coins
from inference.features.rolling import pandas_rolling_mean_sum

# pandas keeps a column as float32 if the round trip moves no value by more than this.
_FLOAT32_TOLERANCE = 5e-4

_NS_PER_SECOND = 1e9


def round_float32(values: np.ndarray, float32: np.ndarray | bool) -> np.ndarray:
    """Round to float32 where the original frame computed in float32 (per coin)."""
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = values.astype(np.float32).astype(np.float64)
    return np.where(float32, rounded, values)


def float32_misfit(values: np.ndarray) -> np.ndarray:
    """Per value: does the float32 round trip move it by more than pandas' tolerance? (NaN: no.) A column holding
    one such value in a coin's history was float64 in that coin's frame (see ColumnTypes)."""
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.abs(values.astype(np.float32).astype(np.float64) - values)
    return error > _FLOAT32_TOLERANCE


def scalar(value: float, float32: np.ndarray) -> np.ndarray:
    """A Python scalar as numpy applies it per coin: cast to float32 against float32 data."""
    return np.where(float32, float(np.float32(value)), float(value))


def flag(condition: np.ndarray) -> np.ndarray:
    return condition.astype(np.float64)


def minutes(delta_ns: np.ndarray) -> np.ndarray:
    # pandas: Timedelta.total_seconds() = ns / 1e9, then / 60, all in float64.
    return delta_ns / _NS_PER_SECOND / 60


class ColumnTypes:
    """Per history column and coin: was the column float32 in the original frame? (§3.3)

    pandas ``to_numeric(downcast="float")`` makes the whole column float32 iff no non-NaN
    value moves by more than 5e-4 in the float32 round trip; the server built one frame
    per coin, so the decision is per coin over its loaded history. The boolean
    ``is_koth`` is never converted; its 0/1 values are exact either way.
    """

    def __init__(self, histories: CoinHistories, coins: np.ndarray | None = None):
        """Decided for ``coins`` only (indices into ``histories``; default all): the entries of other coins are
        meaningless."""
        self._histories = histories
        self._coins = coins
        if coins is None:
            self._rows, self._offsets = None, histories.offsets
        else:
            self._rows, self._offsets = rows_of_coins(histories.offsets, coins)
        self._float32: dict[str, np.ndarray] = {}

    def float32(self, name: str) -> np.ndarray:
        """Per coin of the histories: True where the column was float32."""
        if name not in self._float32:
            values = self._histories.columns[name]
            if self._rows is not None:
                values = values[self._rows]
            with np.errstate(over="ignore", invalid="ignore"):
                error = np.abs(values.astype(np.float32).astype(np.float64) - values)
            error[np.isnan(error)] = 0.0  # NULLs do not count
            worst = np.maximum.reduceat(error, self._offsets[:-1])
            decided = ~(worst > _FLOAT32_TOLERANCE) | (name == "is_koth")
            if self._coins is not None:
                per_coin = np.zeros(self._histories.n_coins, dtype=bool)
                per_coin[self._coins] = decided
                decided = per_coin
            self._float32[name] = decided
        return self._float32[name]


class Frame:
    """The per-coin DataFrames of the original server for one chunk of coins.

    Full series are padded ``(rows, coins)`` float64 arrays, left-aligned (row 0 = the
    oldest loaded row of each coin; rows past a coin's end are padding, never read).
    Values of float32 columns are already rounded to float32. ``float32(name)`` tells per
    coin whether the original column (or derived series) was float32.
    """

    def __init__(self, histories: CoinHistories, types: ColumnTypes, coin_index: np.ndarray):
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
                values = round_float32(self._column(name)[self._flat_index], float32)
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
            values = round_float32(self._column(name)[self._first_flat_row + row], self.float32(name))
        return np.where(exists, values, np.nan)

    def timestamps_ns(self) -> np.ndarray:
        return self._histories.timestamps_ns[self._flat_index]

    def newest(self, values: np.ndarray) -> np.ndarray:
        """A whole padded series ``(rows, coins)`` at each coin's newest row."""
        return values[self.last_row, np.arange(self.n_coins)]

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
        self._rolling_mean, self._rolling_sum = self._roll(
            stacked, lane_series=[series_names.index(name) for name, _ in lanes], lane_window=[w for _, w in lanes]
        )

    def _roll(self, stacked: np.ndarray, *, lane_series: list[int], lane_window: list[int]):
        """The rolling (means, sums) of the lanes over ``stacked`` (rows, series, coins), as ``mean``/``sum`` read them."""
        return pandas_rolling_mean_sum(stacked, self.lengths, lane_series=lane_series, lane_window=lane_window,
                                       lags=(0, 1))

    def mean(self, name: str, window: int, lag: int = 0) -> np.ndarray:
        return self._rolling_mean[lag, self._rolling[(name, window)]]

    def sum(self, name: str, window: int) -> np.ndarray:
        return self._rolling_sum[0, self._rolling[(name, window)]]


# Derived per-row series (spec §3.6 and the fill0 inputs of §3.5). Each returns
# (values, float32-per-coin).


def _filled(column: str) -> Callable[[Frame], tuple[np.ndarray, np.ndarray]]:
    def build(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        values = frame.series(column)
        return np.where(np.isnan(values), 0.0, values), frame.float32(column)

    return build


def _rolling_ath(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    # cummax: a NULL row yields NaN there, the running maximum goes on past it.
    high = frame.series("price_high")
    running_max = np.fmax.accumulate(high, axis=0)
    return np.where(np.isnan(high), np.nan, running_max), frame.float32("price_high")


def _ath_distance_pct(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    ath = frame.series("rolling_ath")
    close = frame.series("price_close")
    float32 = frame.float32("rolling_ath") & frame.float32("price_close")
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = round_float32(ath - close, float32)
        distance = round_float32(distance / ath, float32)
        distance = round_float32(distance * 100, float32)
    # NaN (no ATH yet, NULL close, 0/0) -> 100; ±inf (ATH 0) survives until the cleanup.
    return np.where(np.isnan(distance), 100.0, distance), float32


def _ath_breakout(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    high = frame.series("price_high")
    previous_ath = np.full_like(high, np.nan)
    previous_ath[1:] = frame.series("rolling_ath")[:-1]
    with np.errstate(invalid="ignore"):
        breakout = high > previous_ath  # NaN on either side, or the first row: no breakout
    return flag(breakout), np.zeros(frame.n_coins, dtype=bool)


def _minutes_since_ath(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
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
    since_start = minutes(timestamps - timestamps[0][None, :])
    since_last_breakout = minutes(timestamps - timestamps[last_breakout, coins][None, :])
    after_first = has_breakout[None, :] & (np.arange(frame.n_rows)[:, None] >= first_breakout[None, :])
    return np.where(after_first, since_last_breakout, since_start), np.zeros(frame.n_coins, dtype=bool)


def _ath_breakout_volume(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    # int flag × float32 volume -> float64 in numpy; the product is exact either way.
    return frame.series("ath_breakout") * frame.series("volume_sol"), np.zeros(frame.n_coins, dtype=bool)


# NULL -> 0 versions of four columns (the server's fillna(0) inputs of §3.5).
DEV = "dev_sold_amount:filled"
BUY_PRESSURE = "buy_pressure_ratio:filled"
WHALE_BUY = "whale_buy_volume_sol:filled"
WHALE_SELL = "whale_sell_volume_sol:filled"

_DERIVED_SERIES: dict[str, Callable[[Frame], tuple[np.ndarray, np.ndarray]]] = {
    DEV: _filled("dev_sold_amount"),
    BUY_PRESSURE: _filled("buy_pressure_ratio"),
    WHALE_BUY: _filled("whale_buy_volume_sol"),
    WHALE_SELL: _filled("whale_sell_volume_sol"),
    "rolling_ath": _rolling_ath,
    "ath_distance_pct": _ath_distance_pct,
    "ath_breakout": _ath_breakout,
    "minutes_since_ath": _minutes_since_ath,
    "ath_breakout_volume": _ath_breakout_volume,
}
