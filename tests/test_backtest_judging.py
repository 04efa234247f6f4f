"""A backtest judges its rows set-wise as it stores them (backtests.row_services); the verdicts equal, row for row,
the worker's own verdict SQL with its per-row reads (alerts.services.VERDICT_CTES) on the same rows: time-based
targets up and down, classic targets, rows whose horizon lies beyond the data, and a market that grows while the
run goes on (rows judged afterwards)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from backtests import services
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
