"""Every write to the model registry. One `register_model` serves the command line, imports and uploads."""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from modelregistry import loading
from modelregistry.metadata import MetadataError, registry_fields
from modelregistry.models import ActiveModel, ArtifactFormat, ModelArtifact, ModelSource


class RegistrationError(ValueError):
    """The model was not registered; the message says why in one line. Nothing was stored."""


def register_model(
    *,
    artifact: bytes,
    meta: dict,
    source: str,
    filename: str | None = None,
    activate: bool = False,
    trust_pickle: bool = False,
) -> ActiveModel:
    """Validate an artifact against its metadata and store it as the model's newest version.

    The artifact must load, be of the declared type, and take the listed features. A model whose training-service
    id is already registered gets a new version (its settings are kept); otherwise a new entry is created.
    Pickles are only loaded when the caller vouches for their origin, and are stored converted to a safe
    format, so no process ever unpickles them again.
    """
    try:
        fields = registry_fields(meta)
        fmt = loading.detect_format(artifact, filename)
        loaded = loading.load_model(artifact, fmt=fmt, trust_pickle=trust_pickle)
        if loaded.model_type != fields["model_type"]:
            raise MetadataError(
                f"the file holds a {loaded.model_type} model but the metadata says {fields['model_type']}"
            )
        loading.validate_against_metadata(loaded, features=fields["features"])
        if fmt == ArtifactFormat.PICKLE:
            artifact, fmt = loading.export_portable(loaded)
    except (MetadataError, loading.ModelLoadError) as exc:
        raise RegistrationError(str(exc)) from exc

    with transaction.atomic():
        model = None
        if fields["model_id"] is not None:
            model = ActiveModel.objects.select_for_update().filter(model_id=fields["model_id"]).first()
        now = timezone.now()
        if model is None:
            model = ActiveModel(source=source, is_active=False)
        for name, value in fields.items():
            setattr(model, name, value)
        model.downloaded_at = now
        model.load_error = None
        model.load_error_at = None
        if activate and not model.is_active:
            model.is_active = True
            model.activated_at = now
        model.save()
        _add_artifact(model=model, content=artifact, fmt=fmt)
    return model


def _add_artifact(*, model: ActiveModel, content: bytes, fmt: str) -> ModelArtifact:
    latest = model.artifacts.aggregate(latest=Max("version"))["latest"] or 0
    model.artifacts.filter(is_current=True).update(is_current=False)
    return ModelArtifact.objects.create(
        model=model,
        version=latest + 1,
        format=fmt,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        is_current=True,
    )


def mark_model_errored(*, model_id: int, error: str) -> None:
    """Record why a model cannot serve (visible in admin and API); it stays active so a fix takes effect."""
    ActiveModel.objects.filter(pk=model_id).update(load_error=error[:2000], load_error_at=timezone.now())


def clear_model_error(*, model_id: int) -> None:
    ActiveModel.objects.filter(pk=model_id, load_error__isnull=False).update(load_error=None, load_error_at=None)


__all__ = ["RegistrationError", "register_model", "mark_model_errored", "clear_model_error", "ModelSource"]
