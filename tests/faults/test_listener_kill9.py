"""kill -9 of the listener in the middle of a batch, during a stream: nothing is lost, nothing is predicted twice.

The kill is made to land inside the batch transaction for certain: the test holds a row lock on the models (as a
long transaction elsewhere might), so the listener's batch, having claimed its rows and predicted them, waits on
its INSERT; `pg_stat_activity` shows it waiting with a transaction id, and then it gets SIGKILL.
"""

from __future__ import annotations

import time

import pytest
from django.db.models import Count

from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction
from pumpserver.database import open_connection
from tests.conftest import test_database_url
from tests.faults.processes import Processes, hold_models_locked, wait_for, wait_for_blocked_batch
from tests.test_listener import MINT, ROWS, insert, newest_rows, register_rf, register_xgb, rows_of

pytestmark = pytest.mark.django_db(transaction=True)


def queued(market, mint=None, timestamp=None) -> int:
    if mint is None:
        return market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone()[0]
    return market.execute(
        "SELECT count(*) FROM coin_metrics_queue WHERE mint = %s AND data_timestamp = %s", [mint, timestamp]
    ).fetchone()[0]


def test_kill9_inside_a_batch_loses_nothing_and_duplicates_nothing(market, tmp_path):
    models = [register_xgb(), register_rf()]
    # The coin with the shortest history ends inside the batch that is killed; the other two stream on.
    short, *long = sorted({row[MINT] for row in ROWS}, key=lambda mint: len(rows_of(mint)))
    last = len(rows_of(short)) - 1  # its newest row, claimed by the listener that is killed
    newest_short = newest_rows([short])[short]
    everyone = [short, *long]
    processes = Processes(tmp_path)
    locker = open_connection(autocommit=False)
    try:
        first = processes.listener(test_database_url())
        insert(market, [row for mint in everyone for row in rows_of(mint)[: last - 20]])  # history, one statement
        wait_for(lambda: ModelPrediction.objects.exists(), timeout=60, message="the listener never predicted")
        for step in range(last - 20, last):  # the stream: one row per coin per step
            insert(market, [rows_of(mint)[step] for mint in everyone])
            time.sleep(0.02)
        wait_for(lambda: queued(market) == 0, timeout=30, message="the listener did not keep up")

        hold_models_locked(locker)
        insert(market, [rows_of(mint)[last] for mint in everyone])
        blocked_pid = wait_for_blocked_batch(market)
        first.kill9()  # claimed, predicted, inserting: the transaction is open
        assert first.popen.returncode == -9

        # The stream goes on with no listener running.
        for step in range(last + 1, last + 30):
            insert(market, [rows_of(mint)[step] for mint in long])
        locker.rollback()  # the orphaned backend now finds its client gone: its transaction aborts
        wait_for(
            lambda: market.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [blocked_pid]).fetchone()
            == (0,),
            timeout=20, message="the killed listener's session did not end",
        )
        assert queued(market, short, newest_short) == 1  # the claim was rolled back: the row is queued again
        assert not ModelPrediction.objects.filter(coin_id=short, prediction_timestamp=newest_short).exists()

        second = processes.listener(test_database_url())
        for step in range(last + 30, max(len(rows_of(mint)) for mint in long)):
            insert(market, [rows_of(mint)[step] for mint in long if step < len(rows_of(mint))])
            time.sleep(0.01)
        newest = newest_rows(everyone)
        wait_for(
            lambda: queued(market) == 0 and all(
                ModelPrediction.objects.filter(active_model=model, coin_id=mint, prediction_timestamp=ts).exists()
                for model in models for mint, ts in newest.items()
            ),
            timeout=90, message="the restarted listener did not catch up",
        )
        time.sleep(1.5)  # one more poll must add nothing
        assert second.stop() == 0, processes.report()
    finally:
        locker.close()
        processes.stop_all()

    assert queued(market) == 0
    duplicates = (
        ModelPrediction.objects.values("active_model", "coin_id", "prediction_timestamp")
        .annotate(n=Count("id")).filter(n__gt=1)
    )
    assert not duplicates.exists()
    for model in models:
        model.refresh_from_db()
        stored = ModelPrediction.objects.filter(active_model=model)
        assert model.total_predictions == stored.count()  # the killed batch counted nothing it did not store
        for mint, timestamp in newest.items():
            assert stored.filter(coin_id=mint, prediction_timestamp=timestamp).count() == 1, (model, mint)
    assert ActiveModel.objects.filter(load_error__isnull=False).count() == 0
