"""A running backtest yields to live work: its pipeline threads run at BACKTEST_NICE (with BACKTEST_NICE_BACKENDS the
PostgreSQL backends of their connections too, where the server runs on this machine, as the test server does), and it
starts reads and stores only while a running listener has no queued work, waiting a bounded time."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

import pytest
from django.db import connection

from backtests.pipeline import Pipeline, lower_priority
from predictions.models import PendingCoinMetric
from pumpserver.heartbeat import Heartbeat
from pumpserver.models import ProcessKind

pytestmark = pytest.mark.django_db(transaction=True)


def _priorities() -> tuple[int, int]:
    """This thread's nice value and its connection's backend's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), os.getpriority(os.PRIO_PROCESS, backend)


def _may_renice_backends() -> bool:
    """Root, or the user PostgreSQL runs as (the embedded test server under root runs as its own user)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return os.geteuid() in (0, os.stat(f"/proc/{backend}").st_uid)


@pytest.mark.parametrize("backends", [False, True])
def test_pipeline_threads_and_their_backends_run_at_the_backtest_priority(settings, backends):
    settings.BACKTEST_NICE = 17
    settings.BACKTEST_NICE_BACKENDS = backends
    caller = _priorities()
    # Not allowed to renice PostgreSQL's processes: the backend keeps its priority, silently.
    backend = 17 if backends and _may_renice_backends() else caller[1]
    with Pipeline() as pipeline:
        assert pipeline.threaded
        steps = [pipeline.compute(_priorities), pipeline.read(_priorities).result()]
    assert steps == [(17, backend), (17, backend)]
    assert _priorities() == caller  # the caller (a worker's task thread, say) keeps its own


def test_nice_zero_keeps_the_normal_priority(settings):
    settings.BACKTEST_NICE = 0
    seen = []
    worker = threading.Thread(target=lambda: (lower_priority(), seen.append(_priorities()), connection.close()))
    worker.start()
    worker.join()
    assert seen == [(0, 0)]


def test_it_waits_while_a_listener_has_queued_work_and_not_longer_than_allowed(settings):
    settings.BACKTEST_YIELD_QUEUE_ROWS = 3
    settings.BACKTEST_YIELD_MAX_SECONDS = 1
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    PendingCoinMetric.objects.bulk_create([PendingCoinMetric(mint="m", data_timestamp=moment)] * 3)
    with Pipeline(threaded=False) as pipeline:
        assert pipeline.yield_to_live() == 0.0  # no listener runs: nobody would work the queue off
    listener = Heartbeat(ProcessKind.LISTENER)
    listener.beat()
    with Pipeline(threaded=False) as pipeline:
        assert pipeline.yield_to_live() >= 1.0  # it waits, then goes on although the queue stays deep
        PendingCoinMetric.objects.filter(pk=PendingCoinMetric.objects.order_by("pk").first().pk).delete()
        assert pipeline.yield_to_live() == 0.0  # fewer rows than the threshold
        PendingCoinMetric.objects.create(mint="m", data_timestamp=moment)
        stored = []
        pipeline.store(stored.append, "group")  # a step waits before it starts, and counts its wait
        pipeline.wait_stored()
        assert stored == ["group"] and pipeline.yielded >= 1.0
        settings.BACKTEST_YIELD_QUEUE_ROWS = 0
        assert pipeline.yield_to_live() == 0.0  # waiting switched off
