"""Features "as of" every row in one pass (inference.features.every_row, used by inference.as_of for training and
backtests) equal, bit for bit, the serving features of the history that ends at that row.

* Synthetic histories (no database): every prefix of every coin built on its own with build_features, against one
  build_features_every_row call; values that make a column float64 part-way through a coin (the dtype of a prefix
  changes), NULLs, ±inf, -0.0, runs of equal values, negative values and many ATH breakouts; both feature paths.
* The stored parity fixture and a simulated market, through features_as_of, against each row's own window cut from
  one read of every row (the newest history_limit rows up to it under the phase filter): phase filters, and a
  history limit shorter than the coins, so rows whose window starts at the coin's first row and rows with a window
  of their own both occur.
"""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from inference import as_of, history
from inference.features import VALUE_COLUMNS, CoinHistories, build_features, pandas_rolling_mean_sum
from inference.features.every_row import build_features_every_row
from inference.features.rolling import pandas_rolling_every_row
from tests import parity
from tests.test_history_cache import INSERT_SQL, ROWS

FEATURES = parity.meta("xgb")["features"]
WINDOWS = parity.meta("xgb")["params"]["feature_engineering_windows"]
# Path A (models with feature_names_in_): coin age and *_has_data flags.
PATH_A = ["coin_age_minutes", "price_roc_5_has_data", "volume_spike_10_has_data", "ath_age_trend_15", "price_close"]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def prefixes(histories: CoinHistories) -> CoinHistories:
    """Every prefix of every coin (coin rows 0 .. r, for each r) as a coin of its own, in flat row order."""
    ends = np.concatenate([np.arange(1, n + 1) for n in histories.lengths])
    starts = np.repeat(histories.offsets[:-1], histories.lengths)
    offsets = np.r_[0, np.cumsum(ends)]
    rows = np.arange(offsets[-1]) - np.repeat(offsets[:-1], ends) + np.repeat(starts, ends)
    return CoinHistories(mints=[str(i) for i in range(len(ends))], offsets=offsets,
                         timestamps_ns=histories.timestamps_ns[rows],
                         columns={name: values[rows] for name, values in histories.columns.items()})


def synthetic(seed: int, coins: int = 30, longest: int = 90) -> CoinHistories:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, longest, coins)
    n = int(lengths.sum())
    steps = [np.cumsum(rng.integers(1, 90, length)) for length in lengths]
    timestamps = (1_700_000_000 + np.concatenate(steps)) * 1_000_000_000
    columns = {}
    for name in VALUE_COLUMNS:
        values = np.round(rng.lognormal(0, 2, n) * rng.choice([0.0, 1.0], n, p=[0.2, 0.8]), 6)
        values[rng.random(n) < 0.05] = np.nan
        columns[name] = values
    columns["phase_id_at_time"] = rng.integers(1, 4, n).astype(float)
    columns["is_koth"] = rng.integers(0, 2, n).astype(float)
    columns["net_volume_sol"] *= rng.choice([-1.0, 1.0], n)
    columns["dev_sold_amount"][rng.random(n) < 0.05] = -0.0
    price = np.exp(np.cumsum(rng.normal(0.01, 0.1, n))) * 1e-6  # drifts up: many ATH breakouts
    columns["price_close"], columns["price_high"] = np.round(price, 18), np.round(price * 1.1, 18)
    # Values float32 cannot hold arrive part-way through coins: the column turns float64 from that prefix on.
    columns["market_cap_close"] = np.where(rng.random(n) < 0.01, 123456.78, np.round(columns["market_cap_close"], 2))
    columns["volume_sol"][rng.random(n) < 0.005] = np.inf
    columns["volatility_pct"] = np.where(rng.random(n) < 0.3, 2.5, columns["volatility_pct"])  # equal runs
    return CoinHistories(mints=[f"coin{i}" for i in range(coins)], offsets=np.r_[0, np.cumsum(lengths)],
                         timestamps_ns=timestamps, columns=columns)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf × 0 in a series, as in the original
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("names", "has_data_flags"), [(FEATURES, False), (PATH_A, True)], ids=["path-b", "path-a"])
def test_every_row_equals_build_features_of_every_prefix(seed, names, has_data_flags):
    histories = synthetic(seed)
    every_row = build_features_every_row(histories, feature_names=names, engineered=True, windows=WINDOWS,
                                         has_data_flags=has_data_flags)
    one_by_one = build_features(prefixes(histories), feature_names=names, engineered=True, windows=WINDOWS,
                                has_data_flags=has_data_flags)
    assert same_bits(every_row, one_by_one)


