"""One training run: label, sample, split by time, build serving features as of each row, fit, test, register."""

from __future__ import annotations

import numpy as np
from django.utils import timezone as django_timezone

from inference import loading
from inference.as_of import RowNotFound, features_as_of
from inference.history import from_micros
from modelregistry.models import ModelSource, ModelType
from modelregistry.services import register_model
from modelregistry.training.config import (
    MIN_ROWS_PER_CLASS,
    TARGET_VARIABLE,
    TEST_SAMPLE_SIZE,
    TrainingConfig,
    TrainingDataError,
    TrainingResult,
    alert_figures,
    iso,
    iso_us,
)
from modelregistry.training.fit import classification_metrics, fit_estimator
from modelregistry.training.labels import label_rows


def feature_matrix(config: TrainingConfig, mints: list[str], coin: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """The serving feature vector of each (coin, timestamp) row, as of that row (it is the newest row seen)."""
    try:
        return features_as_of(
            mints=mints, coin=coin, timestamps_us=ts_us, feature_names=config.features,
            engineered=config.engineered, windows=config.windows, phases=config.phases,
            history_limit=config.history_limit,
        )
    except RowNotFound:
        raise TrainingDataError("coin_metrics changed while training (a labelled row disappeared); run again") from None


def train(config: TrainingConfig) -> TrainingResult:
    """Label, sample, split, build serving features, fit, test and register; raises TrainingDataError when the
    data cannot train a model (nothing is stored then)."""
    config = config.validated()
    labelled = label_rows(config)
    window = f"between {iso_us(labelled.first_us, config.since)} and {iso_us(labelled.last_us, config.until)}"
    if labelled.loaded_rows == 0:
        phases = f" in phases {config.phases}" if config.phases else ""
        when = f" {window}" if config.since or config.until else " yet"
        raise TrainingDataError(f"coin_metrics has no rows{phases}{when}")
    n_labelled = len(labelled.coin)
    if n_labelled < config.min_rows:
        raise TrainingDataError(
            f"only {n_labelled} labelled rows {window} (of {labelled.loaded_rows} rows; the others have no "
            f"price {config.future_minutes} min later in their coin); need at least {config.min_rows}"
        )

    rng = np.random.default_rng(config.seed)
    chosen = np.arange(n_labelled)
    if n_labelled > config.max_rows:
        chosen = np.sort(rng.choice(n_labelled, size=config.max_rows, replace=False))
    chosen = chosen[np.argsort(labelled.ts_us[chosen], kind="stable")]
    ts = labelled.ts_us[chosen]
    cut_at = int(ts[min(len(ts) - 1, int(len(ts) * (1 - config.test_fraction)))])
    test = ts >= cut_at
    train_mask = (ts < cut_at) & (labelled.future_ts_us[chosen] < cut_at)
    dropped_for_horizon = int(((ts < cut_at) & ~train_mask).sum())
    y_all = labelled.label[chosen]
    counts = {
        "loaded_rows": labelled.loaded_rows,
        "labelled_rows": n_labelled,
        "labelled_positive": int(labelled.label.sum()),
        "sampled_rows": len(chosen),
        "train_rows": int(train_mask.sum()),
        "train_positive": int(y_all[train_mask].sum()),
        "test_rows": int(test.sum()),
        "test_positive": int(y_all[test].sum()),
        "dropped_for_horizon": dropped_for_horizon,
        "coins": len(labelled.mints),
    }
    min_train = max(10, config.min_rows // 2)
    if counts["train_rows"] < min_train or counts["test_rows"] < 1:
        raise TrainingDataError(
            f"the time split at {iso(from_micros(cut_at))} leaves only {counts['train_rows']} training rows whose "
            f"{config.future_minutes}-min horizon ends before the test part ({dropped_for_horizon} dropped) and "
            f"{counts['test_rows']} test rows {window}; need at least {min_train} training rows: the data must span "
            "much longer than --future-minutes"
        )
    train_negative = counts["train_rows"] - counts["train_positive"]
    if min(counts["train_positive"], train_negative) < MIN_ROWS_PER_CLASS:
        move = f"{'+' if config.direction == 'up' else '-'}{config.min_percent_change:g} %"
        raise TrainingDataError(
            f"{counts['train_positive']} of {counts['train_rows']} training rows {window} are labelled 1 (a move "
            f"of {move} within {config.future_minutes} min) and {train_negative} are labelled 0; at least "
            f"{MIN_ROWS_PER_CLASS} of each class are needed: wait for more data or change --min-percent-change / "
            "--future-minutes"
        )

    selected = np.flatnonzero(train_mask | test)
    X = feature_matrix(config, labelled.mints, labelled.coin[chosen][selected], ts[selected])
    in_train = train_mask[selected]
    X_train, y_train = X[in_train], y_all[selected][in_train]
    X_test, y_test = X[~in_train], y_all[selected][~in_train]

    artifact, filename, weighting, importance = fit_estimator(config, X_train, y_train)
    # Test probabilities from the stored artifact, through the serving loader: what the listener will compute.
    loaded = loading.load_model(artifact, fmt=loading.detect_format(artifact, filename))
    probabilities, predictions = loaded.predict_proba_positive(X_test)
    metrics = classification_metrics(y_test, probabilities, predictions)
    test_alerts = alert_figures(y_test, probabilities, config.alert_threshold)

    test_index = selected[~in_train]
    sample = np.unique(np.linspace(0, len(test_index) - 1, min(TEST_SAMPLE_SIZE, len(test_index))).astype(np.int64))
    test_coins = labelled.coin[chosen][test_index]
    now = django_timezone.now()
    train_ts = ts[train_mask]
    name = config.name or (
        f"{config.model_type} {'+' if config.direction == 'up' else '-'}{config.min_percent_change:g}% in "
        f"{config.future_minutes} min (trained {now:%Y-%m-%d %H:%M})"
    )
    params = {
        "n_estimators": config.n_estimators,
        "max_depth": config.max_depth,
        "random_state": config.seed,
        "_time_based": {
            "enabled": True,
            "future_minutes": config.future_minutes,
            "min_percent_change": config.min_percent_change,
            "direction": config.direction,
        },
        "use_engineered_features": config.engineered,
        "use_smote": False,
    }
    if config.model_type == ModelType.XGBOOST:
        params["learning_rate"] = 0.1
    if config.engineered:
        params["feature_engineering_windows"] = list(config.windows)
    meta = {
        "id": None,
        "name": name,
        "model_type": config.model_type,
        "status": "READY",
        "created_at": iso(now),
        "is_deleted": False,
        "target_variable": TARGET_VARIABLE,
        "target_operator": None,
        "target_value": None,
        "train_start": iso(from_micros(int(train_ts.min()))),
        "train_end": iso(from_micros(int(train_ts.max()))),
        "features": list(config.features),
        "phases": config.phases,
        "params": params,
        "feature_importance": dict(zip(config.features, importance)),
        "training_accuracy": metrics["accuracy"],
        "training_f1": metrics["f1"],
        "training_precision": metrics["precision"],
        "training_recall": metrics["recall"],
        "roc_auc": metrics["roc_auc"],
        "mcc": metrics["mcc"],
        "fpr": metrics["fpr"],
        "fnr": metrics["fnr"],
        "confusion_matrix": metrics["confusion_matrix"],
        **metrics["confusion_matrix"],
        "description": (
            f"Trained here by train_model on {counts['train_rows']} rows before {iso(from_micros(cut_at))}, tested on "
            f"{counts['test_rows']} rows from then on ({weighting})."
        ),
    }
    details = {
        "builtin_training": {
            "split_at": iso(from_micros(cut_at)),
            "since": iso(config.since) if config.since else None,
            "until": iso(config.until) if config.until else None,
            "max_rows": config.max_rows,
            "test_fraction": config.test_fraction,
            "seed": config.seed,
            "history_limit": config.history_limit,
            "class_weighting": weighting,
            "labels": "per coin, k rows ahead by the row's phase interval; rows without a future value dropped",
            "features": "inference.features.build_features as of each row (serving code)",
            "test_alerts": test_alerts,
            **counts,
        },
        "test_predictions": {
            "total": len(test_index),
            "mints": [labelled.mints[c] for c in test_coins[sample]],
            "timestamps": [iso(from_micros(int(t))) for t in ts[test_index][sample]],
            "labels": [int(v) for v in y_test[sample]],
            "probabilities": [float(p) for p in probabilities[sample]],
        },
    }

    model = register_model(
        artifact=artifact, meta=meta, source=ModelSource.BUILTIN_TRAINING, filename=filename,
        activate=config.activate, training_details=details,
    )
    return TrainingResult(
        model=model, metrics=metrics, counts=counts, split_at=from_micros(cut_at), meta=meta, test_alerts=test_alerts
    )
