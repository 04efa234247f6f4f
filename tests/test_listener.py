"""The event path end to end: collector INSERT → queue → listener → stored predictions, on the real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from prometheus_client import REGISTRY

from modelregistry.models import ActiveModel, ModelArtifact, ModelSource
from modelregistry.services import delete_model, register_model
from modelregistry.serving import model_cache
from predictions.models import CoinScanCache, ModelPrediction
from predictions.services import Lanes, process_pending_batch
from pumpserver.database import open_connection
from pumpserver.models import ProcessHeartbeat
from tests import parity
from tests.conftest import PROJECT_DIR, test_database_url

pytestmark = pytest.mark.django_db(transaction=True)

HEADER, ROWS = parity.coin_metrics_rows()
INSERT_SQL = f"INSERT INTO coin_metrics ({', '.join(HEADER)}) VALUES ({', '.join(['%s'] * len(HEADER))})"
MINT = HEADER.index("mint")


def register(name: str, *, filename: str, trust_pickle: bool = False, **settings) -> ActiveModel:
    meta = parity.meta(name)
    model = register_model(
        artifact=parity.artifact(filename), meta=meta, source=ModelSource.COMMAND_LINE, filename=filename,
        activate=True, trust_pickle=trust_pickle,
    )
    settings.setdefault("min_scan_interval_seconds", 0)
    ActiveModel.objects.filter(pk=model.pk).update(**settings)
    return model


def register_xgb(**settings) -> ActiveModel:
    return register("xgb", filename="model_xgb.json", **settings)


def register_rf(**settings) -> ActiveModel:
    return register("rf", filename="model_rf.pkl", trust_pickle=True, **settings)


def insert(market, rows) -> None:
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)


def run_batch(**kwargs):
    return process_pending_batch(limit=10_000, cache=kwargs.pop("cache", model_cache(size=10)), history_limit=1000)


def rows_of(mint: str):
    return [row for row in ROWS if row[MINT] == mint]


def test_served_probabilities_match_the_parity_fixture(market):
    xgb, rf = register_xgb(), register_rf()
    expected = parity.expected_rows()
    first_as_of = min(r.as_of_row for r in expected)
    mints = sorted({r.mint for r in expected})
    insert(market, [row for mint in mints for row in rows_of(mint)[:first_as_of]])
    cache = model_cache(size=10)
    run_batch(cache=cache)
    for as_of in range(first_as_of, max(len(rows_of(mint)) for mint in mints)):
        insert(market, [rows_of(mint)[as_of] for mint in mints if as_of < len(rows_of(mint))])
        run_batch(cache=cache)

    checked = 0
    for row in expected:
        model = xgb if row.model == "xgb" else rf
        stored = ModelPrediction.objects.filter(
            active_model=model, coin_id=row.mint, prediction_timestamp=datetime.fromisoformat(row.as_of_timestamp)
        ).first()
        if not row.served:
            assert stored is None, row
            continue
        assert stored is not None, row
        assert stored.probability == pytest.approx(row.probability, abs=1e-9), row
        assert stored.prediction == row.prediction
        assert stored.model_version == 1
        checked += 1
    assert checked >= 100


def test_phase_filter_whitelist_and_min_scan_interval(market):
    coin_a, coin_b, _coin_c = sorted({row[MINT] for row in ROWS})
    whitelisted = register_xgb(coin_filter_mode="whitelist", coin_whitelist=[coin_a])
    insert(market, rows_of(coin_a)[:100] + rows_of(coin_b)[:100])
    run_batch()
    assert set(ModelPrediction.objects.filter(active_model=whitelisted).values_list("coin_id", flat=True)) == {coin_a}

    # phases: the xgb fixture model only looks at phases 1-3; a NULL or unknown phase is skipped
    later = datetime.fromisoformat(rows_of(coin_a)[99][1]) + timedelta(seconds=5)
    stray = list(rows_of(coin_a)[99])
    stray[1], stray[2] = later.isoformat(), None
    insert(market, [stray])
    run_batch()
    assert not ModelPrediction.objects.filter(active_model=whitelisted, prediction_timestamp=later).exists()

    # min_scan_interval: a coin scanned just now is not scanned again within the interval
    ActiveModel.objects.filter(pk=whitelisted.pk).update(min_scan_interval_seconds=3600)
    insert(market, [rows_of(coin_a)[100]])
    run_batch()
    assert ModelPrediction.objects.filter(active_model=whitelisted).count() == 1


def test_a_row_queued_again_is_not_stored_counted_or_scanned_again(market):
    coin_a, coin_b, _coin_c = sorted({row[MINT] for row in ROWS})
    model = register_xgb()
    insert(market, rows_of(coin_a)[:40] + rows_of(coin_b)[:40])
    first = run_batch()
    assert len(first.stored) == 2
    scanned = dict(CoinScanCache.objects.filter(active_model=model).values_list("coin_id", "last_scan_at"))
    # coin_a's row comes again (a collector rewrote it), together with a new row of coin_b.
    market.execute(
        "INSERT INTO coin_metrics_queue (mint, data_timestamp, phase_id, enqueued_at) VALUES (%s, %s, %s, now())",
        [coin_a, rows_of(coin_a)[39][1], rows_of(coin_a)[39][2]],
    )
    insert(market, [rows_of(coin_b)[40]])
    second = run_batch()
    assert second.claimed == 2
    assert [(item.event.mint, item.event.timestamp) for item in second.stored] == [
        (coin_b, datetime.fromisoformat(rows_of(coin_b)[40][1]))]
    assert ModelPrediction.objects.filter(active_model=model, coin_id=coin_a).count() == 1
    assert ModelPrediction.objects.filter(active_model=model, coin_id=coin_b).count() == 2
    model.refresh_from_db()
    assert model.total_predictions == 3
    rescanned = dict(CoinScanCache.objects.filter(active_model=model).values_list("coin_id", "last_scan_at"))
    assert rescanned[coin_a] == scanned[coin_a] and rescanned[coin_b] > scanned[coin_b]


def test_ignore_windows_follow_the_last_result(market):
    coin = sorted({row[MINT] for row in ROWS})[0]
    model = register_xgb(ignore_bad_seconds=600, ignore_positive_seconds=600, ignore_alert_seconds=600)
    insert(market, rows_of(coin)[:50])
    run_batch()
    cache = CoinScanCache.objects.get(coin_id=coin, active_model=model)
    assert cache.ignore_until is not None and cache.ignore_reason in ("bad", "positive", "alert")
    insert(market, [rows_of(coin)[50]])
    run_batch()
    assert ModelPrediction.objects.filter(active_model=model).count() == 1  # ignored while the window lasts

    CoinScanCache.objects.update(ignore_until=datetime.now(timezone.utc) - timedelta(seconds=1))
    insert(market, [rows_of(coin)[51]])
    run_batch()
    assert ModelPrediction.objects.filter(active_model=model).count() == 2


def test_max_log_cap_counts_pending_rows_per_tag(market):
    coin = sorted({row[MINT] for row in ROWS})[0]
    model = register_xgb(
        max_log_entries_per_coin_negative=2, max_log_entries_per_coin_positive=2, max_log_entries_per_coin_alert=2
    )
    for i in range(40, 46):
        insert(market, [rows_of(coin)[i]] if i > 40 else rows_of(coin)[: i + 1])
        run_batch()
    stored = list(ModelPrediction.objects.filter(active_model=model).values_list("tag", flat=True))
    assert len(stored) < 6
    assert all(stored.count(tag) <= 2 for tag in set(stored))
    # evaluated rows no longer count: the cap is on pending rows
    ModelPrediction.objects.update(status="inaktiv", evaluation_result="not_applicable")
    insert(market, [rows_of(coin)[46]])
    run_batch()
    assert ModelPrediction.objects.filter(active_model=model, status="aktiv").count() == 1


def test_classic_target_models_are_predicted_and_stored(market):
    coin = sorted({row[MINT] for row in ROWS})[0]
    meta = parity.meta("xgb")
    meta.update(id=555, name="classic", target_operator=">", target_value=0.5)
    meta["params"] = {k: v for k, v in meta["params"].items() if k != "_time_based"}
    model = register_model(artifact=parity.artifact("model_xgb.json"), meta=meta, source=ModelSource.COMMAND_LINE,
                           activate=True)
    ActiveModel.objects.filter(pk=model.pk).update(min_scan_interval_seconds=0)
    insert(market, rows_of(coin)[:30])
    run_batch()
    stored = ModelPrediction.objects.get(active_model=model)
    assert stored.evaluation_timestamp - stored.prediction_timestamp == timedelta(minutes=10)


def test_a_corrupt_artifact_is_isolated(market):
    good = register_xgb()
    broken = register_rf()
    ModelArtifact.objects.filter(model=broken).update(content=b"\x80garbage", format="skops")
    coin = sorted({row[MINT] for row in ROWS})[0]
    insert(market, rows_of(coin)[:30])
    report = run_batch()
    assert [f.model.id for f in report.failures] == [broken.pk]
    assert ModelPrediction.objects.filter(active_model=good).count() == 1
    assert ModelPrediction.objects.filter(active_model=broken).count() == 0
    broken.refresh_from_db()
    assert broken.load_error and "cannot load" in broken.load_error


def test_register_model_refuses_pickles_and_mismatched_features(tmp_path):
    meta_file = tmp_path / "meta.json"
    meta_file.write_text((parity.FIXTURES / "model_rf.meta.json").read_text())
    with pytest.raises(CommandError, match="pickle"):
        call_command("register_model", str(parity.FIXTURES / "model_rf.pkl"), meta=str(meta_file))
    meta = parity.meta("xgb")
    meta["features"] = meta["features"][:10]
    meta_file.write_text(__import__("json").dumps(meta))
    with pytest.raises(CommandError, match="feature"):
        call_command("register_model", str(parity.FIXTURES / "model_xgb.json"), meta=str(meta_file))
    assert not ActiveModel.objects.exists()

    call_command("register_model", str(parity.FIXTURES / "model_rf.pkl"), meta=str(parity.FIXTURES / "model_rf.meta.json"),
                 trust_pickle=True, activate=True)
    stored = ActiveModel.objects.get()
    assert stored.is_active and stored.artifacts.get().format == "skops"  # stored converted: never unpickled again


def listener_process(*extra: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "listen_events", "--poll-interval", "1", *extra],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_until(condition, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def listener_details() -> dict:
    return ProcessHeartbeat.objects.filter(kind="listener").values_list("details", flat=True).first() or {}


def newest_rows(mints):
    return {mint: datetime.fromisoformat(rows_of(mint)[-1][1]) for mint in mints}


def test_rows_inserted_while_stopped_are_predicted_on_start_exactly_once(market):
    xgb, rf = register_xgb(), register_rf()
    mints = sorted({row[MINT] for row in ROWS})
    insert(market, ROWS)  # no listener running
    process = listener_process()
    try:
        wait_until(lambda: ModelPrediction.objects.count() >= 2 * len(mints))
        time.sleep(1.5)  # a further poll must not add anything
        # The heartbeat tells operators (and the soak benchmark) what the history cache holds: every row of the
        # three coins, none of which has more than FEATURE_HISTORY_SIZE rows.
        wait_until(lambda: listener_details().get("history_rows") == len(ROWS))
        assert listener_details()["history_entries"] >= len(mints)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    for model in (xgb, rf):
        stored = dict(ModelPrediction.objects.filter(active_model=model).values_list("coin_id", "prediction_timestamp"))
        assert stored == newest_rows(mints)
    assert market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)


def test_two_listeners_share_the_stream_without_duplicates(market):
    model = register_xgb()
    mints = sorted({row[MINT] for row in ROWS})
    listeners = [listener_process("--batch-size", "3"), listener_process("--batch-size", "3")]
    try:
        for index in range(0, 150):  # a stream: one row per coin per step
            insert(market, [rows_of(mint)[index] for mint in mints])
        wait_until(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,))
        time.sleep(1)
    finally:
        for process in listeners:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=30)[0] for process in listeners]
    assert [p.returncode for p in listeners] == [0, 0], outputs
    model.refresh_from_db()
    stored = ModelPrediction.objects.filter(active_model=model).count()
    assert stored == model.total_predictions  # no insert was silently dropped as a duplicate
    assert stored >= len(mints)
    for mint, newest in {m: datetime.fromisoformat(rows_of(m)[149][1]) for m in mints}.items():
        assert ModelPrediction.objects.filter(active_model=model, coin_id=mint, prediction_timestamp=newest).exists()


@pytest.mark.parametrize("lanes", ["1", "2"])
def test_sigterm_mid_stream_loses_no_claimed_work(market, lanes):
    register_xgb()
    mints = sorted({row[MINT] for row in ROWS})
    process = listener_process("--batch-size", "2", "--lanes", lanes)
    try:
        for index in range(0, 120):
            insert(market, [rows_of(mint)[index] for mint in mints])
            if index == 60:
                wait_until(lambda: ModelPrediction.objects.exists())  # the listener is up and predicting
                process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    call_command("listen_events", once=True)  # another listener picks up whatever was left queued
    assert market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)
    for mint in mints:
        newest = datetime.fromisoformat(rows_of(mint)[119][1])
        assert ModelPrediction.objects.filter(coin_id=mint, prediction_timestamp=newest).exists()


def test_a_lane_leaves_the_coins_another_lane_holds_queued(market):
    model = register_xgb()
    mints = sorted({row[MINT] for row in ROWS})
    insert(market, [rows_of(mint)[index] for index in range(40) for mint in mints])
    lanes = Lanes()
    with lanes.claiming():  # another lane has the first coin in hand
        lanes.hold([mints[0]])
    report = process_pending_batch(limit=10_000, cache=model_cache(size=10), history_limit=1000, lanes=lanes)
    assert report.claimed == 40 * (len(mints) - 1)
    assert set(ModelPrediction.objects.filter(active_model=model).values_list("coin_id", flat=True)) == set(mints[1:])
    queued = market.execute("SELECT DISTINCT mint FROM coin_metrics_queue").fetchall()
    assert queued == [(mints[0],)]
    with lanes.claiming() as held:
        assert held == [mints[0]]  # this lane's coins were let go when its batch committed
    lanes.release([mints[0]])
    process_pending_batch(limit=10_000, cache=model_cache(size=10), history_limit=1000, lanes=lanes)
    assert ModelPrediction.objects.filter(active_model=model, coin_id=mints[0]).exists()
    assert market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)


@pytest.mark.parametrize("with_lanes", [False, True], ids=["one lane", "lanes"])
def test_rows_with_an_unusable_price_are_predicted_counted_and_named(market, caplog, with_lanes):
    model = register_xgb()
    mints = sorted({row[MINT] for row in ROWS})
    price = HEADER.index("price_close")
    rows = {mint: [list(row) for row in rows_of(mint)[:30]] for mint in mints}
    # Two coins get two unusable prices each (the newest row among them); the third coin's prices are all fine.
    rows[mints[0]][29][price], rows[mints[0]][20][price] = None, "NaN"
    rows[mints[1]][29][price], rows[mints[1]][10][price] = "0", "-1"
    rows = [row for mint in mints for row in rows[mint]]
    insert(market, rows)
    before = REGISTRY.get_sample_value("ml_errors_total", {"type": "data"}) or 0.0
    with caplog.at_level("WARNING", logger="predictions.services"):
        report = process_pending_batch(limit=10_000, cache=model_cache(size=10), history_limit=1000,
                                       lanes=Lanes() if with_lanes else None)
    assert report.claimed == len(rows)
    assert set(ModelPrediction.objects.filter(active_model=model).values_list("coin_id", flat=True)) == set(mints)
    assert REGISTRY.get_sample_value("ml_errors_total", {"type": "data"}) - before == 4
    [warning] = [r.getMessage() for r in caplog.records if "unusable price_close" in r.getMessage()]
    assert warning.startswith(f"4 of {len(rows)} rows in this batch have an unusable price_close (1 NULL, 1 NaN, "
                              "2 zero or negative)")
    assert mints[0] in warning and mints[1] in warning and mints[2] not in warning


def listeners_waiting_to_store(market) -> int:
    """Connections queued for the models' rows: listener lanes (or a manual prediction) that have computed and wait to
    store."""
    return market.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query LIKE %s", ["%prediction_active_models%FOR NO KEY UPDATE%"],
    ).fetchone()[0]


def test_a_second_lane_takes_the_rows_that_arrive_while_the_first_stores(market):
    model = register_xgb()
    first, second = sorted({row[MINT] for row in ROWS})[:2]
    # Another writer holds the model's row, so a lane that has computed its batch waits to store it.
    writer = open_connection(autocommit=False)
    writer.execute("SELECT id FROM prediction_active_models WHERE id = %s FOR NO KEY UPDATE", [model.pk])
    process = listener_process("--lanes", "2")
    try:
        insert(market, rows_of(first)[:40])
        wait_until(lambda: listeners_waiting_to_store(market) == 1)
        insert(market, rows_of(second)[:40])
        wait_until(lambda: listeners_waiting_to_store(market) == 2)  # claimed and computed while the first waits
        writer.rollback()
        wait_until(lambda: ModelPrediction.objects.filter(active_model=model).count() == 2)
    finally:
        writer.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    stored = ModelPrediction.objects.filter(active_model=model).values_list("coin_id", "prediction_timestamp")
    assert sorted(stored) == [(mint, datetime.fromisoformat(rows_of(mint)[39][1])) for mint in (first, second)]
    assert market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)


def test_a_batch_takes_its_models_rows_last_and_counts_once_it_has_them(market):
    """The models' rows serialise every batch that stores predictions (their counters): a batch waits for them only
    after it wrote its predictions and scan states, so it holds them for its commit, not for its writes."""
    model = register_xgb()
    mint = sorted({row[MINT] for row in ROWS})[0]
    writer = open_connection(autocommit=False)
    writer.execute("SELECT id FROM prediction_active_models WHERE id = %s FOR NO KEY UPDATE", [model.pk])
    process = listener_process()
    try:
        insert(market, rows_of(mint)[:40])
        wait_until(lambda: listeners_waiting_to_store(market) == 1)
        written = {name for (name,) in market.execute(
            "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.mode = 'RowExclusiveLock' AND l.pid = (SELECT pid FROM pg_stat_activity"
            "  WHERE wait_event_type = 'Lock' AND query LIKE %s)", ["%prediction_active_models%FOR NO KEY UPDATE%"],
        ).fetchall()}
        assert {"model_predictions", "coin_scan_cache", "coin_metrics_queue"} <= written, written
        assert ActiveModel.objects.get(pk=model.pk).total_predictions == 0  # nothing committed yet
        writer.rollback()
        wait_until(lambda: ModelPrediction.objects.filter(active_model=model).count() == 1)
    finally:
        writer.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    counted = ActiveModel.objects.get(pk=model.pk)
    assert counted.total_predictions == 1 and counted.last_prediction_at is not None


def deletion_waiting(market) -> bool:
    """delete_model waits for the model's row (its long SELECT … FOR UPDATE is cut short in pg_stat_activity)."""
    return market.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query LIKE %s", ['SELECT "prediction_active_models"."id"%'],
    ).fetchone()[0] == 1


