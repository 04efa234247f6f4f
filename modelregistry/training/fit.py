"""Fitting the estimator and measuring it on the test part."""

from __future__ import annotations

import os

import numpy as np
import skops.io
import xgboost
from sklearn import metrics as sklearn_metrics
from sklearn.ensemble import RandomForestClassifier

from modelregistry.models import ModelType
from modelregistry.training.config import TrainingConfig


def fit_estimator(config: TrainingConfig, X: np.ndarray, y: np.ndarray) -> tuple[bytes, str, str, list[float]]:
    """The fitted model as (file bytes, file name, class weighting used, feature importances)."""
    positives = int(y.sum())
    negatives = len(y) - positives
    n_jobs = max(1, min(os.cpu_count() or 1, 8))
    if config.model_type == ModelType.XGBOOST:
        estimator = xgboost.XGBClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, learning_rate=0.1,
            random_state=config.seed, eval_metric="logloss", scale_pos_weight=negatives / positives, n_jobs=n_jobs,
        )
        estimator.fit(X, y)
        weighting = f"scale_pos_weight={negatives / positives:.4g}"
        artifact = bytes(estimator.get_booster().save_raw("json"))
        filename = "model.json"
    else:
        estimator = RandomForestClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, min_samples_split=2,
            random_state=config.seed, class_weight="balanced", n_jobs=n_jobs,
        )
        estimator.fit(X, y)
        weighting = "class_weight=balanced"
        artifact = skops.io.dumps(estimator)
        filename = "model.skops"
    importance = [float(v) for v in estimator.feature_importances_]
    return artifact, filename, weighting, importance


def classification_metrics(y: np.ndarray, probabilities: np.ndarray, predictions: np.ndarray) -> dict:
    """The training service's metrics of a test part (labels y, class-1 probabilities, 0/1 predictions)."""
    tp = int(((predictions == 1) & (y == 1)).sum())
    tn = int(((predictions == 0) & (y == 0)).sum())
    fp = int(((predictions == 1) & (y == 0)).sum())
    fn = int(((predictions == 0) & (y == 1)).sum())
    both_classes = 0 < y.sum() < len(y)
    return {
        "accuracy": float(sklearn_metrics.accuracy_score(y, predictions)),
        "precision": float(sklearn_metrics.precision_score(y, predictions, zero_division=0)),
        "recall": float(sklearn_metrics.recall_score(y, predictions, zero_division=0)),
        "f1": float(sklearn_metrics.f1_score(y, predictions, zero_division=0)),
        "roc_auc": float(sklearn_metrics.roc_auc_score(y, probabilities)) if both_classes else None,
        "mcc": float(sklearn_metrics.matthews_corrcoef(y, predictions)),
        "fpr": fp / (fp + tn) if fp + tn else None,
        "fnr": fn / (fn + tp) if fn + tp else None,
        "confusion_matrix": {"tp": tp, "tn": tn, "fp": fp, "fn": fn},
    }

