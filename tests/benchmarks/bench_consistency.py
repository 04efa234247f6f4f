"""What "several listeners see the same truth" costs: the change triggers on the collector's INSERTs, and the
listener's per-batch change read and per-coin cut to the event's time, against the same code without them.

    EMBEDDED_PGDATA=var/pg-bench .venv/bin/python -m tests.benchmarks.bench_consistency   (own database)

or `run(url)` from tests.benchmarks.run. The measuring runs in a process of its own on the bench database:

* inserts: rows/s of one collector connection appending to 1,000 known coins, 500 rows per INSERT and one row per
  INSERT (each its own transaction), with the change triggers installed and dropped, alternating, best of 3;
* listener: 1,000 coins with 100 rows of history each, then one new row per coin per batch through
  `process_pending_batch` with the listener's history cache and the parity XGBoost model; batches alternate between
  a cache that reads the change log and one that does not (both warm), median batch seconds each; the same with
  1 % of the coins corrected (UPDATE of an older row) before each batch; and the change read and cut alone.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
COINS, PREFILL, BATCHES = 1000, 100, 40
TRIGGER_COLUMNS = "mint, timestamp, phase_id_at_time, price_open, price_high, price_low, price_close, volume_sol"
OWN_DATABASE = "pump_bench_consistency"


def run(url: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "pumpserver.settings",
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench")}
    result = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_consistency", "--measure"],
                            cwd=PROJECT_DIR, env=env, check=True, stdout=subprocess.PIPE, text=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return report(figures)


def report(f: dict) -> str:
    lines = [
        "### Several listeners, one truth: what it costs",
        "",
        "Collector inserts (rows/s, one connection, each statement its own transaction, best of 3):",
        "",
        "| case | with change triggers | without | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, key in (("500 rows per INSERT", "bulk"), ("one row per INSERT", "single")):
        on, off = f["inserts"][key]["on"], f["inserts"][key]["off"]
        lines.append(f"| {label} | {on:,.0f} | {off:,.0f} | {on / off:.3f} |")
    lines += [
        "",
        f"Listener, {COINS:,} coins with {PREFILL} rows each, one new row per coin per batch, parity XGBoost model "
        f"(median of {BATCHES // 2} batches each):",
        "",
        "| case | reads the change log | does not | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, key in (("appends only", "appends"), ("2 % of coins corrected between its batches", "corrected")):
        on, off = f["listener"][key]["on"], f["listener"][key]["off"]
        lines.append(f"| {label}: batch ms | {1000 * on:.1f} | {1000 * off:.1f} | {on / off:.3f} |")
        lines.append(f"| {label}: rows/s | {COINS / on:,.0f} | {COINS / off:,.0f} | {off / on:.3f} |")
    lines += [
        "",
        f"Alone: the change read {1000 * f['change_read']:.2f} ms per batch (no changes; a `SELECT 1` round trip "
        f"takes {1000 * f['round_trip']:.2f} ms); the cut of {COINS:,} coins to "
        f"their event's time {1000 * f['cut']:.2f} ms per batch (cache.histories with `until` minus without).",
        "(Without the change log a corrected coin keeps its stale rows until its max-age re-read: that run is faster "
        "because it is wrong.)",
    ]
    return "\n".join(lines)


# --- the measuring process ------------------------------------------------------------------------------------


def measure() -> dict:
    import django

    django.setup()
    from django.db import connection, transaction

    from inference.history_cache import HistoryCache
    from modelregistry.models import ActiveModel, ModelSource
    from modelregistry.services import register_model
    from modelregistry.serving import model_cache
    from predictions import history_change_schema
    from predictions.services import process_pending_batch
    from tests import parity

    header, rows = parity.coin_metrics_rows()
    mint_column, time_column = header.index("mint"), header.index("timestamp")
    base = sorted({row[mint_column] for row in rows})
    per_coin = {mint: [row for row in rows if row[mint_column] == mint] for mint in base}
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def row_of(coin: int, index: int) -> list:
        row = list(per_coin[base[coin % len(base)]][index % 190])
        row[mint_column] = f"bench{coin:05d}pump"
        row[time_column] = (start + timedelta(seconds=5 * index, microseconds=coin)).isoformat()
        return row

    insert = f"INSERT INTO coin_metrics ({', '.join(header)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(header)) + ")"

    def insert_rows(batch: list[list]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(insert + ", ".join([one] * len(batch)), [value for row in batch for value in row])

    def triggers(on: bool) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            if on:
                history_change_schema.install_triggers(cursor)
            else:
                cursor.execute(history_change_schema.DROP_TRIGGERS)

    # Inserts with and without the change triggers: rows built by the server, as in bench_trigger, so that the
    # client's parameter handling does not hide the database's cost. Every coin has rows already (the normal stream
    # appends to known coins; the late-row check probes each coin's newest rows).
    inserts = {}
    for key, per_statement, total in (("bulk", 500, 50_000), ("single", 1, 5_000)):
        best = {"on": 0.0, "off": 0.0}
        statement = (f"INSERT INTO coin_metrics ({TRIGGER_COLUMNS}) SELECT 'bench' || lpad(g::text, 5, '0') || 'pump', "
                     "clock_timestamp(), 1, 0.000000028, 0.000000029, 0.000000027, 0.000000028, 1.5 "
                     "FROM generate_series(%s, %s) g")
        for attempt in range(3):
            for variant in ("on", "off"):
                triggers(variant == "on")
                with connection.cursor() as cursor:
                    cursor.execute("TRUNCATE coin_metrics, coin_metrics_queue, coin_metrics_changes")
                    cursor.execute(statement, [0, COINS - 1])
                    started = time.perf_counter()
                    for first in range(0, total, per_statement):
                        coin = first % COINS
                        cursor.execute(statement, [coin, min(coin + per_statement, COINS) - 1])
                    best[variant] = max(best[variant], total / (time.perf_counter() - started))
        inserts[key] = best
    triggers(True)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE coin_metrics, coin_metrics_queue, coin_metrics_changes")

    # The listener's batches.
    register_model(artifact=parity.artifact("model_xgb.json"), meta=parity.meta("xgb"),
                   source=ModelSource.COMMAND_LINE, activate=True)
    ActiveModel.objects.update(min_scan_interval_seconds=0)
    for index in range(PREFILL):
        insert_rows([row_of(coin, index) for coin in range(COINS)])
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE coin_metrics_queue")
    models = model_cache(size=4)
    caches = {"on": HistoryCache(limit=1000), "off": HistoryCache(limit=1000, track_changes=False)}
    listener: dict = {}
    index = PREFILL
    for case in ("appends", "corrected"):
        seconds: dict = {"on": [], "off": []}
        for batch in range(BATCHES + 4):
            variant = "on" if batch % 2 == 0 else "off"
            if case == "corrected":
                with connection.cursor() as cursor:  # 1 % of the coins: their 6th newest row corrected
                    cursor.execute(
                        'UPDATE coin_metrics m SET volume_sol = volume_sol * 1.01 FROM (SELECT unnest(%s::text[]) '
                        'AS mint) c WHERE m.mint = c.mint AND m."timestamp" = (SELECT "timestamp" FROM coin_metrics '
                        'WHERE mint = c.mint ORDER BY "timestamp" DESC OFFSET 5 LIMIT 1)',
                        [[f"bench{coin:05d}pump" for coin in range(batch % 100, COINS, 100)]],
                    )
            insert_rows([row_of(coin, index) for coin in range(COINS)])
            index += 1
            started = time.perf_counter()
            report = process_pending_batch(limit=10_000, cache=models, history_limit=1000,
                                           history_cache=caches[variant])
            elapsed = time.perf_counter() - started
            assert report.claimed == COINS and not report.failures
            if batch >= 4:  # the first ones load every coin's history and the model
                seconds[variant].append(elapsed)
        listener[case] = {variant: statistics.median(values) for variant, values in seconds.items()}

    # The change read and the cut alone, on the warm cache.
    cache = caches["on"]
    mints = [f"bench{coin:05d}pump" for coin in range(COINS)]
    with connection.cursor() as cursor:
        cursor.execute('SELECT mint, max("timestamp") FROM coin_metrics GROUP BY mint')
        moments = dict(cursor.fetchall())
    reads, round_trips, cut, plain = [], [], [], []
    for _ in range(200):
        started = time.perf_counter()
        cache.changes.read()
        reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        round_trips.append(time.perf_counter() - started)
    for _ in range(40):
        started = time.perf_counter()
        cache.histories({None: mints}, until=moments)  # the usual case: each coin's newest row is its event
        cut.append(time.perf_counter() - started)
        started = time.perf_counter()
        cache.histories({None: mints})
        plain.append(time.perf_counter() - started)
    return {"inserts": inserts, "listener": listener, "change_read": statistics.median(reads),
            "round_trip": statistics.median(round_trips),
            "cut": max(0.0, statistics.median(cut) - statistics.median(plain))}


def main() -> None:
    if "--measure" in sys.argv:
        print(json.dumps(measure()))
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")
    sys.path.insert(0, str(PROJECT_DIR))
    import django

    django.setup()
    from pumpserver.database import open_connection
    from tests.conftest import database_url

    with open_connection(autocommit=True, dbname="postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{OWN_DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{OWN_DATABASE}"')
    url = database_url(OWN_DATABASE)
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench")}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, env=env, check=True)
    try:
        print(run(url))
    finally:
        with open_connection(autocommit=True, dbname="postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{OWN_DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
