"""MCP tools of the predictions: dry-run prediction, stored predictions and the prediction log, a coin's chart."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from alerts import legacy_services
from predictions import log_selectors, log_services
from predictions import services as prediction_services
from pumpserver.scopes import ADMIN
from web.api.predictions.serializers import ModelPredictionRowSerializer
from web.mcp.registry import (
    LIMIT,
    MAX_PAGE,
    OFFSET,
    TAGS,
    ToolError,
    active_model_id,
    integer,
    number,
    parse_time,
    string,
    timestamp,
    tool,
)


def _label(prediction: int) -> str:
    return "POSITIVE (UP)" if prediction == 1 else "NEGATIVE (DOWN)"


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
        return {"found": False, "prediction": None, "message": f"No prediction for coin {args['coin_id']}"}
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
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True, scope=ADMIN)
def delete_model_predictions(args: dict) -> dict:
    deleted = log_services.delete_model_predictions(active_model_id=args["active_model_id"])
    return {
        "message": f"{deleted} predictions deleted",
        "active_model_id": args["active_model_id"],
        "deleted_predictions": deleted,
    }


@tool("reset_model_statistics", "Reset a model's counters",
      "Reset a model's prediction counter (total_predictions) and last-prediction time. Stored predictions are kept "
      "(use delete_model_predictions to remove them).",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True, scope=ADMIN)
def reset_model_statistics(args: dict) -> dict:
    deleted = legacy_services.reset_model_statistics(active_model_id=args["active_model_id"])
    return {
        "message": "Statistics reset",
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
