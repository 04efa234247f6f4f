"""Built-in training (`python manage.py train_model`): a time-based classifier from `coin_metrics`.

Target (spec features-and-models.md §5.1, time-based): for each row, look `k` rows ahead where
`k = max(1, ceil(future_minutes / (interval_seconds / 60)))` from the row's phase (`ref_coin_phases`; a NULL/unknown
phase uses the coin's mean gap between rows, `k = round(future_minutes / gap)`), take the percent change of
`price_close` and label 1 iff it is ≥ `min_percent_change` (direction up) or ≤ −`min_percent_change` (down).

What we do differently from the original training service, on purpose (spec §7):

* bug 8: rows are never dropped because another coin has the same timestamp (the collector stamps every coin of a
  flush cycle alike);
* bug 9: the look-ahead runs PER COIN — never into another coin's rows — and rows without a future value (the coin
  ends, or the price is missing or 0) are dropped, not labelled 0;
* train/serve skew (§4, bugs 1-3): features come from the SERVING feature code (`inference.as_of`, over
  `inference.features.build_features`): each training row's vector is computed "as of" that row exactly as the listener would compute
  it when the row is the newest — the coin's newest ≤ FEATURE_HISTORY_SIZE (1000) rows up to it, after the
  model's phase filter, float32 column rules included. A served model therefore sees the same numbers it was fit
  on (a listener with another FEATURE_HISTORY_SIZE would see other cumulative/ATH values);
* bug 10: one time-ordered split — train on the past, test on the future: rows at or after a timestamp cut-off
  are the test part; training rows whose label horizon (the look-ahead row) reaches the cut-off are dropped, so no
  training label peeks into the test period. The model is fit on the whole training part;
* class imbalance is handled with weights (`scale_pos_weight` for XGBoost, `class_weight="balanced"` for the
  forest), no SMOTE;
* the engineered feature order is fixed (no Python `set` order, bug 6), and the ATH features are real (bug 2).

To bound time and memory, at most `max_rows` labelled rows (a seeded random sample) get feature vectors; the
histories they need are read once per coin and cut into as-of prefixes in bulk.

Modules: `config` (TrainingConfig, TrainingResult, errors), `labels` (label_rows), `fit` (estimator, metrics),
`run` (train).

The model is stored through `register_model` (XGBoost JSON or skops, source BUILTIN_TRAINING) with a record in the
training service's shape; `training_details.builtin_training` documents the run and
`training_details.test_predictions` holds (up to 200, evenly spread) test rows with the probability computed at
training time by the stored artifact, so serving can be checked against it.
"""

from modelregistry.training.config import (
    DEFAULT_WINDOWS,
    TrainingConfig,
    TrainingConfigError,
    TrainingDataError,
    TrainingResult,
    default_features,
)
from modelregistry.training.labels import label_rows
from modelregistry.training.run import feature_matrix, train

__all__ = [
    "DEFAULT_WINDOWS",
    "TrainingConfig",
    "TrainingConfigError",
    "TrainingDataError",
    "TrainingResult",
    "default_features",
    "feature_matrix",
    "label_rows",
    "train",
]
