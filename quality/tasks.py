"""django-q2 task of the worker: bring the hourly quality aggregates up to date, then check every active model."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Max
from django.utils import timezone

from inference.scoring import return_freed_memory
from modelregistry.models import ActiveModel
from predictions.retention import record_aggregated_until
from quality import drift, services
from quality.models import QualityHour

logger = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=10)  # verdicts written while the last refresh ran are taken in again


def refresh_and_check() -> dict:
    now = timezone.now()
    last = QualityHour.objects.aggregate(last=Max("updated_at"))["last"]
    hours = services.refresh_hours(since=None if last is None else last - OVERLAP)
    # Every verdict written before now - OVERLAP is in the aggregates now: retention may drop its partition.
    record_aggregated_until(until=now - OVERLAP)
    drift_hours = 0
    for model in ActiveModel.objects.filter(is_active=True):
        try:
            if drift.ensure_reference(model=model, now=now) is not None:
                drift_hours += drift.count_hours(active_model_id=model.pk, now=now)
        except Exception:  # a model whose file cannot load (the listener reports it) must not stop the others
            logger.exception("quality: feature drift of model %s failed", model.pk)
        # The model and its sample's histories are gone: give their heap back before the next model loads, so the
        # worker's peak is one model's, not one model's on top of the last one's leftovers (docs/operations.md).
        return_freed_memory()
    degraded = services.check_models(now=now)
    logger.info("quality: %d hour aggregates, %d drift hours, newly degraded: %s", hours, drift_hours,
                degraded or "none")
    return {"hours": hours, "drift_hours": drift_hours, "newly_degraded": degraded}
