"""Serving parity of inference.features against the original server (fixture parity_public).

No database and no Django: the fixture CSV plays the role of ``coin_metrics``; every
expected.csv row is rebuilt "as of" its row (fixture README) and all of them go through
ONE ``build_features`` call per model, i.e. the vectorised path the listener uses.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost

from inference.features import (
    HISTORY_COLUMNS,
    CoinHistories,
    build,
    build_features,
    length_groups,
    pandas_rolling_mean_sum,
    required_feature_names,
)

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "parity_public"
MODELS = ("xgb", "rf")


# ---------------------------------------------------------------------------------------
# Fixture loading
# ---------------------------------------------------------------------------------------


def _db_value(column: str, text: str) -> object:
    """A CSV cell as psycopg would return it (empty = NULL)."""
    if text == "":
        return None
    if column == "mint":
        return text
    if column == "timestamp":
        return dt.datetime.fromisoformat(text)
    if column == "is_koth":
        return {"true": True, "false": False}[text]
    if column in ("phase_id_at_time", "num_buys", "num_sells", "unique_wallets", "num_micro_trades",
                  "num_whale_buys", "num_whale_sells"):
        return int(text)
    return Decimal(text)


@pytest.fixture(scope="module")
def coin_metrics_rows() -> list[tuple]:
    """The fixture table as DB rows in HISTORY_COLUMNS order, sorted by mint, timestamp."""
    with open(FIXTURE_DIR / "coin_metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == HISTORY_COLUMNS
        rows = [tuple(_db_value(c, record[c]) for c in HISTORY_COLUMNS) for record in reader]
    return sorted(rows, key=lambda row: (row[0], row[1]))


@pytest.fixture(scope="module")
def expected() -> list[dict[str, str]]:
    with open(FIXTURE_DIR / "expected.csv", newline="") as f:
        return list(csv.DictReader(f))


def _meta(model: str) -> dict:
    return json.loads((FIXTURE_DIR / f"model_{model}.meta.json").read_text())


def _as_of_histories(rows: list[tuple], expected_rows: list[dict[str, str]]) -> CoinHistories:
    """One coin entry per expected row: its mint's rows with timestamp <= the as-of row."""
    mint_at, timestamp_at = HISTORY_COLUMNS.index("mint"), HISTORY_COLUMNS.index("timestamp")
    parts = []
    for record in expected_rows:
        as_of = dt.datetime.fromisoformat(record["as_of_timestamp"])
        history = [r for r in rows if r[mint_at] == record["mint"] and r[timestamp_at] <= as_of]
        assert len(history) == int(record["as_of_row"]) + 1
        parts.append(CoinHistories.from_rows(history, HISTORY_COLUMNS))
    return CoinHistories.concat(parts)


def _same_float(actual: float, wanted: float) -> bool:
    return actual == wanted or abs(actual - wanted) <= 1e-12 * abs(wanted)


# ---------------------------------------------------------------------------------------
# Model evaluation (local to the test; production loaders live elsewhere)
# ---------------------------------------------------------------------------------------


