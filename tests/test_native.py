"""The compiled loops (inference/csrc/*.c) give, bit for bit, what numpy and scikit-learn give:

* pandas' compensated rolling sums, through the public rolling functions: NULLs, ±inf, -0.0, runs of equal values,
  magnitudes from 1e-18 to 1e12 in one window (where the compensation matters), windows wider than a coin's history,
  coins of one row, several lags and every row (the numpy loop is itself checked against pandas by the feature
  parity tests);
* a forest's probabilities, through inference.loading: forests fitted with missing values (each split sends them
  its own way), ExtraTrees, trees that are a single leaf, rows with NaN and ±inf, against scikit-learn's own
  predict_proba (tests/test_model_loading.py checks the loaded path on the parity fixtures and rows at the
  thresholds as well).
"""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from inference import native
from inference.features import pandas_rolling_mean_sum
from inference.features.rolling import pandas_rolling_every_row
from inference.loading import FORMAT_SKOPS, forest_probabilities, load_model


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The library built afresh from its sources (with the flags `make` uses), independent of the one beside them."""
    library = tmp_path_factory.mktemp("native") / "native.so"
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
    monkeypatch.setattr(native, "window_sums", compiled.window_sums)
    in_c = run()
    assert len(in_c) == len(in_numpy)
    for got, expected in zip(in_c, in_numpy):
        assert same_bits(got, expected)
    assert np.isfinite(in_c[1]).any()  # sums were computed, not only NaN


def forests_with_missing_values():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 6)).astype(np.float32).astype(np.float64)
    y = ((X[:, 0] + np.where(np.isnan(X[:, 1]), 1.0, X[:, 1])) > 0.3).astype(int)
    X[rng.random(X.shape) < 0.15] = np.nan  # fitted with missing values: splits learn where NaN goes
    rows = rng.normal(size=(300, 6)) * 3
    rows[rng.random(rows.shape) < 0.2] = np.nan
    rows[rng.random(rows.shape) < 0.03] = np.inf
    rows[rng.random(rows.shape) < 0.03] = -np.inf
    forests = (
        RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y),
        ExtraTreesClassifier(n_estimators=12, random_state=1).fit(np.nan_to_num(X), y),
        RandomForestClassifier(n_estimators=5, min_samples_split=10_000, random_state=2).fit(X, y),  # single leaves
    )
    return forests, rows


def test_compiled_forest_walk_equals_scikit_learn_bit_for_bit(compiled, monkeypatch):
    forests, rows = forests_with_missing_values()
    monkeypatch.setattr(native, "forest_leaf_sums", compiled.forest_leaf_sums)
    for forest in forests:
        model = load_model(skops.io.dumps(forest), fmt=FORMAT_SKOPS)
        assert model.forest_layout is not None, type(forest).__name__  # the pinned scikit-learn's layout is known
        got = forest_probabilities(model.trees, rows, layout=model.forest_layout)
        assert same_bits(got, forest_probabilities(model.trees, rows)), type(forest).__name__  # the fallback walk
        assert same_bits(model.predict_proba_positive(rows)[0], got)
        finite = ~np.isinf(rows).any(axis=1)  # scikit-learn's predict_proba refuses ±inf
        forest.set_params(n_jobs=1)
        assert same_bits(got[finite], forest.predict_proba(rows[finite])[:, 1]), type(forest).__name__
    assert len(set(got)) == 1  # the single-leaf forest: one value for every row


def test_a_copied_model_walks_the_same_trees_and_a_pickled_layout_is_refused(compiled, monkeypatch):
    forests, rows = forests_with_missing_values()
    monkeypatch.setattr(native, "forest_leaf_sums", compiled.forest_leaf_sums)
    model = load_model(skops.io.dumps(forests[0]), fmt=FORMAT_SKOPS)
    copied = copy.deepcopy(model)
    del model
    assert same_bits(copied.predict_proba_positive(rows)[0], forest_probabilities(copied.trees, rows))
    with pytest.raises(TypeError, match="addresses"):
        pickle.dumps(copied.forest_layout)


def test_a_layout_of_unknown_shape_is_refused():
    """Trees whose arrays are not views of one node record (another scikit-learn's layout) get no compiled walk."""
    forests, _rows = forests_with_missing_values()

    class SeparateArrays:
        def __init__(self, tree):
            for name in ("children_left", "children_right", "feature", "threshold", "missing_go_to_left", "value"):
                setattr(self, name, np.array(getattr(tree, name)))  # copies: no common record
            self.node_count = tree.node_count

    trees = [estimator.tree_ for estimator in forests[0].estimators_]
    assert native.forest_layout(trees) is not None
    assert native.forest_layout([SeparateArrays(tree) for tree in trees]) is None


def test_make_builds_the_library_the_inference_core_loads():
    """`make test` builds `_native.so` from the current sources, so the listener runs the compiled loops."""
    if native.window_sums is None and os.environ.get("CI") != "true":
        pytest.skip("run through `make test` (it builds inference/_native.so)")
    assert native.window_sums is not None, f"{native.LIBRARY} is missing or older than {native.SOURCES}"
    assert native.forest_leaf_sums is not None
