"""The feature recipes: how the original server produced each model input column at the newest row (spec
§3.5-§3.9), name resolution, and the model's input column names (spec §3.4, path B)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from inference.features.frame import (
    BUY_PRESSURE,
    DEV,
    WHALE_BUY,
    WHALE_SELL,
    Frame,
    flag,
    minutes,
    round_float32,
    scalar,
)
from inference.features.histories import DEFAULT_WINDOWS, VALUE_COLUMNS


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


# Row features: name -> f(frame) -> value per coin at the newest row (spec §3.5, §3.6).


def _minutes_since_ath_now(frame: Frame) -> np.ndarray:
    return frame.at("minutes_since_ath")


def _dev_sold_cumsum(frame: Frame) -> np.ndarray:
    # pandas cumsum accumulates sequentially in the column dtype (float32 for most coins).
    dev = frame.series(DEV)
    in_float32 = np.cumsum(dev.astype(np.float32), axis=0).astype(np.float64)
    in_float64 = np.cumsum(dev, axis=0)
    running = np.where(frame.float32(DEV), in_float32, in_float64)
    return frame.newest(running)


def _whale_net_volume(frame: Frame) -> np.ndarray:
    float32 = frame.float32(WHALE_BUY) & frame.float32(WHALE_SELL)
    return round_float32(frame.at(WHALE_BUY) - frame.at(WHALE_SELL), float32)


def _whale_dominance(frame: Frame) -> np.ndarray:
    whale_float32 = frame.float32(WHALE_BUY) & frame.float32(WHALE_SELL)
    volume_float32 = frame.float32("volume_sol")
    whale = round_float32(frame.at(WHALE_BUY) + frame.at(WHALE_SELL), whale_float32)
    volume = round_float32(frame.at("volume_sol") + scalar(0.001, volume_float32), volume_float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = round_float32(whale / volume, whale_float32 & volume_float32)
    return np.where(np.isnan(dominance), 0.0, dominance)


def _buy_sell_ratio(frame: Frame) -> np.ndarray:
    sells_float32 = frame.float32("num_sells")
    denominator = round_float32(frame.at("num_sells") + 1, sells_float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = round_float32(frame.at("num_buys") / denominator, sells_float32 & frame.float32("num_buys"))
    return np.where(np.isnan(ratio), 1.0, ratio)


_ROW_FEATURES: dict[str, Callable[[Frame], np.ndarray]] = {
    "rolling_ath": lambda f: f.at("rolling_ath"),
    "ath_distance_pct": lambda f: f.at("ath_distance_pct"),
    "prev_rolling_ath": lambda f: f.at("rolling_ath", lag=1),
    "ath_breakout": lambda f: f.at("ath_breakout"),
    "minutes_since_ath": _minutes_since_ath_now,
    "ath_age_hours": lambda f: _minutes_since_ath_now(f) / 60,
    "ath_is_recent": lambda f: flag(_minutes_since_ath_now(f) < 60),
    "ath_is_old": lambda f: flag(_minutes_since_ath_now(f) > 1440),
    "dev_sold_flag": lambda f: flag(f.at(DEV) > 0),
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
    compute: Callable[[Frame, int], np.ndarray]


def _difference(frame: Frame, column: str, w: int, lag: int = 0) -> np.ndarray:
    """diff_w(column) at row newest - lag, in the column's dtype."""
    return round_float32(frame.at(column, lag) - frame.at(column, lag + w), frame.float32(column))


def _price_roc(frame: Frame, w: int) -> np.ndarray:
    float32 = frame.float32("price_close")
    base = frame.at("price_close", w)
    base = np.where(base == 0, np.nan, base)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = round_float32(_difference(frame, "price_close", w) / base, float32)
    return round_float32(change * 100, float32)


def _price_acceleration(frame: Frame, w: int) -> np.ndarray:
    change_now = _difference(frame, "price_close", w)
    change_before = _difference(frame, "price_close", w, lag=w)
    return round_float32(change_now - change_before, frame.float32("price_close"))


def _volume_flip(frame: Frame, w: int) -> np.ndarray:
    # NaN on either side (including rows before the start) compares unequal -> 1.
    now, before = frame.at("net_volume_sol"), frame.at("net_volume_sol", w)
    return flag(~(np.sign(now) == np.sign(before)))


def _volume_ratio(frame: Frame, w: int) -> np.ndarray:
    mean = frame.mean("volume_sol", w)
    with np.errstate(divide="ignore", invalid="ignore"):
        return frame.at("volume_sol") / np.where(mean == 0, np.nan, mean)


