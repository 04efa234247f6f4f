"""django-q2 tasks of the predictions app (run by `python manage.py qcluster`)."""

from __future__ import annotations

import time
from dataclasses import asdict

from predictions.webhook_services import DeliveryReport, deliver_due

# One run works off the outbox for at most about this long, so it never holds a worker for the task timeout;
# whatever is left is picked up by the next run (the minute schedule or the next listener commit).
RUN_SECONDS = 60


def deliver_due_webhooks() -> dict:
    """Send every webhook that is due: queued after each commit that wrote deliveries, and every minute.

    Several runs at once are fine: each claims different deliveries (SKIP LOCKED).
    """
    deadline = time.monotonic() + RUN_SECONDS
    total = DeliveryReport()
    while True:
        report = deliver_due()
        total.add(report)
        if not report.claimed or time.monotonic() >= deadline:
            return asdict(total)
