"""Prometheus metrics of every process, with the existing server's names and labels where it had them."""

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter(
    "ml_predictions_total", "Predictions made (stored or not), per model", ["model_id", "model_name"]
)
PREDICTIONS_BY_MODEL = Counter(
    "ml_predictions_by_model_total", "Same as ml_predictions_total (kept for existing dashboards)",
    ["model_id", "model_name"],
)
PREDICTION_SECONDS = Histogram(
    "ml_prediction_duration_seconds", "Time of one model's predict call on a batch (features included)",
    ["model_id"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
FEATURE_SECONDS = Histogram(
    "ml_feature_processing_duration_seconds", "Time to build one feature set for a batch",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1),
)
MODEL_LOAD_SECONDS = Histogram(
    "ml_model_load_duration_seconds", "Time to load a model artifact", ["model_id"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5),
)
MODELS_LOADED = Gauge("ml_models_loaded", "Models loaded in this process", multiprocess_mode="max")
ACTIVE_MODELS = Gauge("ml_active_models", "Active models", multiprocess_mode="max")
ERRORS = Counter("ml_errors_total", "Errors by type (model_load, prediction, db, webhook, data)", ["type"])
BATCH_ROWS = Histogram(
    "ml_listener_batch_rows", "coin_metrics rows claimed per listener batch",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000),
)
QUEUE_DEPTH = Gauge("ml_queue_depth", "coin_metrics rows waiting for a listener", multiprocess_mode="max")
EVENT_LAG_SECONDS = Histogram(
    "ml_event_lag_seconds", "From a row's arrival in the queue to the commit of its predictions",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
