"""The listener's history cache: batch after batch, what it hands the engine equals a fresh read of coin_metrics.

Rows arrive as a stream (several batches), one of them late (older than rows already read), for three models: no
phase filter, phases [1,2,3] (every fixture row passes) and phases [1,3] (cut out of the rows, or read on its own
when the held rows cannot answer it). Each batch's histories are compared with a fresh read, and every stored
probability with one computed independently from a fresh read (no cache, no shared features, scikit-learn's own
predict path).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from inference import as_of, engine, history, loading
from inference.features import build_features
from inference.history_cache import HistoryCache
from inference.scoring import ModelCache
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.services import register_model
from modelregistry.serving import active_served_models, model_cache
from predictions.services import process_pending_batch
from tests import parity

pytestmark = pytest.mark.django_db(transaction=True)

HEADER, ROWS = parity.coin_metrics_rows()
INSERT_SQL = f"INSERT INTO coin_metrics ({', '.join(HEADER)}) VALUES ({', '.join(['%s'] * len(HEADER))})"
MINT, TIMESTAMP, PHASE, PRICE_CLOSE = (HEADER.index(c) for c in ("mint", "timestamp", "phase_id_at_time", "price_close"))
MINTS = sorted({row[MINT] for row in ROWS})


def rows_of(mint: str) -> list:
    return [row for row in ROWS if row[MINT] == mint]


def register_models() -> None:
    xgb = parity.meta("xgb")  # phases [1, 2, 3]
    register_model(artifact=parity.artifact("model_xgb.json"), meta=xgb, source=ModelSource.COMMAND_LINE, activate=True)
    register_model(artifact=parity.artifact("model_rf.pkl"), meta=parity.meta("rf"), source=ModelSource.COMMAND_LINE,
                   filename="model_rf.pkl", activate=True, trust_pickle=True)  # no phase filter
    register_model(artifact=parity.artifact("model_xgb.json"), meta={**xgb, "id": 777, "name": "phases 1 and 3",
                   "phases": [1, 3]}, source=ModelSource.COMMAND_LINE, activate=True)
    ActiveModel.objects.update(min_scan_interval_seconds=0)


def same_histories(cached, fresh) -> None:
    assert sorted(cached.mints) == sorted(fresh.mints)
    position = {mint: i for i, mint in enumerate(cached.mints)}
    for i, mint in enumerate(fresh.mints):
        j = position[mint]
        ours, theirs = slice(cached.offsets[j], cached.offsets[j + 1]), slice(fresh.offsets[i], fresh.offsets[i + 1])
        assert np.array_equal(cached.timestamps_ns[ours], fresh.timestamps_ns[theirs]), mint
        assert set(cached.columns) == set(fresh.columns)
        for name, values in fresh.columns.items():
            assert np.array_equal(cached.columns[name][ours], values[theirs], equal_nan=True), (mint, name)


def independent_probabilities(events, limit: int, models: ModelCache) -> dict:
    """(model id, mint) → probability from a fresh read, each model on its own; forests through scikit-learn's
    per-tree predict_proba."""
    expected = {}
    for model in active_served_models():
        ready = models.get(model)
        mints = sorted({e.mint for e in events if not model.phases or e.phase_id in model.phases})
        until = {e.mint: e.timestamp for e in events}  # each coin as of its event, as /api/predict reads it
        block = history.coin_histories(requests={model.phases: mints}, limit=limit, until=until)[model.phases]
        if block.n_coins == 0:
            continue
        features = build_features(block, feature_names=list(ready.input_names), engineered=model.engineered,
                                  windows=list(model.windows))
        if ready.loaded.model_type == loading.MODEL_TYPE_RANDOM_FOREST:  # scikit-learn's own per-tree path
            probabilities = np.zeros(len(features))
            for tree in ready.loaded.estimator.estimators_:
                probabilities += tree.predict_proba(features)[:, 1]
            probabilities /= len(ready.loaded.estimator.estimators_)
        else:
            probabilities, _ = ready.loaded.predict_proba_positive(features)
        expected.update({(model.id, mint): p for mint, p in zip(block.mints, probabilities)})
    return expected


@pytest.mark.parametrize(("limit", "max_rows"), [(1000, 600_000), (30, 600_000), (30, 100)],
                         ids=["history-1000", "history-30", "history-30-evicting"])
def test_cached_histories_and_predictions_equal_a_fresh_read(market, limit, max_rows):
    register_models()
    models = model_cache(size=10)
    cache = HistoryCache(limit=limit, max_rows=max_rows)
    compared = []
    read = cache.histories

    def checked(requests, *, until):
        cached = read(requests, until=until)
        fresh = history.coin_histories(requests=requests, limit=limit, until=until)
        for key in requests:
            same_histories(cached[key], fresh[key])
        compared.append(sorted(requests, key=str))
        return cached

    cache.histories = checked

    def batch(rows) -> None:
        with market.cursor() as cursor:
            cursor.executemany(INSERT_SQL, rows)
        report = process_pending_batch(limit=10_000, cache=models, history_limit=limit, history_cache=cache)
        assert report.stored and not report.failures
        stored = {(item.model.id, item.event.mint): item.probability for item in report.stored}
        expected = independent_probabilities({item.event for item in report.stored}, limit, models)
        assert stored == expected  # bit for bit, every model and coin of the batch

    late_mint = MINTS[0]
    batch([row for mint in MINTS for row in rows_of(mint)[:150]])
    for start in range(150, 200, 10):
        batch([row for mint in MINTS for row in rows_of(mint)[start:start + 10]])
        if start == 170:
            # A late row: older than the newest rows already read for its coin, with values of its own.
            late = list(rows_of(late_mint)[175])
            late[TIMESTAMP] = (datetime.fromisoformat(late[TIMESTAMP]) + timedelta(milliseconds=1)).isoformat()
            late[PRICE_CLOSE] = str(2 * float(late[PRICE_CLOSE]))
            batch([late])
            assert cache.stats["late_rows"] >= 1
    # Longer histories than the row limit, coins in phases 2 and 3: the [1, 3] filter reaches back past the rows held.
    for start in range(200, 240, 20):
        batch([row for mint in MINTS for row in rows_of(mint)[start:start + 20]])

    assert len(compared) == 9
    assert any(key == (1, 3) for keys in compared for key in keys)
    if max_rows < 1000:
        assert cache.stats["evicted"] > 0  # coins dropped for room were read afresh, and still matched


def test_a_batch_in_chunks_of_coins_stores_the_same_probabilities_in_the_same_order(market, monkeypatch):
    """A batch of more coins than engine.CHUNK_COINS (here 1) goes through the engine chunk by chunk: one history
    read per chunk, and every probability still the fresh read's, stored in the order of the batch's events."""
    monkeypatch.setattr(engine, "CHUNK_COINS", 1)
    register_models()
    models = model_cache(size=10)
    cache = HistoryCache(limit=1000)
    reads = []
    read = cache.histories

    def counted(requests, *, until):
        reads.append({mint for mints in requests.values() for mint in mints})
        return read(requests, until=until)

    cache.histories = counted
    for rows in ([row for mint in MINTS for row in rows_of(mint)[:150]],
                 [row for mint in MINTS for row in rows_of(mint)[150:160]]):
        with market.cursor() as cursor:
            cursor.executemany(INSERT_SQL, rows)
        reads.clear()
        report = process_pending_batch(limit=10_000, cache=models, history_limit=1000, history_cache=cache)
        assert report.stored and not report.failures
        assert sorted(map(sorted, reads)) == [[mint] for mint in MINTS]
        stored = {(item.model.id, item.event.mint): item.probability for item in report.stored}
        assert stored == independent_probabilities({item.event for item in report.stored}, 1000, models)
        for model_id in {item.model.id for item in report.stored}:
            events = [item.event for item in report.stored if item.model.id == model_id]
            assert events == sorted(events, key=lambda e: (e.timestamp, e.mint))


def test_a_coin_is_read_afresh_after_max_age(market):
    register_models()
    now = [0.0]
    # The last resort alone (the change log, which sees this UPDATE at once, is tested in test_listener_consistency).
    cache = HistoryCache(limit=1000, max_age_seconds=60, track_changes=False, clock=lambda: now[0])
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows_of(MINTS[0])[:50])
    requests = {None: [MINTS[0]]}
    cache.histories(requests)
    assert cache.stats["full_loads"] == 1
    # A row the cache cannot notice (rewritten in place, never queued): seen once the entry has expired.
    market.execute("UPDATE coin_metrics SET price_close = price_close * 3 WHERE mint = %s", [MINTS[0]])
    now[0] = 30.0
    cache.histories(requests)
    assert cache.stats["full_loads"] == 1
    now[0] = 61.0
    same_histories(cache.histories(requests)[None], history.coin_histories(requests=requests, limit=1000)[None])
    assert cache.stats["full_loads"] == 2


def test_a_batch_coin_past_max_age_is_read_afresh_between_the_sweeps_of_all_coins(market):
    register_models()
    now = [0.0]
    # max_age 0.5 s: the coin expires (at 0.375-0.5 s, with jitter) before the next look at every held coin (1 s).
    cache = HistoryCache(limit=1000, max_age_seconds=0.5, track_changes=False, clock=lambda: now[0])
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows_of(MINTS[0])[:50])
    requests = {None: [MINTS[0]]}
    cache.histories(requests)
    market.execute("UPDATE coin_metrics SET price_close = price_close * 3 WHERE mint = %s", [MINTS[0]])
    now[0] = 0.6
    same_histories(cache.histories(requests)[None], history.coin_histories(requests=requests, limit=1000)[None])
    assert cache.stats["full_loads"] == 2


def test_filters_that_change_nothing_share_one_block_also_when_the_moments_cut_the_held_rows(market):
    """A listener behind the market predicts rows older than the coin's newest: the held rows are cut at each
    row's moment, and filters that leave a coin all its rows must still get one block (the engine then builds the
    features once instead of comparing the histories value by value)."""
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, ROWS)
    cache = HistoryCache(limit=1000)
    every_phase = (1, 2, 3)  # every fixture row passes
    requests = {None: MINTS, every_phase: MINTS}
    cache.histories(requests)  # every coin held, up to its newest row
    until = {mint: datetime.fromisoformat(rows_of(mint)[len(rows_of(mint)) // 2][TIMESTAMP]) for mint in MINTS}
    blocks = cache.histories(requests, until=until)
    assert blocks[None] is blocks[every_phase]
    same_histories(blocks[None], history.coin_histories(requests={None: MINTS}, limit=1000, until=until)[None])
    assert len(blocks[None].timestamps_ns) < len(ROWS)  # the moments did cut the held rows


@pytest.mark.parametrize(("phases", "history_limit"), [(None, 1000), ((1, 3), 30)])
def test_features_as_of_a_row_equal_the_serving_read_up_to_it(market, phases, history_limit):
    """inference.as_of (training, backtests): each past row's vector is what the serving read and feature code give
    when that row is the coin's newest (coin_histories until its time), bit for bit."""
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, ROWS)
    params = parity.meta("xgb")["params"]
    names, windows = parity.meta("xgb")["features"], params["feature_engineering_windows"]
    rng = np.random.default_rng(7)
    passing = [row for row in ROWS if not phases or int(row[PHASE]) in phases]
    picks = [passing[i] for i in rng.choice(len(passing), size=40, replace=False)]
    mints = sorted({row[MINT] for row in picks})
    coin = np.array([mints.index(row[MINT]) for row in picks])
    moments = [datetime.fromisoformat(row[TIMESTAMP]) for row in picks]
    X = as_of.features_as_of(
        mints=mints, coin=coin, timestamps_us=np.array([history.to_micros(m) for m in moments]), feature_names=names,
        engineered=True, windows=windows, phases=phases, history_limit=history_limit,
    )
    for row, moment, vector in zip(picks, moments, X):
        block = history.coin_histories(requests={phases: [row[MINT]]}, limit=history_limit, until=moment)[phases]
        served = build_features(block, feature_names=names, engineered=True, windows=windows)
        assert np.array_equal(served[0].view(np.uint64), vector.view(np.uint64)), (row[MINT], moment)

    if phases:  # a row the phase filter leaves out has no as-of vector
        other = next(row for row in ROWS if int(row[PHASE]) not in phases)
        with pytest.raises(as_of.RowNotFound):
            as_of.features_as_of(
                mints=[other[MINT]], coin=np.array([0]),
                timestamps_us=np.array([history.to_micros(datetime.fromisoformat(other[TIMESTAMP]))]),
                feature_names=names, engineered=True, windows=windows, phases=phases, history_limit=history_limit,
            )


