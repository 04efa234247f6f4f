"""n8n webhooks: target URL policy, the existing server's payload, and delivery from a durable outbox.

A webhook's life:
1. The listener (and POST /api/predict) stores predictions and, in the same transaction, writes one
   `webhook_deliveries` row per (target URL, coin event): `enqueue_deliveries`. Nothing is sent in that
   transaction; a django-q2 task is queued right after the commit, and the `deliver-webhooks` schedule (every
   minute) picks up anything that task missed.
2. A worker claims due rows (`FOR UPDATE SKIP LOCKED`, then a short lease), POSTs them outside any transaction,
   writes one `prediction_webhook_log` row per attempt and settles the delivery: delivered, retry later, or failed.

Retry policy: every attempt that does not end in a 2xx answer is retried, 4xx included (n8n answers 404 while a
workflow is inactive, and a receiver fixed later should still get what it missed). Redirects are not followed
(they could lead to a private address; configure the final URL). Waits double from 5 s up to 1 h, ±20 % jitter,
until 24 h after the delivery was created; the attempt at that mark is the last, after which the delivery is
`failed` (the dead letter) until someone redelivers it. A URL refused by the address policy fails at once,
without a request. Delivery is at least once: receivers can drop repeats by the `X-Pump-Delivery` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from requests.adapters import HTTPAdapter

from predictions.models import DeliveryStatus, WebhookDelivery, WebhookLog
from pumpserver import metrics
from pumpserver.config import global_n8n_webhook_url
from pumpserver.webhook_urls import InvalidWebhookUrl, UnresolvableWebhookHost, validate_webhook_url

if TYPE_CHECKING:
    from inference.scoring import ServedModel
    from inference.engine import CoinEvent
    from predictions.services import StoredPrediction

logger = logging.getLogger(__name__)

SERVICE_NAME = "pump-server"
PAYLOAD_VERSION = "1.0.0"

RETRY_FIRST_DELAY_SECONDS = 5
RETRY_MAX_DELAY_SECONDS = 3600
RETRY_JITTER = 0.2  # ±20 %: deliveries that failed together (receiver down) do not all come back at once
GIVE_UP_AFTER = timedelta(hours=24)
RESPONSE_BODY_LIMIT = 10_000  # bytes of the receiver's answer kept in the log
SEND_CONCURRENCY = 8  # parallel POSTs per worker run, so one slow receiver does not hold up the others

DELIVERY_TASK = "predictions.tasks.deliver_due_webhooks"

# --- what is sent --------------------------------------------------------------------------------------------------


def target_url(model: ServedModel) -> str | None:
    """The model's URL, else the global one (N8N_WEBHOOK_URL, else the one saved on the settings page)."""
    return model.n8n_webhook_url or global_n8n_webhook_url() or None


def alert_threshold(model: ServedModel) -> float:
    return model.alert_threshold if model.alert_threshold is not None else settings.DEFAULT_ALERT_THRESHOLD


def passes_send_mode(modes: Iterable[str], *, probability: float, threshold: float) -> bool:
    """The send-mode filter: elements are OR-combined; positive_only means 0.5 ≤ p < threshold (no alerts)."""
    modes = set(modes)
    if "all" in modes:
        return True
    return (
        ("alerts_only" in modes and probability >= threshold)
        or ("positive_only" in modes and 0.5 <= probability < threshold)
        or ("negative_only" in modes and probability < 0.5)
    )


def group_by_target(items: Iterable[StoredPrediction]) -> dict[tuple[str, CoinEvent], list[StoredPrediction]]:
    """Results to send, by (URL, coin event): models sharing a URL share one POST per coin event."""
    groups: dict = defaultdict(list)
    for item in items:
        model = item.model
        url = target_url(model)
        if not model.n8n_enabled or not url:
            continue
        if passes_send_mode(model.n8n_send_mode, probability=item.probability, threshold=alert_threshold(model)):
            groups[(url, item.event)].append(item)
    return dict(groups)


def build_payloads(*, items: Iterable[StoredPrediction]) -> list[tuple[str, dict]]:
    """(url, payload) per POST for these results, after the n8n_enabled, URL and send-mode filters."""
    return [(url, payload_for(event, group)) for (url, event), group in group_by_target(items).items()]


