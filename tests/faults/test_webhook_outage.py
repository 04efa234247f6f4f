"""The webhook receiver is down for a while, then up: a real worker process delivers every delivery, none twice.

The receiver's port is chosen in advance and nothing listens on it at first (connection refused, as when n8n is
down); the listener keeps writing outbox rows meanwhile. Then a pytest-httpserver starts on that port.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from pytest_httpserver import HTTPServer

from predictions.models import DeliveryStatus, ModelPrediction, WebhookDelivery, WebhookLog
from pumpserver.models import ProcessHeartbeat
from tests.conftest import test_database_url
from tests.faults.processes import Processes, free_port, wait_for
from tests.test_listener import MINT, ROWS, insert, register_xgb, rows_of

pytestmark = pytest.mark.django_db(transaction=True)

OUTAGE_SECONDS = 5
# Retries wait 5 s then 10 s (±20 %): a delivery that failed twice is due again at most ~12 s after the outage. The
# stream goes on that long, so each listener commit's delivery task also picks up the retries that are due.
STREAM_AFTER_OUTAGE_SECONDS = 13
STREAM_STEP_SECONDS = 0.1


def stream_step(market, mints, step: int) -> None:
    insert(market, [rows_of(mint)[step] for mint in mints if step < len(rows_of(mint))])


def test_receiver_down_then_up_every_delivery_made_exactly_once(market, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    model = register_xgb(n8n_webhook_url=url)  # send mode "all": one POST per predicted coin event
    mints = sorted({row[MINT] for row in ROWS})
    receiver = HTTPServer(host="127.0.0.1", port=port)
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    processes = Processes(tmp_path)
    try:
        worker = processes.worker(test_database_url(), WORKER_PROCESSES="1")
        processes.listener(test_database_url())
        wait_for(lambda: ProcessHeartbeat.objects.filter(kind="worker", pid=worker.pid).exists()
                 and ProcessHeartbeat.objects.filter(kind="listener").exists(),
                 timeout=60, message="worker or listener did not start")

        # Receiver down: the stream goes on, deliveries pile up and their first attempts fail.
        insert(market, [row for mint in mints for row in rows_of(mint)[:30]])
        step = 30
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_ends:
            stream_step(market, mints, step)
            step += 1
            time.sleep(STREAM_STEP_SECONDS)
        wait_for(lambda: WebhookLog.objects.filter(webhook_url=url, response_status__isnull=True).exists(),
                 timeout=30, message="the worker never tried the receiver while it was down")

        receiver.start()
        stream_ends = time.monotonic() + STREAM_AFTER_OUTAGE_SECONDS
        while time.monotonic() < stream_ends:
            stream_step(market, mints, step)
            step += 1
            time.sleep(STREAM_STEP_SECONDS)
        wait_for(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,), timeout=30)
        # Anything still waiting for a retry is sent by the worker's own deliver-webhooks schedule (every minute).
        wait_for(lambda: not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists(), timeout=100,
                 interval=0.5, message=lambda: "deliveries still pending:\n" + processes.report())
        time.sleep(1)  # a late duplicate would arrive now
    finally:
        if receiver.is_running():
            receiver.stop()
        exits = processes.stop_all()
    assert all(code == 0 for code in exits.values()), (exits, processes.report())

    deliveries = list(WebhookDelivery.objects.all())
    received = Counter(request.headers["X-Pump-Delivery"] for request, _ in receiver.log)
    assert deliveries and {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    assert received == {str(d.delivery_id): 1 for d in deliveries}  # every delivery, none twice
    # One delivery per stored prediction (one model, send mode "all"): the outbox lost nothing.
    assert len(deliveries) == ModelPrediction.objects.filter(active_model=model).count()
    by_id = {str(d.delivery_id): d for d in deliveries}
    for request, _ in receiver.log:
        body = json.loads(request.get_data())
        delivery = by_id[request.headers["X-Pump-Delivery"]]
        assert body == delivery.payload and body["coin_id"] == delivery.coin_id
    # The outage was real: some deliveries needed more than one attempt, each failed one logged without an answer.
    retried = [d for d in deliveries if d.attempts > 1]
    assert retried
    failed_attempts = WebhookLog.objects.filter(response_status__isnull=True)
    assert failed_attempts.count() == sum(d.attempts - 1 for d in deliveries)
    assert all(row.error_message for row in failed_attempts)
