"""Which MCP tools a caller may see and call: each tool's declared scope (ToolSpec.scope) against the caller's token,
and for a token limited to some models, the models a call names.

`tools/list` shows only the tools the token may call; a call of another tool, or one naming a model outside the
token's list, is refused with a message naming the missing scope or the model, and recorded in the audit trail.
"""

from __future__ import annotations

from audit.models import Door
from audit.services import record_refusal
from pumpserver.scopes import Access
from web.mcp.registry import ToolError, ToolSpec

# Arguments that name local model ids, besides `active_model_id` (which every tool means the same way).
MODEL_LIST_ARGUMENTS = {
    "get_all_models_alert_statistics": "active_model_ids",
    "predict_coin": "model_ids",
    "compare_models": "ids",
}
MODEL_ID_ARGUMENTS = {"get_alert_statistics": "model_id"}  # elsewhere `model_id` is the training service's id
# Tools whose answer shows the model they were about (the id asked for is not a model id).
ANSWER_MODEL = {"get_alert_details": ("alert", "alert", "active_model_id"), "get_backtest": ("backtest", "active_model_id")}
# Lists over every model with an optional `active_model_id` filter: a model-limited token must name one of its
# models (a token limited to one model gets it filled in).
FILTERED_LISTS = ("get_alerts", "get_predictions", "get_model_predictions", "get_alert_statistics")
# Figures and logs over every model at once: hidden from, and refused to, a model-limited token.
SERVER_WIDE = ("get_stats", "get_logs")


def access_of_caller(caller) -> Access | None:
    return getattr(caller, "access", None)


def visible(spec: ToolSpec, caller) -> bool:
    access = access_of_caller(caller)
    if access is None or not access.allows(spec.scope):
        return False
    return access.model_ids is None or spec.name not in SERVER_WIDE


class ToolRefused(ToolError):
    """A call the token may not make; the message names the missing scope or the model."""


def refuse(caller, *, tool: str, message: str, missing: str) -> None:
    """The one place an MCP call is refused for its scope or a model: recorded in the audit trail, then an error
    result naming what is missing."""
    record_refusal(door=Door.MCP, user_id=getattr(caller, "user_id", None), username=getattr(caller, "username", ""),
                   token_hash=getattr(caller, "token_hash", ""), target=tool, missing_scope=missing)
    raise ToolRefused(message)


def check_call(spec: ToolSpec, args: dict, caller) -> dict:
    """The arguments to run `spec` with, after checking the caller's scope and models (a model-limited token's
    model lists are narrowed to its models); ToolRefused otherwise."""
    access = access_of_caller(caller)
    if access is None or not access.allows(spec.scope):
        held = access.scope if access is not None else None
        refuse(caller, tool=spec.name, missing=spec.scope,
               message=f"{spec.name} needs the '{spec.scope}' scope; this token has '{held or 'no scope'}'.")
    if access.model_ids is None:
        return args
    if spec.name in SERVER_WIDE:
        refuse(caller, tool=spec.name, missing="model", message=access.server_wide_message(action=spec.name))
    args = dict(args)
    named = [args[key] for key in ("active_model_id", MODEL_ID_ARGUMENTS.get(spec.name)) if key and key in args]
    list_key = MODEL_LIST_ARGUMENTS.get(spec.name)
    if list_key is not None:
        if isinstance(args.get(list_key), list) and args[list_key]:
            named += list(args[list_key])
        else:  # "every model" means every model of this token
            args[list_key] = sorted(access.model_ids)
    if spec.name in FILTERED_LISTS and not named:
        if len(access.model_ids) != 1:
            refuse(caller, tool=spec.name, missing="model",
                   message=f"this token is limited to models {access.model_list()}: name one with active_model_id.")
        args["active_model_id"] = next(iter(access.model_ids))
    for model_id in named:
        if not access.allows_model(model_id):
            refuse(caller, tool=spec.name, missing=f"model {model_id}", message=access.model_message(model_id))
    return args


def check_answer(spec: ToolSpec, answer: dict, caller) -> dict:
    """The answer, narrowed to the caller's models: list_active_models lists only them; an alert or backtest of
    another model is refused."""
    access = access_of_caller(caller)
    if access is None or access.model_ids is None:
        return answer
    if spec.name == "list_active_models":
        models = [model for model in answer["models"] if access.allows_model(model["id"])]
        active = sum(1 for model in models if model["is_active"])
        return {**answer, "models": models, "total": len(models), "active_count": active,
                "inactive_count": len(models) - active}
    where = ANSWER_MODEL.get(spec.name)
    if where is not None:
        model_id = answer
        for key in where:
            model_id = model_id.get(key) if isinstance(model_id, dict) else None
        if not access.allows_model(model_id):
            refuse(caller, tool=spec.name, missing=f"model {model_id}", message=access.model_message(model_id))
    return answer
