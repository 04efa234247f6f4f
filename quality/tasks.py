"""django-q2 task of the worker: bring the hourly quality aggregates up to date, then check every active model."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Max

from quality import services
from quality.models import QualityHour

logger = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=10)  # verdicts written while the last refresh ran are taken in again


def refresh_and_check() -> dict:
    last = QualityHour.objects.aggregate(last=Max("updated_at"))["last"]
    hours = services.refresh_hours(since=None if last is None else last - OVERLAP)
    degraded = services.check_models()
    logger.info("quality: %d hour aggregates refreshed, newly degraded: %s", hours, degraded or "none")
    return {"hours": hours, "newly_degraded": degraded}
