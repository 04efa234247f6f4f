"""Evaluation of due predictions (spec §2.4 with the fixes of weaknesses 6 and 7), on real price paths."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from alerts.services import evaluate_due
from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction
from pumpserver.database import open_connection

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 11, 20, 10, 0, tzinfo=timezone.utc)
HORIZON = timedelta(minutes=10)
AFTER_HORIZON = T0 + HORIZON + timedelta(minutes=1)

PRICE_COLUMNS = "mint, timestamp, phase_id_at_time, price_open, price_high, price_low, price_close, " \
                "market_cap_close, volume_sol"


def price(market, mint: str, at: datetime, close, *, volume=1.5, phase=1) -> None:
    """One collector row; open/high/low are derived so the snapshot columns can be told apart."""
    close = None if close is None else Decimal(str(close))
    open_, high, low, cap = (None,) * 4 if close is None else (close * 2, close * 3, close / 2, close * 1000)
    market.execute(
        f"INSERT INTO coin_metrics ({PRICE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [mint, at, phase, open_, high, low, close, cap, volume],
    )


def time_model(*, percent=10, direction="up", **fields) -> ActiveModel:
    return ActiveModel.objects.create(
        model_name="time", model_type="xgboost", features=["price_close"], future_minutes=10,
        price_change_percent=percent, target_direction=direction, **fields,
    )


def classic_model(*, variable: str, operator: str, value) -> ActiveModel:
    return ActiveModel.objects.create(
        model_name="classic", model_type="xgboost", features=["price_close"], target_variable=variable,
        target_operator=operator, target_value=value,
    )


def predict(model: ActiveModel, *, coin="coin", prediction=1, start=1.0, at=T0, horizon=HORIZON, **fields):
    return ModelPrediction.objects.create(
        coin_id=coin, active_model=model, prediction=prediction, probability=0.9 if prediction else 0.2,
        tag="alert" if prediction else "negativ", prediction_timestamp=at, evaluation_timestamp=at + horizon,
        price_close_at_prediction=None if start is None else Decimal(str(start)), **fields,
    )


def note(row: ModelPrediction) -> str | None:
    """The note as readers see it (stored, or derived from the verdict and the model's target)."""
    return ModelPrediction.objects.readable().get(pk=row.pk).evaluation_note


def path(market, coin: str, end, *, start=1.0):
    """Start price at T0, a detour in between, `end` at the horizon and a spike after it (never looked at)."""
    price(market, coin, T0, start)
    price(market, coin, T0 + timedelta(minutes=5), 7.0)
    price(market, coin, T0 + HORIZON, end, volume=4.25, phase=2)
    price(market, coin, T0 + HORIZON + timedelta(seconds=30), 100.0)


@pytest.mark.parametrize(
    ("prediction", "direction", "end", "expected"),
    [
        (1, "up", 1.10, "success"),  # Δ = +10 ≥ 10
        (1, "up", 1.0999, "failed"),
        (0, "up", 1.0999, "success"),  # Δ < 10
        (0, "up", 1.10, "failed"),
        (1, "down", 0.90, "success"),  # Δ = −10 ≤ −10
        (1, "down", 0.9001, "failed"),
        (0, "down", 0.9001, "success"),  # Δ > −10
        (0, "down", 0.90, "failed"),
        (1, None, 1.20, "success"),  # NULL direction counts as up
        (0, None, 0.50, "success"),
    ],
)
def test_verdict_table(market, prediction, direction, end, expected):
    row = predict(time_model(direction=direction), prediction=prediction)
    path(market, "coin", end)

    report = evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert report.by_result()[expected] == 1 and report.evaluated == 1 and not report.more_due
    assert row.status == "inaktiv" and row.evaluation_result == expected
    assert row.evaluated_at == AFTER_HORIZON
    assert row.evaluation_timestamp == T0 + HORIZON  # the target time never moves
    assert row.actual_price_change_pct == round((Decimal(str(end)) - 1) * 100, 4)
    assert note(row).startswith("change ")
    # The snapshot is the newest row at or before the horizon, not the spike after it.
    close = Decimal(str(end))
    assert (row.price_close_at_evaluation, row.price_open_at_evaluation, row.price_high_at_evaluation,
            row.price_low_at_evaluation) == (close, close * 2, close * 3, close / 2)
    assert row.market_cap_at_evaluation == round(close * 1000, 2)
    assert row.volume_at_evaluation == Decimal("4.25")
    assert row.phase_id_at_evaluation == 2


def test_the_model_current_target_is_used(market):
    model = time_model(percent=10)
    row = predict(model)
    path(market, "coin", 1.15)
    ActiveModel.objects.filter(pk=model.pk).update(price_change_percent=20)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "failed"
    assert note(row) == "change +15.00 % (target >= +20 %, up): not reached, predicted 1"


def test_no_metrics_at_all_is_not_applicable(market):
    row = predict(time_model())

    report = evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert report.not_applicable == 1
    assert (row.status, row.evaluation_result) == ("inaktiv", "not_applicable")
    assert note(row) == "no metrics between prediction and evaluation time"
    assert row.actual_price_change_pct is None and row.price_close_at_evaluation is None


def test_predictions_of_a_model_row_deleted_by_hand_are_not_applicable(market):
    """model_predictions has no foreign key (as in the existing server): a model row deleted with one's own SQL
    leaves its predictions behind, and they are judged like any other, so they never hold a partition back."""
    model = time_model()
    row = predict(model)
    path(market, "coin", 1.10)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM prediction_active_models WHERE id = %s", [model.pk])

    report = evaluate_due(now=AFTER_HORIZON)

    with connection.cursor() as cursor:
        cursor.execute("SELECT status, evaluation_result, evaluation_note FROM model_predictions WHERE id = %s",
                       [row.pk])
        judged = cursor.fetchone()
    assert report.by_result()["not_applicable"] == 1 and report.evaluated == 1
    assert judged == ("inaktiv", "not_applicable", "model deleted")


def test_snapshot_older_than_the_prediction_is_not_applicable(market):
    """A dead coin: the newest row before the horizon predates the prediction (the old server judged Δ = 0)."""
    price(market, "coin", T0 - timedelta(minutes=1), 1.0)
    price(market, "coin", T0 + HORIZON + timedelta(minutes=5), 1.0)
    row = predict(time_model(), prediction=0)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "not_applicable"
    assert row.price_close_at_evaluation is None and row.volume_at_evaluation is None


def test_the_row_predicted_on_counts_as_snapshot_when_nothing_newer_came(market):
    price(market, "coin", T0, 1.0)
    row = predict(time_model(), prediction=0)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert (row.evaluation_result, row.actual_price_change_pct) == ("success", 0)


@pytest.mark.parametrize(("start", "end"), [(None, 1.2), (0, 1.2), (1.0, 0), (1.0, None)])
def test_missing_or_zero_prices_are_not_applicable(market, start, end):
    row = predict(time_model(), start=start)
    price(market, "coin", T0 + HORIZON, end)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "not_applicable"
    assert note(row).startswith("price data unavailable")
    assert row.actual_price_change_pct is None


def test_a_model_without_price_target_is_not_applicable(market):
    row = predict(time_model(percent=None))
    path(market, "coin", 2.0)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "not_applicable"
    assert note(row).startswith("model has no price target")
    assert row.actual_price_change_pct == 100  # still measured, for information


@pytest.mark.parametrize(
    ("operator", "target", "volume", "prediction", "expected"),
    [
        (">", 5, 6, 1, "success"),
        (">", 5, 4, 1, "failed"),
        (">", 5, 4, 0, "success"),
        (">", 5, 6, 0, "failed"),
        ("<", 5, 4, 1, "success"),
        (">=", 5, 5, 1, "success"),
        ("<=", 5, 5.01, 1, "failed"),
        ("=", 5, 5.009, 1, "success"),  # within the 0.01 tolerance
        ("=", 5, 5.011, 1, "failed"),
        ("=", 5, 5.011, 0, "success"),
        (">", 5, None, 1, "not_applicable"),  # no value in the snapshot
    ],
)
def test_classic_rule(market, operator, target, volume, prediction, expected):
    model = classic_model(variable="volume_sol", operator=operator, value=target)
    row = predict(model, prediction=prediction)
    price(market, "coin", T0 + HORIZON, 1.0, volume=volume)

    report = evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert report.by_result()[expected] == 1
    assert row.evaluation_result == expected
    assert row.actual_price_change_pct == 0
    assert "volume_sol" in note(row)


def test_classic_note_names_value_and_target(market):
    row = predict(classic_model(variable="volume_sol", operator=">", value=5))
    price(market, "coin", T0 + HORIZON, 1.0, volume=6.5)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert note(row) == "volume_sol = 6.5 (target > 5): met, predicted 1"


@pytest.mark.parametrize("variable", ["is_koth", "no_such_column"])
def test_classic_target_without_numeric_value_is_not_applicable(market, variable):
    row = predict(classic_model(variable=variable, operator=">", value=0))
    price(market, "coin", T0 + HORIZON, 1.0)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "not_applicable"
    assert note(row) == f"{variable} has no numeric value at evaluation time"


def test_tracked_ath_is_kept_when_there_is_no_snapshot(market):
    tracked = {"ath_highest_pct": Decimal("12.5"), "ath_highest_timestamp": T0 + timedelta(minutes=2),
               "ath_lowest_pct": Decimal("-3"), "ath_lowest_timestamp": T0 + timedelta(minutes=3)}
    row = predict(time_model(), **tracked)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "not_applicable"
    assert {field: getattr(row, field) for field in tracked} == tracked


@pytest.mark.parametrize(
    ("end", "highest", "highest_at", "lowest", "lowest_at"),
    [
        # Beyond the tracked high: the close at the horizon becomes the high, at the snapshot time.
        (1.20, Decimal("20"), T0 + HORIZON, Decimal("-3"), T0 + timedelta(minutes=3)),
        (1.10, Decimal("12.5"), T0 + timedelta(minutes=2), Decimal("-3"), T0 + timedelta(minutes=3)),
        (0.95, Decimal("12.5"), T0 + timedelta(minutes=2), Decimal("-5"), T0 + HORIZON),
    ],
)
def test_final_ath_merge_with_the_close_at_the_horizon(market, end, highest, highest_at, lowest, lowest_at):
    row = predict(time_model(), ath_highest_pct=Decimal("12.5"), ath_highest_timestamp=T0 + timedelta(minutes=2),
                  ath_lowest_pct=Decimal("-3"), ath_lowest_timestamp=T0 + timedelta(minutes=3))
    price(market, "coin", T0 + HORIZON, end)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert (row.ath_highest_pct, row.ath_highest_timestamp, row.ath_lowest_pct, row.ath_lowest_timestamp) == (
        highest, highest_at, lowest, lowest_at)


def test_final_ath_merge_fills_empty_figures_only_in_their_direction(market):
    rising = predict(time_model(), coin="up")
    falling = predict(time_model(), coin="down")
    price(market, "up", T0 + HORIZON, 1.3)
    price(market, "down", T0 + HORIZON, 0.6)

    evaluate_due(now=AFTER_HORIZON)

    rising.refresh_from_db()
    falling.refresh_from_db()
    assert (rising.ath_highest_pct, rising.ath_lowest_pct) == (30, None)
    assert (falling.ath_highest_pct, falling.ath_lowest_pct) == (None, -40)


def test_huge_rise_is_capped_instead_of_failing_the_run(market):
    row = predict(time_model(), start=Decimal("0.000000000000000001"))
    price(market, "coin", T0 + HORIZON, 1.0)

    evaluate_due(now=AFTER_HORIZON)

    row.refresh_from_db()
    assert row.evaluation_result == "success"
    assert row.actual_price_change_pct == Decimal("999999999999.9999")


def test_rows_not_yet_due_and_evaluated_rows_are_untouched(market):
    model = time_model()
    due = predict(model, coin="due")
    not_due = predict(model, coin="later", at=T0 + timedelta(minutes=5))
    done = predict(model, coin="done", status="inaktiv", evaluation_result="failed", evaluated_at=T0,
                   stored_note="judged before")
    for coin in ("due", "later", "done"):
        path(market, coin, 1.5)

    report = evaluate_due(now=T0 + HORIZON)  # exactly at the first horizon: due (<=)

    assert report.evaluated == 1 and not report.more_due
    due.refresh_from_db()
    assert due.evaluation_result == "success"
    assert ModelPrediction.objects.get(pk=not_due.pk).status == "aktiv"
    done_now = ModelPrediction.objects.readable().get(pk=done.pk)
    assert (done_now.evaluation_result, done_now.evaluated_at, done_now.evaluation_note) == (
        "failed", T0, "judged before")
    assert done_now.price_close_at_evaluation is None


def test_limit_takes_the_oldest_horizon_first_and_reports_more_due(market):
    model = time_model()
    rows = [predict(model, coin=f"c{i}", at=T0 - timedelta(minutes=i)) for i in range(3)]

    first = evaluate_due(now=AFTER_HORIZON, limit=2)

    assert (first.evaluated, first.more_due) == (2, True)
    assert ModelPrediction.objects.get(pk=rows[0].pk).status == "aktiv"  # the newest horizon waits
    second = evaluate_due(now=AFTER_HORIZON, limit=2)
    assert (second.evaluated, second.more_due) == (1, False)
    assert evaluate_due(now=AFTER_HORIZON).evaluated == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_judge_a_row_twice(market):
    model = time_model()
    coins = [f"coin{i}" for i in range(50)]
    for coin in coins:
        path(market, coin, 1.5)
    ModelPrediction.objects.bulk_create(
        ModelPrediction(coin_id=coin, active_model=model, prediction=1, probability=0.9, tag="alert",
                        prediction_timestamp=T0 + timedelta(seconds=second), evaluation_timestamp=T0 + HORIZON,
                        price_close_at_prediction=Decimal("1"))
        for coin in coins for second in range(40)
    )
    total = len(coins) * 40
    # Each worker stamps its own evaluated_at, so every row shows which run judged it.
    worker_now = [AFTER_HORIZON, AFTER_HORIZON + timedelta(microseconds=1)]
    reports = [None, None]
    start = threading.Barrier(2)

    def worker(index: int) -> None:
        try:
            start.wait()
            reports[index] = evaluate_due(now=worker_now[index], limit=total * 3 // 4)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert reports[0].evaluated + reports[1].evaluated == total
    assert reports[0].evaluated and reports[1].evaluated  # no run may take everything: the work was split
    assert not ModelPrediction.objects.filter(status="aktiv").exists()
    for index, stamp in enumerate(worker_now):
        assert ModelPrediction.objects.filter(evaluated_at=stamp).count() == reports[index].evaluated
    # While both ran, each saw the other's claimed rows as still due; afterwards nothing is.
    assert not evaluate_due(now=AFTER_HORIZON).more_due


@pytest.mark.django_db(transaction=True)
def test_rows_locked_by_another_worker_are_skipped_without_waiting(market):
    model = time_model()
    mine, theirs = predict(model, coin="mine"), predict(model, coin="theirs")
    with open_connection() as other_worker:  # a transaction holding a claim, as a second evaluator would
        other_worker.execute("SELECT id FROM model_predictions WHERE id = %s FOR UPDATE", [theirs.pk])

        report = evaluate_due(now=AFTER_HORIZON)

        assert (report.evaluated, report.more_due) == (1, True)
        assert ModelPrediction.objects.get(pk=mine.pk).status == "inaktiv"
        assert ModelPrediction.objects.get(pk=theirs.pk).status == "aktiv"
        other_worker.rollback()
    assert evaluate_due(now=AFTER_HORIZON).evaluated == 1


def test_nan_prices_never_make_a_verdict_or_an_ath(market):
    """NUMERIC 'NaN' compares above every number in PostgreSQL; it must count as a missing price."""
    from alerts.services import evaluate_due, track_ath

    model = ActiveModel.objects.create(model_id=9901, model_name="nan", model_type="xgboost", features=["a"],
                                       future_minutes=5, price_change_percent=5, target_direction="up")
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    market.execute(
        "INSERT INTO coin_metrics (mint, timestamp, price_close) VALUES ('nancoin', %s, 1), ('nancoin', %s, 'NaN')",
        [start, start + timedelta(minutes=2)],
    )
    open_row = ModelPrediction.objects.create(
        coin_id="nancoin", active_model=model, prediction=1, probability=0.9, tag="alert",
        prediction_timestamp=start, evaluation_timestamp=start + timedelta(minutes=10), price_close_at_prediction=1,
    )
    track_ath(now=start + timedelta(minutes=3))
    open_row.refresh_from_db()
    assert open_row.ath_highest_pct is None

    evaluate_due(now=start + timedelta(minutes=11))
    open_row.refresh_from_db()
    assert open_row.evaluation_result == "not_applicable"
