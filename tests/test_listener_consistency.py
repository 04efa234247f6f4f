"""Several listeners see the same truth: late rows, corrected (UPDATEd) and DELETEd history rows reach every
listener's history cache before its next features, whichever listener claimed them.

The guarantee under test (docs/how-it-works.md, "Several listeners, one truth"): the stored probability of a
prediction for coin C at data time T equals what /api/predict computes for C at T (`predict_coin(coin_id=C,
timestamp=T)`: C's newest FEATURE_HISTORY_SIZE rows at or before T, per the model's phase filter) on the database as
it was committed when a listener claimed that row. Changes committed later never alter a stored prediction.

The stream test therefore runs in steps. Within a step every coin's statements come in time order of the rows they
touch (a DELETE and an UPDATE of older rows, a late row between two held rows, then new rows), each committed on
its own, so that nothing a row's history holds (rows at or before its time) changes after the row was inserted; after
the listeners drained the step, each prediction the step stored is compared with predict_coin on the database as it
is then, which is the database as of those predictions. The next step's corrections then hit rows the listeners
already hold in their caches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import psycopg
import pytest

from inference import history
from inference.history_cache import HistoryCache
from inference.history_changes import ChangeReader
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.services import register_model
from modelregistry.serving import model_cache
from predictions.models import ModelPrediction
from predictions.services import predict_coin, process_pending_batch
from pumpserver.database import open_connection
from tests import parity
from tests.conftest import PROJECT_DIR, test_database_url
from tests.test_history_cache import same_histories
from tests.test_listener import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HEADER, ROWS = parity.coin_metrics_rows()
INSERT_SQL = f"INSERT INTO coin_metrics ({', '.join(HEADER)}) VALUES ({', '.join(['%s'] * len(HEADER))})"
MINT, TIMESTAMP, PRICE_CLOSE, VOLUME = (HEADER.index(c) for c in ("mint", "timestamp", "price_close", "volume_sol"))
MINTS = sorted({row[MINT] for row in ROWS})
HISTORY_LIMIT = 40  # small, so that deletes leave cached histories short and late rows reach past the held rows
PREFILL, STEPS, NEW_ROWS_PER_STEP = 60, 7, 4


def rows_of(mint: str) -> list:
    return [row for row in ROWS if row[MINT] == mint]


def register_models() -> list[ActiveModel]:
    """No phase filter (forest), phases 1-3 (every fixture row) and phases 1 and 3 (a filter that cuts rows out)."""
    xgb = parity.meta("xgb")
    models = [
        register_model(artifact=parity.artifact("model_xgb.json"), meta=xgb, source=ModelSource.COMMAND_LINE,
                       activate=True),
        register_model(artifact=parity.artifact("model_rf.pkl"), meta=parity.meta("rf"),
                       source=ModelSource.COMMAND_LINE, filename="model_rf.pkl", activate=True, trust_pickle=True),
        register_model(artifact=parity.artifact("model_xgb.json"), meta={**xgb, "id": 777, "name": "phases 1 and 3",
                       "phases": [1, 3]}, source=ModelSource.COMMAND_LINE, activate=True),
    ]
    ActiveModel.objects.update(min_scan_interval_seconds=0)
    return models


def listener_process(*, lanes: int = 1) -> subprocess.Popen:
    """`manage.py listen_events` as operators run it, one row per batch (so listeners split every coin's rows)."""
    env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings",
           "FEATURE_HISTORY_SIZE": str(HISTORY_LIMIT)}
    return subprocess.Popen(
        [sys.executable, "manage.py", "listen_events", "--poll-interval", "1", "--batch-size", "1",
         "--lanes", str(lanes)],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def late_copy(row, *, after: str) -> list:
    """A row of its own a millisecond after `after`, with other prices: it arrives after newer rows of its coin."""
    late = list(row)
    late[TIMESTAMP] = (datetime.fromisoformat(after) + timedelta(milliseconds=1)).isoformat()
    late[PRICE_CLOSE] = repr(1.7 * float(late[PRICE_CLOSE]))
    late[VOLUME] = repr(3.0 * float(late[VOLUME]))
    return late


def corrections_then_rows(market: psycopg.Connection, mint: str, *, step: int, inserted: list, streamed: set):
    """One coin's statements of a step, in time order of the rows they touch, as a generator (one statement per
    next()): delete an older row, correct a newer one, insert a late row between the two newest, then new rows.
    Each inserted row's (mint, time) goes into `streamed`."""
    held = inserted  # the coin's rows in coin_metrics now, ascending by time
    if step > 0:
        gone = held.pop(-6)
        market.execute('DELETE FROM coin_metrics WHERE mint = %s AND "timestamp" = %s', [mint, gone[TIMESTAMP]])
        yield
        market.execute(
            'UPDATE coin_metrics SET price_close = price_close * 1.3, volume_sol = volume_sol * 2, '
            'phase_id_at_time = CASE WHEN %s THEN 2 ELSE phase_id_at_time END WHERE mint = %s AND "timestamp" = %s',
            [step % 2 == 0, mint, held[-3][TIMESTAMP]],
        )
        yield
        late = late_copy(held[-2], after=held[-2][TIMESTAMP])
        market.execute(INSERT_SQL, late)
        held.insert(len(held) - 1, late)
        streamed.add((mint, datetime.fromisoformat(late[TIMESTAMP])))
        yield
    start = PREFILL + step * NEW_ROWS_PER_STEP
    for row in rows_of(mint)[start:start + NEW_ROWS_PER_STEP]:
        market.execute(INSERT_SQL, row)
        held.append(row)
        streamed.add((mint, datetime.fromisoformat(row[TIMESTAMP])))
        yield


def expected_probability(cache: dict, prediction: ModelPrediction) -> float:
    """What /api/predict computes now for the prediction's coin and data time, for its model."""
    key = (prediction.coin_id, prediction.prediction_timestamp)
    if key not in cache:
        answer = predict_coin(coin_id=key[0], timestamp=key[1], store=False)
        cache[key] = {p["active_model_id"]: p["probability"] for p in answer["predictions"]}
    return cache[key][prediction.active_model_id]


@pytest.mark.parametrize(("listeners", "lanes"), [(1, 1), (2, 1), (4, 1), (1, 2), (2, 2)])
def test_every_stored_probability_equals_predict_as_of_its_claim(market, settings, listeners, lanes):
    settings.FEATURE_HISTORY_SIZE = HISTORY_LIMIT
    register_models()
    inserted = {mint: rows_of(mint)[:PREFILL] for mint in MINTS}
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, [row for mint in MINTS for row in inserted[mint]])
    market.execute("DELETE FROM coin_metrics_queue")  # a history to start from, not work
    processes = [listener_process(lanes=lanes) for _ in range(listeners)]
    checked, seen_id, streamed = 0, 0, set()
    try:
        for step in range(STEPS):
            streams = [corrections_then_rows(market, mint, step=step, inserted=inserted[mint], streamed=streamed)
                       for mint in MINTS]
            while streams:  # the coins' statements interleaved, one at a time, each committed on its own
                streams = [stream for stream in streams if next(stream, StopIteration) is not StopIteration]
            wait_until(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,))
            expected: dict = {}
            stored = list(ModelPrediction.objects.filter(id__gt=seen_id).order_by("id"))
            assert stored, f"step {step}: nothing predicted"
            for prediction in stored:
                assert prediction.probability == expected_probability(expected, prediction), (
                    step, prediction.coin_id, prediction.prediction_timestamp, prediction.active_model_id)
            checked += len(stored)
            seen_id = stored[-1].id
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=30)[0] for process in processes]
    assert [p.returncode for p in processes] == [0] * listeners, outputs
    # Every late and new row of every step was predicted by the models whose phases it passes, none twice.
    rows_predicted = STEPS * NEW_ROWS_PER_STEP + (STEPS - 1)
    predicted = set(ModelPrediction.objects.values_list("coin_id", "prediction_timestamp").distinct())
    assert len(streamed) == len(MINTS) * rows_predicted
    # Once seen in CI (62 of 102 rows predicted) and never locally: say which rows and what the listeners logged.
    assert predicted == streamed, (sorted(streamed - predicted), [output[-4000:] for output in outputs])
    assert checked == ModelPrediction.objects.count() >= 2 * len(MINTS) * rows_predicted


