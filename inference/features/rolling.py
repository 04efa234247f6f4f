"""pandas' ``rolling(w, min_periods=1).mean()`` / ``.sum()`` replayed bit for bit, many coins and
(series, window) lanes at once (spec §3.12)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from inference import native


def _checked_inputs(values, lengths, lane_series, lane_window) -> tuple[np.ndarray, ...]:
    """The rolling functions' inputs as arrays, checked: every window at least one row, every length between 1 and
    the number of rows."""
    values = np.asarray(values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    lane_series = np.asarray(lane_series, dtype=np.int64)
    lane_window = np.asarray(lane_window, dtype=np.int64)
    if np.any(lane_window < 1):
        raise ValueError("rolling windows must be >= 1 row")
    if np.any(lengths > values.shape[0]) or np.any(lengths < 1):
        raise ValueError("lengths must be between 1 and the number of rows")
    return values, lengths, lane_series, lane_window


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
    values, lengths, lane_series, lane_window = _checked_inputs(values, lengths, lane_series, lane_window)
    n_coins = values.shape[2]
    lags = tuple(int(lag) for lag in lags)
    n_lanes = len(lane_series)
    out_mean = np.full((len(lags), n_lanes, n_coins), np.nan)
    out_sum = np.full((len(lags), n_lanes, n_coins), np.nan)
    if n_lanes == 0 or n_coins == 0:
        return out_mean, out_sum

    # Sorting coins by length lets each time step work on the tail of still-active coins.
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    widest = int(lane_window.max())
    padded = _padded(values, order, widest)

    totals = _kahan_window_sums(padded, widest, sorted_lengths, lane_series, lane_window, lags)
    # The lanes of one window length are read off together: a few array operations per window length and lag,
    # not per lane (a batch has ~25 lanes per window length).
    coins = np.arange(n_coins)
    for lag_index, lag in enumerate(lags):
        row = sorted_lengths - 1 - lag
        exists = row >= 0
        row, coin = row[exists], coins[exists]
        for window in np.unique(lane_window):
            lanes = np.flatnonzero(lane_window == window)
            counters = _window_counters(padded[widest:], lane_series[lanes], row, coin, int(window))
            mean, total = _rolling_results(totals[lag_index][np.ix_(lanes, coin)], *counters)
            out_mean[lag_index, lanes[:, None], order[coin]] = mean
            out_sum[lag_index, lanes[:, None], order[coin]] = total
    return out_mean, out_sum


def _padded(values: np.ndarray, order: np.ndarray | None, widest: int) -> np.ndarray:
    """``values`` with its coins in ``order`` (None: as they are) behind ``widest`` NaN rows, so that "remove row
    t - w" needs no bounds test; ±inf become NaN (pandas treats them as missing)."""
    padded = np.empty((widest + values.shape[0], *values.shape[1:]))
    padded[:widest] = np.nan
    body = padded[widest:]
    if order is None:
        body[...] = values
    else:
        np.take(values, order, axis=2, out=body)
    infinite = np.isinf(body)
    if infinite.any():
        body[infinite] = np.nan
    return padded


def _kahan_window_sums(
    padded: np.ndarray,
    widest: int,
    sorted_lengths: np.ndarray,
    lane_series: np.ndarray,
    lane_window: np.ndarray,
    lags: tuple[int, ...],
    every_row: np.ndarray | None = None,
) -> np.ndarray:
    """pandas' compensated running window sum per lane, at row ``length - 1 - lag``.

    ``padded``: the values with ``widest`` NaN rows in front (row t is ``padded[widest + t]``).
    Row t first removes row t - w (if present), then adds row t; missing values are
    neither added nor removed. Removal is computed as ``y = -(v + c)``, bit-identical to
    pandas' ``y = -v - c`` because round-to-nearest is symmetric in sign. ``every_row``
    (``(rows, lanes, coins)``, optional) receives the sum after every row t of every coin
    that has it (coins in ``sorted_lengths`` order).

    The loop runs compiled (inference.native, several times faster) where it is built, else in numpy.
    """
    n_rows = padded.shape[0] - widest
    first_active = np.searchsorted(sorted_lengths, np.arange(n_rows), side="right")
    totals = np.full((len(lags), len(lane_series), padded.shape[2]), np.nan)
    if native.window_sums is None:
        _numpy_window_sums(padded, widest, sorted_lengths, first_active, lane_series, lane_window, lags, totals,
                           every_row)
    else:
        _native_window_sums(padded, widest, sorted_lengths, first_active, lane_series, lane_window, lags, totals,
                            every_row)
    return totals


