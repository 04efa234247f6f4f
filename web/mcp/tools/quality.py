"""MCP tools of live model quality: one model's figures over a window, and several models compared (with McNemar's
test per pair). The answers have the REST API's shape (web/api/quality/serializers.py) and its window rules."""

from __future__ import annotations

from rest_framework import serializers

from web.api.quality import answers
from web.api.quality import serializers as s
from web.mcp.registry import ToolError, active_model_id, integer, model_or_error, string, timestamp, tool

WINDOW = string(f"Named window ending now: {', '.join(s.WINDOWS)} (default {s.DEFAULT_WINDOW}); not together with "
                "start/end.", enum=s.WINDOWS)
START = timestamp("Range start (instead of window); needs end.")
END = timestamp("Range end, exclusive; needs start.")


def _first_error(errors) -> str:
    field, messages = next(iter(errors.items()))
    text = " ".join(str(message) for message in messages) if isinstance(messages, list) else str(messages)
    return f"argument '{field}': {text}"


def _window(args: dict) -> dict:
    """window, start and end checked as the REST endpoints check them."""
    data = {key: args[key] for key in ("window", "start", "end") if args.get(key) not in (None, "")}
    serializer = s.WindowQuerySerializer(data=data)
    if not serializer.is_valid():
        raise ToolError(_first_error(serializer.errors))
    return serializer.validated_data


@tool("get_model_quality", "Live quality of a model",
      "Is the model still worth its alerts? Its live figures over a window (1h, 24h, 7d, all; or start/end), from "
      "judged predictions: alert success rate with its Wilson 95 % interval (success_rate_low/high), precision, "
      "recall and F1 of the 0/1 prediction, ROC AUC and Brier score of the probability, calibration in 10 bins, "
      "average price change and ATH gain of alerts, feature drift (psi per feature, drifted_features), whether the "
      "worker flagged it degraded (and why), and the references it is held against (training metrics, latest "
      "backtest). Rates are fractions; null where nothing is judged.",
      {"active_model_id": active_model_id(), "window": WINDOW, "start": START, "end": END}, ("active_model_id",))
def get_model_quality(args: dict) -> dict:
    model = model_or_error(args["active_model_id"])
    window = _window(args)
    return {"quality": answers.model_quality(model, window=window["window"], start=window["start"],
                                             end=window["end"])}


@tool("compare_models", "Compare models' live quality",
      "Two to six models over the same window, side by side (the figures of get_model_quality for each), and for "
      "every pair McNemar's exact test on the coin events both were judged on: `better` names the model that is "
      "right more often at p < 0.05 (first or second of the pair), null when the difference may be chance.",
      {"ids": {"type": "array", "items": integer("A model's active_model_id.", minimum=1),
               "minItems": s.MIN_COMPARED, "maxItems": s.MAX_COMPARED, "uniqueItems": True,
               "description": f"{s.MIN_COMPARED} to {s.MAX_COMPARED} different model ids."},
       "window": WINDOW, "start": START, "end": END}, ("ids",))
def compare_models(args: dict) -> dict:
    try:
        ids = s.parse_ids(",".join(str(pk) for pk in args["ids"]))
    except serializers.ValidationError as exc:
        raise ToolError(f"argument 'ids': {' '.join(map(str, exc.detail))}") from None
    window = _window(args)
    try:
        models = answers.models_of(ids)
    except answers.ModelsNotFound as exc:
        raise ToolError(f"{exc} (see list_active_models with include_inactive=true)") from None
    return answers.comparison(models, window=window["window"], start=window["start"], end=window["end"])
