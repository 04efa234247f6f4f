"""Reads of the model registry: a model's row and its stored file versions (its prediction statistics and n8n
delivery status are reads of predictions, in predictions.selectors)."""

from __future__ import annotations

from modelregistry.models import ActiveModel, ModelArtifact


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
