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

``build_features(histories, *, feature_names, engineered, windows, has_data_flags=False, coins=None)``
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
* Layout: coins are processed in groups of similar history length (``length_groups``,
  which bounds the memory of one group); each group is padded into time-major
  ``(rows, coins)`` arrays, left-aligned (row 0 = oldest loaded row), so shifts are row
  offsets and the rolling loop can drop coins whose history has ended.

Modules: ``histories`` (columns, ``CoinHistories``), ``rolling`` (pandas' rolling
arithmetic), ``frame`` (per-coin dtypes, padded series, derived series), ``recipes`` (what
each feature name computes, input names), ``build`` (grouping, ``build_features``).

Only the requested features (and what they depend on) are computed. The phase filter and
the 1000-row limit are applied by ``CoinHistories.select_rows`` (or by the history query,
``inference.history``), not by ``build_features``.
"""

from inference.features.build import build_features, length_groups
from inference.features.histories import (
    DEFAULT_WINDOWS,
    HISTORY_COLUMNS,
    HISTORY_LIMIT,
    VALUE_COLUMNS,
    CoinHistories,
)
from inference.features.recipes import required_feature_names
from inference.features.rolling import pandas_rolling_mean_sum

__all__ = [
    "HISTORY_COLUMNS",
    "VALUE_COLUMNS",
    "HISTORY_LIMIT",
    "DEFAULT_WINDOWS",
    "CoinHistories",
    "build_features",
    "length_groups",
    "required_feature_names",
    "pandas_rolling_mean_sum",
]