def delete_in_thread(model_id: int) -> threading.Thread:
    def delete():
        try:
            delete_model(active_model_id=model_id)
        finally:
            connection.close()

    thread = threading.Thread(target=delete)
    thread.start()
    return thread


@pytest.mark.parametrize("deleted_first", [True, False], ids=["deleted-before-the-batch-stores",
                                                               "deleted-after-the-batch-stored"])
def test_a_model_deleted_while_a_batch_runs_leaves_no_predictions_behind(market, deleted_first):
    """model_predictions has no foreign key: the models' rows, locked before the commit, keep a batch from storing
    predictions of a model that a concurrent delete_model has removed (it rolls back and predicts the rows again with
    the models that remain); a deletion that waits for the batch takes the batch's predictions along."""
    deleted, kept = register_xgb(), register_rf()
    mint = sorted({row[MINT] for row in ROWS})[0]
    holder = open_connection(autocommit=False)  # holds the row: the batch and the deletion queue behind it
    holder.execute("SELECT id FROM prediction_active_models WHERE id = %s FOR UPDATE", [deleted.pk])
    process = listener_process()
    try:
        if deleted_first:
            deletion = delete_in_thread(deleted.pk)
            wait_until(lambda: deletion_waiting(market))
            insert(market, rows_of(mint)[:40])
            wait_until(lambda: listeners_waiting_to_store(market) == 1)
        else:
            insert(market, rows_of(mint)[:40])
            wait_until(lambda: listeners_waiting_to_store(market) == 1)
            deletion = delete_in_thread(deleted.pk)
            wait_until(lambda: deletion_waiting(market))
        holder.rollback()
        deletion.join(timeout=30)
        wait_until(lambda: ModelPrediction.objects.filter(active_model_id=kept.pk).count() == 1)
        wait_until(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,))
    finally:
        holder.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert not ActiveModel.objects.filter(pk=deleted.pk).exists()
    assert not ModelPrediction.objects.filter(active_model_id=deleted.pk).exists()
    assert not CoinScanCache.objects.filter(active_model_id=deleted.pk).exists()
    assert ActiveModel.objects.get(pk=kept.pk).total_predictions == 1
    assert (f"model(s) {deleted.pk} deleted while predicting" in output) == deleted_first, output


@pytest.mark.parametrize("lanes", [0, -1, 9])
def test_lanes_outside_one_to_eight_are_refused(lanes):
    with pytest.raises(CommandError, match=f"--lanes must be between 1 and 8, not {lanes}"):
        call_command("listen_events", once=True, lanes=lanes)
