"""A model as the engine runs it: an immutable settings snapshot, the loaded estimator, and a per-process cache of
loaded estimators keyed by artifact checksum (reloaded only when the artifact changes)."""

from __future__ import annotations

import ctypes
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from inference import loading
from inference.features import required_feature_names
from pumpserver import metrics


@dataclass(frozen=True)
class ServedModel:
    id: int
    model_id: int | None
    name: str
    model_type: str
    target_variable: str
    target_operator: str | None
    target_value: float | None  # None when 0 or missing (the webhook's convention)
    future_minutes: int | None
    price_change_percent: float | None  # None when 0 or missing
    target_direction: str | None
    features: tuple[str, ...]
    phases: tuple[int, ...] | None
    engineered: bool
    windows: tuple[int, ...]
    alert_threshold: float
    whitelist: frozenset[str] | None  # None = all coins
    ignore_bad_seconds: int
    ignore_positive_seconds: int
    ignore_alert_seconds: int
    min_scan_interval_seconds: int
    caps: dict  # tag → max pending rows per coin (0 = unlimited)
    n8n_enabled: bool
    n8n_webhook_url: str | None  # None → the global N8N_WEBHOOK_URL
    n8n_send_mode: tuple[str, ...]
    send_ignored_to_n8n: bool
    total_predictions: int  # as read for this batch (the webhook reports them; they may lag by one batch)
    last_prediction_at: datetime | None
    artifact_id: int | None
    artifact_sha256: str | None
    artifact_version: int | None
    updated_at: datetime
    load_error: str | None = None  # as read for this batch: a model that serves again has it cleared


def return_freed_memory() -> None:
    """Give the heap memory a model load freed (file bytes, decoded documents: several times the file size) back to
    the operating system, so the listener's resident size stays near what its models really hold (glibc only)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def share_one_heap() -> None:
    """Let every thread allocate from the one main heap (glibc only). By default glibc gives each thread that meets
    a busy heap an arena of its own, and the listener's lanes then leave freed batch memory in several arenas: about
    a tenth more resident memory with two lanes. The lanes take turns under the GIL, so one heap costs them nothing."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class ReadyModel:
    """A loaded estimator and the input columns it takes."""

    loaded: loading.LoadedModel
    input_names: tuple[str, ...]

    @classmethod
    def prepare(cls, loaded: loading.LoadedModel, input_names: tuple[str, ...]) -> ReadyModel:
        """Ready for the listener: XGBoost predicts on one thread (its OpenMP threads, fighting PostgreSQL and the
        listener for the cores, made a 20-row call take ~50 ms instead of ~4 ms on a busy 2-core machine; the sum
        over trees is per row, so the result is the same bit for bit). A forest is scored on its fitted trees
        directly (loading.forest_probabilities)."""
        if loaded.model_type == loading.MODEL_TYPE_XGBOOST:
            loaded.estimator.set_param({"nthread": 1})
        return cls(loaded, input_names)

    def predict_proba_positive(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Class-1 probabilities (float64) and 0/1 predictions (int64) for every row of X."""
        return self.loaded.predict_proba_positive(X)


class ModelCache:
    """Loaded models of this process, least recently used evicted; keyed by artifact checksum and feature list."""

    def __init__(self, *, size: int, read_artifact: Callable[[int], tuple[bytes, str]]):
        self.size = size
        self.read_artifact = read_artifact  # artifact id → (file bytes, format); the registry owns the files
        self._entries: OrderedDict[tuple, ReadyModel] = OrderedDict()
        # The web process predicts from several threads (REST, MCP); one load per model, one writer at a time.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: ServedModel) -> ReadyModel:
        """The ready model, loading it on first use or when its artifact or features changed.

        Raises loading.ModelLoadError (or ValueError for an unusable feature list) with a readable message.
        """
        with self._lock:
            return self._get(model)

    def _get(self, model: ServedModel) -> ReadyModel:
        if model.artifact_id is None:
            raise loading.ModelLoadError("the model has no stored artifact")
        key = (model.id, model.artifact_sha256, model.features, model.target_operator, model.target_variable)
        ready = self._entries.get(key)
        if ready is not None:
            self._entries.move_to_end(key)
            return ready
        started = time.perf_counter()
        content, fmt = self.read_artifact(model.artifact_id)
        loaded = loading.load_model(content, fmt=fmt)
        loading.validate_against_metadata(loaded, features=list(model.features))
        if loaded.feature_names:
            input_names = tuple(loaded.feature_names)
        else:
            input_names = tuple(
                required_feature_names(
                    features=model.features,
                    n_features_in=loaded.n_features,
                    target_operator=model.target_operator,
                    target_variable=model.target_variable,
                )
            )
        ready = ReadyModel.prepare(loaded, input_names)
        del content
        return_freed_memory()
        metrics.MODEL_LOAD_SECONDS.labels(model_id=str(model.model_id or model.id)).observe(time.perf_counter() - started)
        for stale in [k for k in self._entries if k[0] == model.id]:
            del self._entries[stale]
        self._entries[key] = ready
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        metrics.MODELS_LOADED.set(len(self._entries))
        return ready
