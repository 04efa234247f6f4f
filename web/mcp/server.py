"""The MCP server `pump-server-mcp`: the 38 tools of the existing server, each a thin call into a service/selector.

Every tool has a JSON-schema input definition. Arguments are checked against it before anything runs; a bad
argument, an unknown id or a refused change comes back as a tool error result (`isError: true`, with
`{"success": false, "error": "<readable text>"}`), never as a protocol error or a broken session. Successful
results carry `success: true` and come back twice: as `structuredContent` and as one TextContent with the same JSON.

Timestamps are ISO-8601 with offset and NUMERIC values are JSON numbers, as in the REST API. Every call is logged
and counted in `ml_mcp_tool_calls_total{tool,outcome}`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any, Callable

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import close_old_connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from jsonschema import Draft202012Validator
from mcp.server.lowlevel import Server

from alerts import legacy_selectors, legacy_services
from alerts import selectors as alert_selectors
from modelregistry import selectors as registry_selectors
from modelregistry import services as registry_services
from modelregistry import training_service
from web.api.models.serializers import ModelInfoSerializer
from modelregistry.models import ActiveModel
from predictions import log_selectors, log_services
from predictions import selectors as prediction_selectors
from predictions import services as prediction_services
from web.api.predictions.serializers import ModelPredictionRowSerializer
from pumpserver import config, metrics
from web import selectors as system_selectors

logger = logging.getLogger("web.mcp")

SERVER_NAME = "pump-server-mcp"
SERVER_VERSION = "1.0.0"
SERVER_DESCRIPTION = (
    "Pump Server: ML models that predict pump.fun-style coin price moves from live market metrics, their "
    "predictions, alerts and evaluation statistics, n8n webhooks and system status."
)
INSTRUCTIONS = (
    "Models have two ids: `active_model_id` (the local id; almost every tool takes it, see list_active_models) and "
    "`model_id` (the id in the external training service; import_model and get_latest_prediction take it). "
    "`coin_id` is a coin's mint address. Predictions are tagged negativ (p < 0.5), positiv (0.5 <= p < threshold) "
    "or alert (p >= the model's alert_threshold) and judged after the model's horizon (success/failed/"
    "not_applicable; status aktiv = waiting, inaktiv = evaluated). Errors come back as results with isError true."
)

MAX_PAGE = 1000
IGNORE_MAX = 86_400
LOG_CAP_MAX = 1000
ID_MAX = 2**63 - 1


class ToolError(Exception):
    """A refused call; the message is shown to the agent as is."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_schema: dict
    handler: Callable[[dict], dict]
    read_only: bool
    destructive: bool
    open_world: bool

    def as_tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=self.destructive if not self.read_only else None,
                open_world_hint=self.open_world,
            ),
        )


TOOLS: dict[str, ToolSpec] = {}
_VALIDATORS: dict[str, Draft202012Validator] = {}


def tool(name: str, title: str, description: str, properties: dict | None = None, required: tuple[str, ...] = (),
         *, read_only: bool = True, destructive: bool = False, open_world: bool = False):
    """Register a tool: its JSON schema is `type: object` with these properties and required names."""
    schema = {"type": "object", "properties": properties or {}, "required": list(required)}

    def register(handler: Callable[[dict], dict]) -> Callable[[dict], dict]:
        Draft202012Validator.check_schema(schema)
        TOOLS[name] = ToolSpec(name, title, description, schema, handler, read_only, destructive, open_world)
        _VALIDATORS[name] = Draft202012Validator(schema)
        return handler

    return register


# --- schema fragments -----------------------------------------------------------------------------------------------


