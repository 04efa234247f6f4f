"""Bytes per stored prediction (heap + indexes + TOAST over rows), pending and judged, and partition pruning.

Predictions are written by the listener's own INSERT (`predictions.services.INSERT_PREDICTIONS_SQL`, prices copied
from `coin_metrics` in the statement) and judged by the worker's `evaluate_due`, on realistic values: 44-character
base58 mints, prices with 9 decimals as collectors store them, 5 models. The size is the sum of
`pg_total_relation_size` over every partition of `model_predictions` divided by its rows: once right after the
inserts (pending) and once after every row is judged and `VACUUM FULL` has compacted the table (judged). For the
judged rows it also reports the average stored bytes of each column group (`pg_column_size`; a NULL costs only its
bit in the null bitmap), so the next saving can be chosen from a measurement. Evaluation notes that readers derive
(predictions/notes.py) are not stored, and count as the NULLs they are.

The EXPLAIN section shows which partitions the evaluation's and ATH tracking's scans of `model_predictions` visit
when 30 days of partitions exist.

    DATABASE_URL=… SECRET_KEY=… .venv/bin/python -m tests.benchmarks.bench_storage
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

COINS, ROWS_PER_COIN, BUCKET_SECONDS, MODELS, HORIZON_MINUTES = 2_000, 12, 60, 5, 5
START = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
TARGET_BYTES = 250
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# A random-walk price per coin, 9 decimals (the collector's NUMERIC(24,9)), ~3e-8 SOL as on pump.fun.
PRICES_SQL = """
INSERT INTO coin_metrics (mint, "timestamp", phase_id_at_time, price_open, price_high, price_low, price_close,
                          market_cap_close, volume_sol)
SELECT mint, %(start)s + make_interval(secs => k * %(bucket)s), 1 + (k > 6)::int,
       round(price * 0.99, 9), round(price * 1.03, 9), round(price * 0.97, 9), round(price, 9),
       round(price * 1e9 * 166, 2), round((random() * 5)::numeric, 6)
  FROM unnest(%(mints)s::text[]) WITH ORDINALITY AS c(mint, n),
       generate_series(0, %(rows)s - 1) AS k,
       LATERAL (SELECT (2.8e-8 * (1 + 0.3 * sin(k / 3.0 + n) + 0.05 * random()))::numeric AS price) p
"""

# The tables holding rows: every leaf partition, or the table itself while it is not partitioned.
LEAVES_CTE = """
WITH leaves AS (
    SELECT relid FROM pg_partition_tree('model_predictions') WHERE isleaf
    UNION SELECT oid FROM pg_class WHERE oid = 'model_predictions'::regclass AND relkind = 'r'
)"""

TOTAL_BYTES_SQL = LEAVES_CTE + """
SELECT coalesce(sum(pg_total_relation_size(relid)), 0), (SELECT count(*) FROM model_predictions) FROM leaves
"""

# Each index of the parent table (or of the plain table) with the bytes of all its partitions' indexes.
INDEX_BYTES_SQL = LEAVES_CTE + """
SELECT coalesce(pg_partition_root(x.indexrelid), x.indexrelid)::regclass::text, sum(pg_relation_size(x.indexrelid))
  FROM leaves t
  JOIN pg_index x ON x.indrelid = t.relid
 GROUP BY 1 ORDER BY 2 DESC
