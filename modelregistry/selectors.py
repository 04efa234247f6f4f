"""Reads of the model registry: a model's row, its stored file versions, and the training service's models with the
registry model each was imported as (its prediction statistics and n8n delivery status are reads of predictions, in
predictions.selectors)."""

from __future__ import annotations

from django.db.models import Q

from modelregistry.demo import EARLIER_BUNDLED_NAMES
from modelregistry.models import ActiveModel, ModelArtifact, ModelSource
from modelregistry.training_service import TrainingServiceClient, available_model


def get_model(*, active_model_id: int) -> ActiveModel:
    """The model's row with its settings; raises ActiveModel.DoesNotExist."""
    return ActiveModel.objects.get(pk=active_model_id)


def model_versions(*, active_model_id: int) -> list[dict]:
    """The stored versions of a model's file, newest first (without the file itself)."""
    return list(
        ModelArtifact.objects.filter(model_id=active_model_id)
        .order_by("-version")
        .values("version", "format", "sha256", "size_bytes", "created_at", "is_current")
    )


def model_artifact(*, active_model_id: int) -> tuple[bytes, str]:
    """The model's current file and its format; raises ModelArtifact.DoesNotExist."""
    artifact = ModelArtifact.objects.only("content", "format").get(model_id=active_model_id, is_current=True)
    return bytes(artifact.content), artifact.format


def training_service_models(*, client: TrainingServiceClient) -> list[dict]:
    """The training service's models as AvailableModel objects (records without an integer id are left out), each
    with `imported_as`: the registry id of the model imported from it, or None. Raises TrainingServiceError."""
    records = [r for r in client.list_models() if isinstance(r.get("id"), int) and not isinstance(r.get("id"), bool)]
    imported = dict(ActiveModel.objects.filter(model_id__in=[r["id"] for r in records]).values_list("model_id", "pk"))
    return [{**available_model(record), "imported_as": imported.get(record["id"])} for record in records]


def _demo_model_filter() -> Q:
    earlier_bundled = Q(model_name__in=EARLIER_BUNDLED_NAMES, source=ModelSource.COMMAND_LINE, model_id__isnull=True)
    return Q(training_details__has_key="demo") | earlier_bundled


def demo_models() -> list[ActiveModel]:
    """The demo's models, newest first: the bundled one and those train_demo_model trained here (training_details
    has a "demo" record), and the bundled model of earlier versions, registered without one."""
    return list(ActiveModel.objects.filter(_demo_model_filter()).order_by("-created_at"))


def other_models_exist(*, active: bool = False) -> bool:
    """Whether the registry holds a model (with `active`: an active one) that is not one of the demo's (imported,
    uploaded or trained by a user)."""
    models = ActiveModel.objects.filter(is_active=True) if active else ActiveModel.objects.all()
    return models.exclude(_demo_model_filter()).exists()
