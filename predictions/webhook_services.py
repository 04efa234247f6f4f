"""Every write of the webhook outbox: queue deliveries, put them back, claim due ones and settle each attempt.

A webhook's life:
1. The listener (and POST /api/predict) stores predictions and, in the same transaction, writes one
   `webhook_deliveries` row per (target URL, coin event): `enqueue_deliveries`. Nothing is sent in that
   transaction; a django-q2 task is queued right after the commit, and the `deliver-webhooks` schedule (every
   minute) picks up anything that task missed.
2. A worker claims due rows (`FOR UPDATE SKIP LOCKED`, then a short lease), POSTs them outside any transaction,
   writes one `prediction_webhook_log` row per attempt and settles the delivery: delivered, retry later, or failed.

What is sent, how one POST is made and the retry policy are in `predictions.webhooks` (no database writes there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.services import record_change
from inference.engine import Prediction
from predictions.models import DeliveryStatus, WebhookDelivery, WebhookLog
from predictions.webhooks import (
    SEND_CONCURRENCY,
    AttemptResult,
    attempt_delivery,
    describe,
    group_by_target,
    next_state,
    payload_for,
    storable_text,
)
from pumpserver import metrics

logger = logging.getLogger("predictions.webhooks")  # the logger name these warnings always had

DELIVERY_TASK = "predictions.tasks.deliver_due_webhooks"


# --- the outbox ----------------------------------------------------------------------------------------------------


def enqueue_deliveries(*, stored: list[Prediction], capped: list[Prediction], now: datetime) -> int:
    """Write the outbox rows for one batch inside the caller's transaction (or a new one); returns how many.

    Stored results are sent subject to the model's n8n settings. Results over a max-log cap were not stored and are
    sent only when the model asks for it (send_ignored_to_n8n, and n8n_enabled): the existing server's intended
    rule, without its endless loop.
    """
    wanted = [*stored, *(item for item in capped if item.model.send_ignored_to_n8n and item.model.n8n_enabled)]
    rows = [
        WebhookDelivery(
            webhook_url=url, coin_id=event.mint, data_timestamp=event.timestamp, payload=payload_for(event, group),
            next_attempt_at=now,
        )
        for (url, event), group in group_by_target(wanted).items()
    ]
    if rows:
        with transaction.atomic(savepoint=False):  # part of the listener's batch: no savepoint round trips
            WebhookDelivery.objects.bulk_create(rows)
            _start_delivery_after_commit()
    return len(rows)


def enqueue_event(*, url: str, subject: str, payload: dict, now: datetime) -> WebhookDelivery:
    """One outbox row for an event that is not a prediction (e.g. `model_degraded`): delivered, signed and retried
    like the prediction webhooks. `subject` takes the place of the coin (e.g. "model:12")."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(webhook_url=url, coin_id=subject, data_timestamp=now, payload=payload,
                                                  next_attempt_at=now)
        _start_delivery_after_commit()
    return delivery


def redeliver(*, delivery_ids: Iterable, now: datetime | None = None) -> int:
    """Put delivered or failed deliveries back in the outbox, due now; returns how many.

    They keep their delivery_id (receivers can recognise the repeat) and their creation time, so one past its 24 h
    window gets a single further attempt.
    """
    delivery_ids = list(delivery_ids)
    with transaction.atomic():
        count = WebhookDelivery.objects.filter(
            delivery_id__in=delivery_ids, status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]
        ).update(status=DeliveryStatus.PENDING, next_attempt_at=now or timezone.now(), delivered_at=None)
        if count:
            _start_delivery_after_commit()
            record_change(action="redeliver", object_type="predictions.webhookdelivery",
                          object_id=",".join(sorted(map(str, delivery_ids)))[:255], after={"requeued": count})
    return count


def _queue_delivery_task() -> None:
    async_task(DELIVERY_TASK, save=False)  # only failures are worth a result row


def _start_delivery_after_commit() -> None:
    """Queue one delivery task when the transaction commits, however many batches in it wrote deliveries."""
    connection = transaction.get_connection()
    if any(func is _queue_delivery_task for _savepoints, func, _robust in connection.run_on_commit):
        return
    # robust: the rows are committed already; if the task queue is unavailable the minute schedule sends them.
    transaction.on_commit(_queue_delivery_task, robust=True)


# --- delivery ------------------------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    retry: int = 0
    failed: int = 0
    refused: int = 0

    def add(self, other: DeliveryReport) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# Claimed rows are leased, not locked: the row lock lasts only this statement, so no transaction stays open while
# the worker waits for receivers. attempts + 1 is the claim's token: a late result of an expired lease is logged
# but cannot settle a delivery that another worker has claimed since.
CLAIM_SQL = """
UPDATE webhook_deliveries
   SET next_attempt_at = %s, attempts = attempts + 1
 WHERE id IN (SELECT id FROM webhook_deliveries
               WHERE status = 'pending' AND next_attempt_at <= %s
               ORDER BY next_attempt_at
               LIMIT %s
                 FOR UPDATE SKIP LOCKED)
RETURNING *
"""


def deliver_due(*, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Claim up to `limit` due deliveries, POST them (several at once) and settle each; `now` is for tests.

    The claim and each settlement are short transactions of their own; none is open while a POST is under way.
    """
    clock = (lambda: now) if now is not None else timezone.now
    with transaction.atomic():
        claimed = list(WebhookDelivery.objects.raw(CLAIM_SQL, [clock() + _lease(limit), clock(), limit]))
    report = DeliveryReport(claimed=len(claimed))
    if claimed:
        with ThreadPoolExecutor(max_workers=min(SEND_CONCURRENCY, len(claimed))) as pool:
            # Only HTTP runs in the pool; the database writes stay on this thread (and its connection).
            attempts = {pool.submit(attempt_delivery, delivery): delivery for delivery in claimed}
            for done in as_completed(attempts):
                outcome = _settle(delivery=attempts[done], result=done.result(), now=clock())
                setattr(report, outcome, getattr(report, outcome) + 1)
    metrics.WEBHOOK_OUTBOX_DEPTH.set(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count())
    return report


def _lease(limit: int) -> timedelta:
    """Long enough for every claimed POST to finish (each within about two timeouts), with a margin."""
    rounds = math.ceil(limit / SEND_CONCURRENCY)
    return timedelta(seconds=rounds * 2 * settings.N8N_WEBHOOK_TIMEOUT + 60)


def _settle(*, delivery: WebhookDelivery, result: AttemptResult, now: datetime) -> str:
    """Record the attempt and the delivery's new state; returns the outcome (delivered, retry, failed, refused)."""
    outcome, changes = next_state(delivery, result, now)
    with transaction.atomic():
        WebhookLog.objects.create(
            coin_id=delivery.coin_id, data_timestamp=delivery.data_timestamp, webhook_url=delivery.webhook_url,
            payload=delivery.payload, response_status=result.status, response_body=result.body,
            error_message=storable_text(result.error), delivery=delivery, attempt=delivery.attempts,
            duration_ms=round(result.seconds * 1000, 3),
        )
        WebhookDelivery.objects.filter(
            pk=delivery.pk, attempts=delivery.attempts, status=DeliveryStatus.PENDING
        ).update(last_response_status=result.status, **changes)
    metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    if not result.refused:
        metrics.WEBHOOK_DELIVERY_SECONDS.observe(result.seconds)
    if outcome != "delivered":
        metrics.ERRORS.labels(type="webhook").inc()
        logger.warning("webhook %s to %s attempt %s: %s (%s)", delivery.delivery_id, delivery.webhook_url,
                       delivery.attempts, outcome, describe(result))
    return outcome
