"""inference.loading against the parity fixture (spec §2.4, §3.10). No database, no Django.

Run: .venv/bin/python -m pytest -p no:django -p no:cacheprovider tests/test_model_loading.py -q
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
import xgboost
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from inference.loading import (
    FORMAT_PICKLE,
    FORMAT_SKOPS,
    FORMAT_XGBOOST_JSON,
    FORMAT_XGBOOST_UBJ,
    MODEL_TYPE_RANDOM_FOREST,
    MODEL_TYPE_XGBOOST,
    PICKLE_NOT_TRUSTED_MESSAGE,
    ModelLoadError,
    detect_format,
    export_portable,
    load_model,
    validate_against_metadata,
)
from inference.scoring import ReadyModel

pytestmark = [
    # Expected when reading the fixture's pickles (scikit-learn 1.3.2, xgboost 2.0.2); both are handled.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning"),
    pytest.mark.filterwarnings("ignore:.*loading a serialized model:UserWarning"),
]

# The tests' own copy first; the shared original while the copy is not (completely) there.
FIXTURE_DIRS = (
    Path(__file__).resolve().parent / "fixtures" / "parity_public",
    Path("/work/shared/fixtures/parity_public"),
)


def fixture_bytes(name: str) -> bytes:
    for directory in FIXTURE_DIRS:
        if (directory / name).is_file():
            return (directory / name).read_bytes()
    raise FileNotFoundError(f"{name} is in none of {[str(d) for d in FIXTURE_DIRS]}")


@dataclass
class Expected:
    features: list[str]
    X: np.ndarray
    probabilities: np.ndarray
    predictions: np.ndarray


@pytest.fixture(scope="module")
def expected() -> dict[str, Expected]:
    """Per model (`xgb`, `rf`): the original server's input vectors, probabilities and predictions."""
    rows = [row for row in csv.DictReader(io.StringIO(fixture_bytes("expected.csv").decode())) if row["served"] == "1"]
    result = {}
    for model in ("xgb", "rf"):
        features = json.loads(fixture_bytes(f"model_{model}.meta.json"))["features"]
        model_rows = [row for row in rows if row["model"] == model]
        result[model] = Expected(
            features=features,
            # Python's float() is correctly rounded, as the fixture README requires.
            X=np.array([[float(row[name]) for name in features] for row in model_rows]),
            probabilities=np.array([float(row["probability"]) for row in model_rows]),
            predictions=np.array([int(row["prediction"]) for row in model_rows]),
        )
        assert len(model_rows) > 0
    return result


@pytest.fixture(scope="module")
def xgb_json_model():
    return load_model(fixture_bytes("model_xgb.json"), fmt=FORMAT_XGBOOST_JSON)


@pytest.fixture(scope="module")
def legacy_rf_model():
    return load_model(fixture_bytes("model_rf.pkl"), fmt=FORMAT_PICKLE, trust_pickle=True)


def xgb_bytes(booster_format: str) -> bytes:
    model = load_model(fixture_bytes("model_xgb.json"), fmt=FORMAT_XGBOOST_JSON)
    return bytes(model.estimator.save_raw(booster_format))


def small_training_set(n_classes: int = 2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    return X, (X[:, 0] > 0).astype(int) if n_classes == 2 else rng.integers(0, n_classes, 200)


def joblib_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


# --- detect_format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("model_xgb.json", FORMAT_XGBOOST_JSON), ("model_xgb.pkl", FORMAT_PICKLE), ("model_rf.pkl", FORMAT_PICKLE)],
)
def test_detect_format_of_fixture_files(name, fmt):
    assert detect_format(fixture_bytes(name), name) == fmt
    assert detect_format(fixture_bytes(name), None) == fmt  # the content alone decides


def test_detect_format_of_ubj_and_skops(legacy_rf_model):
    assert detect_format(xgb_bytes("ubj"), "model.json") == FORMAT_XGBOOST_UBJ  # content beats the name
    skops_bytes, _ = export_portable(legacy_rf_model)
    assert detect_format(skops_bytes, None) == FORMAT_SKOPS


def test_detect_format_falls_back_to_the_extension():
    assert detect_format(b'\n  {"learner": {}}', None) == FORMAT_XGBOOST_JSON
    buffer = io.BytesIO()
    joblib.dump({"a": 1}, buffer, compress=3)  # zlib-compressed: does not start with the pickle opcode
    assert detect_format(buffer.getvalue(), "model.joblib") == FORMAT_PICKLE
    with pytest.raises(ModelLoadError, match="unrecognised model file"):
        detect_format(buffer.getvalue(), None)


# --- prediction parity (§3.10) -------------------------------------------------------------