def _native_window_sums(padded, widest, sorted_lengths, first_active, lane_series, lane_window, lags, totals,
                        every_row):
    """The loop of ``_kahan_window_sums`` in C (csrc/window_sums.c): inputs as contiguous float64/int64, outputs in
    place."""
    padded = np.ascontiguousarray(padded, dtype=np.float64)
    sorted_lengths, first_active, lane_series, lane_window, lags = (
        np.ascontiguousarray(array, dtype=np.int64)
        for array in (sorted_lengths, first_active, lane_series, lane_window, lags))
    state = np.zeros((3, len(lane_series), padded.shape[2]))
    outputs = (totals,) if every_row is None else (totals, every_row)
    assert all(array.dtype == np.float64 and array.flags.c_contiguous for array in outputs)
    native.window_sums(
        padded.ctypes.data, widest, padded.shape[1], padded.shape[2],
        sorted_lengths.ctypes.data, first_active.ctypes.data, int(sorted_lengths[-1]),
        lane_series.ctypes.data, lane_window.ctypes.data, len(lane_series), lags.ctypes.data, len(lags),
        state.ctypes.data, totals.ctypes.data, None if every_row is None else every_row.ctypes.data,
    )


def _numpy_window_sums(padded, widest, sorted_lengths, first_active, lane_series, lane_window, lags, totals,
                       every_row):
    """The loop of ``_kahan_window_sums`` in numpy: the fallback, and the reference the compiled one is tested
    against (tests/test_native.py)."""
    n_rows = padded.shape[0] - widest
    n_coins = padded.shape[2]
    n_lanes = len(lane_series)
    narrowest = int(lane_window.min())

    total = np.zeros((n_lanes, n_coins))
    compensation_add = np.zeros((n_lanes, n_coins))
    compensation_remove = np.zeros((n_lanes, n_coins))
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
            if every_row is not None:
                every_row[t, :, a:] = total_t

            for lag_index, (lows, highs) in enumerate(snapshot_bounds):
                lo, hi = lows[t], highs[t]
                if lo < hi:
                    totals[lag_index, :, lo:hi] = total[:, lo:hi]


def _window_counters(values: np.ndarray, series: np.ndarray, row: np.ndarray, coin: np.ndarray, window: int):
    """The non-sum part of pandas' window state for the windows ending at ``row``, for each of ``series``.

    ``values``: ``(rows, n_series, coins)``, NaN = missing. Returns ``(n_obs, n_negative, all_equal, last_added)``,
    each ``(len(series), len(row))``. pandas tracks the run of equal consecutive added values; "the run covers all
    n_obs observations of the window" is the same as "all present values of the window are equal" (== is
    transitive on non-NaN floats, -0.0 == 0.0 included), and with n_obs >= 1 the last added value lies in the window.
    """
    offsets = np.arange(1 - window, 1)  # oldest .. newest row of the window
    window_rows = row[:, None] + offsets[None, :]
    in_range = window_rows >= 0
    cells = values[np.maximum(window_rows, 0)[None, :, :], series[:, None, None], coin[None, :, None]]
    cells[:, ~in_range] = np.nan
    present = ~np.isnan(cells)
    n_obs = present.sum(axis=2)
    n_negative = (present & np.signbit(cells)).sum(axis=2)
    all_equal = np.fmin.reduce(cells, axis=2) == np.fmax.reduce(cells, axis=2)
    newest_present = window - 1 - np.argmax(present[:, :, ::-1], axis=2)
    last_added = np.take_along_axis(cells, newest_present[:, :, None], axis=2)[:, :, 0]  # NaN if none present
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


