"""MCP tools of the alerts: the legacy alert list and details, alert statistics, deleting a model's alerts."""

from __future__ import annotations

from alerts import legacy_selectors, legacy_services
from alerts import selectors as alert_selectors
from pumpserver.scopes import ADMIN
from web.mcp.registry import (
    LIMIT,
    OFFSET,
    ToolError,
    active_model_id,
    boolean,
    integer,
    parse_time,
    string,
    timestamp,
    tool,
)


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
        raise ToolError(f"Alert {args['alert_id']} not found")
    return {"alert": details}


@tool("get_alert_statistics", "Alert statistics",
      "Success statistics of alerts (counts, verdicts, success rates, summed price changes, per model) and of the "
      "other predictions (non_alerts_*), optionally for one model and a time range of prediction times. "
      "total_alerts = pending + success + failed + expired; total_predictions counts every prediction.",
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
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True, scope=ADMIN)
def delete_model_alerts(args: dict) -> dict:
    deleted = legacy_services.delete_model_alerts(active_model_id=args["active_model_id"])
    return {"message": f"{deleted} alerts deleted", "active_model_id": args["active_model_id"],
            "deleted_alerts": deleted}