def test_xgboost_json_reproduces_the_original_server(xgb_json_model, expected):
    assert xgb_json_model.model_type == MODEL_TYPE_XGBOOST
    assert xgb_json_model.n_features == 87
    assert xgb_json_model.feature_names is None
    probabilities, predictions = xgb_json_model.predict_proba_positive(expected["xgb"].X)
    assert probabilities.dtype == np.float64
    assert np.array_equal(probabilities, expected["xgb"].probabilities)  # bit for bit
    assert np.array_equal(predictions, expected["xgb"].predictions)


def test_xgboost_pickle_with_trust_reproduces_the_original_server(expected):
    model = load_model(fixture_bytes("model_xgb.pkl"), fmt=FORMAT_PICKLE, trust_pickle=True)
    assert model.model_type == MODEL_TYPE_XGBOOST
    probabilities, predictions = model.predict_proba_positive(expected["xgb"].X)
    assert np.array_equal(probabilities, expected["xgb"].probabilities)
    assert np.array_equal(predictions, expected["xgb"].predictions)


def test_legacy_rf_pickle_is_converted_and_reproduces_the_original_server(legacy_rf_model, expected):
    assert legacy_rf_model.model_type == MODEL_TYPE_RANDOM_FOREST
    assert legacy_rf_model.legacy_tree_values_converted
    assert legacy_rf_model.n_features == 87
    assert "RandomForestClassifier" in repr(legacy_rf_model)  # parameters added since 1.3 are filled in
    for tree in legacy_rf_model.estimator.estimators_:
        np.testing.assert_allclose(tree.tree_.value.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    probabilities, predictions = legacy_rf_model.predict_proba_positive(expected["rf"].X)
    np.testing.assert_allclose(probabilities, expected["rf"].probabilities, rtol=0, atol=1e-12)
    assert np.array_equal(predictions, expected["rf"].predictions)
    # The converted forest is a normal forest again: sklearn's own predict_proba agrees.
    np.testing.assert_allclose(
        legacy_rf_model.estimator.predict_proba(expected["rf"].X)[:, 1], probabilities, rtol=0, atol=1e-12
    )


def sklearn_forest_reference(forest, X: np.ndarray) -> np.ndarray:
    """scikit-learn's own answer: each tree's DecisionTreeClassifier.predict_proba (input checks and float32
    conversion included), added in tree order, divided once."""
    total = np.zeros(len(X))
    for tree in forest.estimators_:
        total += tree.predict_proba(X)[:, 1]
    return total / len(forest.estimators_)


def near_thresholds(forest, rows: int, seed: int) -> np.ndarray:
    """Rows whose values are the trees' split thresholds of their feature and the doubles next to them (the
    float32 comparison decides those)."""
    rng = np.random.default_rng(seed)
    splits = [(e.tree_.feature, e.tree_.threshold) for e in forest.estimators_]
    X = np.zeros((rows, forest.n_features_in_))
    for j in range(forest.n_features_in_):
        values = np.concatenate([threshold[feature == j] for feature, threshold in splits])
        if len(values):
            X[:, j] = rng.choice(values, size=rows)
    return np.vstack([X, np.nextafter(X, np.inf), np.nextafter(X, -np.inf)])


def forest_cases(legacy_rf_model, expected):
    """(label, loaded forest, rows): the fixture forest (converted from scikit-learn 1.3), the same forest through
    skops, and forests fitted here; on the fixture's input vectors (or the training rows) and on rows at the trees'
    thresholds."""
    X_fixture = np.vstack([expected["rf"].X, near_thresholds(legacy_rf_model.estimator, 40, seed=0)])
    yield "fixture pickle", legacy_rf_model, X_fixture
    data, fmt = export_portable(legacy_rf_model)
    yield "fixture skops", load_model(data, fmt=fmt), X_fixture
    X, y = small_training_set()
    for seed, forest in enumerate((
        RandomForestClassifier(n_estimators=7, random_state=0).fit(X, y),
        RandomForestClassifier(n_estimators=25, max_depth=4, random_state=1, n_jobs=2).fit(X, y),
        ExtraTreesClassifier(n_estimators=9, random_state=2).fit(X, y),
    )):
        rows = np.vstack([X, near_thresholds(forest, 40, seed)])
        yield type(forest).__name__, load_model(skops.io.dumps(forest), fmt=FORMAT_SKOPS), rows


def test_the_one_forest_path_equals_scikit_learn_bit_for_bit(legacy_rf_model, expected):
    """LoadedModel and the listener's ReadyModel score forests on the fitted trees directly; scikit-learn's forest
    predict_proba (n_jobs=1: trees added in order) and its per-tree predict_proba give the very same doubles."""
    for label, model, X in forest_cases(legacy_rf_model, expected):
        probabilities, predictions = model.predict_proba_positive(X)
        forest = model.estimator
        forest.set_params(n_jobs=1)
        assert np.array_equal(probabilities, forest.predict_proba(X)[:, 1]), label
        assert np.array_equal(probabilities, sklearn_forest_reference(forest, X)), label
        assert np.array_equal(predictions, (forest.predict_proba(X)[:, 1] > 0.5).astype(np.int64)), label
        ready = ReadyModel.prepare(model, tuple(f"f{i}" for i in range(model.n_features)))
        assert np.array_equal(ready.predict_proba_positive(X)[0], probabilities), label
        one_row = model.predict_proba_positive(X[:1])[0]
        assert np.array_equal(one_row, probabilities[:1]), label  # a row's value does not depend on the batch


def test_predict_refuses_a_wrong_number_of_columns(xgb_json_model):
    with pytest.raises(ValueError, match="87 columns"):
        xgb_json_model.predict_proba_positive(np.zeros((1, 86)))


# --- pickle trust ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model_rf.pkl", "model_xgb.pkl"])
def test_pickle_is_refused_without_trust(name):
    with pytest.raises(ModelLoadError) as refused:
        load_model(fixture_bytes(name), fmt=FORMAT_PICKLE)
    assert str(refused.value) == PICKLE_NOT_TRUSTED_MESSAGE


# --- portable round trips ---------------------------------------------------------------------


def test_converted_rf_round_trips_through_skops(legacy_rf_model, expected):
    data, fmt = export_portable(legacy_rf_model)
    assert fmt == FORMAT_SKOPS
    reloaded = load_model(data, fmt=detect_format(data))
    assert reloaded.model_type == MODEL_TYPE_RANDOM_FOREST
    assert not reloaded.legacy_tree_values_converted  # stored as fractions now
    probabilities, predictions = reloaded.predict_proba_positive(expected["rf"].X)
    assert np.array_equal(probabilities, legacy_rf_model.predict_proba_positive(expected["rf"].X)[0])
    np.testing.assert_allclose(probabilities, expected["rf"].probabilities, rtol=0, atol=1e-12)
    assert np.array_equal(predictions, expected["rf"].predictions)


def test_xgboost_round_trips_through_ubj(expected):
    model = load_model(xgb_bytes("ubj"), fmt=FORMAT_XGBOOST_UBJ)
    probabilities, predictions = model.predict_proba_positive(expected["xgb"].X)
    assert np.array_equal(probabilities, expected["xgb"].probabilities)
    assert np.array_equal(predictions, expected["xgb"].predictions)


def test_trusted_xgboost_pickle_exports_to_json(expected):
    model = load_model(fixture_bytes("model_xgb.pkl"), fmt=FORMAT_PICKLE, trust_pickle=True)
    data, fmt = export_portable(model)
    assert fmt == FORMAT_XGBOOST_JSON
    reloaded = load_model(data, fmt=detect_format(data))
    assert np.array_equal(reloaded.predict_proba_positive(expected["xgb"].X)[0], expected["xgb"].probabilities)


# --- corrupt and tampered files -------------------------------------------------------------------


def corrupt_variants(data: bytes) -> list[bytes]:
    # (A flipped byte inside a number cannot be detected: none of the formats has a checksum
    # over the values, except skops' zip CRC.)
    return [b"", data[: len(data) // 2], data[:10], bytes([data[0] ^ 0xFF]) + data[1:], b"\x00garbage\xff" * 10]


@pytest.mark.parametrize("fmt", [FORMAT_XGBOOST_JSON, FORMAT_XGBOOST_UBJ, FORMAT_SKOPS, FORMAT_PICKLE])
def test_corrupt_bytes_are_refused(fmt, legacy_rf_model):
    good = {
        FORMAT_XGBOOST_JSON: lambda: fixture_bytes("model_xgb.json"),
        FORMAT_XGBOOST_UBJ: lambda: xgb_bytes("ubj"),
        FORMAT_SKOPS: lambda: export_portable(legacy_rf_model)[0],
        FORMAT_PICKLE: lambda: fixture_bytes("model_rf.pkl"),
    }[fmt]()
    for data in corrupt_variants(good):
        with pytest.raises(ModelLoadError):
            load_model(data, fmt=fmt, trust_pickle=True)


def test_skops_checksum_catches_a_flipped_byte(legacy_rf_model):
    data = bytearray(export_portable(legacy_rf_model)[0])
    data[len(data) // 3] ^= 0xFF
    with pytest.raises(ModelLoadError):
        load_model(bytes(data), fmt=FORMAT_SKOPS)


def test_truncated_ubj_never_reaches_xgboost():
    # XGBoost's own UBJ reader segfaults on some truncations, killing the process.
    data = xgb_bytes("ubj")
    for cut in range(1, len(data), max(1, len(data) // 60)):
        with pytest.raises(ModelLoadError):
            load_model(data[:cut], fmt=FORMAT_XGBOOST_UBJ)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("left_children", 10**6, "child index out of range"),
        ("split_indices", 500, "split on a feature outside"),
        ("parents", 7, "parent links"),
    ],
)
def test_tampered_xgboost_tree_is_refused(field, value, message):
    # Structurally valid files whose node indices would make XGBoost read out of bounds.
    document = json.loads(fixture_bytes("model_xgb.json"))
    tree = document["learner"]["gradient_booster"]["model"]["trees"][3]
    tree[field][1 if field == "parents" else 0] = value
    with pytest.raises(ModelLoadError, match=message):
        load_model(json.dumps(document).encode(), fmt=FORMAT_XGBOOST_JSON)


def test_tampered_forest_tree_is_refused():
    X, y = small_training_set()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    tree = forest.estimators_[1].tree_
    state = tree.__getstate__()
    state["nodes"] = state["nodes"].copy()
    state["nodes"]["left_child"][0] = 10**6
    tree.__setstate__(state)
    for data, fmt in ((skops.io.dumps(forest), FORMAT_SKOPS), (joblib_bytes(forest), FORMAT_PICKLE)):
        with pytest.raises(ModelLoadError, match="forest tree 1: child index out of range"):
            load_model(data, fmt=fmt, trust_pickle=True)


# --- model classes -------------------------------------------------------------------------------


def test_skops_refuses_types_outside_the_trusted_list():
    X, y = small_training_set()
    data = skops.io.dumps(LogisticRegression().fit(X, y))  # skops itself would trust this by default
    with pytest.raises(ModelLoadError, match=r"untrusted types: sklearn\.linear_model\._logistic\.LogisticRegression"):
        load_model(data, fmt=FORMAT_SKOPS)


def test_pickle_of_another_class_is_refused_even_with_trust():
    X, y = small_training_set()
    with pytest.raises(ModelLoadError, match="LogisticRegression cannot be served"):
        load_model(joblib_bytes(LogisticRegression().fit(X, y)), fmt=FORMAT_PICKLE, trust_pickle=True)


def test_non_binary_models_are_refused():
    X, y3 = small_training_set(n_classes=3)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y3)
    with pytest.raises(ModelLoadError, match=r"classes \[0, 1\]"):
        load_model(skops.io.dumps(forest), fmt=FORMAT_SKOPS)
    booster = xgboost.XGBClassifier(n_estimators=2).fit(X, y3).get_booster()
    with pytest.raises(ModelLoadError, match="multi:softprob"):
        load_model(bytes(booster.save_raw("json")), fmt=FORMAT_XGBOOST_JSON)


# --- metadata --------------------------------------------------------------------------------------


def test_fixture_models_match_their_records(xgb_json_model, legacy_rf_model, expected):
    validate_against_metadata(xgb_json_model, features=expected["xgb"].features, model_type=MODEL_TYPE_XGBOOST)
    validate_against_metadata(legacy_rf_model, features=expected["rf"].features, model_type=MODEL_TYPE_RANDOM_FOREST)
    # §3.4: a longer list is served by its first n_features names.
    validate_against_metadata(xgb_json_model, features=expected["xgb"].features + ["extra"])


def test_too_few_listed_features_are_refused(xgb_json_model, expected):
    with pytest.raises(ModelLoadError, match=r"expects 87 features but its record lists only 50"):
        validate_against_metadata(xgb_json_model, features=expected["xgb"].features[:50])


def test_wrong_model_type_is_refused(legacy_rf_model, expected):
    with pytest.raises(ModelLoadError, match="model_type 'xgboost'"):
        validate_against_metadata(legacy_rf_model, features=expected["rf"].features, model_type=MODEL_TYPE_XGBOOST)


def test_feature_names_must_equal_the_record():
    X, y = small_training_set()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    forest.feature_names_in_ = np.array(["a", "b", "c", "d", "e"], dtype=object)
    model = load_model(skops.io.dumps(forest), fmt=FORMAT_SKOPS)
    assert model.feature_names == ["a", "b", "c", "d", "e"]
    validate_against_metadata(model, features=["a", "b", "c", "d", "e"])
    with pytest.raises(ModelLoadError, match="5 feature names differ from the record's 5 features"):
        validate_against_metadata(model, features=["a", "b", "x", "d", "e"])