def pandas_rolling_every_row(
    values: np.ndarray,
    lengths: np.ndarray,
    lane_series: Sequence[int],
    lane_window: Sequence[int],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """pandas ``rolling(w, min_periods=1).mean()`` / ``.sum()`` at EVERY row of each coin's history.

    Same input as ``pandas_rolling_mean_sum``. Returns ``(mean, sum)``, each a list with one ``(rows, n_coins)``
    array per lane: at row
    t < ``lengths[c]`` the lane's value for the history made of coin c's rows 0 .. t (rows at or past a coin's
    length hold no meaningful value). The compensated sum depends on every earlier row, so one pass over a coin's
    rows gives the values of all its prefixes, bit for bit; the window counters are read off each window as in
    ``pandas_rolling_mean_sum``.
    """
    values, lengths, lane_series, lane_window = _checked_inputs(values, lengths, lane_series, lane_window)
    n_rows, _, n_coins = values.shape
    n_lanes = len(lane_series)
    out_mean: list[np.ndarray] = [np.full((n_rows, n_coins), np.nan)] * n_lanes
    out_sum: list[np.ndarray] = list(out_mean)
    if n_lanes == 0 or n_coins == 0:
        return out_mean, out_sum

    order = np.argsort(lengths, kind="stable")
    in_order = bool(np.all(order == np.arange(n_coins)))  # groups of build_features come sorted by length
    widest = int(lane_window.max())
    padded = _padded(values, None if in_order else order, widest)
    totals = np.empty((n_rows, n_lanes, n_coins))
    _kahan_window_sums(padded, widest, lengths[order], lane_series, lane_window, (), every_row=totals)

    for series in np.unique(lane_series):
        lanes = np.flatnonzero(lane_series == series)
        counters = _EveryRowCounters(padded[widest:, series, :], int(lane_window[lanes].max()))
        for lane in lanes:
            mean, total = _rolling_results(totals[:, lane, :], *counters.of_window(int(lane_window[lane])))
            if not in_order:
                mean[:, order], total[:, order] = mean.copy(), total.copy()
            out_mean[lane], out_sum[lane] = mean, total
    return out_mean, out_sum


class _EveryRowCounters:
    """``_window_counters`` for the window ending at every row of one series ``(rows, coins)`` (NaN = missing):
    observation and negative counts from running counts, "all present values equal" from window minima and maxima
    (doubling tables: min/max are exact in any order, and -0.0 == 0.0 either way), the last added value from the
    newest present row."""

    def __init__(self, values: np.ndarray, widest: int):
        n_rows = values.shape[0]
        present = ~np.isnan(values)
        self.seen = np.zeros((n_rows + 1, values.shape[1]), dtype=np.int64)
        np.cumsum(present, axis=0, out=self.seen[1:])
        self.negative = np.zeros_like(self.seen)
        np.cumsum(present & np.signbit(values), axis=0, out=self.negative[1:])
        self.rows = np.arange(n_rows)[:, None]
        self.newest_present = np.maximum.accumulate(np.where(present, self.rows, -1), axis=0)
        self.newest_value = np.take_along_axis(values, np.maximum(self.newest_present, 0), axis=0)
        self.lowest = _doubling_table(values, widest, np.fmin)
        self.highest = _doubling_table(values, widest, np.fmax)

    def of_window(self, window: int):
        n_obs = _window_count(self.seen, window)
        n_negative = _window_count(self.negative, window)
        all_equal = _window_extreme(self.lowest, window, np.fmin) == _window_extreme(self.highest, window, np.fmax)
        last_added = np.where(self.newest_present > self.rows - window, self.newest_value, np.nan)
        return n_obs, n_negative, all_equal, last_added


def _window_count(running: np.ndarray, window: int) -> np.ndarray:
    """From running counts (row 0 = 0, row t + 1 = count of rows 0 .. t): the count of rows t - window + 1 .. t."""
    counts = running[1:].copy()
    if window < len(counts):
        counts[window:] -= running[1 : len(running) - window]
    return counts


def _doubling_table(values: np.ndarray, widest: int, extreme) -> list[np.ndarray]:
    """Level k: the extreme of rows t - 2**k + 1 .. t (clipped at row 0; NaN ignored), for 2**k <= widest."""
    levels = [values]
    span = 1
    while 2 * span <= widest:
        previous = levels[-1]
        level = previous.copy()
        extreme(previous[span:], previous[:-span], out=level[span:])
        levels.append(level)
        span *= 2
    return levels


def _window_extreme(levels: list[np.ndarray], window: int, extreme) -> np.ndarray:
    """The extreme of rows t - window + 1 .. t from two overlapping blocks of a doubling table."""
    k = window.bit_length() - 1
    top = levels[k]
    shift = window - (1 << k)
    if shift == 0:
        return top
    result = top.copy()
    extreme(top[shift:], top[:-shift], out=result[shift:])
    return result
