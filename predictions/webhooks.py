"""n8n webhooks without the database: what is sent (the existing server's payload), how one POST is made
(headers, signature, one attempt) and when it is tried again (the retry policy). The outbox's writes are in
`predictions.webhook_services`.

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
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import requests
from django.conf import settings
from django.utils import timezone
from requests.adapters import HTTPAdapter

from inference.engine import CoinEvent, Prediction
from inference.scoring import ServedModel
from predictions.models import DeliveryStatus, WebhookDelivery
from pumpserver.config import global_n8n_webhook_url
from pumpserver.webhook_urls import InvalidWebhookUrl, UnresolvableWebhookHost, validate_webhook_url

logger = logging.getLogger(__name__)

SERVICE_NAME = "pump-server"
PAYLOAD_VERSION = "1.0.0"

RETRY_FIRST_DELAY_SECONDS = 5
RETRY_MAX_DELAY_SECONDS = 3600
RETRY_JITTER = 0.2  # ±20 %: deliveries that failed together (receiver down) do not all come back at once
GIVE_UP_AFTER = timedelta(hours=24)
RESPONSE_BODY_LIMIT = 10_000  # bytes of the receiver's answer kept in the log
SEND_CONCURRENCY = 8  # parallel POSTs per worker run, so one slow receiver does not hold up the others

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


def group_by_target(items: Iterable[Prediction]) -> dict[tuple[str, CoinEvent], list[Prediction]]:
    """Results to send, by (URL, coin event): models sharing a URL share one POST per coin event."""
    groups: dict = defaultdict(list)
    targets: dict[int, tuple | None] = {}  # per model, once per call: a batch holds thousands of its results
    for item in items:
        model = item.model
        if model.id not in targets:
            url = target_url(model) if model.n8n_enabled else None
            targets[model.id] = (url, alert_threshold(model)) if url else None
        target = targets[model.id]
        if target is None:
            continue
        url, threshold = target
        if passes_send_mode(model.n8n_send_mode, probability=item.probability, threshold=threshold):
            groups[(url, item.event)].append(item)
    return dict(groups)


def payload_for(event: CoinEvent, items: list[Prediction]) -> dict:
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


def _prediction_entry(item: Prediction) -> dict:
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


# --- one attempt ---------------------------------------------------------------------------------------------------


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
        return storable_text(raw.decode(response.encoding or "utf-8", errors="replace"))
    except LookupError:  # the receiver named a charset Python does not know
        return storable_text(raw.decode("utf-8", errors="replace"))


def storable_text(value: str | None) -> str | None:
    return value.replace("\x00", "") if value else value  # PostgreSQL text cannot hold NUL


# --- when to try again ---------------------------------------------------------------------------------------------


def retry_delay(attempt: int) -> timedelta:
    """Wait after failed attempt number `attempt` (1-based): 5 s, 10 s, 20 s, … at most 1 h, with jitter."""
    base = RETRY_FIRST_DELAY_SECONDS * 2 ** min(attempt - 1, 20)
    jittered = base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    return timedelta(seconds=min(RETRY_MAX_DELAY_SECONDS, jittered))


def next_state(delivery: WebhookDelivery, result: AttemptResult, now: datetime) -> tuple[str, dict]:
    """(outcome, changed fields) of a claimed delivery after this attempt: delivered, refused, failed or retry."""
    if result.succeeded:
        return "delivered", {"status": DeliveryStatus.DELIVERED, "delivered_at": now, "last_error": None}
    error = storable_text(describe(result))
    if result.refused:
        return "refused", {"status": DeliveryStatus.FAILED, "last_error": error}
    give_up_at = delivery.created_at + GIVE_UP_AFTER
    if now >= give_up_at:
        return "failed", {"status": DeliveryStatus.FAILED, "last_error": error}
    next_attempt = min(now + retry_delay(delivery.attempts), give_up_at)  # the last try lands on the 24 h mark
    return "retry", {"next_attempt_at": next_attempt, "last_error": error}


def describe(result: AttemptResult) -> str:
    if result.error is not None:
        return result.error
    return f"HTTP {result.status}: {(result.body or '')[:200]}"
