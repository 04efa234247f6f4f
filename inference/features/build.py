"""``build_features``: the original server's model input for many coins at once, group by group."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from inference.features.frame import ColumnTypes, Frame
from inference.features.histories import DEFAULT_WINDOWS, CoinHistories
from inference.features.recipes import resolve_all

# Coins are processed in groups of similar history length: large enough that each per-time-step numpy operation works
# on long vectors, small enough to bound the memory of the padded arrays (rows x coins cells per series; the
# rolling stack holds about a dozen series, ~0.35 kB per cell in all: ~22 MB at the bound, the listener's largest
# transient; 125,000 cells made it 42 MB for no measurable speed).
GROUP_MAX_CELLS = 64_000
GROUP_MIN_COINS = 64
GROUP_MAX_COINS = 1024


def length_groups(
    lengths: np.ndarray, coins: np.ndarray | None = None, *, max_cells: int = GROUP_MAX_CELLS
) -> list[np.ndarray]:
    """``coins`` (default: all) in groups of similar history length, shortest first.

    A group holds at most GROUP_MAX_COINS coins and, padded to its longest history, at most ``max_cells`` cells
    (but at least GROUP_MIN_COINS coins). Features are per coin, so the grouping changes no value.
    """
    coins = np.arange(len(lengths)) if coins is None else np.asarray(coins, dtype=np.int64)
    coins = coins[np.argsort(lengths[coins], kind="stable")]
    groups, start = [], 0
    while start < len(coins):
        end = start + 1
        while end < len(coins) and end - start < GROUP_MAX_COINS and (
            end - start < GROUP_MIN_COINS or (end - start + 1) * lengths[coins[end]] <= max_cells
        ):
            end += 1
        groups.append(coins[start:end])
        start = end
    return groups


def build_features(
    histories: CoinHistories,
    *,
    feature_names: Sequence[str],
    engineered: bool,
    windows: Sequence[int] | None = DEFAULT_WINDOWS,
    has_data_flags: bool = False,
    coins: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """The original server's model input for every coin: ``(n_coins, len(feature_names))``.

    ``histories``: each coin's rows as the history query returned them (already phase
    filtered and limited, see ``CoinHistories.select_rows``). ``feature_names``: the model's
    input columns in order (``required_feature_names``). ``engineered``:
    ``params.use_engineered_features``; ``windows``: ``params.feature_engineering_windows``
    (None -> [5, 10, 15]). ``has_data_flags``: only for models carrying
    ``feature_names_in_`` with ``*_has_data`` names (spec §3.4 path A). ``coins``: only these
    coins of ``histories`` (indices; default all), row k of the result is for ``coins[k]``.

    Row i is coin i's vector at its newest row; NaN and ±inf are 0 (spec §3.8/§3.9).
    """
    recipes, lanes = resolve_all(feature_names, engineered=engineered, windows=windows, has_data_flags=has_data_flags)

    wanted = np.arange(histories.n_coins) if coins is None else np.asarray(coins, dtype=np.int64)
    result = np.zeros((len(wanted), len(recipes)))
    if len(wanted) == 0 or not recipes:
        return result
    types = ColumnTypes(histories, None if coins is None else wanted)
    for group in length_groups(histories.lengths[wanted]):
        frame = Frame(histories, types, wanted[group])
        frame.run_rolling(lanes)
        for column, recipe in enumerate(recipes):
            result[group, column] = recipe.compute(frame)
    # Cleanup (spec §3.8): NaN -> 0, then ±inf -> 0.
    result[~np.isfinite(result)] = 0.0
    return result