# --- the mechanics, in one process: two caches stand for two listeners ---------------------------------------------


def fresh(requests, limit):
    return history.coin_histories(requests=requests, limit=limit)


def test_a_change_is_reported_once_whatever_order_the_writers_commit_in(market):
    mint_a, mint_b, _mint_c = MINTS
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows_of(mint_a)[:10] + rows_of(mint_b)[:10])
    reader = ChangeReader(keep_seconds=3600)
    assert reader.read().since == {}  # the first read only marks where this reader starts
    with open_connection() as first, open_connection() as second:
        first.execute('UPDATE coin_metrics SET volume_sol = 1 WHERE mint = %s AND "timestamp" = %s',
                      [mint_a, rows_of(mint_a)[4][TIMESTAMP]])  # its change row has the lower id, commits last
        second.execute('DELETE FROM coin_metrics WHERE mint = %s AND "timestamp" >= %s',
                       [mint_b, rows_of(mint_b)[7][TIMESTAMP]])
        second.commit()
        changes = reader.read()
        assert changes.since == {mint_b: datetime.fromisoformat(rows_of(mint_b)[7][TIMESTAMP])}
        first.commit()
    assert reader.read().since == {mint_a: datetime.fromisoformat(rows_of(mint_a)[4][TIMESTAMP])}
    assert reader.read().since == {}
    # Appending newer rows records nothing; a row older than its coin's newest does (it is late).
    market.execute(INSERT_SQL, rows_of(mint_a)[10])
    assert reader.read().since == {}
    late = late_copy(rows_of(mint_a)[2], after=rows_of(mint_a)[2][TIMESTAMP])
    market.execute(INSERT_SQL, late)
    assert reader.read().since == {mint_a: datetime.fromisoformat(late[TIMESTAMP])}


