"""A serve-only process (the listener: inference.ml_imports.serve_only) imports XGBoost without scikit-learn and
pandas, and scikit-learn and skops without pandas and pytest; it must predict the very same doubles as a process
with the whole libraries (this one)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import skops.io
import xgboost

from inference.loading import FORMAT_PICKLE, FORMAT_SKOPS, FORMAT_XGBOOST_JSON, load_model
from modelregistry import serving
from modelregistry.models import ModelArtifact, ModelSource
from modelregistry.services import register_model
from tests import parity
from tests.conftest import PROJECT_DIR
from tests.test_model_loading import fixture_bytes

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning"),
]

# Runs in a fresh interpreter: loads the XGBoost model, reports which libraries are imported, then the forest.
SERVE_ONLY_SCRIPT = """
import json, sys
import numpy as np
from inference import ml_imports
from inference.loading import load_model
ml_imports.serve_only()
X = np.load(sys.argv[1])
xgb = load_model(open(sys.argv[2], "rb").read(), fmt="xgboost_json")
after_xgboost = sorted(m for m in ("sklearn", "pandas", "scipy.stats", "pytest", "skops") if m in sys.modules)
rf = load_model(open(sys.argv[3], "rb").read(), fmt="skops")
after_forest = sorted(m for m in ("sklearn", "pandas", "pytest") if m in sys.modules)
print(json.dumps({
    "after_xgboost": after_xgboost, "after_forest": after_forest,
    "xgb": xgb.predict_proba_positive(X)[0].tobytes().hex(), "rf": rf.predict_proba_positive(X)[0].tobytes().hex(),
}))
"""


def test_a_serve_only_process_predicts_the_same_doubles_without_the_libraries_it_does_not_use(tmp_path):
    xgb_bytes = fixture_bytes("model_xgb.json")
    forest = load_model(fixture_bytes("model_rf.pkl"), fmt=FORMAT_PICKLE, trust_pickle=True)
    rf_bytes = skops.io.dumps(forest.estimator)
    rng = np.random.default_rng(3)
    X = rng.lognormal(0.0, 2.0, (400, forest.n_features)) * rng.choice([-1.0, 0.0, 1.0], (400, forest.n_features))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take each tree's default branch
    paths = [tmp_path / "X.npy", tmp_path / "xgb.json", tmp_path / "rf.skops"]
    np.save(paths[0], X)
    paths[1].write_bytes(xgb_bytes)
    paths[2].write_bytes(rf_bytes)

    result = subprocess.run([sys.executable, "-c", SERVE_ONLY_SCRIPT, *map(str, paths)], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout.strip().splitlines()[-1])

    assert served["after_xgboost"] == []  # XGBoost alone: no scikit-learn, scipy.stats, pandas, pytest or skops
    assert served["after_forest"] == ["sklearn"]  # a forest needs scikit-learn, still without pandas and pytest
    whole = {"xgb": load_model(xgb_bytes, fmt=FORMAT_XGBOOST_JSON), "rf": load_model(rf_bytes, fmt=FORMAT_SKOPS)}
    for name, model in whole.items():
        expected = model.predict_proba_positive(X)[0]
        assert np.isfinite(expected).all() and len(np.unique(expected)) > 10
        assert served[name] == expected.tobytes().hex(), f"{name}: the serve-only process predicts other doubles"


def test_xgboost_is_served_as_xgbclassifier_predict_proba_would_serve_it():
    """The Booster's answer is XGBClassifier.predict_proba's class-1 column, with early stopping's best iteration."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 6))
    y = (X[:, 0] + rng.normal(scale=1.5, size=600) > 0).astype(int)
    classifier = xgboost.XGBClassifier(n_estimators=60, max_depth=3, early_stopping_rounds=3, n_jobs=1)
    classifier.fit(X[:400], y[:400], eval_set=[(X[400:], y[400:])], verbose=False)
    assert 0 < classifier.best_iteration < 59  # early stopping kept fewer trees than it grew
    loaded = load_model(bytes(classifier.get_booster().save_raw("json")), fmt=FORMAT_XGBOOST_JSON)

    assert loaded.iteration_range == (0, classifier.best_iteration + 1)
    served = loaded.predict_proba_positive(X)[0]
    assert served.tobytes() == classifier.predict_proba(X)[:, 1].astype(np.float64).tobytes()
    importances = json.dumps(loaded.feature_importances().tolist())
    assert importances == json.dumps(classifier.feature_importances_.tolist())


@pytest.mark.django_db
@pytest.mark.parametrize("piece", ["several", "exact", "whole"])
def test_an_artifact_is_read_in_pieces_and_comes_back_byte_for_byte(monkeypatch, piece):
    """read_artifact reads the file in pieces (libpq keeps its input buffer at the largest message it received)."""
    model = register_model(artifact=parity.artifact("model_xgb.json"), meta=parity.meta("xgb"),
                           source=ModelSource.COMMAND_LINE, activate=True)
    stored = ModelArtifact.objects.get(model=model, is_current=True)
    size = len(bytes(stored.content))
    # several pieces, the last one short; one full piece and an empty one; one short piece
    monkeypatch.setattr(serving, "ARTIFACT_PIECE_BYTES", {"several": 7919, "exact": size, "whole": size + 1}[piece])
    content, fmt = serving.read_artifact(stored.pk)
    assert content == bytes(stored.content) and fmt == stored.format
