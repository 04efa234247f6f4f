"""Two listeners and two workers at once under a stream: no prediction, evaluation or delivery is made twice.

Every claim in the system is `FOR UPDATE SKIP LOCKED` (queue rows, due predictions, due deliveries): this runs the
real processes side by side on one database and counts. Evaluation runs are queued by the test while the stream
goes on (as the evaluation schedule would, only more often), several at a time, so the two workers judge
concurrently; the fixture's predictions are due at once (their data time is long past).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime

import pytest
from django.db.models import Count
from django_q.tasks import async_task

from predictions.models import DeliveryStatus, ModelPrediction, WebhookDelivery
from pumpserver.models import ProcessHeartbeat
from tests.conftest import test_database_url
from tests.faults.processes import Processes, wait_for
from tests.test_listener import MINT, ROWS, insert, register_rf, register_xgb, rows_of

pytestmark = pytest.mark.django_db(transaction=True)

EVALUATION_TASK = "alerts.tasks.evaluate_and_track"
EVALUATION_RUN = re.compile(r"evaluation run: \d+ ATH updates, (\d+) success, (\d+) failed, (\d+) not applicable")
LISTENER_DONE = re.compile(r"listener stopped after (\d+) stored predictions")


def verdicts_reported(output: str) -> int:
    return sum(int(a) + int(b) + int(c) for a, b, c in EVALUATION_RUN.findall(output))


def test_two_listeners_and_two_workers_share_the_work_without_doing_any_twice(market, httpserver, tmp_path):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    url = httpserver.url_for("/hook")
    models = [register_xgb(n8n_webhook_url=url), register_rf(n8n_webhook_url=url)]  # one POST per coin event
    mints = sorted({row[MINT] for row in ROWS})
    processes = Processes(tmp_path)
    try:
        listeners = [processes.listener(test_database_url(), name=f"listener{i}") for i in (1, 2)]
        workers = [processes.worker(test_database_url(), name=f"worker{i}", WORKER_PROCESSES="2") for i in (1, 2)]
        wait_for(lambda: ProcessHeartbeat.objects.filter(pid__in=[p.pid for p in listeners + workers]).count() == 4,
                 timeout=90, message=lambda: "not every process started\n" + processes.report())

        insert(market, [row for mint in mints for row in rows_of(mint)[:20]])
        for step in range(20, 140):  # the stream, one row per coin per step
            insert(market, [rows_of(mint)[step] for mint in mints])
            if step % 10 == 0:
                for _ in range(3):  # several evaluation runs at once: both workers judge concurrently
                    async_task(EVALUATION_TASK)
            time.sleep(0.05)
        wait_for(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,), timeout=60)
        for _ in range(3):
            async_task(EVALUATION_TASK)
        wait_for(lambda: not ModelPrediction.objects.filter(status="aktiv").exists(), timeout=60, interval=0.5,
                 message=lambda: "predictions left unevaluated\n" + processes.report())
        wait_for(lambda: not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists(), timeout=90,
                 interval=0.5, message=lambda: "deliveries left pending\n" + processes.report())
        time.sleep(1)  # late duplicates would arrive now
    finally:
        exits = processes.stop_all()
    assert all(code == 0 for code in exits.values()), (exits, processes.report())

    # Predictions: none twice; the listeners' own counts add up to what is stored and to the models' counters.
    stored = ModelPrediction.objects.count()
    assert not ModelPrediction.objects.values("active_model", "coin_id", "prediction_timestamp").annotate(
        n=Count("id")).filter(n__gt=1).exists()
    per_listener = [int(LISTENER_DONE.search(p.output()).group(1)) for p in listeners]
    assert sum(per_listener) == stored, per_listener
    for model in models:
        model.refresh_from_db()
        assert model.total_predictions == ModelPrediction.objects.filter(active_model=model).count()
    for mint in mints:
        newest = datetime.fromisoformat(rows_of(mint)[139][1])
        assert ModelPrediction.objects.filter(coin_id=mint, prediction_timestamp=newest).count() == len(models)

    # Evaluations: every row judged once; the verdicts the runs of both workers report add up to the rows judged.
    evaluated = ModelPrediction.objects.filter(status="inaktiv", evaluated_at__isnull=False,
                                               evaluation_result__isnull=False)
    assert evaluated.count() == stored
    per_worker = [verdicts_reported(p.output()) for p in workers]
    assert sum(per_worker) == stored, per_worker

    # Deliveries: one per coin event, every one delivered, each delivery id received exactly once.
    deliveries = list(WebhookDelivery.objects.all())
    events = ModelPrediction.objects.values("coin_id", "prediction_timestamp").distinct().count()
    assert len(deliveries) == events
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    received = Counter(request.headers["X-Pump-Delivery"] for request, _ in httpserver.log)
    assert received == {str(d.delivery_id): 1 for d in deliveries}
    print(f"predictions per listener {per_listener}, verdicts per worker {per_worker}, {len(deliveries)} deliveries")
