"""Writes of the demo (modelregistry/demo.py): registering the bundled model on a new installation, and serving a
model trained on this installation's market in its place, with the reason recorded for the dashboard."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from modelregistry.demo import DEMO_ALERT_THRESHOLD, ROLE_BUNDLED, ROLE_TRAINED, bundled_model_files
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.services import register_model


def register_bundled_demo_model() -> ActiveModel | None:
    """Register and activate the bundled demo model if the registry is empty; None (nothing stored) otherwise."""
    with transaction.atomic():
        if ActiveModel.objects.exists():
            return None
        artifact, meta = bundled_model_files()
        details = meta.pop("training_details", None) or {}
        build = details.get("bundled_build") or {}
        details["demo"] = {
            "role": ROLE_BUNDLED,
            "at": timezone.now().isoformat(),
            "reason": (
                "bundled with the server so that the demo predicts from its first minute: trained by "
                f"build_demo_model on {build.get('rows', 'many')} rows of the simulated market "
                f"(seed {build.get('seed', '?')}), the same kind of market make run simulates"
            ),
        }
        model = register_model(
            artifact=artifact, meta=meta, source=ModelSource.COMMAND_LINE, filename="model.json", activate=True,
            training_details=details,
        )
        model.alert_threshold = DEMO_ALERT_THRESHOLD
        model.save(update_fields=["alert_threshold", "updated_at"])
    return model


def serve_trained_demo_model(*, trained_model_id: int, replaced_model_ids: list[int], reason: str) -> ActiveModel:
    """Activate the model train_demo_model trained (with the demo alert threshold) and deactivate the models it
    replaces, in one transaction; both sides record it under training_details["demo"]."""
    now = timezone.now()
    with transaction.atomic():
        model = ActiveModel.objects.select_for_update().get(pk=trained_model_id)
        replaced = list(ActiveModel.objects.select_for_update().filter(pk__in=replaced_model_ids).order_by("pk"))
        model.training_details = {
            **(model.training_details or {}),
            "demo": {
                "role": ROLE_TRAINED,
                "at": now.isoformat(),
                "replaced": [{"id": old.pk, "name": old.display_name} for old in replaced],
                "reason": reason,
            },
        }
        model.is_active = True
        model.activated_at = model.activated_at or now
        model.alert_threshold = DEMO_ALERT_THRESHOLD
        model.save(update_fields=["training_details", "is_active", "activated_at", "alert_threshold", "updated_at"])
        for old in replaced:
            details = dict(old.training_details or {})
            details["demo"] = {
                **(details.get("demo") or {"role": ROLE_BUNDLED}),
                "replaced_by": {"id": model.pk, "name": model.display_name, "at": now.isoformat()},
            }
            old.training_details = details
            old.is_active = False
            old.save(update_fields=["training_details", "is_active", "updated_at"])
    return model
