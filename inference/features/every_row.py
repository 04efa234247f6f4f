"""``build_features_every_row``: the model input "as of" EVERY row of many coins' histories in one pass.

Row r of a coin gets exactly what ``build_features`` gives for the history made of the coin's rows from its first
row up to r (r as the newest row): what the listener computed when r arrived, as long as the coin had at most the
history limit of rows by then (the caller, ``inference.as_of``, sends only such rows).

Why one pass is exact: the original frame's per-row series are computed from the first row onwards (cumulative
maxima and sums, pandas' compensated rolling sums, shifts), so a value at row t is the same in every history that
starts at the same first row and reaches t. Two things are not like that, and are handled here:

* float32 or float64 (spec §3.3): a column's dtype is decided over the whole history, so it can change from one
  prefix to the next (once a value that float32 cannot hold arrives). A coin is cut at those rows; each piece is
  computed as the prefix that ends with the piece (its dtypes are the piece's), and gives the piece's rows.
* ``minutes_since_ath`` (spec §3.6): every row of the series counts from the LAST ATH breakout of the history, so the
  series changes whenever a breakout arrives. Its value at the newest row is computed per row; its rolling means
  (``ath_age_trend_<w>``) replay pandas' compensated sum once per breakout, over the series that breakout defines,
  for the rows up to the next breakout.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from inference.features.build import length_groups
from inference.features.frame import ColumnTypes, Frame, float32_misfit, minutes
from inference.features.histories import DEFAULT_WINDOWS, CoinHistories
from inference.features.recipes import resolve_all
from inference.features.rolling import pandas_rolling_every_row

# Cells (rows x coins) of one padded group. Every row keeps its rolling values (~40 lanes, mean and sum), so a group
# costs ~1 kB per cell; groups of ~30 MB stay closer to the CPU's caches (~10 % less time per row than 60,000 cells,
# and no gain below).
GROUP_MAX_CELLS = 30_000
# Cells of one batch of breakout runs (rows x runs) of the minutes_since_ath rolling means.
RUN_MAX_CELLS = 150_000

_MINUTES_SINCE_ATH = "minutes_since_ath"


def build_features_every_row(
    histories: CoinHistories,
    *,
    feature_names: Sequence[str],
    engineered: bool,
    windows: Sequence[int] | None = DEFAULT_WINDOWS,
    has_data_flags: bool = False,
) -> np.ndarray:
    """``(rows of histories, len(feature_names))``: row r (a flat row of ``histories``) is ``build_features`` of the
    history made of its coin's rows from the coin's first row up to r. Arguments as for ``build_features``."""
    recipes, lanes = resolve_all(feature_names, engineered=engineered, windows=windows, has_data_flags=has_data_flags)
    if histories.n_coins == 0 or not recipes:
        return np.zeros((len(histories.timestamps_ns), len(recipes)))
    pieces, owner_row, first_row = _uniform_pieces(histories)
    types = ColumnTypes(pieces)
    by_feature = np.empty((len(recipes), len(histories.timestamps_ns)))  # feature by feature, rows contiguous
    for group in length_groups(pieces.lengths, max_cells=GROUP_MAX_CELLS):
        frame = EveryRowFrame(pieces, types, group)
        frame.run_rolling(lanes)
        # The cells each piece answers for (its rows from first_row on), in row-major order, and their flat rows.
        rows = np.arange(frame.n_rows)[:, None]
        answers = frame.in_history & (rows >= first_row[group][None, :])
        flat = (owner_row[group][None, :] + rows)[answers]
        for j, recipe in enumerate(recipes):
            by_feature[j, flat] = np.broadcast_to(recipe.compute(frame), answers.shape)[answers]
    # Cleanup (spec §3.8): NaN -> 0, then ±inf -> 0.
    by_feature[~np.isfinite(by_feature)] = 0.0
    return by_feature.T  # rows by features (feature-major in memory: no copy)


def _uniform_pieces(histories: CoinHistories) -> tuple[CoinHistories, np.ndarray, np.ndarray]:
    """Histories whose columns keep one dtype over every prefix that a piece answers for.

    Returns ``(pieces, owner_row, first_row)``: piece i is the prefix of a coin made of its rows 0 .. n_i - 1 and
    answers for its rows ``first_row[i]`` .. n_i - 1; ``owner_row[i]`` is the flat row of ``histories`` of its row 0.
    A column's dtype changes (float32 to float64) at the first row float32 cannot hold, so a coin without such a
    row (past its first row) is one piece: itself.
    """
    offsets = histories.offsets
    starts = offsets[:-1]
    n_rows = len(histories.timestamps_ns)
    local = np.arange(n_rows) - np.repeat(starts, histories.lengths)
    never = np.iinfo(np.int64).max
    cuts: dict[int, set[int]] = {}
    for name, values in histories.columns.items():
        if name == "is_koth":  # never converted (ColumnTypes)
            continue
        first_misfit = np.minimum.reduceat(np.where(float32_misfit(values), local, never), starts)
        for coin in np.flatnonzero((first_misfit > 0) & (first_misfit != never)):
            cuts.setdefault(int(coin), set()).add(int(first_misfit[coin]))
    if not cuts:
        return histories, starts.copy(), np.zeros(histories.n_coins, dtype=np.int64)
    coins, ends, firsts = [], [], []
    for coin, length in enumerate(histories.lengths):
        bounds = [0, *sorted(cuts.get(coin, ())), int(length)]
        for first, end in zip(bounds[:-1], bounds[1:]):
            coins.append(coin)
            firsts.append(first)
            ends.append(end)
    coins, ends, firsts = np.asarray(coins), np.asarray(ends), np.asarray(firsts)
    row_index = np.arange(ends.sum()) - np.repeat(np.cumsum(ends) - ends, ends) + np.repeat(starts[coins], ends)
    pieces = CoinHistories(
        mints=[histories.mints[c] for c in coins],
        offsets=np.r_[0, np.cumsum(ends)].astype(np.int64),
        timestamps_ns=histories.timestamps_ns[row_index],
        columns={name: values[row_index] for name, values in histories.columns.items()},
    )
    return pieces, starts[coins], firsts


def _shifted(values: np.ndarray, lag: int) -> np.ndarray:
    """The value ``lag`` rows earlier at every row (NaN before the first row)."""
    if lag == 0:
        return values
    shifted = np.full_like(values, np.nan)
    shifted[lag:] = values[:-lag]
    return shifted


class EveryRowFrame(Frame):
    """A Frame whose reads give ``(rows, coins)`` arrays: the value at every row as if that row were the newest."""

    def at(self, name: str, lag: int = 0) -> np.ndarray:
        if name == _MINUTES_SINCE_ATH:
            if lag:
                raise ValueError("minutes_since_ath is only read at the newest row")
            return self._minutes_since_ath_now()
        return _shifted(self.series(name), lag)

    def newest(self, values: np.ndarray) -> np.ndarray:
        return values

    def run_rolling(self, lanes) -> None:
        super().run_rolling(lanes)
        minutes_lanes = [(i, w) for (name, w), i in self._rolling.items() if name == _MINUTES_SINCE_ATH]
        if minutes_lanes:
            self._replay_breakout_runs(minutes_lanes)

    def _roll(self, stacked: np.ndarray, *, lane_series: list[int], lane_window: list[int]):
        return pandas_rolling_every_row(stacked, self.lengths, lane_series, lane_window)

    def mean(self, name: str, window: int, lag: int = 0) -> np.ndarray:
        return _shifted(self._rolling_mean[self._rolling[(name, window)]], lag)

    def sum(self, name: str, window: int) -> np.ndarray:
        return self._rolling_sum[self._rolling[(name, window)]]

    # -- minutes_since_ath ----------------------------------------------------------------------------------------

    def _breakouts(self) -> np.ndarray:
        return (self.series("ath_breakout") > 0) & self.in_history

    def _minutes_since_ath_now(self) -> np.ndarray:
        """Per row: minutes since the newest breakout up to it, or since the first row if there is none yet."""
        rows = np.arange(self.n_rows)[:, None]
        last = np.maximum.accumulate(np.where(self._breakouts(), rows, -1), axis=0)
        timestamps = self.timestamps_ns()
        since_last = minutes(timestamps - np.take_along_axis(timestamps, np.maximum(last, 0), axis=0))
        return np.where(last >= 0, since_last, minutes(timestamps - timestamps[0]))

    def _replay_breakout_runs(self, lanes: list[tuple[int, int]]) -> None:
        """The rolling values of the minutes_since_ath lanes for the rows between a coin's first and last breakout.

        The whole-history pass got them right before the first breakout (no breakout: minutes since the first row)
        and from the last one on. A row between breakouts k and k + 1 sees the series of breakout k: minutes since
        breakout k from the first breakout on, minutes since the first row before it. Each such run is replayed from
        the first row up to the row before breakout k + 1.
        """
        coin, row = np.nonzero(self._breakouts().T)  # by coin, then row
        if len(coin) < 2:
            return
        first_of_coin = np.full(self.n_coins, -1)
        with_breakout, first = np.unique(coin, return_index=True)
        first_of_coin[with_breakout] = row[first]
        has_next = coin[1:] == coin[:-1]
        run_coin, run_start, run_end = coin[:-1][has_next], row[:-1][has_next], row[1:][has_next]
        if len(run_coin) == 0:
            return
        timestamps = self.timestamps_ns()
        windows = sorted({w for _, w in lanes})
        by_length = np.argsort(run_end, kind="stable")
        begin = 0
        while begin < len(by_length):
            end = begin + 1
            while end < len(by_length) and (end - begin + 1) * run_end[by_length[end]] <= RUN_MAX_CELLS:
                end += 1
            runs = by_length[begin:end]
            begin = end
            self._replay_runs(run_coin[runs], run_start[runs], run_end[runs], first_of_coin, timestamps, lanes,
                              windows)

    def _replay_runs(self, coins, starts, ends, first_of_coin, timestamps, lanes, windows) -> None:
        n_rows = int(ends.max())
        rows = np.arange(n_rows)[:, None]
        ts = timestamps[:n_rows, coins]
        series = np.where(
            rows >= first_of_coin[coins][None, :],
            minutes(ts - timestamps[starts, coins][None, :]),
            minutes(ts - ts[0][None, :]),
        )
        mean, total = pandas_rolling_every_row(series[:, None, :], ends, [0] * len(windows), windows)
        counts = ends - starts
        run = np.repeat(np.arange(len(coins)), counts)
        row = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
        for lane, window in lanes:
            k = windows.index(window)
            self._rolling_mean[lane][row, coins[run]] = mean[k][row, run]
            self._rolling_sum[lane][row, coins[run]] = total[k][row, run]
