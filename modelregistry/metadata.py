"""The training service's model record (`GET /models/{id}`) → the fields of our registry entry.

One mapping for every way a model arrives (import, upload, command line), following the existing server's
rules: the time-based target comes from `params._time_based`, a falsy `target_value` means none.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from modelregistry.models import ModelType, TargetDirection, TargetOperator


class MetadataError(ValueError):
    """The metadata is unusable; the message names the field."""


def _metric(meta: dict, key: str) -> Decimal | None:
    value = meta.get(key)
    if value is None:
        return None
    try:
        number = Decimal(str(value)).quantize(Decimal("0.0001"))
    except InvalidOperation:
        raise MetadataError(f"{key} must be a number, not {value!r}") from None
    return number


def registry_fields(meta: dict) -> dict:
    """Validate the record and return ActiveModel field values."""
    if not isinstance(meta, dict):
        raise MetadataError("metadata must be a JSON object")
    model_type = meta.get("model_type")
    if model_type not in ModelType.values:
        raise MetadataError(f"model_type must be one of {ModelType.values}, not {model_type!r}")
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MetadataError("name must be a non-empty string")
    features = meta.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) and f for f in features):
        raise MetadataError("features must be a non-empty list of feature names")
    if len(set(features)) != len(features):
        raise MetadataError("features lists a name more than once")
    phases = meta.get("phases")
    if phases is not None and (not isinstance(phases, list) or not all(isinstance(p, int) for p in phases)):
        raise MetadataError("phases must be a list of phase ids or null")
    params = meta.get("params")
    if params is not None and not isinstance(params, dict):
        raise MetadataError("params must be an object or null")
    model_id = meta.get("id")
    if model_id is not None and (not isinstance(model_id, int) or isinstance(model_id, bool)):
        raise MetadataError(f"id must be an integer, not {model_id!r}")

    time_based = (params or {}).get("_time_based") or {}
    future_minutes = time_based.get("future_minutes", meta.get("future_minutes"))
    change = time_based.get("min_percent_change", meta.get("price_change_percent"))
    direction = time_based.get("direction", meta.get("target_direction"))
    operator = meta.get("target_operator")
    target_value = meta.get("target_value")

    if future_minutes is not None and (not isinstance(future_minutes, int) or future_minutes <= 0):
        raise MetadataError(f"future_minutes must be a positive integer, not {future_minutes!r}")
    if change is not None:
        try:
            change = Decimal(str(change))
        except InvalidOperation:
            raise MetadataError(f"min_percent_change must be a number, not {change!r}") from None
        if change <= 0:
            raise MetadataError("min_percent_change must be greater than 0")
    if direction is not None and direction not in TargetDirection.values:
        raise MetadataError(f"direction must be 'up' or 'down', not {direction!r}")
    if operator is not None and operator not in TargetOperator.values:
        raise MetadataError(f"target_operator must be one of {TargetOperator.values}, not {operator!r}")
    try:
        target_value = Decimal(str(target_value)) if target_value else None
    except InvalidOperation:
        raise MetadataError(f"target_value must be a number, not {target_value!r}") from None
    if future_minutes is None and operator is None:
        raise MetadataError("the target needs either params._time_based.future_minutes or target_operator")

    matrix = meta.get("confusion_matrix")
    details = {key: meta[key] for key in ("fpr", "fnr", "cv_scores", "cv_overfitting_gap", "feature_importance",
                                          "train_start", "train_end", "created_at") if meta.get(key) is not None}
    return {
        "model_id": model_id,
        "model_name": name.strip(),
        "model_type": model_type,
        "description": meta.get("description"),
        "target_variable": meta.get("target_variable") or "price_close",
        "target_operator": operator,
        "target_value": target_value,
        "future_minutes": future_minutes,
        "price_change_percent": change,
        "target_direction": direction,
        "features": features,
        "phases": phases,
        "params": params,
        "training_accuracy": _metric(meta, "training_accuracy"),
        "training_f1": _metric(meta, "training_f1"),
        "training_precision": _metric(meta, "training_precision"),
        "training_recall": _metric(meta, "training_recall"),
        "roc_auc": _metric(meta, "roc_auc"),
        "mcc": _metric(meta, "mcc"),
        "simulated_profit_pct": _metric(meta, "simulated_profit_pct"),
        "confusion_matrix": matrix if isinstance(matrix, dict) else None,
        "training_details": details or None,
    }