"""


def base58_mints(count: int) -> list[str]:
    import random

    rng = random.Random(7)
    return ["".join(rng.choice(BASE58) for _ in range(40)) + "pump" for _ in range(count)]


def _predict_all(mints: list[str]) -> int:
    """Every model predicts every market row, through the listener's own INSERT (one statement per row time)."""
    import numpy as np
    from django.db import connection
    from django.utils import timezone as django_timezone

    from predictions.services import INSERT_PREDICTIONS_SQL
    from pumpserver import sql_arrays

    rng = np.random.default_rng(3)
    model_ids = list(range(1, MODELS + 1))
    inserted = 0
    with connection.cursor() as cursor:
        for k in range(ROWS_PER_COIN - HORIZON_MINUTES):
            at = START + timedelta(seconds=k * BUCKET_SECONDS)
            probabilities = rng.random(len(mints) * MODELS).round(6)
            tags = ["alert" if p >= 0.7 else "positiv" if p >= 0.5 else "negativ" for p in probabilities]
            cursor.execute(INSERT_PREDICTIONS_SQL, {
                "now": django_timezone.now(),
                "coins": mints, "times": [at] * len(mints), "phases": [None] * len(mints),
                "training_ids": sql_arrays.values(model_ids), "models": sql_arrays.values(model_ids),
                "versions": sql_arrays.values([1] * MODELS), "ms": sql_arrays.values([0.731] * MODELS),
                "horizons": sql_arrays.values([HORIZON_MINUTES] * MODELS),
                "event_of": sql_arrays.numbers([e + 1 for e in range(len(mints)) for _m in model_ids]),
                "model_of": sql_arrays.numbers([m for _e in range(len(mints)) for m in model_ids]),
                "predictions": sql_arrays.numbers([int(p >= 0.5) for p in probabilities]),
                "probabilities": sql_arrays.numbers([float(p) for p in probabilities]),
                "tags": "{" + ",".join(tags) + "}",
            })
            inserted += len(cursor.fetchall())
    return inserted


def _bytes(cursor) -> dict:
    cursor.execute(TOTAL_BYTES_SQL)
    total, rows = cursor.fetchone()
    cursor.execute(INDEX_BYTES_SQL)
    indexes = {name: int(size) for name, size in cursor.fetchall()}
    return {"total": int(total), "rows": rows, "per_row": int(total) / rows, "indexes": indexes}


# Average stored bytes per judged row of each group of columns (the tuple header and alignment not included).
COLUMN_GROUPS = {
    "coin_id": ["coin_id"],
    "evaluation_note": ["evaluation_note"],
    "snapshot at prediction (7)": ["price_close_at_prediction", "price_open_at_prediction", "price_high_at_prediction",
                                   "price_low_at_prediction", "market_cap_at_prediction", "volume_at_prediction",
                                   "phase_id_at_prediction"],
    "snapshot at evaluation (7)": ["price_close_at_evaluation", "price_open_at_evaluation", "price_high_at_evaluation",
                                   "price_low_at_evaluation", "market_cap_at_evaluation", "volume_at_evaluation",
                                   "phase_id_at_evaluation"],
    "verdict figures (3)": ["actual_price_change_pct", "ath_highest_pct", "ath_lowest_pct"],
}


def _column_bytes(cursor) -> dict:
    cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'model_predictions'::regclass AND attnum > 0 "
                   "AND NOT attisdropped")
    present = {name for (name,) in cursor.fetchall()}
    sums = {group: " + ".join(f"coalesce(pg_column_size({c}), 0)" for c in columns if c in present) or "0"
            for group, columns in COLUMN_GROUPS.items()}
    cursor.execute("SELECT avg(pg_column_size(p.*)), " + ", ".join(f"avg({expr})" for expr in sums.values())
                   + " FROM model_predictions p")
    whole, *groups = cursor.fetchone()
    return {"row": float(whole), **{group: float(value) for group, value in zip(sums, groups)}}


def scanned_partitions(cursor, sql: str, params: dict) -> list[str]:
    cursor.execute("EXPLAIN " + sql, params)
    plan = "\n".join(line for (line,) in cursor.fetchall())
    return sorted(set(re.findall(r" on (model_predictions_\w+)", plan)))