def test_reading_a_coins_new_rows_touches_those_rows_only(market):
    """The delta read (rows after the newest held) bounds the index scan by time, so that its cost is the new rows,
    not every row the coin ever had: no row of the coin is read and then thrown away by a filter."""
    mint = MINTS[0]
    rows = rows_of(mint)
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)
    after = datetime.fromisoformat(rows[-6][TIMESTAMP])
    new_rows = history.read_history_rows([history.HistoryRequest(mint=mint, after=after)], limit=1000)
    assert len(new_rows.timestamps_ns) == 5
    with market.transaction(), market.cursor() as cursor:
        cursor.execute("ANALYZE coin_metrics")  # the same statistics on every run, as autovacuum may have left them
        # A few hundred rows: force the plan a large table gets for "newest rows first", an ordered index scan (with
        # fresh statistics the planner may pick a bitmap scan here, which reads the same rows but sorts them after).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + history.HISTORY_ROWS_SQL,
                       [[mint], [None], [after], [None], 1000])
        plan = cursor.fetchone()[0][0]["Plan"]

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    reads = [node for node in nodes(plan) if node.get("Relation Name") == "coin_metrics"]
    assert reads and all("timestamp" in node.get("Index Cond", "") for node in reads), reads
    assert sum(node.get("Rows Removed by Filter", 0) for node in reads) == 0
    assert sum(node["Actual Rows"] for node in reads) == 5
