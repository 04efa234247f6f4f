"""Writes behind the legacy alert/statistics endpoints: delete a model's alerts (A3), reset its counters (S3)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from alerts.selectors import ALERT
from audit.services import record_change
from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction


def delete_model_alerts(*, active_model_id: int) -> int:
    """Delete one model's alerts (its `model_predictions` rows tagged `alert`); the number deleted. Raises
    ActiveModel.DoesNotExist."""
    with transaction.atomic():
        ActiveModel.objects.select_for_update().only("pk").get(pk=active_model_id)
        deleted, _ = ModelPrediction.objects.filter(ALERT, active_model_id=active_model_id).delete()
        record_change(action="delete_alerts", object_type="modelregistry.activemodel", object_id=active_model_id,
                      after={"deleted_alerts": deleted})
    return deleted


STATISTICS_FIELDS = ("total_predictions", "last_prediction_at")


def reset_model_statistics(*, active_model_id: int) -> int:
    """Reset a model's prediction counters (`total_predictions` = 0, `last_prediction_at` = NULL).

    The existing server also deleted the model's rows of the legacy `predictions` table, which does not exist
    here, so nothing is deleted: the prediction log stays (DELETE /api/model-predictions/{id} clears it).
    Returns the number of deleted predictions, always 0.
    """
    with transaction.atomic():
        before = ActiveModel.objects.select_for_update().filter(pk=active_model_id).values(*STATISTICS_FIELDS).get()
        ActiveModel.objects.filter(pk=active_model_id).update(
            total_predictions=0, last_prediction_at=None, updated_at=timezone.now()
        )
        record_change(action="update", object_type="modelregistry.activemodel", object_id=active_model_id,
                      before=before, after={"total_predictions": 0, "last_prediction_at": None})
    return 0