@pytest.mark.parametrize("limit", [1000, 8])
def test_a_cache_sees_what_another_listener_claimed_corrected_or_deleted(market, limit):
    register_models()
    mint = MINTS[0]
    rows = rows_of(mint)
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows[:30])
    market.execute("DELETE FROM coin_metrics_queue")
    ours, theirs = HistoryCache(limit=limit), HistoryCache(limit=limit)
    requests = {None: [mint], (1, 3): [mint]}

    def agrees() -> None:
        expected = fresh(requests, limit)
        for cache in (ours, theirs):
            cached = cache.histories(requests)
            for key in requests:
                same_histories(cached[key], expected[key])

    agrees()
    # A late row claimed by the other listener: ours never sees it claimed.
    market.execute(INSERT_SQL, late_copy(rows[27], after=rows[27][TIMESTAMP]))
    report = process_pending_batch(limit=100, cache=model_cache(size=10), history_limit=limit, history_cache=theirs)
    assert report.claimed == 1 and ours.stats["late_rows"] == 0
    agrees()
    assert ours.stats["changed_coins"] == 1
    # A correction of a held row, then a delete of the newest rows (the held rows shrink below the limit).
    market.execute('UPDATE coin_metrics SET price_close = price_close * 2 WHERE mint = %s AND "timestamp" = %s',
                   [mint, rows[25][TIMESTAMP]])
    agrees()
    loads = ours.stats["full_loads"]
    market.execute('DELETE FROM coin_metrics WHERE mint = %s AND "timestamp" >= %s', [mint, rows[22][TIMESTAMP]])
    agrees()
    if limit < 30:
        assert ours.stats["full_loads"] > loads  # too few rows left: read whole again, not guessed
    # New rows after all that are appended as usual; emptying the table empties every cache.
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows[30:40])
    agrees()
    market.execute("SET lock_timeout = '10s'")
    market.execute("TRUNCATE coin_metrics")
    for cache in (ours, theirs):
        assert all(block.n_coins == 0 for block in cache.histories(requests).values())


def test_a_late_row_is_predicted_from_the_rows_up_to_it(market, settings):
    """Whoever read newer rows of the coin already: the late row's features stop at its own time."""
    models = register_models()
    mint = MINTS[1]
    rows = rows_of(mint)
    cache = HistoryCache(limit=HISTORY_LIMIT)
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows[:80])
    process_pending_batch(limit=1000, cache=model_cache(size=10), history_limit=HISTORY_LIMIT, history_cache=cache)
    late = late_copy(rows[70], after=rows[70][TIMESTAMP])
    market.execute(INSERT_SQL, late)
    report = process_pending_batch(limit=1000, cache=model_cache(size=10), history_limit=HISTORY_LIMIT,
                                   history_cache=cache)
    assert {item.event.timestamp for item in report.stored} == {datetime.fromisoformat(late[TIMESTAMP])}
    moment = datetime.fromisoformat(late[TIMESTAMP])
    for item in report.stored:
        block = history.coin_histories(requests={item.model.phases: [mint]}, limit=HISTORY_LIMIT,
                                       until=moment)[item.model.phases]
        assert block.timestamps_ns[-1] == history.to_micros(moment) * 1000
        assert len(block.timestamps_ns) == HISTORY_LIMIT or item.model.phases == (1, 3)
    stored = {p.active_model_id: p.probability for p in ModelPrediction.objects.filter(prediction_timestamp=moment)}
    settings.FEATURE_HISTORY_SIZE = HISTORY_LIMIT
    answer = predict_coin(coin_id=mint, timestamp=moment, store=False)
    assert stored == {p["active_model_id"]: p["probability"] for p in answer["predictions"]
                      if p["active_model_id"] in stored}
    assert len(stored) == len(models) - (0 if int(late[HEADER.index("phase_id_at_time")]) in (1, 3) else 1)
    assert np.isfinite(list(stored.values())).all()