def payload_for(event: CoinEvent, items: list[StoredPrediction]) -> dict:
    """The existing server's payload for one coin event; its keys are what n8n workflows read."""
    predictions = [_prediction_entry(item) for item in items]
    return {
        "coin_id": event.mint,
        "timestamp": _iso(event.timestamp),
        "predictions": predictions,
        "metadata": {
            "total_predictions": len(predictions),
            "alerts_count": sum(1 for p in predictions if p["is_alert"]),
            "service": SERVICE_NAME,
            "version": PAYLOAD_VERSION,
        },
    }


def _prediction_entry(item: StoredPrediction) -> dict:
    threshold = alert_threshold(item.model)
    return {
        "prediction": int(item.prediction),
        "probability": float(item.probability),
        "is_alert": item.probability >= threshold,
        "alert_threshold": threshold,
        "model": _model_entry(item.model),
    }


def _model_entry(model: ServedModel) -> dict:
    return {
        "id": model.model_id,  # the training-service id (null for models uploaded or trained here)
        "active_model_id": model.id,
        "name": model.name,
        "model_type": model.model_type,
        "target_variable": model.target_variable,
        "target_operator": model.target_operator,
        "target_value": model.target_value,
        "future_minutes": model.future_minutes,
        "price_change_percent": model.price_change_percent,
        "target_direction": model.target_direction,
        "features": list(model.features),
        "phases": list(model.phases) if model.phases else None,
        "total_predictions": model.total_predictions,
        "last_prediction_at": _iso(model.last_prediction_at),
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt_timezone.utc)
    return moment.isoformat()


# --- the outbox --------------------------------------------------------------------------------------------------


def enqueue_deliveries(*, stored: list[StoredPrediction], capped: list[StoredPrediction], now: datetime) -> int:
    """Write the outbox rows for one batch inside the caller's transaction; returns how many.

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
        WebhookDelivery.objects.bulk_create(rows)
        _start_delivery_after_commit()
    return len(rows)


def redeliver(*, delivery_ids: Iterable, now: datetime | None = None) -> int:
    """Put delivered or failed deliveries back in the outbox, due now; returns how many.

    They keep their delivery_id (receivers can recognise the repeat) and their creation time, so one past its 24 h
    window gets a single further attempt.
    """
    count = WebhookDelivery.objects.filter(
        delivery_id__in=list(delivery_ids), status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]
    ).update(status=DeliveryStatus.PENDING, next_attempt_at=now or timezone.now(), delivered_at=None)
    if count:
        _start_delivery_after_commit()
    return count


def _queue_delivery_task() -> None:
    from django_q.tasks import async_task

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


@dataclass(frozen=True)
class AttemptResult:
    """How one POST ended: an HTTP status (any answer), or an error text (no answer, or refused before sending)."""

    status: int | None = None
    body: str | None = None
    error: str | None = None
    refused: bool = False
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


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
    """Claim up to `limit` due deliveries, POST them (several at once) and settle each; `now` is for tests."""
    clock = (lambda: now) if now is not None else timezone.now
    claimed = list(WebhookDelivery.objects.raw(CLAIM_SQL, [clock() + _lease(limit), clock(), limit]))
    report = DeliveryReport(claimed=len(claimed))
    if claimed:
        with ThreadPoolExecutor(max_workers=min(SEND_CONCURRENCY, len(claimed))) as pool:
            # Only HTTP runs in the pool; the database writes stay on this thread (and its connection).
            attempts = {pool.submit(attempt_delivery, delivery): delivery for delivery in claimed}
            for done in as_completed(attempts):
                outcome = _settle(attempts[done], done.result(), clock())
                setattr(report, outcome, getattr(report, outcome) + 1)
    metrics.WEBHOOK_OUTBOX_DEPTH.set(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count())
    return report


def _lease(limit: int) -> timedelta:
    """Long enough for every claimed POST to finish (each within about two timeouts), with a margin."""
    rounds = math.ceil(limit / SEND_CONCURRENCY)
    return timedelta(seconds=rounds * 2 * settings.N8N_WEBHOOK_TIMEOUT + 60)


def attempt_delivery(delivery: WebhookDelivery) -> AttemptResult:
    """One POST of the delivery's payload; never raises. The URL is checked again first (DNS may have changed)."""
    started = time.perf_counter()
    try:
        validate_webhook_url(delivery.webhook_url)
    except UnresolvableWebhookHost as exc:
        return AttemptResult(error=str(exc), seconds=time.perf_counter() - started)
    except InvalidWebhookUrl as exc:
        return AttemptResult(error=f"refused: {exc}", refused=True)
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timeout = settings.N8N_WEBHOOK_TIMEOUT
    try:
        with _session().post(
            delivery.webhook_url, data=body, headers=request_headers(body, delivery_id=str(delivery.delivery_id)),
            timeout=timeout, allow_redirects=False, stream=True,
        ) as response:
            return AttemptResult(
                status=response.status_code, body=_read_limited(response), seconds=time.perf_counter() - started
            )
    except requests.Timeout as exc:
        return AttemptResult(error=f"timeout after {timeout:g} s: {exc}", seconds=time.perf_counter() - started)
    except Exception as exc:  # requests' errors, and anything unexpected: one bad receiver must not stop the run
        if not isinstance(exc, requests.RequestException):
            logger.exception("webhook %s: unexpected error while sending", delivery.delivery_id)
        return AttemptResult(error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - started)


