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
ALERTS_TRIGGERED = Counter("ml_alerts_triggered_total", "Stored predictions tagged alert, per model", ["model_id"])
WEBHOOK_DELIVERIES = Counter(
    "ml_webhook_deliveries_total", "Webhook POST attempts by outcome (delivered, retry, failed, refused)", ["outcome"]
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "ml_webhook_delivery_seconds", "Duration of one webhook POST attempt, answered or not",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_OUTBOX_DEPTH = Gauge(
    "ml_webhook_outbox_depth", "Webhook deliveries pending (waiting for their first attempt or a retry)",
    multiprocess_mode="max",
)
EVALUATIONS = Counter("ml_evaluations_total", "Predictions judged at their horizon, by result", ["result"])
EVALUATION_RUN_SECONDS = Histogram(
    "ml_evaluation_run_seconds", "Time of one evaluation job run (ATH tracking and evaluation)",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ATH_UPDATES = Counter("ml_ath_updates_total", "Pending predictions whose ATH figures moved")
MCP_TOOL_CALLS = Counter("ml_mcp_tool_calls_total", "MCP tool calls by tool and outcome (ok, error)", ["tool", "outcome"])

# Live model quality (quality.services.check_models): the worker sets them after each check.
MODEL_LIVE_SUCCESS_RATE = Gauge(
    "ml_model_live_success_rate", "Alert success rate of the last 7 days (judged alerts)", ["model_id"],
    multiprocess_mode="mostrecent",
)
MODEL_FEATURE_PSI = Gauge(
    "ml_model_feature_psi", "Population stability index of a feature over the last 24 hours", ["model_id", "feature"],
    multiprocess_mode="mostrecent",
)
MODEL_DEGRADED = Gauge("ml_model_degraded", "1 while the model is flagged degraded", ["model_id"],
                       multiprocess_mode="mostrecent")
