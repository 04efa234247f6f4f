"""MCP tools of the model registry: list, import, details, activate/deactivate, rename, delete, training metrics."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist

from modelregistry import selectors as registry_selectors
from modelregistry import services as registry_services
from modelregistry import training_service
from predictions import selectors as prediction_selectors
from pumpserver.scopes import ADMIN, OPERATE
from web.api.models.serializers import ModelInfoSerializer
from web.mcp.registry import ToolError, active_model_id, boolean, integer, model_or_error, string, tool


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
    models = [
        {**{k: v for k, v in model.items() if k != "imported_as"}, "features_count": len(model["features"] or [])}
        for model in registry_selectors.training_service_models(client=training_service.TrainingServiceClient())
        if model["imported_as"] is None
    ]
    return {"models": models, "total": len(models)}


@tool("import_model", "Import a model",
      "Import a READY model from the training service by its training-service id (`id` from "
      "list_available_models). The file is downloaded, checked and stored; the model is active at once. "
      "A model that is already imported is refused unless new_version is true (then its current file becomes a "
      "new version of the imported model; its settings are kept).",
      {"model_id": integer("Training-service id of the model.", minimum=1),
       "new_version": boolean("Re-import an already imported model as a new version.", default=False)},
      ("model_id",), read_only=False, open_world=True, scope=ADMIN)
def import_model(args: dict) -> dict:
    model = registry_services.import_from_training_service(model_id=args["model_id"], allow_new_version=args["new_version"])
    return {
        "message": f"Model {model.display_name} imported (active_model_id: {model.pk})",
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
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, scope=OPERATE)
def activate_model(args: dict) -> dict:
    model = registry_services.activate_model(active_model_id=args["active_model_id"])
    return {"message": f"Model {model.display_name} activated", "active_model_id": model.pk}


@tool("deactivate_model", "Deactivate a model",
      "Pause a model: it makes no new predictions; its pending predictions are still evaluated.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, scope=OPERATE)
def deactivate_model(args: dict) -> dict:
    model = registry_services.deactivate_model(active_model_id=args["active_model_id"])
    return {"message": f"Model {model.display_name} deactivated", "active_model_id": model.pk}


@tool("rename_model", "Rename a model",
      "Set a model's display name (shown in statistics, webhooks and pages). Surrounding spaces are trimmed; "
      "an empty name is refused.",
      {"active_model_id": active_model_id(), "new_name": string("The new display name.", min_length=1, max_length=255)},
      ("active_model_id", "new_name"), read_only=False, scope=OPERATE)
def rename_model(args: dict) -> dict:
    name = args["new_name"].strip()
    try:
        model = registry_services.rename_model(active_model_id=args["active_model_id"], custom_name=name)
    except registry_services.InvalidSetting as exc:
        raise ToolError(f"argument 'new_name': {exc.message}") from None
    return {"message": f"Model renamed to {name}", "active_model_id": model.pk, "new_name": name}


@tool("delete_model", "Delete a model",
      "Delete a model for good: its stored files, all its predictions and cache rows. Cannot be undone; "
      "deactivate_model only pauses.",
      {"active_model_id": active_model_id()}, ("active_model_id",), read_only=False, destructive=True, scope=ADMIN)
def delete_model(args: dict) -> dict:
    model = registry_services.delete_model(active_model_id=args["active_model_id"])
    return {
        "message": f"Model {model.display_name} deleted",
        "active_model_id": args["active_model_id"],
        "model_id": model.model_id,
        "model_name": model.model_name,
    }


@tool("update_model_metrics", "Refresh training metrics",
      "Re-read a model's training metrics (accuracy, F1, precision, recall, ROC AUC, MCC, confusion matrix, "
      "simulated profit) from the training service and store them.",
      {"active_model_id": active_model_id(),
       "model_id": integer("Training-service id of the same model (as a check; must match the model).", minimum=1)},
      ("active_model_id", "model_id"), read_only=False, open_world=True, scope=OPERATE)
def update_model_metrics(args: dict) -> dict:
    model = model_or_error(args["active_model_id"])
    if model.model_id != args["model_id"]:
        raise ToolError(
            f"argument 'model_id': model {model.pk} has training-service id {model.model_id}, not {args['model_id']}"
        )
    registry_services.refresh_training_metrics(active_model_id=model.pk)
    return {"message": f"Training metrics of model {model.display_name} updated", "active_model_id": model.pk}
