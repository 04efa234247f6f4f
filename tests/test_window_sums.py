"""The compiled rolling sums (inference/features/window_sums.c) give, bit for bit, what the numpy loop gives, through
the public rolling functions: NULLs, ±inf, -0.0, runs of equal values, magnitudes from 1e-18 to 1e12 in one window
(where the compensation matters), windows wider than a coin's history, coins of one row, several lags and every
row. The numpy loop is itself checked against pandas by the feature parity tests."""

from __future__ import annotations

import os

import numpy as np
import pytest

from inference.features import native, pandas_rolling_mean_sum
from inference.features.rolling import pandas_rolling_every_row


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The library built afresh from its source (with the flags `make` uses), independent of the one beside it."""
    library = tmp_path_factory.mktemp("native") / "window_sums.so"
    native.build(library)
    return native.load(library)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def market_like(seed: int, n_rows: int, n_series: int, n_coins: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-18, 13, size=(1, n_series, n_coins))
    values = np.round(rng.gamma(2.0, 2.0, (n_rows, n_series, n_coins)) * scale, 6)
    values *= np.where(rng.random(values.shape) < 0.3, -1.0, 1.0)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[rng.random(values.shape) < 0.01] = np.inf
    values[rng.random(values.shape) < 0.01] = -np.inf
    values[rng.random(values.shape) < 0.02] = -0.0
    runs = rng.random((n_rows, n_series, n_coins)) < 0.2
    values[1:][runs[1:]] = values[:-1][runs[1:]]  # equal consecutive values
    lengths = rng.integers(1, n_rows + 1, n_coins)
    lengths[0], lengths[-1] = 1, n_rows
    return values, lengths


@pytest.mark.parametrize("seed", range(4))
def test_compiled_sums_equal_the_numpy_loop_bit_for_bit(compiled, monkeypatch, seed):
    values, lengths = market_like(seed, n_rows=120, n_series=3, n_coins=37)
    lane_series = [0, 0, 1, 1, 2, 2, 2]
    lane_window = [1, 5, 3, 60, 10, 119, 500]

    has_row = np.arange(len(values))[:, None] < lengths[None, :]  # rows at or past a coin's length mean nothing

    def run():
        at_rows = pandas_rolling_mean_sum(values, lengths, lane_series, lane_window, lags=(0, 1, 7))
        every_row = pandas_rolling_every_row(values, lengths, lane_series, lane_window)
        return [*at_rows, *(lane[has_row] for lane in every_row[0] + every_row[1])]

    monkeypatch.setattr(native, "window_sums", None)
    in_numpy = run()
    monkeypatch.setattr(native, "window_sums", compiled)
    in_c = run()
    assert len(in_c) == len(in_numpy)
    for got, expected in zip(in_c, in_numpy):
        assert same_bits(got, expected)
    assert np.isfinite(in_c[1]).any()  # sums were computed, not only NaN


def test_make_builds_the_library_the_feature_engine_loads():
    """`make test` builds `_window_sums.so` from the current source, so the listener runs the compiled loop."""
    if native.window_sums is None and os.environ.get("CI") != "true":
        pytest.skip("run through `make test` (it builds inference/features/_window_sums.so)")
    assert native.window_sums is not None, f"{native.LIBRARY} is missing or older than {native.SOURCE}"
