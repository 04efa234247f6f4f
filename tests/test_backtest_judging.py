"""A backtest judges its rows set-wise as it stores them (backtests.row_services); the verdicts equal, row for row,
the worker's own verdict SQL with its per-row reads (alerts.services.VERDICT_CTES) on the same rows: time-based
targets up and down, classic targets, rows whose horizon lies beyond the data, and a market that grows while the
run goes on (rows judged afterwards). The summary's figures (one scan for the thresholds, the ROC curve's points
only) equal those of scikit-learn on every judged row and of a join per threshold."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from sklearn.metrics import roc_auc_score

from backtests import services, summary
from backtests.models import BacktestRow, BacktestRun, RunState
from backtests.row_services import judge_later
from tests.test_listener import MINT, ROWS, insert, register_xgb

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = datetime.fromisoformat(ROWS[0][1])
LAST = max(datetime.fromisoformat(row[1]) for row in ROWS)
MIDDLE = datetime.fromisoformat(sorted(row[1] for row in ROWS)[len(ROWS) // 2])


def backtest(model, *, end=LAST, progress=None) -> BacktestRun:
    run = services.create_run(active_model_id=model.pk, start=FIRST, end=end)
    run = services.execute_run(run_id=run.pk, progress=progress)
    assert run.state == RunState.DONE, run.error
    return run


def verdicts(run: BacktestRun) -> dict:
    return {(row.coin_id, row.prediction_timestamp): (row.evaluation_result, row.actual_price_change_pct)
            for row in BacktestRow.objects.filter(run=run)}


@pytest.mark.parametrize("target", [
    {},  # the fixture's: up 10 % within 5 minutes
    {"price_change_percent": Decimal("2"), "target_direction": "down", "future_minutes": 3},
    {"price_change_percent": None, "future_minutes": None, "target_operator": ">", "target_value": Decimal("0.5"),
     "target_variable": "volume_sol"},
    {"price_change_percent": None, "future_minutes": None, "target_operator": "<=", "target_value": Decimal("30"),
     "target_variable": "bonding_curve_pct"},
], ids=["up", "down", "classic-volume", "classic-curve"])
def test_set_wise_verdicts_equal_the_workers_row_by_row_verdicts(market, target):
    insert(market, ROWS)
    model = register_xgb(**target)
    run = backtest(model)
    stored = verdicts(run)
    results = [result for result, _change in stored.values()]
    assert {"success", "failed"} <= set(results) and results.count(None) > 0  # judged rows, and rows beyond the data

    BacktestRow.objects.filter(run=run).update(evaluation_result=None, actual_price_change_pct=None)
    judge_later(run_id=run.pk, model_id=model.pk, data_end=LAST)
    assert verdicts(run) == stored


def test_rows_whose_horizon_the_market_reaches_during_the_run_are_judged_at_its_end(market):
    earlier = [row for row in ROWS if datetime.fromisoformat(row[1]) <= MIDDLE]
    insert(market, earlier)
    model = register_xgb()

    def market_grows(run):  # called after each group: the collector writes the rest of the market meanwhile
        if BacktestRow.objects.filter(run=run).exists() and len(earlier) < len(ROWS):
            insert(market, [row for row in ROWS if datetime.fromisoformat(row[1]) > MIDDLE])
            earlier.extend(ROWS)

    grown = verdicts(backtest(model, end=MIDDLE, progress=market_grows))
    static = verdicts(backtest(model, end=MIDDLE))
    assert grown == static
    late = [key for key, (result, _change) in static.items() if key[1] > MIDDLE - timedelta(minutes=5)]
    assert late and all(static[key][0] is not None for key in late)  # judged with the rows that came later
    assert {row[MINT] for row in ROWS} >= {coin for coin, _ in static}


# The summary's statements before they were folded into one scan and a ROC read of the curve's points only.
OLD_THRESHOLDS_SQL = f"""
SELECT t.threshold,
       count(b.id),
       count(b.id) FILTER (WHERE b.happened),
       count(b.id) FILTER (WHERE NOT b.happened),
       avg(b.actual_price_change_pct) FILTER (WHERE b.happened IS NOT NULL)
  FROM unnest(%s::float8[]) AS t(threshold)
  LEFT JOIN (SELECT id, probability, actual_price_change_pct, {summary._HAPPENED} AS happened
               FROM backtest_rows WHERE run_id = %s) b ON b.probability >= t.threshold
 GROUP BY t.threshold
 ORDER BY t.threshold
