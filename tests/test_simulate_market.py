"""The market simulator (predictions/simulation.py) and `manage.py simulate_market`, the synthetic collector.

`test_generator_*` are pure (no Django, no database):
`pytest -p no:django -o addopts= tests/test_simulate_market.py -k generator`.
`test_db_*` run the command against the real PostgreSQL, as a collector on its own connection.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import islice

import pytest

from predictions.simulation import COLUMNS, PHASES, CoinMetricsRow, MarketSimulator

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
START_ISO = "2025-01-01T00:00:00Z"
BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
SCALES = {
    **dict.fromkeys(["price_open", "price_high", "price_low", "price_close"], 18),
    "market_cap_close": 2,
    "bonding_curve_pct": 4,
    "volatility_pct": 4,
    "buy_pressure_ratio": 6,
    "unique_signer_ratio": 6,
}
VOLUME_COLUMNS = [
    "virtual_sol_reserves", "volume_sol", "buy_volume_sol", "sell_volume_sol", "dev_sold_amount",
    "max_single_buy_sol", "max_single_sell_sol", "whale_buy_volume_sol", "whale_sell_volume_sol",
    "avg_trade_size_sol",
]
INTERVAL_OF_PHASE = {phase_id: interval for phase_id, interval, _ in PHASES}


def simulate(*, coins: int, seed: int = 1, ticks: int) -> list[list[CoinMetricsRow]]:
    return list(islice(MarketSimulator(coins=coins, seed=seed).ticks(START), ticks))


def flat(ticks: list[list[CoinMetricsRow]]) -> list[CoinMetricsRow]:
    return [row for rows in ticks for row in rows]


def by_coin(rows: list[CoinMetricsRow]) -> dict[str, list[CoinMetricsRow]]:
    coins = defaultdict(list)
    for row in rows:
        coins[row.mint].append(row)
    return coins


def assert_consistent(row: CoinMetricsRow) -> None:
    """Every column as the collector defines it (spec §1.1), at the platform scales."""
    for column, places in SCALES.items():
        assert getattr(row, column).as_tuple().exponent == -places, column
    for column in [*VOLUME_COLUMNS, "net_volume_sol"]:
        assert getattr(row, column).as_tuple().exponent == -6, column
    assert len(row.mint) == 44 and row.mint.endswith("pump") and set(row.mint) <= BASE58
    assert row.phase_id_at_time in (1, 2, 3)

    assert 0 < row.price_low <= min(row.price_open, row.price_close)
    assert max(row.price_open, row.price_close) <= row.price_high
    assert row.market_cap_close == (row.price_close * 1_000_000_000).quantize(Decimal("0.01"))
    assert row.is_koth == (row.market_cap_close > 30000)
    assert abs(row.bonding_curve_pct - row.virtual_sol_reserves / 85 * 100) <= Decimal("0.0002")
    assert row.bonding_curve_pct <= 100
    # price = virtual SOL ÷ virtual tokens on a constant-product curve that starts at 30 SOL / 1.073e9 tokens
    curve_price = row.virtual_sol_reserves**2 / (30 * 1_073_000_000)
    assert abs(curve_price / row.price_close - 1) < Decimal("1e-6")

    for column in VOLUME_COLUMNS:
        assert getattr(row, column) >= 0, column
    assert row.volume_sol == row.buy_volume_sol + row.sell_volume_sol
    assert row.net_volume_sol == row.buy_volume_sol - row.sell_volume_sol
    trades = row.num_buys + row.num_sells
    assert trades >= 1  # no trade, no row
    assert 1 <= row.unique_wallets <= trades
    assert 0 <= row.num_micro_trades <= trades
    assert 0 <= row.num_whale_buys <= row.num_buys and 0 <= row.num_whale_sells <= row.num_sells
    assert (row.num_buys > 0) == (row.max_single_buy_sol > 0)
    assert (row.num_sells > 0) == (row.max_single_sell_sol > 0)
    assert row.max_single_buy_sol <= row.buy_volume_sol and row.max_single_sell_sol <= row.sell_volume_sol
    assert row.whale_buy_volume_sol <= row.buy_volume_sol and row.whale_sell_volume_sol <= row.sell_volume_sol
    assert row.whale_buy_volume_sol >= row.num_whale_buys and row.whale_sell_volume_sol >= row.num_whale_sells
    assert (row.num_whale_buys > 0) == (row.max_single_buy_sol >= 1)
    assert (row.num_whale_sells > 0) == (row.max_single_sell_sol >= 1)
    assert row.dev_sold_amount <= row.sell_volume_sol

    open_, high, low = float(row.price_open), float(row.price_high), float(row.price_low)
    assert float(row.volatility_pct) == pytest.approx((high - low) / open_ * 100, abs=2e-4)
    assert row.avg_trade_size_sol == (row.volume_sol / trades).quantize(Decimal("0.000001"))
    expected_pressure = (row.buy_volume_sol / row.volume_sol).quantize(Decimal("0.000001")) if row.volume_sol else 0
    assert row.buy_pressure_ratio == expected_pressure
    assert row.unique_signer_ratio == Decimal(row.unique_wallets / trades).quantize(Decimal("0.000001"))
    assert 0 <= row.buy_pressure_ratio <= 1 and 0 <= row.unique_signer_ratio <= 1


# -- the generator ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def market() -> list[list[CoinMetricsRow]]:
    """40 minutes of a 60-coin market, shared by the generator tests (about 8,000 rows)."""
    return simulate(coins=60, ticks=2400)


def test_generator_same_seed_gives_identical_rows():
    assert simulate(coins=30, seed=7, ticks=400) == simulate(coins=30, seed=7, ticks=400)


def test_generator_different_seed_gives_other_rows():
    first, second = flat(simulate(coins=30, seed=7, ticks=200)), flat(simulate(coins=30, seed=8, ticks=200))
    assert {row.mint for row in first}.isdisjoint({row.mint for row in second})
    assert [row[2:] for row in first[:50]] != [row[2:] for row in second[:50]]


def test_generator_every_row_is_consistent(market):
    rows = flat(market)
    assert len(rows) > 5000
    for row in rows:
        assert_consistent(row)


def test_generator_rows_of_one_flush_cycle_share_its_timestamp(market):
    for second, rows in enumerate(market):
        assert len({row.timestamp for row in rows}) <= 1
        assert len({row.mint for row in rows}) == len(rows)  # at most one row per coin per cycle
        for row in rows:
            # the cycle runs a little after its simulated second, never a whole second late
            assert timedelta(0) <= row.timestamp - (START + timedelta(seconds=second)) < timedelta(seconds=1)


def test_generator_coins_move_through_the_phases_at_their_intervals_with_gaps(market):
    rows = flat(market)
    # the first population starts at random ages, so later phases appear within the first minutes
    early_phases = {row.phase_id_at_time for rows in market[:120] for row in rows}
    assert early_phases == {1, 2, 3}
    gaps = 0
    for history in by_coin(rows).values():
        for previous, row in zip(history, history[1:]):
            assert row.phase_id_at_time >= previous.phase_id_at_time
            if row.bonding_curve_pct >= Decimal("99.5"):
                continue  # a graduating coin is flushed at once
            interval = round((row.timestamp - previous.timestamp).total_seconds())
            assert interval >= INTERVAL_OF_PHASE[previous.phase_id_at_time]
            gaps += interval > INTERVAL_OF_PHASE[previous.phase_id_at_time]
    assert gaps > 100  # intervals without trades produce no row


def test_generator_market_has_pumps_fades_wash_trading_and_dev_sells(market):
    rows = flat(market)
    coins = by_coin(rows)
    peak_gain = {mint: max(r.price_close for r in h) / h[0].price_close for mint, h in coins.items() if len(h) > 5}
    faded = [mint for mint, h in coins.items() if len(h) > 5 and h[-1].price_close < h[0].price_close]
    assert sum(gain > 2 for gain in peak_gain.values()) >= 3
    assert len(faded) > len(coins) / 2  # most coins fade
    assert any(row.num_whale_buys for row in rows) and any(row.num_whale_sells for row in rows)
    assert any(row.dev_sold_amount > 0 for row in rows)
    assert sum(row.unique_signer_ratio < Decimal("0.35") and row.num_buys + row.num_sells >= 10 for row in rows) > 20


def test_generator_a_pump_rises_with_buy_pressure_then_dumps(market):
    coins = by_coin(flat(market))
    dumped = 0
    for history in coins.values():
        closes = [row.price_close for row in history]
        peak = closes.index(max(closes))
        if closes[peak] / closes[0] > 2 and closes[-1] < closes[peak] / 2:
            run_up, fall = history[: peak + 1], history[peak + 1 :]
            assert sum(r.buy_volume_sol for r in run_up) > sum(r.sell_volume_sol for r in run_up)
            assert sum(r.sell_volume_sol for r in fall) > sum(r.buy_volume_sol for r in fall)
            dumped += 1
    assert dumped >= 1


def test_generator_graduated_coins_stop_and_dead_coins_are_replaced(market):
    coins = by_coin(flat(market))
    for history in coins.values():
        graduated = [i for i, row in enumerate(history) if row.bonding_curve_pct >= Decimal("99.5")]
        assert graduated in ([], [len(history) - 1])
    simulator = MarketSimulator(coins=60, seed=1)
    for _ in islice(simulator.ticks(START), 1200):
        pass
    assert simulator.coins_born > 20
    assert 50 <= simulator.coins_alive <= 60


def test_generator_step_stamps_rows_with_the_given_time():
    simulator = MarketSimulator(coins=50, seed=3)
    moment = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    rows = [row for second in range(30) for row in simulator.step(moment + timedelta(seconds=second))]
    assert rows and all(moment <= row.timestamp < moment + timedelta(seconds=30) for row in rows)
    # the wall-clock path sees the same market as the simulated clock, only the timestamps differ
    same_market = flat(simulate(coins=50, seed=3, ticks=30))
    assert [row[2:] for row in rows] == [row[2:] for row in same_market]


def test_generator_rejects_an_empty_market():
    with pytest.raises(ValueError):
        MarketSimulator(coins=0)


# -- the command -------------------------------------------------------------------------------------------------


def run_command(**options) -> str:
    from io import StringIO

    from django.core.management import call_command

    output = StringIO()
    call_command("simulate_market", stdout=output, **options)
    return output.getvalue()


@pytest.fixture
def collector_db(django_db_blocker):
    """A connection of its own (the command commits on its own too); coin_metrics is emptied before and after."""
    from pumpserver.database import open_connection

    with django_db_blocker.unblock(), open_connection(autocommit=True) as connection:
        connection.execute("TRUNCATE coin_metrics, coin_metrics_queue")
        yield connection
        connection.execute("TRUNCATE coin_metrics, coin_metrics_queue")


def stored_rows(connection) -> list[CoinMetricsRow]:
    columns = ", ".join(f'"{column}"' for column in COLUMNS)
    records = connection.execute(f"SELECT {columns} FROM coin_metrics ORDER BY id").fetchall()
    return [CoinMetricsRow(*record) for record in records]


@pytest.mark.django_db(transaction=True)
def test_db_writes_exactly_the_requested_rows_as_generated(collector_db):
    output = run_command(coins=40, rate=100000, rows=2500, seed=5, start=START_ISO)
    rows = stored_rows(collector_db)
    assert len(rows) == 2500
    assert "2500 rows" in output.splitlines()[-1]
    for row in rows:
        assert_consistent(row)
    # stored exactly as generated: same values at the same scales, nothing rounded on the way in
    assert rows == flat(simulate(coins=40, seed=5, ticks=2000))[:2500]
    [(checked,)] = collector_db.execute(
        "SELECT count(*) FROM coin_metrics WHERE price_low <= price_close AND price_close <= price_high "
        "AND volume_sol >= 0 AND buy_volume_sol + sell_volume_sol = volume_sol AND phase_id_at_time IN (1, 2, 3) "
        "AND buy_pressure_ratio BETWEEN 0 AND 1 AND unique_signer_ratio BETWEEN 0 AND 1 "
        "AND abs(market_cap_close - price_close * 1e9) <= 0.005"
    ).fetchall()
    assert checked == 2500


@pytest.mark.django_db(transaction=True)
def test_db_same_seed_repeats_and_another_seed_differs(collector_db):
    run_command(coins=30, rate=100000, rows=1500, seed=11, start=START_ISO)
    first = stored_rows(collector_db)
    collector_db.execute("TRUNCATE coin_metrics")
    run_command(coins=30, rate=100000, rows=1500, seed=11, start=START_ISO)
    assert stored_rows(collector_db) == first
    collector_db.execute("TRUNCATE coin_metrics")
    run_command(coins=30, rate=100000, rows=1500, seed=12, start=START_ISO)
    assert stored_rows(collector_db) != first


@pytest.mark.django_db(transaction=True)
def test_db_some_coins_pump_and_most_fade(collector_db):
    run_command(coins=60, rate=100000, rows=6000, seed=1, start=START_ISO)
    [(pumped, faded, coins)] = collector_db.execute(
        """
        SELECT count(*) FILTER (WHERE peak / first_close > 2),
               count(*) FILTER (WHERE last_close < first_close),
               count(*)
        FROM (
            SELECT mint, max(price_close) AS peak,
                   (array_agg(price_close ORDER BY "timestamp"))[1] AS first_close,
                   (array_agg(price_close ORDER BY "timestamp" DESC))[1] AS last_close
            FROM coin_metrics GROUP BY mint HAVING count(*) > 5
        ) AS coin
        """
    ).fetchall()
    assert pumped >= 1
    assert faded > coins / 2


@pytest.mark.django_db(transaction=True)
def test_db_rate_is_a_ceiling(collector_db):
    began = time.monotonic()
    output = run_command(coins=200, rate=400, rows=600, seed=2, start=START_ISO)
    elapsed = time.monotonic() - began
    assert len(stored_rows(collector_db)) == 600
    assert elapsed >= (600 - 40) / 400  # the first statement (at most rate/10 rows) goes at once
    assert "600 rows" in output.splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_db_realtime_stamps_rows_with_the_wall_clock(collector_db):
    before = datetime.now(timezone.utc)
    run_command(coins=300, rate=10000, duration=2.5, seed=3, realtime=True)
    after = datetime.now(timezone.utc)
    rows = stored_rows(collector_db)
    assert rows
    assert all(before <= row.timestamp <= after for row in rows)
    cycles = sorted({row.timestamp for row in rows})
    assert len(cycles) <= 3  # one flush cycle per real second
    assert all(b - a >= timedelta(seconds=0.9) for a, b in zip(cycles, cycles[1:]))


@pytest.mark.django_db(transaction=True)
def test_db_sigint_finishes_the_statement_prints_the_summary_and_exits_0(collector_db):
    from django.db import connection

    from tests.conftest import PROJECT_DIR, database_url

    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings",
        "DATABASE_URL": database_url(connection.settings_dict["NAME"]),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_market", "--coins", "100", "--rate", "300", "--duration", "60"],
        cwd=PROJECT_DIR, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        header = process.stdout.readline()  # printed once Django has started (slow on a busy machine)
        assert header.startswith("simulate_market:"), header
        time.sleep(1.5)  # a second or so of inserts
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    summary = stdout.strip().splitlines()[-1]
    assert "stopped by signal" in summary
    written = len(stored_rows(collector_db))
    assert written > 0 and f"{written} rows" in summary


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"coins": 5, "rate": 10}, "exactly one of --duration"),
        ({"coins": 5, "rate": 10, "duration": 1, "rows": 10}, "exactly one of --duration"),
        ({"rate": 10, "rows": 10}, "--coins is required"),
        ({"coins": 5, "rows": 10}, "--rate is required"),
        ({"coins": 0, "rate": 10, "rows": 10}, "--coins must be at least 1"),
        ({"coins": 5, "rate": -1, "rows": 10}, "--rate must be greater than 0"),
        ({"coins": 5, "rate": 0, "rows": 10}, "--rate must be greater than 0"),
        ({"coins": 5, "rate": 10, "rows": -3}, "--rows must be at least 1"),
        ({"coins": 5, "rate": 10, "duration": -2}, "--duration must be greater than 0"),
        ({"coins": 5, "rate": 10, "rows": 10, "seed": -1}, "--seed must be at least 0"),
        ({"coins": "many", "rate": 10, "rows": 10}, "--coins must be a whole number"),
        ({"coins": 2.5, "rate": 10, "rows": 10}, "--coins must be a whole number"),
        ({"coins": 5, "rate": 10, "rows": 10, "start": "yesterday"}, "--start must be an ISO 8601 time"),
        ({"coins": 5, "rate": 10, "rows": 10, "start": START_ISO, "realtime": True}, "exclude each other"),
    ],
)
def test_command_rejects_bad_arguments_in_one_line(options, message):
    from django.core.management import CommandError

    with pytest.raises(CommandError) as raised:
        run_command(**options)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
