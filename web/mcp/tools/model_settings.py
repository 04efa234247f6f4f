"""MCP tools of a model's settings: alert threshold and n8n, ignore windows, max-log caps, its statistics."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist

from alerts import selectors as alert_selectors
from modelregistry import services as registry_services
from predictions import selectors as prediction_selectors
from pumpserver.scopes import OPERATE
from web.mcp.registry import (
    IGNORE_MAX,
    LOG_CAP_MAX,
    SEND_MODES,
    ToolError,
    active_model_id,
    boolean,
    integer,
    model_or_error,
    number,
    string,
    tool,
)


def _settings_update(model_id: int, changes: dict):
    try:
        return registry_services.update_model_settings(active_model_id=model_id, **changes)
    except ObjectDoesNotExist:
        raise ToolError(f"model {model_id} not found (see list_active_models with include_inactive=true)") from None
    except registry_services.InvalidSetting as exc:
        raise ToolError(exc.message) from None


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
      ("active_model_id",), read_only=False, scope=OPERATE)
def update_alert_config(args: dict) -> dict:
    fields = ("n8n_webhook_url", "n8n_enabled", "n8n_send_mode", "alert_threshold", "coin_filter_mode",
              "coin_whitelist", "min_scan_interval_seconds", "send_ignored_to_n8n")
    changes = {field: args[field] for field in fields if field in args}
    if not changes:
        raise ToolError(f"nothing to change: give at least one of {', '.join(fields)}")
    model = _settings_update(args["active_model_id"], changes)
    return {
        "message": f"Alert configuration of model {model.display_name} updated",
        "active_model_id": model.pk,
        "changes": {field: _change_text(field, value) for field, value in changes.items()},
    }


@tool("get_model_statistics", "Model statistics",
      "Prediction statistics of one model: counts (positive = model output 1), probability averages and "
      "distribution, alerts, coins, and the webhook attempts for its coins.",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_model_statistics(args: dict) -> dict:
    model = model_or_error(args["active_model_id"])
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
    model = model_or_error(args["active_model_id"])
    return {"active_model_id": model.pk, "n8n_status": prediction_selectors.n8n_status(active_model_id=model.pk)}


IGNORE_FIELDS = ("ignore_bad_seconds", "ignore_positive_seconds", "ignore_alert_seconds")
CAP_FIELDS = ("max_log_entries_per_coin_negative", "max_log_entries_per_coin_positive",
              "max_log_entries_per_coin_alert")


@tool("get_ignore_settings", "Ignore windows",
      "Seconds a coin is skipped by the model after a negative / positive / alert prediction (0 = never).",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_ignore_settings(args: dict) -> dict:
    model = model_or_error(args["active_model_id"])
    return {"active_model_id": model.pk, "settings": {field: getattr(model, field) for field in IGNORE_FIELDS}}


@tool("update_ignore_settings", "Change ignore windows",
      "Set all three ignore windows of a model (seconds, 0 to 86400; 0 = never skip).",
      {"active_model_id": active_model_id(),
       "ignore_bad_seconds": integer("Skip the coin this long after a negative prediction (0-86400).",
                                     maximum=IGNORE_MAX),
       "ignore_positive_seconds": integer("Skip the coin this long after a positive prediction (0-86400).",
                                          maximum=IGNORE_MAX),
       "ignore_alert_seconds": integer("Skip the coin this long after an alert (0-86400).", maximum=IGNORE_MAX)},
      ("active_model_id", *IGNORE_FIELDS), read_only=False, scope=OPERATE)
def update_ignore_settings(args: dict) -> dict:
    model = _settings_update(args["active_model_id"], {field: args[field] for field in IGNORE_FIELDS})
    return {
        "message": "Ignore settings updated",
        "active_model_id": model.pk,
        "settings": {field: getattr(model, field) for field in IGNORE_FIELDS},
    }


@tool("get_max_log_entries", "Max-log caps",
      "Per coin and tag, how many pending predictions of the model are stored at most (0 = unlimited).",
      {"active_model_id": active_model_id()}, ("active_model_id",))
def get_max_log_entries(args: dict) -> dict:
    model = model_or_error(args["active_model_id"])
    return {"active_model_id": model.pk, "settings": {field: getattr(model, field) for field in CAP_FIELDS}}


@tool("update_max_log_entries", "Change max-log caps",
      "Set all three per-coin caps of pending predictions (0 to 1000; 0 = unlimited).",
      {"active_model_id": active_model_id(),
       "max_log_entries_per_coin_negative": integer("Cap for negativ rows (0-1000).", maximum=LOG_CAP_MAX),
       "max_log_entries_per_coin_positive": integer("Cap for positiv rows (0-1000).", maximum=LOG_CAP_MAX),
       "max_log_entries_per_coin_alert": integer("Cap for alert rows (0-1000).", maximum=LOG_CAP_MAX)},
      ("active_model_id", *CAP_FIELDS), read_only=False, scope=OPERATE)
def update_max_log_entries(args: dict) -> dict:
    model = _settings_update(args["active_model_id"], {field: args[field] for field in CAP_FIELDS})
    return {
        "message": "Max log entries updated",
        "active_model_id": model.pk,
        "settings": {field: getattr(model, field) for field in CAP_FIELDS},
    }
