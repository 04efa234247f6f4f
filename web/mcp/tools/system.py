"""MCP tools of the whole system: health, statistics, configuration, logs, and the compatibility no-ops."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from alerts import selectors as alert_selectors
from modelregistry.models import ActiveModel
from predictions import log_services
from predictions import selectors as prediction_selectors
from pumpserver import config
from pumpserver.scopes import ADMIN
from web import selectors as system_selectors
from web.mcp.registry import ToolError, active_model_id, integer, tool


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
        "degraded_models": report["degraded_models"],
        "uptime_seconds": report["uptime_seconds"],
        "uptime_human": _uptime_human(report["uptime_seconds"]),
        "last_error": report["last_error"],
    }


@tool("health_check", "Health check",
      "Is the system working: database reachable (with latency), listener and worker alive, active and loaded "
      "models, queue depth, predictions in the last hour, uptime, and degraded_models (ids the live-quality check "
      "flagged; they do not change status). status is healthy or degraded (last_error says why).")
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
      ("config",), read_only=False, scope=ADMIN)
def update_configuration(args: dict) -> dict:
    if not args["config"]:
        raise ToolError("argument 'config': give at least one key to change")
    return {"message": "Configuration saved; it applies without a restart", "config": config.update_config(changes=args["config"])}


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
      read_only=False, scope=ADMIN)
def restart_system(args: dict) -> dict:
    raise ToolError(
        "not supported: restart the process with your supervisor (systemd, docker compose, Procfile runner); "
        "configuration changes made with update_configuration apply without a restart"
    )


@tool("delete_old_logs", "Reset a model's logs",
      "Delete every stored prediction of one model (the \"reset logs\" of the UI). Other models are not touched.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True, scope=ADMIN)
def delete_old_logs(args: dict) -> dict:
    result = log_services.delete_old_logs(active_model_id=args["active_model_id"])
    return {
        "message": f"{result['total_deleted']} entries deleted",
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
      "Read-only dump of the active models' stored rows (settings, target, training metrics, load errors).",
      scope=ADMIN)
def debug_active_models(args: dict) -> dict:
    rows = [
        {field.attname: getattr(model, field.attname) for field in model._meta.concrete_fields}
        for model in prediction_selectors.list_models(include_inactive=False)
    ]
    return {"active_models": rows, "count": len(rows)}


@tool("debug_coin_metrics", "Debug: market data summary",
      "Read-only summary of the coin_metrics table: rows, newest and oldest timestamp, distinct coins.",
      scope=ADMIN)
def debug_coin_metrics(args: dict) -> dict:
    return prediction_selectors.coin_metrics_summary()