def test_rolling_at_every_row_equals_rolling_of_every_prefix():
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 50, 9)
    values = rng.normal(0, 1, (int(lengths.max()), 3, 9)) * 10.0 ** rng.integers(-8, 5, (int(lengths.max()), 3, 9))
    values[rng.random(values.shape) < 0.15] = np.nan
    values[rng.random(values.shape) < 0.03] = np.inf
    values = np.where(rng.random(values.shape) < 0.3, 1.5, values)
    lane_series, lane_window = [0, 0, 1, 2, 2], [1, 5, 10, 15, 30]
    mean, total = pandas_rolling_every_row(values, lengths, lane_series, lane_window)
    for coin, length in enumerate(lengths):
        for row in range(length):
            expected = pandas_rolling_mean_sum(values[: row + 1, :, coin : coin + 1], np.array([row + 1]),
                                               lane_series, lane_window)
            got_mean = np.array([lane[row, coin] for lane in mean])
            got_sum = np.array([lane[row, coin] for lane in total])
            assert same_bits(np.nan_to_num(got_mean, nan=7.0), np.nan_to_num(expected[0][0, :, 0], nan=7.0))
            assert same_bits(np.nan_to_num(got_sum, nan=7.0), np.nan_to_num(expected[1][0, :, 0], nan=7.0))


@pytest.mark.parametrize("rolling", [pandas_rolling_mean_sum, pandas_rolling_every_row])
def test_both_rolling_functions_refuse_an_empty_window_and_a_length_past_the_rows(rolling):
    values = np.ones((4, 1, 2))
    with pytest.raises(ValueError, match="windows must be >= 1 row"):
        rolling(values, np.array([4, 2]), [0], [0])
    for lengths in ([5, 2], [0, 2]):
        with pytest.raises(ValueError, match="lengths must be between 1 and the number of rows"):
            rolling(values, np.array(lengths), [0], [3])
    mean, _ = rolling(values, np.array([4, 2]), [0], [3])
    assert np.asarray(mean).size  # the same input with a window and lengths in range is answered


def windows_of_every_row(phases, history_limit: int):
    """Every stored row under the phase filter: (mints, coin, timestamps µs) and its serving vector, from one read of
    all rows, each row's window (its newest history_limit rows) cut out and built on its own."""
    rows = history.coin_rows(columns=VALUE_COLUMNS, phases=phases)
    ends = np.concatenate([np.arange(1, n + 1) for n in rows.lengths])
    coin = np.repeat(np.arange(rows.n_coins), rows.lengths)
    starts = rows.offsets[coin] + np.maximum(ends - history_limit, 0)
    lengths = ends - np.maximum(ends - history_limit, 0)
    offsets = np.r_[0, np.cumsum(lengths)]
    index = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths) + np.repeat(starts, lengths)
    windows = CoinHistories(mints=[str(i) for i in range(len(ends))], offsets=offsets,
                            timestamps_ns=rows.timestamps_ns[index],
                            columns={name: values[index] for name, values in rows.columns.items()})
    expected = build_features(windows, feature_names=FEATURES, engineered=True, windows=WINDOWS)
    return rows.mints, coin, rows.timestamps_ns // 1000, expected, ends


def assert_as_of_equals_windows(phases, history_limit: int) -> None:
    mints, coin, timestamps_us, expected, ends = windows_of_every_row(phases, history_limit)
    assert len(coin) > 100
    if history_limit < 100:  # both kinds of rows: windows from the coin's first row, and windows of their own
        assert (ends <= history_limit).any() and (ends > history_limit).any()
    got = as_of.features_as_of(mints=mints, coin=coin, timestamps_us=timestamps_us, feature_names=FEATURES,
                               engineered=True, windows=WINDOWS, phases=phases, history_limit=history_limit)
    assert same_bits(got, expected)
    # A subset (every third row, scattered over the coins) is answered alike.
    pick = np.arange(0, len(coin), 3)
    got = as_of.features_as_of(mints=mints, coin=coin[pick], timestamps_us=timestamps_us[pick],
                               feature_names=FEATURES, engineered=True, windows=WINDOWS, phases=phases,
                               history_limit=history_limit)
    assert same_bits(got, expected[pick])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("phases", "history_limit"), [(None, 1000), ((1, 2, 3), 1000), ((1, 3), 40), (None, 25)])
def test_features_as_of_every_fixture_row(market, phases, history_limit):
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, ROWS)
    assert_as_of_equals_windows(phases, history_limit)


@pytest.mark.django_db(transaction=True)
def test_features_as_of_every_row_of_a_simulated_market(market):
    call_command("simulate_market", coins=30, rate=1_000_000, rows=3000, seed=11, start="2025-01-01T00:00:00Z",
                 stdout=StringIO())
    for phases, history_limit in [(None, 1000), ((1, 2), 60), (None, 35)]:
        assert_as_of_equals_windows(phases, history_limit)


@pytest.mark.django_db(transaction=True)
def test_features_as_of_in_blocks_of_a_few_coins(market, monkeypatch):
    """features_as_of reads and computes at most _COINS_PER_BLOCK coins at once (its memory stays bounded): 30 coins
    in blocks of 7 (the last one short) answer bit for bit as each row's own window does."""
    call_command("simulate_market", coins=30, rate=1_000_000, rows=3000, seed=11, start="2025-01-01T00:00:00Z",
                 stdout=StringIO())
    monkeypatch.setattr(as_of, "_COINS_PER_BLOCK", 7)
    for phases, history_limit in [(None, 1000), ((1, 2), 60)]:
        assert_as_of_equals_windows(phases, history_limit)
