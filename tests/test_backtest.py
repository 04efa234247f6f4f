"""Backtests: the replay computes what the listener computed, judges as the worker judges, and refuses bad input."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command

from alerts.services import evaluate_due
from backtests import services
from backtests.models import BacktestRow, BacktestRun, RunState
from backtests.services import BacktestError, coin_groups
from inference.as_of import columns_read
from modelregistry.models import ActiveModel
from modelregistry.serving import model_cache
from predictions.models import ModelPrediction
from tests import parity
from tests.test_listener import MINT, ROWS, insert, register_rf, register_xgb, rows_of, run_batch

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = datetime.fromisoformat(ROWS[0][1])
LAST = max(datetime.fromisoformat(row[1]) for row in ROWS)
MINTS = sorted({row[MINT] for row in ROWS})


def backtest(model: ActiveModel, *, start=FIRST, end=LAST, threshold=None) -> BacktestRun:
    run = services.create_run(active_model_id=model.pk, start=start, end=end, threshold=threshold)
    run = services.execute_run(run_id=run.pk)
    assert run.state == RunState.DONE, run.error
    return run


def replayed(run: BacktestRun) -> dict[tuple[str, datetime], BacktestRow]:
    return {(row.coin_id, row.prediction_timestamp): row for row in BacktestRow.objects.filter(run=run)}


def test_every_served_row_of_the_parity_fixture_is_replayed_as_the_original_server_computed_it(market):
    models = {"xgb": register_xgb(), "rf": register_rf()}
    insert(market, ROWS)
    rows = {name: replayed(backtest(model)) for name, model in models.items()}
    checked = 0
    for expected in parity.expected_rows():
        row = rows[expected.model].get((expected.mint, datetime.fromisoformat(expected.as_of_timestamp)))
        assert row is not None, expected
        assert row.probability == pytest.approx(expected.probability, abs=1e-9), expected
        assert row.prediction == expected.prediction
        checked += 1
    assert checked == 120


def test_replay_reproduces_the_listener_bit_for_bit_and_judges_as_the_worker(market):
    """The listener predicts the fixture row by row; the replay of the same range reproduces every stored
    probability exactly, and the worker's verdicts of those rows equal the replay's."""
    xgb = register_xgb()
    cache = model_cache(size=10)
    for as_of in range(max(len(rows_of(mint)) for mint in MINTS)):
        insert(market, [rows_of(mint)[as_of] for mint in MINTS if as_of < len(rows_of(mint))])
        run_batch(cache=cache)
    live = list(ModelPrediction.objects.filter(active_model=xgb))
    assert len(live) == len(ROWS) - len([row for row in ROWS if row[2] not in ("1", "2", "3")])

    run = backtest(xgb)
    assert run.summary["live"] == {"live_predictions": len(live), "reproduced": len(live), "differing": 0,
                                   "differences": []}
    rows = replayed(run)
    assert {key: row.probability for key, row in rows.items()} == {
        (p.coin_id, p.prediction_timestamp): p.probability for p in live}

    evaluate_due(now=LAST + timedelta(days=1))
    judged = 0
    for prediction in ModelPrediction.objects.filter(active_model=xgb, evaluation_timestamp__lte=LAST):
        row = rows[(prediction.coin_id, prediction.prediction_timestamp)]
        assert row.evaluation_result == prediction.evaluation_result, prediction.coin_id
        assert row.actual_price_change_pct == prediction.actual_price_change_pct
        judged += 1
    assert judged > 100
    # Rows whose horizon lies beyond the recorded data stay unjudged in a replay (the worker would wait for it).
    assert all(row.evaluation_result is None for row in rows.values() if row.evaluation_timestamp > LAST)


def test_a_changed_history_is_reported_with_its_reason(market):
    xgb = register_xgb()
    mint = MINTS[0]
    insert(market, rows_of(mint)[:120])
    run_batch()
    with market.cursor() as cursor:  # a collector prunes rows that the prediction was made from
        cursor.execute('DELETE FROM coin_metrics WHERE mint = %s AND "timestamp" >= %s AND "timestamp" <= %s',
                       [mint, rows_of(mint)[60][1], rows_of(mint)[118][1]])
    run = backtest(xgb, end=datetime.fromisoformat(rows_of(mint)[119][1]))
    live = run.summary["live"]
    assert live["live_predictions"] == 1 and live["reproduced"] == 0 and live["differing"] == 1
    assert live["differences"][0]["reason"].startswith("the history differed")


def test_no_look_ahead_later_rows_change_nothing_earlier(market):
    xgb = register_xgb()
    middle = datetime.fromisoformat(ROWS[len(ROWS) // 2][1])
    insert(market, [row for row in ROWS if datetime.fromisoformat(row[1]) <= middle])
    before = {key: row.probability for key, row in replayed(backtest(xgb, end=middle)).items()}
    insert(market, [row for row in ROWS if datetime.fromisoformat(row[1]) > middle])
    after = {key: row.probability for key, row in replayed(backtest(xgb)).items() if key[1] <= middle}
    assert before and before == after


def test_filters_and_scan_rules_choose_the_rows_as_the_listener_would(market):
    insert(market, ROWS)
    model = register_xgb(coin_filter_mode="whitelist", coin_whitelist=[MINTS[0]])
    rows = replayed(backtest(model))
    assert {coin for coin, _ in rows} == {MINTS[0]}
    phases = {row[1]: row[2] for row in rows_of(MINTS[0])}
    assert all(phases[moment.isoformat()] in ("1", "2", "3") for _, moment in rows)  # the model's phases

    ActiveModel.objects.filter(pk=model.pk).update(coin_filter_mode="all", min_scan_interval_seconds=60)
    times = sorted(moment for coin, moment in replayed(backtest(model)) if coin == MINTS[1])
    assert len(times) > 10 and all(b - a >= timedelta(seconds=60) for a, b in zip(times, times[1:]))

    ActiveModel.objects.filter(pk=model.pk).update(min_scan_interval_seconds=0, ignore_bad_seconds=120,
                                                   ignore_positive_seconds=0, ignore_alert_seconds=0)
    kept = sorted((moment, row.prediction) for (coin, moment), row in replayed(backtest(model)).items()
                  if coin == MINTS[1])
    every = [moment for moment, _ in kept]
    assert len(every) < len([row for row in rows_of(MINTS[1]) if row[2] in ("1", "2", "3")])
    for (moment, prediction), (following, _) in zip(kept, kept[1:]):
        if prediction == 0:  # a 0 opens a 120 s ignore window for the coin
            assert following - moment >= timedelta(seconds=120)


def test_threshold_tags_and_the_summary_table(market):
    insert(market, ROWS)
    run = backtest(register_xgb(), threshold=0.6)
    rows = BacktestRow.objects.filter(run=run)
    assert rows.filter(tag="alert").count() == rows.filter(probability__gte=0.6).count() == run.summary["alerts"]
    table = run.summary["thresholds"]
    assert [entry["threshold"] for entry in table] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert all(entry["alerts"] == rows.filter(probability__gte=entry["threshold"]).count() for entry in table)
    summary = run.summary
    assert summary["success"] + summary["failed"] + summary["not_applicable"] + summary["pending"] == summary["alerts"]
    assert summary["rows_replayed"] == len(ROWS) and summary["rows_per_s"] > 0


def test_the_command_writes_a_summary_and_rows(market, tmp_path, capsys):
    insert(market, ROWS)
    xgb = register_xgb()
    json_file, csv_file = tmp_path / "summary.json", tmp_path / "rows.csv"
    call_command("backtest", str(xgb.pk), "--start", FIRST.isoformat(), "--end", LAST.isoformat(),
                 "--json", str(json_file), "--rows-csv", str(csv_file))
    summary = json.loads(json_file.read_text())
    for key in ("model_id", "start", "end", "rows_replayed", "predictions", "alerts", "success", "failed",
                "not_applicable", "success_rate", "roc_auc", "thresholds", "duration_s", "rows_per_s"):
        assert key in summary
    lines = list(csv.DictReader(csv_file.open()))
    assert len(lines) == summary["predictions"] > 0
    assert list(lines[0]) == ["coin_id", "timestamp", "probability", "prediction", "tag", "evaluation_result",
                              "actual_price_change_pct"]
    assert "rows replayed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, field",
    [
        ({"active_model_id": 999_999}, "active_model_id"),
        ({"end": FIRST - timedelta(minutes=1)}, "end"),
        ({"start": FIRST - timedelta(days=9), "end": FIRST - timedelta(days=8)}, "start"),
        ({"end": FIRST + timedelta(days=40)}, "end"),
        ({"threshold": 1.5}, "threshold"),
        ({"start": FIRST.replace(tzinfo=None)}, "start"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(market, change, field):
    insert(market, ROWS[:50])
    arguments = {"active_model_id": register_xgb().pk, "start": FIRST, "end": LAST, **change}
    with pytest.raises(BacktestError) as error:
        services.create_run(**arguments)
    assert error.value.field == field
    assert not BacktestRun.objects.exists()


def test_the_command_refuses_bad_input_in_one_line(market):
    with pytest.raises(CommandError, match=r"^MODEL_ID: no model with id 424242$"):
        call_command("backtest", "424242", "--start", FIRST.isoformat(), "--end", LAST.isoformat())
    with pytest.raises(CommandError, match=r"^--start: not an ISO date"):
        call_command("backtest", "1", "--start", "yesterday", "--end", LAST.isoformat())
    assert not BacktestRun.objects.exists()


def test_cancelled_and_crashed_runs_end_failed_and_never_look_complete(market):
    insert(market, ROWS)
    xgb = register_xgb()
    queued = services.create_run(active_model_id=xgb.pk, start=FIRST, end=LAST)
    assert services.request_cancel(run_id=queued.pk).state == RunState.FAILED
    assert services.execute_run(run_id=queued.pk).state == RunState.FAILED  # a cancelled run is not started

    running = services.create_run(active_model_id=xgb.pk, start=FIRST, end=LAST)
    BacktestRun.objects.filter(pk=running.pk).update(
        state=RunState.RUNNING, heartbeat_at=datetime.now(timezone.utc) - timedelta(hours=2))
    BacktestRow.objects.create(run=running, coin_id=MINTS[0], prediction_timestamp=FIRST, evaluation_timestamp=LAST,
                               probability=0.5, prediction=0, tag="positiv")
    assert services.fail_stale_runs() == 1
    running.refresh_from_db()
    assert running.state == RunState.FAILED and "stopped" in running.error and running.summary is None
    assert not BacktestRow.objects.filter(run=running).exists()


def test_coin_groups_bound_the_rows_of_one_step_and_never_split_a_coin():
    counts = {"a": 30, "b": 30, "c": 50, "d": 5}
    groups = coin_groups(counts, group_rows=60)
    assert groups == [["a", "b"], ["c", "d"]]
    assert coin_groups({"big": 500}, group_rows=60) == [["big"]]


def test_a_replay_reads_only_the_columns_its_features_read():
    """columns_read finds what the feature builders ask for, in VALUE_COLUMNS order; the replays above (bit for bit
    the listener's) read only those."""
    assert columns_read(feature_names=["volume_sol", "price_close"], engineered=False,
                        windows=(5, 10, 15)) == ("price_close", "volume_sol")
    assert columns_read(feature_names=["whale_dominance", "price_close"], engineered=True, windows=(5, 10, 15)) == (
        "price_close", "volume_sol", "whale_buy_volume_sol", "whale_sell_volume_sol")  # whale share of the volume
