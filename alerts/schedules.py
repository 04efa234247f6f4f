"""The worker's recurring jobs as django-q2 schedules; `alerts.services.ensure_schedules` creates or updates them by
name after every migrate.

Updating by name makes a restart or a second migrate idempotent: a schedule is never duplicated, and a changed
interval setting takes effect at the next migrate.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django_q.models import Schedule


@dataclass(frozen=True)
class RecurringJob:
    name: str
    func: str
    schedule_type: str
    minutes: int | None = None
    cron: str | None = None


def cron_every(seconds: int) -> str:
    """A croniter expression (seconds field last) firing every `seconds`; django-q2 checks schedules every 30 s."""
    if seconds < 60:
        return f"* * * * * */{seconds}"
    return f"*/{max(1, seconds // 60)} * * * *"


def recurring_jobs() -> list[RecurringJob]:
    return [
        RecurringJob("evaluate-predictions", "alerts.tasks.evaluate_and_track", Schedule.CRON,
                     cron=cron_every(settings.EVALUATION_INTERVAL_SECONDS)),
        # Safety net: the listener enqueues a delivery run right after committing new outbox rows.
        RecurringJob("deliver-webhooks", "predictions.tasks.deliver_due_webhooks", Schedule.MINUTES, minutes=1),
        RecurringJob("housekeeping", "alerts.tasks.housekeeping", Schedule.HOURLY),
        # Live model quality (the quality app, a layer above: named here by its task path only).
        RecurringJob("model-quality", "quality.tasks.refresh_and_check", Schedule.MINUTES, minutes=5),
    ]