def request_headers(body: bytes, *, delivery_id: str) -> dict[str, str]:
    """Headers of every POST; X-Pump-Signature (HMAC-SHA256 of the exact body) only when WEBHOOK_SECRET is set."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"{SERVICE_NAME}/{PAYLOAD_VERSION}",
        "X-Pump-Delivery": delivery_id,
    }
    if settings.WEBHOOK_SECRET:
        digest = hmac.new(settings.WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Pump-Signature"] = f"sha256={digest}"
    return headers


_session_lock = threading.Lock()
_shared_session: requests.Session | None = None


def _session() -> requests.Session:
    """One session per process: connections to a receiver are reused across deliveries and runs."""
    global _shared_session
    with _session_lock:
        if _shared_session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_maxsize=SEND_CONCURRENCY)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _shared_session = session
        return _shared_session


def _read_limited(response: requests.Response) -> str:
    """At most RESPONSE_BODY_LIMIT bytes of the answer: a huge body is neither downloaded nor stored."""
    received = bytearray()
    for chunk in response.iter_content(chunk_size=4096):
        received += chunk
        if len(received) >= RESPONSE_BODY_LIMIT:
            break
    raw = bytes(received[:RESPONSE_BODY_LIMIT])
    try:
        return _text(raw.decode(response.encoding or "utf-8", errors="replace"))
    except LookupError:  # the receiver named a charset Python does not know
        return _text(raw.decode("utf-8", errors="replace"))


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "") if value else value  # PostgreSQL text cannot hold NUL


def retry_delay(attempt: int) -> timedelta:
    """Wait after failed attempt number `attempt` (1-based): 5 s, 10 s, 20 s, … at most 1 h, with jitter."""
    base = RETRY_FIRST_DELAY_SECONDS * 2 ** min(attempt - 1, 20)
    jittered = base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    return timedelta(seconds=min(RETRY_MAX_DELAY_SECONDS, jittered))


def _settle(delivery: WebhookDelivery, result: AttemptResult, now: datetime) -> str:
    """Record the attempt and the delivery's new state; returns the outcome (delivered, retry, failed, refused)."""
    outcome, changes = _next_state(delivery, result, now)
    with transaction.atomic():
        WebhookLog.objects.create(
            coin_id=delivery.coin_id, data_timestamp=delivery.data_timestamp, webhook_url=delivery.webhook_url,
            payload=delivery.payload, response_status=result.status, response_body=result.body,
            error_message=_text(result.error), delivery=delivery, attempt=delivery.attempts,
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
                       delivery.attempts, outcome, _describe(result))
    return outcome


def _next_state(delivery: WebhookDelivery, result: AttemptResult, now: datetime) -> tuple[str, dict]:
    if result.succeeded:
        return "delivered", {"status": DeliveryStatus.DELIVERED, "delivered_at": now, "last_error": None}
    error = _text(_describe(result))
    if result.refused:
        return "refused", {"status": DeliveryStatus.FAILED, "last_error": error}
    give_up_at = delivery.created_at + GIVE_UP_AFTER
    if now >= give_up_at:
        return "failed", {"status": DeliveryStatus.FAILED, "last_error": error}
    next_attempt = min(now + retry_delay(delivery.attempts), give_up_at)  # the last try lands on the 24 h mark
    return "retry", {"next_attempt_at": next_attempt, "last_error": error}


def _describe(result: AttemptResult) -> str:
    if result.error is not None:
        return result.error
    return f"HTTP {result.status}: {(result.body or '')[:200]}"
