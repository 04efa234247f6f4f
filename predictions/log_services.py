"""Writes behind the prediction-log endpoints: deleting a model's prediction log (L2, L4).

(Kept apart from predictions/services.py, which holds the listener's batch writes.)
"""

from __future__ import annotations

from django.db import transaction

from audit.services import record_change
from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction


def delete_model_predictions(*, active_model_id: int) -> int:
    """Delete every `model_predictions` row of one model; the number deleted. Raises ActiveModel.DoesNotExist."""
    with transaction.atomic():
        ActiveModel.objects.select_for_update().only("pk").get(pk=active_model_id)
        deleted, _ = ModelPrediction.objects.filter(active_model_id=active_model_id).delete()
        record_change(action="delete_predictions", object_type="modelregistry.activemodel",
                      object_id=active_model_id, after={"deleted_predictions": deleted})
    return deleted


def delete_old_logs(*, active_model_id: int) -> dict:
    """The "reset logs" of one model (L4): its `model_predictions` rows, and only its own.

    The existing server also deleted rows of the legacy tables (which do not exist here: always 0) and every row
    of *any* model whose coin id starts with `Test` (weakness 16; not done here: `deleted_test_entries` is 0).
    """
    deleted = delete_model_predictions(active_model_id=active_model_id)
    return {
        "success": True,
        "deleted_alert_evaluations": 0,
        "deleted_predictions": 0,
        "deleted_model_predictions": deleted,
        "deleted_test_entries": 0,
        "total_deleted": deleted,
    }