"""
OLD_SCORES_SQL = (f"SELECT probability, {summary._HAPPENED} FROM backtest_rows WHERE run_id = %s "
                  f"AND {summary._HAPPENED} IS NOT NULL")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summary_figures_equal_scikit_learn_and_the_per_threshold_join(market, seed):
    """ROC AUC and base rate as roc_auc_score and numpy give them on every judged row (ties, single points, many
    distinct probabilities), and per-threshold figures as the join over the thresholds gives them."""
    rng = np.random.default_rng(seed)
    insert(market, ROWS[:10])
    run = services.create_run(active_model_id=register_xgb().pk, start=FIRST, end=LAST)
    n = 4000
    probability = np.where(rng.random(n) < 0.4, rng.choice([0.3, 0.5, 0.55, 0.9], n), rng.random(n))
    probability = probability.astype(np.float32).astype(np.float64)
    result = rng.choice(["success", "failed", "not_applicable", None], n, p=[0.4, 0.4, 0.1, 0.1])
    BacktestRow.objects.bulk_create([
        BacktestRow(run=run, coin_id="c", prediction_timestamp=FIRST, evaluation_timestamp=FIRST,
                    probability=float(p), prediction=int(p > 0.5), tag="alert" if p >= 0.7 else "negativ",
                    evaluation_result=r, actual_price_change_pct=None if r is None else Decimal(int(c)) / 100)
        for p, r, c in zip(probability, result, rng.integers(-5000, 5000, n))
    ])
    figures = summary.summarize(run=run, rows_replayed=n, data_end=LAST, duration_s=1.0)
    with connection.cursor() as cursor:
        cursor.execute(OLD_SCORES_SQL, [run.pk])
        scored = cursor.fetchall()
        cursor.execute(OLD_THRESHOLDS_SQL, [list(summary.THRESHOLDS), run.pk])
        by_threshold = cursor.fetchall()
    scores = np.array([row[0] for row in scored], dtype=np.float64)
    happened = np.array([row[1] for row in scored], dtype=bool)
    assert figures["roc_auc"] == float(roc_auc_score(happened, scores))
    assert figures["base_rate"] == float(happened.mean())
    assert [(t["threshold"], t["alerts"], t["success"], t["failed"], t["avg_price_change_pct"])
            for t in figures["thresholds"]] == [(t, n, hit, miss, None if change is None else float(change))
                                               for t, n, hit, miss, change in by_threshold]


def test_the_summary_added_up_group_by_group_equals_one_read_of_the_stored_rows(market, monkeypatch):
    """The store adds up the figures of each group it stores; with one coin per group, they equal the figures read
    from the run's stored rows at once (counts, exact sums and averages, ROC points and AUC)."""
    monkeypatch.setattr(services, "GROUP_ROWS", 1)  # every coin a group of its own
    insert(market, ROWS)
    model = register_xgb()
    run = backtest(model)
    groups = BacktestRow.objects.filter(run=run).values("coin_id").distinct().count()
    assert groups > 1 and run.summary["alerts"] > 0 and run.summary["roc_auc"] is not None
    again = summary.summarize(run=run, rows_replayed=run.summary["rows_replayed"],
                              data_end=datetime.fromisoformat(run.summary["data_end"]), duration_s=1.0)
    timing = ("duration_s", "rows_per_s", "live", "yielded_s")
    assert {key: value for key, value in again.items() if key not in timing} == {
        key: value for key, value in run.summary.items() if key not in timing}
