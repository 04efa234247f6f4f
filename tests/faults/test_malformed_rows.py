"""Malformed coin_metrics rows from a collector, in one batch with good rows, under a real listener process.

No crash; the good coins of the same batch are predicted; rows whose price_close is NULL, zero, negative or NaN
are counted as `ml_errors_total{type="data"}` and the batch logs one line about them. The other odd rows are
handled by the rules that already exist: huge values and zero volumes (0/0 in the ratio features) are predicted
(NaN/±inf features become 0 by the feature spec), an unknown or NULL phase passes no model's phase filter.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from predictions.models import ModelPrediction
from tests.conftest import test_database_url
from tests.faults.processes import Processes, wait_for
from tests.test_listener import HEADER, MINT, ROWS, insert, newest_rows, register_rf, register_xgb, rows_of
from tests.test_metrics import sample

pytestmark = pytest.mark.django_db(transaction=True)

DATA_ERRORS = 'ml_errors_total{type="data"}'
PRICES = ("price_open", "price_high", "price_low", "price_close")
VOLUMES = ("volume_sol", "buy_volume_sol", "sell_volume_sol", "net_volume_sol", "avg_trade_size_sol",
           "whale_buy_volume_sol", "whale_sell_volume_sol", "max_single_buy_sol", "max_single_sell_sol")

# case: (column changes of the coin's newest row, counted as a data error?)
CASES = {
    "null_price": ({name: None for name in PRICES}, True),
    "zero_price": ({name: "0" for name in PRICES}, True),
    "negative_price": ({"price_close": "-0.000000028", "price_low": "-0.000000029"}, True),
    "nan_price": ({"price_close": "NaN"}, True),
    "huge_values": ({"market_cap_close": "1000000000000000", "price_high": "100000000000",
                     "virtual_sol_reserves": "99999999999999", "num_buys": "2000000000"}, False),
    "zero_volumes": ({**{name: "0" for name in VOLUMES}, "num_buys": "0", "num_sells": "0", "unique_wallets": "0",
                      "buy_pressure_ratio": "0", "unique_signer_ratio": "0"}, False),
    "unknown_phase": ({"phase_id_at_time": "42"}, False),
    "null_phase": ({"phase_id_at_time": None}, False),
}
HISTORY = 60  # good rows each malformed coin has before its malformed newest row


def coin_rows(template_mint: str, mint: str, changes: dict) -> list[list]:
    """A copy of a fixture coin's first HISTORY rows under another mint, plus one newest row with `changes`."""
    rows = [[mint if i == MINT else value for i, value in enumerate(row)] for row in rows_of(template_mint)[:HISTORY]]
    newest = list(rows[-1])
    newest[1] = (datetime.fromisoformat(newest[1]) + timedelta(seconds=5)).isoformat()
    for name, value in changes.items():
        newest[HEADER.index(name)] = value
    return rows, newest


def test_malformed_rows_do_not_stop_the_batch_and_are_counted(market, client, tmp_path):
    models = [register_xgb(), register_rf()]
    good_mints = sorted({row[MINT] for row in ROWS})
    template = good_mints[0]
    malformed = {f"BAD{name.upper()}pump": (name, *coin_rows(template, f"BAD{name.upper()}pump", changes))
                 for name, (changes, _counted) in CASES.items()}
    counted = sum(1 for _name, (_changes, is_counted) in CASES.items() if is_counted)

    processes = Processes(tmp_path)
    try:
        listener = processes.listener(test_database_url())
        # Good history first (good coins up to their second newest row, malformed coins' good rows).
        insert(market, [row for mint in good_mints for row in rows_of(mint)[:-1]]
               + [row for _name, history, _newest in malformed.values() for row in history])
        wait_for(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)
                 and ModelPrediction.objects.filter(coin_id__in=list(malformed)).exists(), timeout=60)
        errors_before = sample(client.get("/metrics").content.decode(), DATA_ERRORS)

        # One collector statement: every good coin's newest row and every malformed row, so one claim takes them.
        insert(market, [rows_of(mint)[-1] for mint in good_mints] + [newest for *_h, newest in malformed.values()])
        newest = newest_rows(good_mints)
        wait_for(lambda: market.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)
                 and all(ModelPrediction.objects.filter(active_model=model, coin_id=mint, prediction_timestamp=ts)
                         .exists() for model in models for mint, ts in newest.items()),
                 timeout=60, message=lambda: "the good rows of the batch were not predicted\n" + processes.report())
        assert listener.alive(), processes.report()
        errors_after = sample(client.get("/metrics").content.decode(), DATA_ERRORS)
        assert listener.stop() == 0
    finally:
        processes.stop_all()

    output = listener.output()
    assert "Traceback" not in output, output
    assert errors_after - errors_before == counted
    (line,) = [line for line in output.splitlines() if "unusable price_close" in line]  # one line for the batch
    assert re.search(rf"\b{counted} of {len(good_mints) + len(malformed)} rows\b", line), line
    assert all(f"BAD{name.upper()}pump" in line for name, (_c, is_counted) in CASES.items() if is_counted), line

    xgb = models[0]
    for mint, (name, _history, newest_row) in malformed.items():
        at = datetime.fromisoformat(newest_row[1])
        for model in models:
            stored = ModelPrediction.objects.filter(active_model=model, coin_id=mint, prediction_timestamp=at)
            phase_filtered = name in ("unknown_phase", "null_phase") and model == xgb  # xgb serves phases 1-3
            assert stored.exists() is not phase_filtered, (name, model.model_name)
            if stored.exists():
                assert 0.0 <= stored.get().probability <= 1.0
