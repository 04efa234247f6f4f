"""django-q2 task functions of the worker; `alerts.schedules` runs them (job names there are fixed)."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from alerts import services
from predictions import retention
from pumpserver import metrics

logger = logging.getLogger(__name__)


def evaluate_and_track() -> dict:
    """Track the ATH figures of open predictions, then judge the due ones (the two touch disjoint rows).

    A backlog larger than one run's limit is worked off by further runs within one evaluation interval; the loop
    also stops as soon as a run judges nothing (the rows still due are then in another worker's hands).
    """
    started = time.monotonic()
    ath_updates = services.track_ath()
    metrics.ATH_UPDATES.inc(ath_updates)
    totals = dict.fromkeys(("success", "failed", "not_applicable"), 0)
    while True:
        report = services.evaluate_due()
        for result, count in report.by_result().items():
            totals[result] += count
            if count:
                metrics.EVALUATIONS.labels(result=result).inc(count)
        budget_left = time.monotonic() - started < settings.EVALUATION_INTERVAL_SECONDS
        if not (report.more_due and report.evaluated and budget_left):
            break
    seconds = time.monotonic() - started
    metrics.EVALUATION_RUN_SECONDS.observe(seconds)
    logger.info(
        "evaluation run: %d ATH updates, %d success, %d failed, %d not applicable, more due: %s (%.2f s)",
        ath_updates, totals["success"], totals["failed"], totals["not_applicable"], report.more_due, seconds,
    )
    return {"ath_updates": ath_updates, **totals, "more_due": report.more_due}


def housekeeping() -> dict:
    """Prediction partitions ahead and retention (predictions.retention), then old webhook and audit logs."""
    storage = retention.maintain()
    for line in retention.describe(storage):
        logger.info("housekeeping: %s", line)
    report = services.housekeeping()
    logger.info("housekeeping: %d webhook log rows, %d audit entries, %d idle scan states deleted",
                report.webhook_log_deleted, report.audit_entries_deleted, report.scan_states_deleted)
    return {"webhook_log_deleted": report.webhook_log_deleted, "audit_entries_deleted": report.audit_entries_deleted,
            "scan_states_deleted": report.scan_states_deleted,
            "partitions_created": storage.created, "partitions_dropped": [fate.name for fate in storage.dropped],
            "partitions_kept": {fate.name: fate.kept_because for fate in storage.kept}}