def integer(description: str, *, minimum: int | None = 0, maximum: int | None = ID_MAX, default: int | None = None):
    schema: dict[str, Any] = {"type": "integer", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return schema


def number(description: str, *, minimum: float | None = None, maximum: float | None = None):
    schema: dict[str, Any] = {"type": "number", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def string(description: str, *, enum: list[str] | None = None, default: str | None = None, min_length: int = 0,
           max_length: int = 2000, fmt: str | None = None):
    schema: dict[str, Any] = {"type": "string", "description": description, "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    if enum is not None:
        schema["enum"] = enum
    if default is not None:
        schema["default"] = default
    if fmt:
        schema["format"] = fmt
    return schema


def boolean(description: str, *, default: bool | None = None):
    schema: dict[str, Any] = {"type": "boolean", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def active_model_id(description: str = "Local id of the model (`id` in list_active_models).") -> dict:
    return integer(description, minimum=1)


def timestamp(description: str) -> dict:
    return string(description + " ISO-8601, e.g. 2026-01-14T10:00:00Z; without an offset it is UTC.",
                  fmt="date-time", max_length=64)


LIMIT = integer(f"Page size, 1 to {MAX_PAGE}.", minimum=1, maximum=MAX_PAGE, default=100)
OFFSET = integer("Rows to skip (for paging).", minimum=0, default=0)
TAGS = ["negativ", "positiv", "alert"]
SEND_MODES = ["all", "alerts_only", "positive_only", "negative_only"]


# --- argument helpers -----------------------------------------------------------------------------------------------


def _with_defaults(name: str, arguments: dict) -> dict:
    args = dict(arguments)
    for key, schema in TOOLS[name].input_schema["properties"].items():
        if key not in args and "default" in schema:
            args[key] = schema["default"]
    return args


def validation_errors(name: str, arguments: dict) -> list[str]:
    """Readable messages for every way `arguments` break the tool's schema (empty when they fit)."""
    messages = []
    for error in sorted(_VALIDATORS[name].iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        if error.validator == "required":
            missing = [key for key in error.validator_value if key not in error.instance]
            messages.extend(f"missing required argument '{key}'" for key in missing)
            continue
        where = ".".join(str(part) for part in error.absolute_path)
        messages.append(f"argument '{where}': {error.message}" if where else error.message)
    return messages


def parse_time(args: dict, key: str) -> datetime | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ToolError(f"argument '{key}': {value!r} is not an ISO-8601 date-time (e.g. 2026-01-14T10:00:00Z)")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=dt_timezone.utc)


def jsonable(value):
    """Plain JSON values: ISO-8601 times, Decimals as numbers, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def _model_dict(model) -> dict:
    """ModelInfo (the REST shape) with the MCP tools' extra keys; `name` is the display name here."""
    data = dict(ModelInfoSerializer(model).data)
    data.update({
        "name": model.display_name,
        "model_name": model.model_name,
        "features_count": len(model.features or []),
        "training_accuracy": model.training_accuracy,
        "training_f1": model.training_f1,
        "training_precision": model.training_precision,
        "training_recall": model.training_recall,
        "min_scan_interval_seconds": model.min_scan_interval_seconds,
    })
    return data


def _get_model(model_id: int):
    try:
        return registry_selectors.get_model(active_model_id=model_id)
    except ObjectDoesNotExist:
        raise ToolError(f"model {model_id} not found (see list_active_models with include_inactive=true)") from None


def _settings_update(model_id: int, changes: dict):
    try:
        return registry_services.update_model_settings(active_model_id=model_id, **changes)
    except ObjectDoesNotExist:
        raise ToolError(f"model {model_id} not found (see list_active_models with include_inactive=true)") from None
    except registry_services.InvalidSetting as exc:
        raise ToolError(exc.message) from None


def _label(prediction: int) -> str:
    return "POSITIVE (UP)" if prediction == 1 else "NEGATIVE (DOWN)"


# === models ==========================================================================================================


@tool("list_active_models", "List models",
      "List the imported models with their settings and prediction counts. By default only active models (the ones "
      "that predict); include_inactive=true also lists paused ones. Each entry's `id` is the active_model_id the "
      "other tools take; `model_id` is the training-service id.",
      {"include_inactive": boolean("Also list inactive (paused) models.", default=False)})
def list_active_models(args: dict) -> dict:
    models = [_model_dict(model) for model in prediction_selectors.list_models(include_inactive=args["include_inactive"])]
    active = sum(1 for model in models if model["is_active"])
    return {"models": models, "total": len(models), "active_count": active, "inactive_count": len(models) - active}


@tool("list_available_models", "List models available for import",
      "List the READY models of the training service that are not imported yet (use import_model with a listed "
      "`id`). Fails with a readable error when the training service is not configured or unreachable.",
      open_world=True)
def list_available_models(args: dict) -> dict:
    imported = set(ActiveModel.objects.exclude(model_id=None).values_list("model_id", flat=True))
    models = []
    for record in training_service.TrainingServiceClient().list_models():
        if record.get("id") in imported:
            continue
        model = training_service.available_model(record)
        model["features_count"] = len(model["features"] or [])
        models.append(model)
    return {"models": models, "total": len(models)}


@tool("import_model", "Import a model",
      "Import a READY model from the training service by its training-service id (`id` from "
      "list_available_models). The file is downloaded, checked and stored; the model is active at once. "
      "A model that is already imported is refused unless new_version is true (then its current file becomes a "
      "new version of the imported model; its settings are kept).",
      {"model_id": integer("Training-service id of the model.", minimum=1),
       "new_version": boolean("Re-import an already imported model as a new version.", default=False)},
      ("model_id",), read_only=False, open_world=True)
def import_model(args: dict) -> dict:
    model = registry_services.import_from_training_service(model_id=args["model_id"], allow_new_version=args["new_version"])
    return {
        "message": f"Modell {model.display_name} importiert (active_model_id: {model.pk})",
        "active_model_id": model.pk,
        "model_id": model.model_id,
        "model_name": model.model_name,
        "is_active": model.is_active,
        "local_path": None,  # stored in the database (model_artifacts), not as a file
    }


@tool("get_model_details", "Model details",
      "Everything about one model (active or not): target, features, settings (threshold, n8n, ignore windows, "
      "caps), training metrics and prediction counts.",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_model_details(args: dict) -> dict:
    try:
        model = prediction_selectors.get_model_with_statistics(active_model_id=args["active_model_id"])
    except ObjectDoesNotExist:
        raise ToolError(f"model {args['active_model_id']} not found") from None
    return {"model": _model_dict(model)}


@tool("activate_model", "Activate a model",
      "Activate a model so that it predicts new coin events. Its stored file is checked first; a model whose file "
      "does not load stays inactive and the error says why.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False)
def activate_model(args: dict) -> dict:
    model = registry_services.activate_model(active_model_id=args["active_model_id"])
    return {"message": f"Modell {model.display_name} aktiviert", "active_model_id": model.pk}


@tool("deactivate_model", "Deactivate a model",
      "Pause a model: it makes no new predictions; its pending predictions are still evaluated.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False)
def deactivate_model(args: dict) -> dict:
    model = registry_services.deactivate_model(active_model_id=args["active_model_id"])
    return {"message": f"Modell {model.display_name} deaktiviert", "active_model_id": model.pk}


@tool("rename_model", "Rename a model",
      "Set a model's display name (shown in statistics, webhooks and pages). Surrounding spaces are trimmed; "
      "an empty name is refused.",
      {"active_model_id": active_model_id(), "new_name": string("The new display name.", min_length=1, max_length=255)},
      ("active_model_id", "new_name"), read_only=False)
def rename_model(args: dict) -> dict:
    name = args["new_name"].strip()
    if not name:
        raise ToolError("argument 'new_name': the name must not be empty")
    model = registry_services.rename_model(active_model_id=args["active_model_id"], custom_name=name)
    return {"message": f"Modell umbenannt in {name}", "active_model_id": model.pk, "new_name": name}


@tool("delete_model", "Delete a model",
      "Delete a model for good: its stored files, all its predictions and cache rows. Cannot be undone; "
      "deactivate_model only pauses.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True)
def delete_model(args: dict) -> dict:
    model = registry_services.delete_model(active_model_id=args["active_model_id"])
    return {
        "message": f"Modell {model.display_name} gelöscht",
        "active_model_id": args["active_model_id"],
        "model_id": model.model_id,
        "model_name": model.model_name,
    }


@tool("update_model_metrics", "Refresh training metrics",
      "Re-read a model's training metrics (accuracy, F1, precision, recall, ROC AUC, MCC, confusion matrix, "
      "simulated profit) from the training service and store them.",
      {"active_model_id": active_model_id(),
       "model_id": integer("Training-service id of the same model (as a check; must match the model).", minimum=1)},
      ("active_model_id", "model_id"), read_only=False, open_world=True)
def update_model_metrics(args: dict) -> dict:
    model = _get_model(args["active_model_id"])
    if model.model_id != args["model_id"]:
        raise ToolError(
            f"argument 'model_id': model {model.pk} has training-service id {model.model_id}, not {args['model_id']}"
        )
    registry_services.refresh_training_metrics(active_model_id=model.pk)
    return {"message": f"Metriken von Modell {model.display_name} aktualisiert", "active_model_id": model.pk}


# === predictions =====================================================================================================


@tool("predict_coin", "Predict a coin now",
      "Run the active models on a coin's newest market data and return their predictions. Nothing is stored and no "
      "webhook is sent (a dry run). model_ids restricts it to some models (active_model_id values).",
      {"coin_id": string("Mint address of the coin.", min_length=1, max_length=255),
       "model_ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                     "description": "active_model_id values of the models to run; default: every active model."}},
      ("coin_id",))
def predict_coin(args: dict) -> dict:
    result = prediction_services.predict_coin(coin_id=args["coin_id"], active_model_ids=args.get("model_ids"), store=False)
    predictions = [
        {**item, "prediction_label": _label(item["prediction"]), "probability": round(item["probability"], 4)}
        for item in result["predictions"]
    ]
    return {
        "coin_id": result["coin_id"],
        "timestamp": result["timestamp"],
        "predictions": predictions,
        "total_models": result["total_models"],
        "successful_predictions": len(predictions),
    }


def _prediction_summary(row) -> dict:
    return {
        "id": row.id,
        "coin_id": row.coin_id,
        "model_id": row.model_id,
        "active_model_id": row.active_model_id,
        "prediction": row.prediction,
        "prediction_label": _label(row.prediction),
        "probability": row.probability,
        "tag": row.tag,
        "data_timestamp": row.prediction_timestamp,
        "created_at": row.created_at,
    }


@tool("get_predictions", "List predictions",
      "List stored predictions, newest first, filtered by coin, model, 0/1 prediction and minimum probability.",
      {"coin_id": string("Only this coin (mint address).", max_length=255),
       "active_model_id": active_model_id("Only this model (local id)."),
       "prediction": integer("Only this model output: 1 (up) or 0 (not up).", minimum=0, maximum=1),
       "min_probability": number("Only predictions with at least this probability (0 to 1).", minimum=0, maximum=1),
       "limit": integer(f"Page size, 1 to {MAX_PAGE}.", minimum=1, maximum=MAX_PAGE, default=50),
       "offset": OFFSET})
def get_predictions(args: dict) -> dict:
    filters = {key: args.get(key) for key in ("coin_id", "active_model_id", "prediction", "min_probability")}
    rows, total = log_selectors.predictions_page(filters=filters, limit=args["limit"], offset=args["offset"])
    return {
        "predictions": [_prediction_summary(row) for row in rows],
        "count": len(rows),
        "total": total,
        "limit": args["limit"],
        "offset": args["offset"],
        "filters": {key: value for key, value in filters.items() if value is not None},
    }


@tool("get_latest_prediction", "Latest prediction of a coin",
      "The newest stored prediction of a coin (by data time), optionally of one model given by its "
      "training-service id.",
      {"coin_id": string("Mint address of the coin.", min_length=1, max_length=255),
       "model_id": integer("Training-service id of the model (not the active_model_id).", minimum=1)},
      ("coin_id",))
def get_latest_prediction(args: dict) -> dict:
    row = log_selectors.latest_prediction(coin_id=args["coin_id"], model_id=args.get("model_id"))
    if row is None:
        return {"found": False, "prediction": None, "message": f"Keine Vorhersage für Coin {args['coin_id']}"}
    return {"found": True, "prediction": _prediction_summary(row)}


@tool("get_model_predictions", "Prediction log",
      "The prediction log (every stored column: tag, status, prices at prediction and evaluation, verdict, ATH), "
      "newest first, with the total count for paging.",
      {"active_model_id": active_model_id("Only this model (local id)."),
       "tag": string("Only this tag.", enum=TAGS),
       "status": string("aktiv = waiting for evaluation, inaktiv = evaluated.", enum=["aktiv", "inaktiv"]),
       "coin_id": string("Only this coin (mint address).", max_length=255),
       "limit": LIMIT, "offset": OFFSET})
def get_model_predictions(args: dict) -> dict:
    filters = {key: args.get(key) for key in ("active_model_id", "tag", "status", "coin_id")}
    page = log_selectors.model_predictions_page(filters=filters, limit=args["limit"], offset=args["offset"])
    rows = ModelPredictionRowSerializer(page.predictions, many=True).data
    return {
        "predictions": rows,
        "model_target": page.model_target,
        "total": page.total,
        "count": len(rows),
        "limit": page.limit,
        "offset": page.offset,
    }


@tool("delete_model_predictions", "Delete a model's predictions",
      "Delete every stored prediction of one model (its prediction log). Cannot be undone.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True)
def delete_model_predictions(args: dict) -> dict:
    deleted = log_services.delete_model_predictions(active_model_id=args["active_model_id"])
    return {
        "message": f"{deleted} Vorhersagen gelöscht",
        "active_model_id": args["active_model_id"],
        "deleted_predictions": deleted,
    }


@tool("reset_model_statistics", "Reset a model's counters",
      "Reset a model's prediction counter (total_predictions) and last-prediction time. Stored predictions are kept "
      "(use delete_model_predictions to remove them).",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True)
def reset_model_statistics(args: dict) -> dict:
    deleted = legacy_services.reset_model_statistics(active_model_id=args["active_model_id"])
    return {
        "message": "Statistiken zurückgesetzt",
        "active_model_id": args["active_model_id"],
        "deleted_predictions": deleted,
    }


@tool("get_coin_details", "Coin chart and predictions",
      "A coin's price history with one model's predictions and verdicts in a time window (default: the last 24 "
      "hours).",
      {"active_model_id": active_model_id(),
       "coin_id": string("Mint address of the coin.", min_length=1, max_length=255),
       "start_timestamp": timestamp("Window start (default: end − 24 h)."),
       "end_timestamp": timestamp("Window end (default: now).")},
      ("active_model_id", "coin_id"))
def get_coin_details(args: dict) -> dict:
    end = parse_time(args, "end_timestamp") or timezone.now()
    start = parse_time(args, "start_timestamp") or end - timedelta(hours=24)
    if start > end:
        raise ToolError("argument 'start_timestamp' must not be after 'end_timestamp'")
    details = log_selectors.coin_details(active_model_id=args["active_model_id"], coin_id=args["coin_id"], start=start, end=end)
    return {
        "coin_id": details["coin_id"],
        "active_model_id": details["model_id"],
        "start_timestamp": start,
        "end_timestamp": end,
        "price_history": details["price_history"],
        "predictions": details["predictions"],
        "evaluations": details["evaluations"],
        "counts": {
            "price_points": len(details["price_history"]),
            "predictions": len(details["predictions"]),
            "evaluations": len(details["evaluations"]),
        },
    }


# === per-model settings ==============================================================================================


def _change_text(field: str, value) -> Any:
    if field == "coin_whitelist":
        return f"{len(value)} coins" if value is not None else None
    if field == "n8n_webhook_url" and not value:
        return "(cleared)"
    return value


@tool("update_alert_config", "Change alert and n8n settings",
      "Change a model's alert settings. Only the settings given change (a partial update). n8n_webhook_url \"\" "
      "clears the model's own URL (the global one applies again).",
      {"active_model_id": active_model_id(),
       "n8n_webhook_url": string("Webhook URL for this model's predictions; \"\" clears it.", max_length=2000),
       "n8n_enabled": boolean("Send this model's predictions to n8n at all."),
       "n8n_send_mode": {"type": "array", "items": {"type": "string", "enum": SEND_MODES}, "minItems": 1,
                         "description": "Which predictions are sent, OR-combined: all, alerts_only (p >= threshold), "
                                        "positive_only (0.5 <= p < threshold), negative_only (p < 0.5)."},
       "alert_threshold": number("Probability from which a prediction is an alert (0 to 1).", minimum=0, maximum=1),
       "coin_filter_mode": string("all coins, or only the coins in coin_whitelist.", enum=["all", "whitelist"]),
       "coin_whitelist": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1},
                          "description": "Mint addresses the model looks at in whitelist mode (replaces the list)."},
       "min_scan_interval_seconds": integer("Minimum seconds between two predictions of the same coin.",
                                            minimum=0, maximum=IGNORE_MAX),
       "send_ignored_to_n8n": boolean("Also send predictions that a max-log cap kept from being stored.")},
      ("active_model_id",), read_only=False)
def update_alert_config(args: dict) -> dict:
    fields = ("n8n_webhook_url", "n8n_enabled", "n8n_send_mode", "alert_threshold", "coin_filter_mode",
              "coin_whitelist", "min_scan_interval_seconds", "send_ignored_to_n8n")
    changes = {field: args[field] for field in fields if field in args}
    if not changes:
        raise ToolError(f"nothing to change: give at least one of {', '.join(fields)}")
    model = _settings_update(args["active_model_id"], changes)
    return {
        "message": f"Alert-Konfiguration von Modell {model.display_name} aktualisiert",
        "active_model_id": model.pk,
        "changes": {field: _change_text(field, value) for field, value in changes.items()},
    }


@tool("get_model_statistics", "Model statistics",
      "Prediction statistics of one model: counts (positive = model output 1), probability averages and "
      "distribution, alerts, coins, and the webhook attempts for its coins.",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_model_statistics(args: dict) -> dict:
    model = _get_model(args["active_model_id"])
    figures = alert_selectors.model_statistics(active_model_id=model.pk)
    statistics = {key: value for key, value in figures.items() if not key.startswith("webhook_")}
    statistics["webhook_stats"] = {
        "total": figures["webhook_total"],
        "success": figures["webhook_success"],
        "failed": figures["webhook_failed"],
        "success_rate": figures["webhook_success_rate"],
    }
    return {"active_model_id": model.pk, "statistics": statistics}


@tool("get_n8n_status", "n8n delivery status",
      "How the last webhook POST to the model's n8n URL went: ok, error, unknown, or no_url.",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_n8n_status(args: dict) -> dict:
    model = _get_model(args["active_model_id"])
    return {"active_model_id": model.pk, "n8n_status": prediction_selectors.n8n_status(active_model_id=model.pk)}


IGNORE_FIELDS = ("ignore_bad_seconds", "ignore_positive_seconds", "ignore_alert_seconds")
CAP_FIELDS = ("max_log_entries_per_coin_negative", "max_log_entries_per_coin_positive",
              "max_log_entries_per_coin_alert")


@tool("get_ignore_settings", "Ignore windows",
      "Seconds a coin is skipped by the model after a negative / positive / alert prediction (0 = never).",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_ignore_settings(args: dict) -> dict:
    model = _get_model(args["active_model_id"])
    return {"active_model_id": model.pk, "settings": {field: getattr(model, field) for field in IGNORE_FIELDS}}


@tool("update_ignore_settings", "Change ignore windows",
      "Set all three ignore windows of a model (seconds, 0 to 86400; 0 = never skip).",
      {"active_model_id": active_model_id(),
       "ignore_bad_seconds": integer("Skip the coin this long after a negative prediction (0-86400).",
                                     maximum=IGNORE_MAX),
       "ignore_positive_seconds": integer("Skip the coin this long after a positive prediction (0-86400).",
                                          maximum=IGNORE_MAX),
       "ignore_alert_seconds": integer("Skip the coin this long after an alert (0-86400).", maximum=IGNORE_MAX)},
      ("active_model_id", *IGNORE_FIELDS), read_only=False)
def update_ignore_settings(args: dict) -> dict:
    model = _settings_update(args["active_model_id"], {field: args[field] for field in IGNORE_FIELDS})
    return {
        "message": "Ignore-Einstellungen aktualisiert",
        "active_model_id": model.pk,
        "settings": {field: getattr(model, field) for field in IGNORE_FIELDS},
    }


@tool("get_max_log_entries", "Max-log caps",
      "Per coin and tag, how many pending predictions of the model are stored at most (0 = unlimited).",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_max_log_entries(args: dict) -> dict:
    model = _get_model(args["active_model_id"])
    return {"active_model_id": model.pk, "settings": {field: getattr(model, field) for field in CAP_FIELDS}}


@tool("update_max_log_entries", "Change max-log caps",
      "Set all three per-coin caps of pending predictions (0 to 1000; 0 = unlimited).",
      {"active_model_id": active_model_id(),
       "max_log_entries_per_coin_negative": integer("Cap for negativ rows (0-1000).", maximum=LOG_CAP_MAX),
       "max_log_entries_per_coin_positive": integer("Cap for positiv rows (0-1000).", maximum=LOG_CAP_MAX),
       "max_log_entries_per_coin_alert": integer("Cap for alert rows (0-1000).", maximum=LOG_CAP_MAX)},
      ("active_model_id", *CAP_FIELDS), read_only=False)
def update_max_log_entries(args: dict) -> dict:
    model = _settings_update(args["active_model_id"], {field: args[field] for field in CAP_FIELDS})
    return {
        "message": "Max-Log-Einstellungen aktualisiert",
        "active_model_id": model.pk,
        "settings": {field: getattr(model, field) for field in CAP_FIELDS},
    }


# === alerts and statistics ===========================================================================================


@tool("get_alerts", "List alerts",
      "Alerts (predictions tagged alert) in the legacy alert shape with their status (pending/success/failed/"
      "expired) and status counts. unique_coins=true shows the newest alert per coin.",
      {"status": string("Only this status.", enum=["pending", "success", "failed", "expired", "non_alert"]),
       "model_id": integer("Only this model, by training-service id.", minimum=1),
       "active_model_id": active_model_id("Only this model, by local id."),
       "coin_id": string("Only this coin (mint address).", max_length=255),
       "prediction_type": string("time_based or classic (operator/value) models.", enum=["time_based", "classic"]),
       "date_from": timestamp("Alerts at or after this time."),
       "date_to": timestamp("Alerts at or before this time."),
       "unique_coins": boolean("One row per coin (its newest alert).", default=True),
       "include_non_alerts": boolean("Accepted for compatibility; has no effect.", default=False),
       "limit": LIMIT, "offset": OFFSET})
def get_alerts(args: dict) -> dict:
    filters = {
        "status": args.get("status"),
        "model_id": args.get("model_id"),
        "active_model_id": args.get("active_model_id"),
        "coin_id": args.get("coin_id"),
        "prediction_type": args.get("prediction_type"),
        "date_from": parse_time(args, "date_from"),
        "date_to": parse_time(args, "date_to"),
    }
    page = legacy_selectors.alerts_page(filters=filters, unique_coins=args["unique_coins"], limit=args["limit"], offset=args["offset"])
    return {
        "alerts": page["alerts"],
        "total": page["total"],
        "count": len(page["alerts"]),
        "limit": args["limit"],
        "offset": args["offset"],
        "status_counts": {key: page[key] for key in ("pending", "success", "failed", "expired")},
    }


@tool("get_alert_details", "Alert details",
      "One alert (by the `id` from get_alerts) with the coin's figures at alert and evaluation time, price/volume/"
      "market-cap charts around it, the coin's other alerts and the model's alert statistics.",
      {"alert_id": integer("Id of the alert (from get_alerts).", minimum=1),
       "chart_before_minutes": integer("Chart minutes before the alert.", minimum=0, maximum=1440, default=10),
       "chart_after_minutes": integer("Chart minutes after the evaluation.", minimum=0, maximum=1440, default=10)},
      ("alert_id",))
def get_alert_details(args: dict) -> dict:
    details = legacy_selectors.alert_details(alert_id=args["alert_id"], chart_before_minutes=args["chart_before_minutes"],
                            chart_after_minutes=args["chart_after_minutes"])
    if details is None:
        raise ToolError(f"Alert {args['alert_id']} nicht gefunden")
    return {"alert": details}


@tool("get_alert_statistics", "Alert statistics",
      "Success statistics of predictions and alerts (counts, success rates, summed price changes, per model), "
      "optionally for one model and a time range of prediction times.",
      {"model_id": active_model_id("Only this model: its local active_model_id (as the existing tool)."),
       "active_model_id": active_model_id("Same as model_id; wins when both are given."),
       "date_from": timestamp("Predictions at or after this time."),
       "date_to": timestamp("Predictions at or before this time.")})
def get_alert_statistics(args: dict) -> dict:
    model_id = args.get("active_model_id", args.get("model_id"))
    return {"statistics": alert_selectors.alert_statistics(active_model_id=model_id, date_from=parse_time(args, "date_from"),
                                           date_to=parse_time(args, "date_to"))}


@tool("get_all_models_alert_statistics", "Alert statistics per model",
      "Alert counts for several models at once, keyed by active_model_id (as a string). Default: every active "
      "model.",
      {"active_model_ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 1000,
                            "description": "Local ids of the models; default: all active models."}})
def get_all_models_alert_statistics(args: dict) -> dict:
    return {"model_statistics": alert_selectors.models_alert_statistics(active_model_ids=args.get("active_model_ids"))}


@tool("delete_model_alerts", "Delete a model's alerts",
      "Delete a model's alerts (its predictions tagged alert). Cannot be undone.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True)
def delete_model_alerts(args: dict) -> dict:
    deleted = legacy_services.delete_model_alerts(active_model_id=args["active_model_id"])
    return {"message": f"{deleted} Alerts gelöscht", "active_model_id": args["active_model_id"],
            "deleted_alerts": deleted}


# === system ==========================================================================================================


def _uptime_human(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours}h {minutes}m {secs}s"


def health_report() -> dict:
    report = system_selectors.health()
    checks = report["checks"]
    return {
        "status": report["status"],
        "timestamp": timezone.now(),
        "checks": {
            **checks,
            "models": {**checks["models"], "active_count": report["active_models"]},
            "predictions": {"last_hour": report["predictions_last_hour"]},
        },
        "uptime_seconds": report["uptime_seconds"],
        "uptime_human": _uptime_human(report["uptime_seconds"]),
        "last_error": report["last_error"],
    }


@tool("health_check", "Health check",
      "Is the system working: database reachable (with latency), listener and worker alive, active and loaded "
      "models, queue depth, predictions in the last hour, uptime. status is healthy or degraded (last_error says "
      "why).")
def health_check(args: dict) -> dict:
    return health_report()


@tool("get_stats", "System statistics",
      "Totals: predictions (all, last hour/24 h/7 days, positive/negative, coins), models (total/active/inactive), "
      "webhook deliveries, alerts (all, last 24 h) and uptime.")
def get_stats(args: dict) -> dict:
    now = timezone.now()
    stats = alert_selectors.system_stats(now=now)
    model_ids = list(ActiveModel.objects.values_list("id", flat=True))
    per_model = alert_selectors.models_alert_statistics(active_model_ids=model_ids).values()
    positive = sum(figures["positive_predictions"] for figures in per_model)
    negative = sum(figures["negative_predictions"] for figures in per_model)
    total = stats["total_predictions"]
    return {
        "timestamp": now,
        "predictions": {
            "total": total,
            "last_hour": stats["predictions_last_hour"],
            "last_24h": stats["predictions_last_24h"],
            "last_7d": stats["predictions_last_7d"],
            "positive": positive,
            "negative": negative,
            "positive_rate_percent": 100.0 * positive / total if total else 0.0,
            "avg_duration_ms": stats["avg_prediction_time_ms"],
            "unique_coins": stats["coins_tracked"],
        },
        "models": {"total": len(model_ids), "active": stats["active_models"],
                   "inactive": len(model_ids) - stats["active_models"]},
        "webhooks": {"total": stats["webhook_total"], "success": stats["webhook_success"],
                     "failed": stats["webhook_failed"]},
        "alerts": {
            "total": alert_selectors.alert_statistics()["alerts_above_threshold"],
            "last_24h": alert_selectors.alert_statistics(date_from=now - timedelta(days=1))["alerts_above_threshold"],
        },
        "uptime_seconds": max(0, int(time.time() - system_selectors.PROCESS_START_TIME)),
    }


@tool("get_system_config", "Read configuration",
      "The runtime configuration (training-service URL, global n8n webhook URL, ports, database URL with the "
      "password masked).")
def get_system_config(args: dict) -> dict:
    return {"config": config.get_config()}


@tool("update_configuration", "Change configuration",
      "Change runtime configuration keys (merged into the stored configuration; a key set to null or \"\" goes "
      "back to its default). Keys: training_service_url, n8n_webhook_url, api_port, streamlit_port. Takes effect "
      "in every process within seconds; nothing restarts.",
      {"config": {"type": "object", "description": "The keys to change and their new values.",
                  "properties": {
                      "training_service_url": {"type": ["string", "null"], "description": "http(s) URL ending in /api"},
                      "n8n_webhook_url": {"type": ["string", "null"], "description": "Global webhook URL."},
                      "api_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
                      "streamlit_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
                      "database_url": {"type": ["string", "null"], "description": "Read-only; only the shown value."},
                  }}},
      ("config",), read_only=False)
def update_configuration(args: dict) -> dict:
    if not args["config"]:
        raise ToolError("argument 'config': give at least one key to change")
    return {"message": "Konfiguration gespeichert", "config": config.update_config(changes=args["config"])}


@tool("get_logs", "Recent log lines",
      "The last lines of the server log file (LOG_FILE), or a hint where the logs are when there is no file.",
      {"tail": integer("How many lines (1 to 10000).", minimum=1, maximum=10_000, default=100)})
def get_logs(args: dict) -> dict:
    text = system_selectors.log_tail(lines=args["tail"])
    if system_selectors.log_file() is None:
        return {"source": "none", "lines": [], "count": 0, "message": text.strip()}
    lines = text.splitlines()
    return {"source": "files", "lines": lines, "count": len(lines)}


@tool("restart_system", "Restart (not supported)",
      "Not supported here: processes are restarted by their supervisor (systemd, docker, Procfile runner). "
      "Configuration changes apply without a restart. Always returns an error.",
      read_only=False)
def restart_system(args: dict) -> dict:
    raise ToolError(
        "not supported: restart the process with your supervisor (systemd, docker compose, Procfile runner); "
        "configuration changes made with update_configuration apply without a restart"
    )


@tool("delete_old_logs", "Reset a model's logs",
      "Delete every stored prediction of one model (the \"reset logs\" of the UI). Other models are not touched.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True)
def delete_old_logs(args: dict) -> dict:
    result = log_services.delete_old_logs(active_model_id=args["active_model_id"])
    return {
        "message": f"{result['total_deleted']} Einträge gelöscht",
        "active_model_id": args["active_model_id"],
        "deleted_alerts": result["deleted_alert_evaluations"],
        "deleted_predictions": result["deleted_predictions"],
        "deleted_model_predictions": result["deleted_model_predictions"],
    }


@tool("migrate_performance_metrics", "Schema migration (no-op)",
      "Kept for compatibility: the database schema is managed by migrations (python manage.py migrate), so this "
      "changes nothing.")
def migrate_performance_metrics(args: dict) -> dict:
    return {"message": "schema is managed by migrations (python manage.py migrate); nothing to do"}


@tool("debug_active_models", "Debug: active model rows",
      "Read-only dump of the active models' stored rows (settings, target, training metrics, load errors).")
def debug_active_models(args: dict) -> dict:
    rows = [
        {field.attname: getattr(model, field.attname) for field in model._meta.concrete_fields}
        for model in prediction_selectors.list_models(include_inactive=False)
    ]
    return {"active_models": rows, "count": len(rows)}


@tool("debug_coin_metrics", "Debug: market data summary",
      "Read-only summary of the coin_metrics table: rows, newest and oldest timestamp, distinct coins.")
def debug_coin_metrics(args: dict) -> dict:
    return prediction_selectors.coin_metrics_summary()


# === dispatch ========================================================================================================

TOOL_COUNT = 38


def _readable_text(exc: BaseException, args: dict) -> str | None:
    """The message of an exception meant for the caller (unknown ids, refused values, training-service failures);
    None for anything else (a bug: logged with its traceback)."""
    if isinstance(exc, (ObjectDoesNotExist, log_services.ModelNotFound, legacy_services.ModelNotFound)):
        if "active_model_id" in args:
            return f"model {args['active_model_id']} not found (see list_active_models with include_inactive=true)"
        return f"not found: {exc}"
    if isinstance(exc, DjangoValidationError):
        return "; ".join(exc.messages)
    if isinstance(exc, READABLE_ERRORS):
        message = getattr(exc, "message", None)
        return message if isinstance(message, str) and message else str(exc) or type(exc).__name__
    return None


READABLE_ERRORS = (
    ToolError, registry_services.InvalidSetting, registry_services.ModelImportError, registry_services.OperationRefused,
    registry_services.RegistrationError, training_service.TrainingServiceError, log_selectors.NotFound,
    prediction_services.NoActiveModels, config.ConfigError,
)


def _with_connection(function, *args):
    """Run database work in a worker thread as Django runs a request: stale connections closed before and after."""
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


# Tool calls run in a small pool of their own: calls of several agents run in parallel, and each thread keeps at
# most one database connection (reused for CONN_MAX_AGE), so MCP holds at most this many per web process.
TOOL_THREADS = int(getattr(settings, "MCP_TOOL_THREADS", 8))
_executor = ThreadPoolExecutor(max_workers=TOOL_THREADS, thread_name_prefix="mcp-tool")


async def in_thread(function, *args):
    return await sync_to_async(_with_connection, thread_sensitive=False, executor=_executor)(function, *args)


def _result(data: dict, *, error: bool) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(data, indent=2, ensure_ascii=False))],
        structured_content=data,
        is_error=error,
    )


async def run_tool(name: str, arguments: dict | None, *, caller: str = "-") -> types.CallToolResult:
    """Validate, run the tool in a worker thread, shape the result; every failure becomes an error result."""
    started = time.perf_counter()
    arguments = arguments or {}
    spec = TOOLS.get(name)
    label = name if spec is not None else "unknown"
    try:
        if spec is None:
            raise ToolError(f"Unknown tool: {name}. Call tools/list for the available tools.")
        problems = validation_errors(name, arguments)
        if problems:
            raise ToolError("invalid arguments: " + "; ".join(problems))
        args = _with_defaults(name, arguments)
        answer = await in_thread(spec.handler, args)
        assert "success" not in answer, f"{name} must not answer its own 'success' key"
        data = jsonable({"success": True, **answer})
        error = False
    except Exception as exc:  # every failure is a result the agent can read, never a broken session
        error = True
        text = _readable_text(exc, arguments)
        if text is None:
            logger.exception("MCP tool %s failed", name)
            text = f"internal error in {name}: {type(exc).__name__}: {exc}"
        data = {"success": False, "error": text}
    outcome = "error" if error else "ok"
    metrics.MCP_TOOL_CALLS.labels(tool=label, outcome=outcome).inc()
    logger.info("MCP tool %s by %s: %s in %.1f ms%s", name, caller, outcome, 1000 * (time.perf_counter() - started),
                f" ({data['error']})" if error else "")
    return _result(data, error=error)


def _caller_name(ctx) -> str:
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None) or {}
    caller = scope.get("mcp_caller")
    return getattr(caller, "username", None) or "-"


async def _list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[spec.as_tool() for spec in TOOLS.values()])


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await run_tool(params.name, params.arguments, caller=_caller_name(ctx))


def _input_schema(name: str):
    spec = TOOLS.get(name)
    return spec.input_schema if spec is not None else None


server: Server = Server(
    SERVER_NAME,
    version=SERVER_VERSION,
    description=SERVER_DESCRIPTION,
    instructions=INSTRUCTIONS,
    get_tool_input_schema=_input_schema,
    on_list_tools=_list_tools,
    on_call_tool=_call_tool,
)


def server_info() -> dict:
    """GET /mcp/info: identity, both transports and the tool list."""
    return {
        "name": SERVER_NAME,
        "version": SERVER_VERSION,
        "description": SERVER_DESCRIPTION,
        "transport": "streamable-http",
        "transports": {
            "streamable-http": {"endpoint": "/mcp/", "protocol_versions": "2025-03-26 and later"},
            "sse": {"endpoint": "/mcp/sse", "messages_endpoint": "/mcp/messages/", "protocol_version": "2024-11-05"},
        },
        "endpoint": "/mcp/",
        "sse_endpoint": "/mcp/sse",
        "messages_endpoint": "/mcp/messages/",
        "authentication": "Authorization: Bearer <API token>",
        "tools": [{"name": spec.name, "description": spec.description} for spec in TOOLS.values()],
        "tools_count": len(TOOLS),
    }


async def health_payload() -> dict:
    """GET /mcp/health: what the health_check tool answers."""
    data = await in_thread(health_report)
    return jsonable({"success": True, **data})


assert len(TOOLS) == TOOL_COUNT, sorted(TOOLS)