def _xgb_probability(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = xgboost.XGBClassifier()
    model.load_model(FIXTURE_DIR / "model_xgb.json")
    probability = model.predict_proba(matrix)[:, 1]
    return probability.astype(np.float64), (probability > 0.5).astype(int)


def _rf_probability(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The portable forest dump, evaluated per the fixture README rule."""
    forest = json.loads((FIXTURE_DIR / "model_rf.trees.json").read_text())
    assert forest["classes"] == [0, 1] and matrix.shape[1] == forest["n_features"]
    as_float32 = matrix.astype(np.float32).astype(np.float64)
    class0_total, class1_total = np.zeros(len(matrix)), np.zeros(len(matrix))
    for tree in forest["trees"]:
        left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
        feature, threshold = np.asarray(tree["feature"]), np.asarray(tree["threshold"], dtype=np.float64)
        node = np.zeros(len(matrix), dtype=np.int64)
        while np.any(inner := left[node] != -1):
            rows = np.flatnonzero(inner)
            here = node[rows]
            go_left = as_float32[rows, feature[here]] <= threshold[here]
            node[rows] = np.where(go_left, left[here], right[here])
        # Only leaves carry counts (inner nodes hold null).
        counts = np.array([tree["value"][leaf] for leaf in node], dtype=np.float64)
        class0_total += counts[:, 0] / (counts[:, 0] + counts[:, 1])  # summed in tree order
        class1_total += counts[:, 1] / (counts[:, 0] + counts[:, 1])
    class0, class1 = class0_total / forest["n_estimators"], class1_total / forest["n_estimators"]
    return class1, (class1 > class0).astype(int)  # a tie predicts class 0


# ---------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------


@dataclass
class ServedModel:
    """One fixture model's expected rows and what the engine built for the served ones."""

    model: str
    rows: list[dict[str, str]]  # expected.csv rows of this model
    serve: np.ndarray  # per row: would the event handler predict it (phase filter)?
    built_rows: np.ndarray  # indices into ``rows`` of the coins in ``histories``/``matrix``
    histories: CoinHistories
    names: list[str]
    matrix: np.ndarray


def _n_features_in(model: str) -> int:
    if model == "xgb":
        classifier = xgboost.XGBClassifier()
        classifier.load_model(FIXTURE_DIR / "model_xgb.json")
        return classifier.n_features_in_
    return json.loads((FIXTURE_DIR / "model_rf.trees.json").read_text())["n_features"]


@pytest.fixture(scope="module", params=MODELS)
def served(request, coin_metrics_rows, expected) -> ServedModel:
    model = request.param
    meta = _meta(model)
    rows = [r for r in expected if r["model"] == model]
    phases = meta["phases"]
    event_phase = [None if r["event_phase_id"] == "" else int(r["event_phase_id"]) for r in rows]
    serve = np.array([not phases or (p is not None and p in phases) for p in event_phase])

    histories, kept = _as_of_histories(coin_metrics_rows, rows).select_rows(phases=phases)
    is_served = serve[kept]  # only served events are turned into feature vectors
    histories, built_rows = histories.take(np.flatnonzero(is_served)), kept[is_served]

    params = meta["params"] or {}
    names = required_feature_names(
        features=meta["features"],
        n_features_in=_n_features_in(model),
        target_operator=meta["target_operator"],
        target_variable=meta["target_variable"],
    )
    matrix = build_features(  # ONE call for all as-of rows of all coins
        histories,
        feature_names=names,
        engineered=bool(params.get("use_engineered_features")),
        windows=params.get("feature_engineering_windows") or [5, 10, 15],
    )
    return ServedModel(model, rows, serve, built_rows, histories, names, matrix)


def _expected_matrix(served: ServedModel) -> np.ndarray:
    return np.array([[float(served.rows[i][n]) for n in served.names] for i in served.built_rows])


def test_served_rows_follow_the_phase_filter(served):
    assert [int(r["served"]) for r in served.rows] == served.serve.astype(int).tolist()
    for r, is_served in zip(served.rows, served.serve):
        assert r["skip_reason"] == ("" if is_served else "phase_not_in_model")
    assert served.built_rows.tolist() == np.flatnonzero(served.serve).tolist()
    assert served.histories.lengths.tolist() == [int(served.rows[i]["history_rows"]) for i in served.built_rows]


def test_feature_vectors_match(served):
    assert len(served.names) == 87 and served.matrix.shape == (len(served.built_rows), 87)
    wanted = _expected_matrix(served)
    mismatches = [
        (served.rows[served.built_rows[i]]["as_of_row"], served.names[j], served.matrix[i, j], wanted[i, j])
        for i, j in np.ndindex(*wanted.shape)
        if not _same_float(served.matrix[i, j], wanted[i, j])
    ]
    assert not mismatches, f"{len(mismatches)} values differ by > 1e-12 relative, first: {mismatches[:10]}"


def test_feature_vectors_are_bit_identical(served):
    wanted = _expected_matrix(served)
    assert np.array_equal(served.matrix.view(np.uint64), wanted.view(np.uint64))


def test_probabilities_and_predictions(served):
    evaluate = _xgb_probability if served.model == "xgb" else _rf_probability
    probability, prediction = evaluate(served.matrix)
    for i, row in enumerate(served.built_rows):
        assert abs(probability[i] - float(served.rows[row]["probability"])) <= 1e-9
        assert prediction[i] == int(served.rows[row]["prediction"])
    # The README promises exact equality for both models; hold the engine to it.
    wanted = np.array([float(served.rows[row]["probability"]) for row in served.built_rows])
    assert np.array_equal(probability, wanted)


def test_skipped_events_are_not_built(coin_metrics_rows):
    """A phase-filtered model skips an event whose phase is NULL or not listed; a coin whose
    history has no row in the model's phases has no prediction (dropped by select_rows)."""
    mint = coin_metrics_rows[0][0]
    rows = [r for r in coin_metrics_rows if r[0] == mint]
    phase_at = HISTORY_COLUMNS.index("phase_id_at_time")
    only_phase_1 = [r for r in rows if r[phase_at] == 1]
    null_phase = [r[:phase_at] + (None,) + r[phase_at + 1 :] for r in only_phase_1]
    histories = CoinHistories.concat(
        [CoinHistories.from_rows(part, HISTORY_COLUMNS) for part in (only_phase_1, null_phase)]
    )
    selected, kept = histories.select_rows(phases=[2, 3])
    assert selected.n_coins == 0 and kept.tolist() == []
    selected, kept = histories.select_rows(phases=[1])
    assert kept.tolist() == [0] and selected.lengths.tolist() == [len(only_phase_1)]
    selected, kept = histories.select_rows(phases=None)  # no filter: NULL-phase rows stay
    assert kept.tolist() == [0, 1]


def test_history_limit_keeps_the_newest_rows(coin_metrics_rows):
    histories = CoinHistories.from_rows(coin_metrics_rows, HISTORY_COLUMNS)
    selected, kept = histories.select_rows(phases=None, max_rows=7)
    assert kept.tolist() == [0, 1, 2] and selected.lengths.tolist() == [7, 7, 7]
    for coin in range(3):
        newest = histories.timestamps_ns[histories.offsets[coin + 1] - 7 : histories.offsets[coin + 1]]
        kept_rows = selected.timestamps_ns[selected.offsets[coin] : selected.offsets[coin + 1]]
        assert np.array_equal(kept_rows, newest)


def test_from_rows_converts_like_the_original(coin_metrics_rows):
    histories = CoinHistories.from_rows(coin_metrics_rows, HISTORY_COLUMNS)
    assert histories.n_coins == 3 and histories.lengths.sum() == len(coin_metrics_rows)
    close_at = HISTORY_COLUMNS.index("price_close")
    wanted = np.array([np.nan if r[close_at] is None else float(r[close_at]) for r in coin_metrics_rows])
    assert np.array_equal(histories.columns["price_close"], wanted, equal_nan=True)
    first = coin_metrics_rows[0][1]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    assert histories.timestamps_ns[0] == (first - epoch) // dt.timedelta(microseconds=1) * 1000
    with pytest.raises(ValueError, match="grouped by mint"):
        interleaved = coin_metrics_rows[:2] + coin_metrics_rows[-1:] + coin_metrics_rows[2:3]
        CoinHistories.from_rows(interleaved, HISTORY_COLUMNS)


# ---------------------------------------------------------------------------------------
# Feature names (spec §3.4 path B)
# ---------------------------------------------------------------------------------------


def test_required_feature_names():
    listed = ["a", "price_close", "b", "c"]
    kwargs = dict(target_operator=None, target_variable="price_close")
    assert required_feature_names(features=listed, n_features_in=4, **kwargs) == listed
    assert required_feature_names(features=listed, n_features_in=None, **kwargs) == listed
    assert required_feature_names(features=listed, n_features_in=3, **kwargs) == ["a", "b", "c"]
    assert required_feature_names(features=listed, n_features_in=2, **kwargs) == ["a", "b"]
    classic = dict(target_operator=">", target_variable="price_close")
    assert required_feature_names(features=listed, n_features_in=3, **classic) == ["a", "price_close", "b"]
    with pytest.raises(ValueError):
        required_feature_names(features=listed, n_features_in=5, **kwargs)


def test_missing_names_and_engineering_off(coin_metrics_rows):
    histories = CoinHistories.from_rows(coin_metrics_rows, HISTORY_COLUMNS)
    names = ["sol_price_usd", "sol_price_ma_5", "sol_price_change_pct", "price_roc_7", "rolling_ath",
             "volume_sol"]
    matrix = build_features(histories, feature_names=names, engineered=False, windows=[5])
    assert matrix[:, 0].tolist() == [150.0] * 3 and matrix[:, 1].tolist() == [150.0] * 3
    assert not matrix[:, 2:5].any()  # not in the frame without engineering -> 0.0
    last = histories.offsets[1:] - 1
    volume = histories.columns["volume_sol"][last]
    assert np.array_equal(matrix[:, 5], volume.astype(np.float32).astype(np.float64))


# ---------------------------------------------------------------------------------------
# Rolling algorithm against pandas
# ---------------------------------------------------------------------------------------


def _assert_same_bits(actual: np.ndarray, wanted: np.ndarray) -> None:
    """Equal as IEEE bit patterns (so -0.0 != 0.0); any NaN matches any NaN."""
    actual, wanted = np.asarray(actual, dtype=np.float64), np.asarray(wanted, dtype=np.float64)
    assert np.array_equal(np.isnan(actual), np.isnan(wanted))
    numbers = ~np.isnan(wanted)
    differing = np.flatnonzero(actual[numbers].view(np.uint64) != wanted[numbers].view(np.uint64))
    first = differing[:5]
    assert differing.size == 0, f"{differing.size} differ: {actual[numbers][first]} vs {wanted[numbers][first]}"


def _rolling_everywhere(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Engine output at every row of ``x``: coin j is the prefix of length j + 1."""
    n = len(x)
    values = np.repeat(x[:, None, None], n, axis=2)
    mean, total = pandas_rolling_mean_sum(values, np.arange(1, n + 1), [0], [window])
    return mean[0, 0], total[0, 0]


def _random_series(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(0, 1, n) * 10.0 ** rng.integers(-9, 4, n)
    kind = rng.random(n)
    x[kind < 0.10] = np.nan
    x[(kind >= 0.10) & (kind < 0.13)] = np.inf
    x[(kind >= 0.13) & (kind < 0.15)] = -np.inf
    x[(kind >= 0.15) & (kind < 0.30)] = 0.0
    runs = (kind >= 0.30) & (kind < 0.45)  # runs of equal values exercise the run counter
    x[runs] = np.float32(0.1)
    x[(kind >= 0.45) & (kind < 0.50)] = -0.0
    return x


@pytest.mark.parametrize("window", [1, 2, 3, 5, 10, 30])
@pytest.mark.parametrize("seed", range(4))
def test_rolling_matches_pandas(seed, window):
    rng = np.random.default_rng(seed)
    x = _random_series(rng, 160)
    if seed == 3:  # all positive except NaN gaps (exercises the sign clamps)
        x = np.abs(x)
    mean, total = _rolling_everywhere(x, window)
    series = pd.Series(x)
    _assert_same_bits(mean, series.rolling(window, min_periods=1).mean().to_numpy())
    _assert_same_bits(total, series.rolling(window, min_periods=1).sum().to_numpy())


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("seed", [9, 20, 52])
def test_rolling_sign_clamps_match_pandas(seed, sign):
    """Huge and tiny values of one sign: after a huge value leaves the window the running
    sum can end up with the wrong sign, which pandas clamps to 0 (these seeds do that)."""
    rng = np.random.default_rng(seed)
    x = sign * rng.random(40) * 10.0 ** rng.choice([-3, 0, 16, 17, 18], 40)
    window = int(rng.integers(2, 4))
    mean, total = _rolling_everywhere(x, window)
    series = pd.Series(x)
    _assert_same_bits(mean, series.rolling(window, min_periods=1).mean().to_numpy())
    _assert_same_bits(total, series.rolling(window, min_periods=1).sum().to_numpy())


def test_rolling_many_lanes_and_lags_match_pandas():
    rng = np.random.default_rng(7)
    n_rows, n_series, n_coins = 50, 2, 9
    values = np.stack([[_random_series(rng, n_rows) for _ in range(n_series)] for _ in range(n_coins)], axis=2)
    values = values.transpose(1, 0, 2)  # (rows, series, coins)
    lengths = rng.integers(1, n_rows + 1, n_coins)
    lanes = [(0, 3), (1, 3), (1, 7), (0, 20)]
    lane_series, lane_window = [s for s, _ in lanes], [w for _, w in lanes]
    mean, total = pandas_rolling_mean_sum(values, lengths, lane_series, lane_window, lags=(0, 1))
    for coin in range(n_coins):
        for lane, (s, w) in enumerate(lanes):
            series = pd.Series(values[: lengths[coin], s, coin])
            for lag in (0, 1):
                row = lengths[coin] - 1 - lag
                if row < 0:
                    assert np.isnan(mean[lag, lane, coin]) and np.isnan(total[lag, lane, coin])
                    continue
                wanted_mean = series.rolling(w, min_periods=1).mean().iloc[row]
                wanted_sum = series.rolling(w, min_periods=1).sum().iloc[row]
                _assert_same_bits(mean[lag, lane, coin], wanted_mean)
                _assert_same_bits(total[lag, lane, coin], wanted_sum)


# ---------------------------------------------------------------------------------------
# Harder cases against a literal pandas transcription of the original server
# ---------------------------------------------------------------------------------------
#
# The fixture has only float32 columns and windows [5, 10, 15]. Below, a one-coin-at-a-time
# pandas version of the server pipeline (spec §3.3, §3.5, §3.6, §3.8, §3.9) checks the
# vectorised engine on float64 columns, per-coin mixed dtypes, zero prices (±inf ATH
# distance), NULLs in the newest row, window 1, several chunks and the features the
# training service never lists.

ALL_ENGINEERED = [
    "rolling_ath", "ath_distance_pct", "prev_rolling_ath", "ath_breakout", "minutes_since_ath",
    "ath_age_hours", "ath_is_recent", "ath_is_old", "dev_sold_flag", "dev_sold_cumsum",
    "whale_net_volume", "whale_dominance", "buy_sell_ratio",
]
WINDOW_FAMILIES = [
    "dev_sold_spike", "buy_pressure_ma", "buy_pressure_trend", "whale_activity", "volatility_ma",
    "volatility_spike", "wash_trading_flag", "net_volume_ma", "volume_flip", "price_change",
    "price_roc", "price_acceleration", "volume_ratio", "volume_spike", "mcap_velocity",
    "ath_distance_trend", "ath_approach", "ath_breakout_count", "ath_breakout_volume_ma", "ath_age_trend",
]


def _reference_vector(rows: list[tuple], names: list[str], windows: list[int], has_data_flags: bool) -> list:
    df = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)).set_index("timestamp").sort_index()
    df = df.drop(columns="mint")
    for column in df.columns:
        df[column] = pd.to_numeric(df[column], downcast="float")

    def rolling(s, w):
        return s.rolling(w, min_periods=1)

    new = {}  # engineered columns, joined at the end
    minutes_from_start = pd.Series(np.asarray((df.index - df.index[0]).total_seconds() / 60), index=df.index)
    high, close, volume = df["price_high"], df["price_close"], df["volume_sol"]
    ath = new["rolling_ath"] = high.cummax()
    distance = new["ath_distance_pct"] = ((ath - close) / ath * 100).fillna(100)
    new["prev_rolling_ath"] = ath.shift(1)
    breakout = new["ath_breakout"] = (high > ath.shift(1)).astype(int)
    breakout_times = df.index[breakout == 1]
    minutes = minutes_from_start.copy()
    if len(breakout_times):
        minutes[:] = np.asarray((df.index - breakout_times[-1]).total_seconds() / 60)
        before = df.index < breakout_times[0]
        minutes[before] = minutes_from_start[before]
    minutes = new["minutes_since_ath"] = minutes.fillna(0)
    new["ath_age_hours"] = minutes / 60
    new["ath_is_recent"] = (minutes < 60).astype(int)
    new["ath_is_old"] = (minutes > 1440).astype(int)

    dev = df["dev_sold_amount"].fillna(0)
    new["dev_sold_flag"] = (dev > 0).astype(int)
    new["dev_sold_cumsum"] = dev.cumsum()
    ratio = df["buy_pressure_ratio"]
    whale_buy, whale_sell = df["whale_buy_volume_sol"].fillna(0), df["whale_sell_volume_sol"].fillna(0)
    new["whale_net_volume"] = whale_buy - whale_sell
    new["whale_dominance"] = ((whale_buy + whale_sell) / (volume + 0.001)).fillna(0)
    new["buy_sell_ratio"] = (df["num_buys"] / (df["num_sells"] + 1)).fillna(1)
    volatility, signers, net = df["volatility_pct"], df["unique_signer_ratio"], df["net_volume_sol"]
    mcap = df["market_cap_close"]
    for w in windows:
        new[f"dev_sold_spike_{w}"] = (dev > 2 * rolling(dev, w).mean()).astype(int)
        new[f"buy_pressure_ma_{w}"] = rolling(ratio.fillna(0), w).mean()
        new[f"buy_pressure_trend_{w}"] = ratio - new[f"buy_pressure_ma_{w}"]
        new[f"whale_activity_{w}"] = rolling(whale_buy, w).sum() + rolling(whale_sell, w).sum()
        new[f"volatility_ma_{w}"] = rolling(volatility, w).mean()
        new[f"volatility_spike_{w}"] = (volatility > 1.5 * new[f"volatility_ma_{w}"]).astype(int)
        new[f"wash_trading_flag_{w}"] = (rolling(signers, w).mean() < 0.3).astype(int)
        new[f"net_volume_ma_{w}"] = rolling(net, w).mean()
        new[f"volume_flip_{w}"] = (np.sign(net) != np.sign(net.shift(w))).astype(int)
        new[f"price_change_{w}"] = close.diff(w)
        new[f"price_roc_{w}"] = (close - close.shift(w)) / close.shift(w).replace(0, np.nan) * 100
        new[f"price_acceleration_{w}"] = close.diff(w).diff(w)
        new[f"volume_ratio_{w}"] = volume / rolling(volume, w).mean().replace(0, np.nan)
        new[f"volume_spike_{w}"] = (volume > 2 * rolling(volume, 2 * w).mean()).astype(int)
        new[f"mcap_velocity_{w}"] = mcap.diff(w)
        new[f"ath_distance_trend_{w}"] = rolling(distance, w).mean()
        new[f"ath_approach_{w}"] = (new[f"ath_distance_trend_{w}"].diff() < 0).astype(int)
        new[f"ath_breakout_count_{w}"] = rolling(breakout, w).sum()
        new[f"ath_breakout_volume_ma_{w}"] = rolling(breakout * volume, w).mean()
        new[f"ath_age_trend_{w}"] = rolling(minutes, w).mean()
    if has_data_flags:
        new["coin_age_minutes"] = minutes_from_start
        for family in WINDOW_FAMILIES:
            for w in windows:
                need = 2 * w if family == "volume_spike" else w
                new[f"{family}_{w}_has_data"] = (minutes_from_start >= need).astype(int)
    df = pd.concat([df, pd.DataFrame(new)], axis=1).fillna(0).replace([np.inf, -np.inf], 0)
    newest = df.iloc[-1]
    defaults = {"sol_price_usd": 150.0, "sol_price_ma_5": 150.0}
    return [float(newest[n]) if n in df.columns else defaults.get(n, 0.0) for n in names]


def _harder_histories(rows: list[tuple], n_coins: int, seed: int) -> list[list[tuple]]:
    """Slices of the fixture coins, renamed and modified per coin to hit the hard cases."""
    rng = np.random.default_rng(seed)
    column = {name: i for i, name in enumerate(HISTORY_COLUMNS)}
    by_mint: dict[str, list[tuple]] = {}
    for row in rows:
        by_mint.setdefault(row[0], []).append(row)
    sources = list(by_mint.values())
    coins = []
    for k in range(n_coins):
        source = sources[k % len(sources)]
        length = int(rng.integers(1, 80))
        start = int(rng.integers(0, len(source) - length + 1))
        coin = [list(r) for r in source[start : start + length]]
        for r in coin:
            r[0] = f"coin{k:04d}pump"
            for name in ("price_high", "price_close", "dev_sold_amount", "buy_pressure_ratio", "volume_sol",
                         "whale_buy_volume_sol", "net_volume_sol", "volatility_pct", "num_sells"):
                if rng.random() < 0.04:
                    r[column[name]] = None
            variant = k % 6
            if variant == 1 and rng.random() < 0.5:  # market cap >= 16384, not float32-exact
                r[column["market_cap_close"]] = Decimal("20000.01") + r[column["market_cap_close"]]
            elif variant == 2 and rng.random() < 0.2:  # a count beyond 2**24
                r[column["num_buys"]] = 2**25 + 1
            elif variant == 3 and rng.random() < 0.2:  # zero prices: ±inf distance, /0 in price_roc
                r[column["price_high"]] = Decimal(0)
                r[column["price_close"]] = Decimal(0) if rng.random() < 0.5 else r[column["price_close"]]
            elif variant == 4 and rng.random() < 0.3:  # big whale volume: float64 whale columns
                r[column["whale_buy_volume_sol"]] = Decimal("17000.124000")
                r[column["volume_sol"]] = Decimal("17001.001000")
        if k % 6 == 5:  # float32(v + 0.001) != float32(v + float32(0.001)) for this volume
            coin[-1][column["volume_sol"]] = Decimal("0.000003")
        if k % 7 == 0:  # NULLs in the newest row
            for name in ("price_close", "price_high", "buy_pressure_ratio", "volatility_pct"):
                coin[-1][column[name]] = None
        coins.append([tuple(r) for r in coin])
    return coins


@pytest.mark.parametrize("windows", [[5, 10, 15], [1, 3, 7]])
def test_matches_pandas_transcription_on_hard_cases(coin_metrics_rows, monkeypatch, windows):
    monkeypatch.setattr(build, "GROUP_MAX_COINS", 7)  # several groups, lengths interleaved
    monkeypatch.setattr(build, "GROUP_MIN_COINS", 2)
    monkeypatch.setattr(build, "GROUP_MAX_CELLS", 200)
    coins = _harder_histories(coin_metrics_rows, n_coins=36, seed=len(windows) + windows[0])
    names = (
        list(HISTORY_COLUMNS[2:])
        + ALL_ENGINEERED
        + [f"{family}_{w}" for family in WINDOW_FAMILIES for w in windows]
        + ["coin_age_minutes", f"volume_spike_{windows[0]}_has_data", f"price_roc_{windows[-1]}_has_data"]
        + ["sol_price_usd", "price_roc_99", "not_a_column"]
    )
    histories = CoinHistories.concat([CoinHistories.from_rows(c, HISTORY_COLUMNS) for c in coins])
    matrix = build_features(
        histories, feature_names=names, engineered=True, windows=windows, has_data_flags=True
    )
    wanted = np.array([_reference_vector(c, names, windows, has_data_flags=True) for c in coins])
    differing = [
        (coin, names[col], matrix[coin, col], wanted[coin, col])
        for coin, col in zip(*np.nonzero(matrix.view(np.uint64) != wanted.view(np.uint64)))
    ]
    assert not differing, f"{len(differing)} values differ, first: {differing[:10]}"
    # Some coins only, in any order (the engine's path for coins it could not take from another feature set).
    subset = np.arange(histories.n_coins)[::-3]
    partial = build_features(
        histories, feature_names=names, engineered=True, windows=windows, has_data_flags=True, coins=subset
    )
    assert np.array_equal(partial.view(np.uint64), matrix[subset].view(np.uint64))


def test_length_groups_cover_every_coin_once_within_the_bounds():
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 1001, 5000)
    groups = length_groups(lengths)
    assert np.array_equal(np.sort(np.concatenate(groups)), np.arange(len(lengths)))
    for group in groups:
        size, longest = len(group), lengths[group].max()
        assert size <= build.GROUP_MAX_COINS
        assert size * longest <= build.GROUP_MAX_CELLS or size <= build.GROUP_MIN_COINS
    ordered = np.concatenate(groups)
    assert np.all(np.diff(lengths[ordered]) >= 0)  # shortest first: little padding
    chosen = np.flatnonzero(lengths > 500)
    assert np.array_equal(np.sort(np.concatenate(length_groups(lengths, chosen))), chosen)