def _ath_approach(frame: Frame, w: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return flag(frame.mean("ath_distance_pct", w) - frame.mean("ath_distance_pct", w, lag=1) < 0)


_WINDOW_FEATURES: dict[str, _WindowFeature] = {
    "dev_sold_spike": _WindowFeature(
        ((DEV, 1),), lambda f, w: flag(f.at(DEV) > 2 * f.mean(DEV, w))
    ),
    "buy_pressure_ma": _WindowFeature(((BUY_PRESSURE, 1),), lambda f, w: f.mean(BUY_PRESSURE, w)),
    "buy_pressure_trend": _WindowFeature(  # the RAW ratio: NULL stays NaN -> 0 at the end
        ((BUY_PRESSURE, 1),), lambda f, w: f.at("buy_pressure_ratio") - f.mean(BUY_PRESSURE, w)
    ),
    "whale_activity": _WindowFeature(
        ((WHALE_BUY, 1), (WHALE_SELL, 1)), lambda f, w: f.sum(WHALE_BUY, w) + f.sum(WHALE_SELL, w)
    ),
    "volatility_ma": _WindowFeature(
        (("volatility_pct", 1),), lambda f, w: f.mean("volatility_pct", w)
    ),
    "volatility_spike": _WindowFeature(
        (("volatility_pct", 1),),
        lambda f, w: flag(f.at("volatility_pct") > 1.5 * f.mean("volatility_pct", w)),
    ),
    "wash_trading_flag": _WindowFeature(
        (("unique_signer_ratio", 1),), lambda f, w: flag(f.mean("unique_signer_ratio", w) < 0.3)
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
        (("volume_sol", 2),), lambda f, w: flag(f.at("volume_sol") > 2 * f.mean("volume_sol", 2 * w))
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
class Recipe:
    compute: Callable[[Frame], np.ndarray]
    rolls: tuple[tuple[str, int], ...] = ()


def _constant(value: float) -> Recipe:
    return Recipe(lambda f: np.full(f.n_coins, value))


def resolve_all(
    feature_names: Sequence[str], *, engineered: bool, windows: Sequence[int] | None, has_data_flags: bool
) -> tuple[list[Recipe], set[tuple[str, int]]]:
    """The recipe of each of a model's input columns, in order, and the rolling lanes they read together
    (``windows`` None: the default windows)."""
    windows = [int(w) for w in (DEFAULT_WINDOWS if windows is None else windows)]
    if engineered and any(w < 1 for w in windows):
        raise ValueError(f"feature windows must be >= 1 row, got {windows}")
    recipes = [
        resolve(name, engineered=engineered, windows=windows, has_data_flags=has_data_flags)
        for name in feature_names
    ]
    return recipes, {lane for recipe in recipes for lane in recipe.rolls}


def resolve(
    name: str, *, engineered: bool, windows: Sequence[int], has_data_flags: bool
) -> Recipe:
    """How the original frame produced the column ``name`` (or §3.9 if it had none)."""
    if name == "mint":
        raise ValueError("'mint' is not a numeric feature")
    if name in VALUE_COLUMNS:
        return Recipe(lambda f: f.at(name))
    if engineered:
        if name in _ROW_FEATURES:
            return Recipe(_ROW_FEATURES[name])
        split = _split_window_name(name)
        if split is not None and split[1] in windows:
            family, w = split
            feature = _WINDOW_FEATURES[family]
            return Recipe(
                lambda f: feature.compute(f, w), tuple((s, w * k) for s, k in feature.rolls)
            )
        if has_data_flags:
            # Path A only (spec §3.7): minutes are compared with a row count, as the original did.
            if name == "coin_age_minutes":
                return Recipe(_coin_age_minutes)
            split = _split_window_name(name.removesuffix("_has_data")) if name.endswith("_has_data") else None
            if split is not None and split[1] in windows:
                family, w = split
                threshold = 2 * w if family == "volume_spike" else w
                return Recipe(lambda f: flag(_coin_age_minutes(f) >= threshold))
    if name == "whale_dominance":  # §3.9 computes it even without engineering
        return Recipe(_whale_dominance)
    return _constant(_MISSING_FEATURE_DEFAULTS.get(name, 0.0))


def _coin_age_minutes(frame: Frame) -> np.ndarray:
    """Minutes from the first loaded row to the newest row."""
    timestamps = frame.timestamps_ns()
    return minutes(frame.newest(timestamps) - timestamps[0])
