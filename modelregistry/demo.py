"""The demo that `make run` serves until you import, upload or train a model of your own.

Two models take turns, both XGBoost models of the built-in training with one target, price_close +15 % within
2 minutes (the moves the simulated market's pumps make, see predictions/simulation.py):

* the bundled model (`demo_model/`: `model.json` and `meta.json`), trained by `manage.py build_demo_model` on a few
  hours of the simulated market with a fixed seed. `ensure_demo_model` registers and activates it on a new
  installation, so the demo predicts well from its first minute;
* the model trained on this installation's own market: once enough rows have arrived, `train_demo_model` trains
  one with `demo_training_config()` and serves it instead of the bundled one if it ranks well on its test window
  (ROC AUC at least DEMO_MIN_ROC_AUC). `training_details["demo"]` of the model says which model it replaced, when
  and why, for the dashboard's demo banner.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from modelregistry.models import ModelType, TargetDirection
from modelregistry.training import TrainingConfig

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"
DEMO_FUTURE_MINUTES = 2
DEMO_MIN_PERCENT_CHANGE = 15.0
DEMO_TARGET = f"+{DEMO_MIN_PERCENT_CHANGE:g}% in {DEMO_FUTURE_MINUTES} min"
BUNDLED_NAME = f"demo: {DEMO_TARGET} (XGBoost, bundled)"
TRAINED_NAME = f"demo: {DEMO_TARGET} (XGBoost, trained on this market)"
# Alerts of the demo models: the probability at which the bundled model's alerts were right most of the time on
# its test window while still alerting on most pumps.
DEMO_ALERT_THRESHOLD = Decimal("0.8")
DEMO_MIN_ROC_AUC = 0.75
# The bundled model of earlier versions (the parity fixture's model), recognised so that the demo can replace it.
EARLIER_BUNDLED_NAMES = ("demo: +10% in 5 min (XGBoost)",)
# What training_details["demo"]["role"] says.
ROLE_BUNDLED = "bundled"
ROLE_TRAINED = "trained_here"


def demo_training_config(**overrides) -> TrainingConfig:
    """The training run of both demo models: a small, quick XGBoost model on the serving features."""
    options = {
        "model_type": ModelType.XGBOOST,
        "future_minutes": DEMO_FUTURE_MINUTES,
        "min_percent_change": DEMO_MIN_PERCENT_CHANGE,
        "direction": TargetDirection.UP,
        "n_estimators": 100,
        "max_depth": 4,
        "max_rows": 5000,
        "test_fraction": 0.25,
        "seed": 1,
        "name": TRAINED_NAME,
        **overrides,
    }
    return TrainingConfig(**options)


def bundled_model_files() -> tuple[bytes, dict]:
    """The bundled model's file and its record (meta.json: the training-service-shaped record, with the build's
    own account under `training_details`)."""
    meta = json.loads((DEMO_MODEL_DIR / "meta.json").read_text())
    return (DEMO_MODEL_DIR / "model.json").read_bytes(), meta
