"""Set-wise evaluation and ATH tracking on a large backlog: one `evaluate_due` run and `track_ath` runs.

`run(url)` starts this module as a script with DATABASE_URL=url, so the services run exactly as in the worker
(through Django's connection); the script builds the data with INSERT … SELECT generate_series and prints its
timings as JSON.

    DATABASE_URL=… SECRET_KEY=… .venv/bin/python -m tests.benchmarks.bench_evaluation
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

COINS = 3_000
BUCKET_SECONDS = 15
PRICE_ROWS_PER_COIN = 161  # 40 minutes of 15-second buckets
DUE_PREDICTION_MINUTES = (0, 2, 4, 6)  # horizons end at 10–16 min: due at "now"
OPEN_PREDICTION_MINUTES = (31, 32, 33, 34, 35, 36)  # horizons end after "now": tracked
HORIZON_MINUTES = 10
START = datetime(2025, 11, 20, 10, 0, tzinfo=timezone.utc)
NOW = START + timedelta(minutes=40)
TARGET_DUE_ROWS, TARGET_SECONDS = 50_000, 10.0

# Every 20th coin dies after 2.5 minutes: its later predictions have no snapshot (not_applicable).
PRICES_SQL = """
INSERT INTO coin_metrics (mint, "timestamp", phase_id_at_time, price_open, price_high, price_low, price_close,
                          market_cap_close, volume_sol)
SELECT 'bench' || lpad(coin::text, 4, '0'), %(start)s + make_interval(secs => k * %(bucket)s), 1,
       price, price * 1.02, price * 0.98, price, round(price * 1e9, 2), round((random() * 5)::numeric, 6)
  FROM generate_series(0, %(coins)s - 1) AS coin,
       generate_series(0, %(rows)s - 1) AS k,
       LATERAL (SELECT round((1e-6 * (1 + 0.4 * sin(k / 9.0 + coin) + 0.1 * random()))::numeric, 18) AS price) p
 WHERE coin %% 20 <> 0 OR k <= 10
"""

PREDICTIONS_SQL = """
INSERT INTO model_predictions (coin_id, model_id, active_model_id, prediction, probability, tag, status,
                               prediction_timestamp, evaluation_timestamp, price_close_at_prediction,
                               created_at, updated_at)
SELECT coin.mint, m.model_id, m.id, (random() < 0.5)::int, probability,
       CASE WHEN probability < 0.5 THEN 'negativ' WHEN probability < 0.7 THEN 'positiv' ELSE 'alert' END,
       'aktiv', at, at + make_interval(mins => %(horizon)s), start.price_close, now(), now()
  FROM (SELECT 'bench' || lpad(n::text, 4, '0') AS mint FROM generate_series(0, %(coins)s - 1) AS n) coin
 CROSS JOIN prediction_active_models m
 CROSS JOIN unnest(%(minutes)s::int[]) AS minute
 CROSS JOIN LATERAL (SELECT %(start)s + make_interval(mins => minute) AS at,
                            round(random()::numeric, 4) AS probability) t
  LEFT JOIN coin_metrics start ON start.mint = coin.mint AND start."timestamp" = t.at
"""


def build_data() -> dict:
    from django.db import connection

    from modelregistry.models import ActiveModel

    common = {"model_type": "xgboost", "features": ["price_close"], "future_minutes": HORIZON_MINUTES}
    for index, target in enumerate([
        {"price_change_percent": 10, "target_direction": "up"},
        {"price_change_percent": 25, "target_direction": "up"},
        {"price_change_percent": 10, "target_direction": "down"},
        {"price_change_percent": 5},
        {"target_variable": "volume_sol", "target_operator": ">", "target_value": 2, "future_minutes": None},
    ]):
        ActiveModel.objects.create(model_id=index + 1, model_name=f"bench{index}", **{**common, **target})
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(PRICES_SQL, {"start": START, "bucket": BUCKET_SECONDS, "coins": COINS,
                                    "rows": PRICE_ROWS_PER_COIN})
        prices = cursor.rowcount
        cursor.execute("TRUNCATE coin_metrics_queue")  # the insert trigger queued every row for a listener
        counts = {}
        for kind, minutes in (("due", DUE_PREDICTION_MINUTES), ("open", OPEN_PREDICTION_MINUTES)):
            cursor.execute(PREDICTIONS_SQL, {"start": START, "horizon": HORIZON_MINUTES, "coins": COINS,
                                             "minutes": list(minutes)})
            counts[kind] = cursor.rowcount
        cursor.execute("ANALYZE coin_metrics")
        cursor.execute("ANALYZE model_predictions")
    return {"prices": prices, "models": 5, **counts}


def timed(function, **kwargs):
    started = time.perf_counter()
    result = function(**kwargs)
    return result, time.perf_counter() - started


def measure() -> dict:
    from alerts.services import evaluate_due, track_ath

    data = build_data()
    moved, track_seconds = timed(track_ath, now=NOW)
    moved_again, track_again_seconds = timed(track_ath, now=NOW)
    report, evaluate_seconds = timed(evaluate_due, now=NOW)
    return {
        **data,
        "track_moved": moved, "track_seconds": track_seconds,
        "track_again_moved": moved_again, "track_again_seconds": track_again_seconds,
        "evaluated": report.evaluated, "by_result": {str(k): v for k, v in report.by_result().items()},
        "more_due": report.more_due, "evaluate_seconds": evaluate_seconds,
    }


def run(url: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"),
           "DJANGO_SETTINGS_MODULE": "pumpserver.settings"}
    finished = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_evaluation"], cwd=PROJECT_DIR, env=env,
                              check=True, capture_output=True, text=True)
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    assert figures["evaluated"] == figures["due"] and not figures["more_due"], figures
    met = figures["evaluated"] >= TARGET_DUE_ROWS and figures["evaluate_seconds"] <= TARGET_SECONDS
    results = ", ".join(f"{count:,} {result}" for result, count in figures["by_result"].items())
    lines = [
        "### Evaluation and ATH tracking (set-wise SQL)",
        "",
        f"{COINS:,} coins × {PRICE_ROWS_PER_COIN} price rows ({BUCKET_SECONDS} s buckets; "
        f"{figures['prices']:,} `coin_metrics` rows), {figures['models']} models (4 time-based, 1 classic); "
        f"{figures['due']:,} due and {figures['open']:,} open predictions. One run each, through Django.",
        "",
        "| step | rows | seconds | rows/s |",
        "|---|---:|---:|---:|",
        f"| `evaluate_due`, one run | {figures['evaluated']:,} judged ({results}) | "
        f"{figures['evaluate_seconds']:.2f} | {figures['evaluated'] / figures['evaluate_seconds']:,.0f} |",
        f"| `track_ath`, first run | {figures['open']:,} open ({figures['track_moved']:,} moved) | "
        f"{figures['track_seconds']:.2f} | {figures['open'] / figures['track_seconds']:,.0f} |",
        f"| `track_ath`, no new prices | {figures['open']:,} open ({figures['track_again_moved']:,} moved) | "
        f"{figures['track_again_seconds']:.2f} | {figures['open'] / figures['track_again_seconds']:,.0f} |",
        "",
        f"Target: {TARGET_DUE_ROWS:,} due predictions judged in one run within {TARGET_SECONDS:.0f} s: "
        + ("met." if met else "**not met**."),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(PROJECT_DIR))
    django.setup()
    print(json.dumps(measure()))