def measure() -> dict:
    from django.db import connection

    from alerts.services import EVALUATE_DUE_SQL, TRACK_ATH_SQL, evaluate_due
    from modelregistry.models import ActiveModel
    from predictions import partitions

    for index in range(MODELS):
        ActiveModel.objects.create(model_id=index + 1, model_name=f"storage{index}", model_type="xgboost",
                                   features=["price_close"], future_minutes=HORIZON_MINUTES,
                                   price_change_percent=5, target_direction="up")
    # The models' ids are 1..MODELS in a fresh database.
    mints = base58_mints(COINS)
    with connection.cursor() as cursor:
        if partitions.is_partitioned(cursor):  # the market's day gets its partition, as the worker makes it
            partitions.ensure_partitions(cursor, today=START.date(), days_ahead=0)
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(PRICES_SQL, {"start": START, "bucket": BUCKET_SECONDS, "mints": mints,
                                    "rows": ROWS_PER_COIN})
        cursor.execute("TRUNCATE coin_metrics_queue")
    inserted = _predict_all(mints)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE model_predictions")
        pending = _bytes(cursor)
    report = evaluate_due(now=START + timedelta(days=1), limit=10**9)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM FULL model_predictions")
        judged = _bytes(cursor)
        columns = _column_bytes(cursor)
        # Measured above without them: an empty partition's fixed pages are no cost per row.
        if partitions.is_partitioned(cursor):
            partitions.ensure_partitions(cursor, today=START.date() - timedelta(days=25), days_ahead=30)
        now = START + timedelta(minutes=30)
        pruning = {
            "evaluate_due": scanned_partitions(cursor, EVALUATE_DUE_SQL, {"now": now, "limit": 1000}),
            "track_ath": scanned_partitions(cursor, TRACK_ATH_SQL, {"now": now,
                                                                    "since": now - timedelta(minutes=10)}),
        }
        cursor.execute(LEAVES_CTE + " SELECT count(*) FROM leaves")
        (leaves,) = cursor.fetchone()
    return {"inserted": inserted, "judged_rows": report.evaluated, "pending": pending, "judged": judged,
            "columns": columns,
            "pruning": pruning, "leaf_partitions": leaves}


def run(url: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"),
           "DJANGO_SETTINGS_MODULE": "pumpserver.settings"}
    finished = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_storage"], cwd=PROJECT_DIR, env=env,
                              check=True, capture_output=True, text=True)
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    pending, judged = figures["pending"], figures["judged"]

    def breakdown(stage: dict) -> str:
        return ", ".join(f"{name} {size / stage['rows']:.0f}" for name, size in stage["indexes"].items())

    lines = [
        "### Storage per prediction",
        "",
        f"{COINS:,} coins (44-character mints), {MODELS} models, {figures['inserted']:,} predictions stored by the "
        f"listener's INSERT, then all judged by `evaluate_due`. Bytes = heap + indexes + TOAST of every partition.",
        "",
        "| stage | rows | bytes per prediction | of which indexes (bytes per row) |",
        "|---|---:|---:|---|",
        f"| pending, after insert | {pending['rows']:,} | {pending['per_row']:.0f} | {breakdown(pending)} |",
        f"| judged, after VACUUM FULL | {judged['rows']:,} | {judged['per_row']:.0f} | {breakdown(judged)} |",
        "",
        "Stored bytes per judged row by column group (pg_column_size averages; the row as a datum "
        f"{figures['columns']['row']:.0f}): "
        + ", ".join(f"{group} {size:.0f}" for group, size in figures["columns"].items() if group != "row") + ".",
        "",
        f"Target: at most {TARGET_BYTES} bytes per stored prediction: "
        + ("met." if max(pending["per_row"], judged["per_row"]) <= TARGET_BYTES else "**not met**."),
        "",
        f"Partition pruning at {START + timedelta(minutes=30):%Y-%m-%d %H:%M} with {figures['leaf_partitions']} "
        f"leaf partitions (30 days of both kinds): the evaluation reads {len(figures['pruning']['evaluate_due'])} "
        f"(none of the days ahead), ATH tracking reads {len(figures['pruning']['track_ath'])} "
        f"({', '.join(figures['pruning']['track_ath'])}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(PROJECT_DIR))
    django.setup()
    print(json.dumps(measure()))
