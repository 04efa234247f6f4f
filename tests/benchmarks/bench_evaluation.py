"""Set-wise evaluation and ATH tracking on a large backlog (one `evaluate_due` run, two `track_ath` runs), alone
and beside 100 M stored predictions.

`run(url)` starts this module as a script with DATABASE_URL=url, so the services run exactly as in the worker
(through Django's connection); the script builds the data with INSERT … SELECT generate_series and prints its
timings as JSON.

One run measures the same workload (60,000 due and 90,000 open predictions of one day) twice: (a) with only the
workload stored, (b) after `BENCH_EVALUATION_STORED_ROWS` (default 100,000,000) judged predictions were stored in
the 30 days before it, both kinds, as a deployment with 30 days of retention holds them. Before each measurement
the workload's rows are restored from a copy, so both runs judge identical rows, and their results are compared.

The stored rows are built per day partition as `predictions.partitions.create_day_partition` builds one (a table
LIKE its kind's, filled, a CHECK on its day, ATTACH), except that the rows are generated into it before the ATTACH:
ATTACH then builds the parent's indexes, keys and foreign key on the filled table in bulk, so the result is the
production layout with its real indexes. One connection fills the next day while another attaches the previous one.
Their autovacuum is switched off: in a deployment those days were vacuumed long ago, and a vacuum of 100 M fresh
rows running beside (b) would measure the vacuum. Loading stops early (and says so) before the database's disk
would fall below 10 GB free.

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

from tests.benchmarks.bench_storage import LEAVES_CTE

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


STORED_ROWS = int(os.environ.get("BENCH_EVALUATION_STORED_ROWS", "100_000_000"))
STORED_DAYS = 30
ALERT_SHARE = 0.05  # alerts among stored predictions (docs/operations.md: ~5 %)
STORED_COINS_PER_DAY = 10_000
MINT_POOL = 50_000
STOP_BELOW_FREE_BYTES = 12 * 2**30  # checked before each partition: leaves room for its indexes and the WAL
ID_SEQUENCE = "model_predictions_id_seq"
WORKLOAD_COPY = "bench_evaluation_workload"
ROUNDS = 3

# The values of stored rows, computed once (NUMERIC arithmetic per row would make the build 10× slower): 9-decimal
# prices as collectors store them, the evaluation snapshot, change and ATH figures as `evaluate_due` writes them (4 %
# without a snapshot, which are not_applicable with their stored note; the other notes are derived on read).
TEMPLATE_SQL = """
CREATE TABLE bench_stored_values AS
SELECT k, 20 + 30 * r1 AS duration_ms, r1 * %(horizon)s AS high_after, r2 * %(horizon)s AS low_after,
       phase, phase + (r3 < 0.1)::int AS phase_at_evaluation,
       round(price, 9) AS close, round(price * 0.99, 9) AS open, round(price * 1.03, 9) AS high,
       round(price * 0.97, 9) AS low, round(price * 1e9 * 166, 2) AS market_cap, round((r1 * 5)::numeric, 6) AS volume,
       round(price * (1 + change / 100), 9) AS close_later, round(price * (1 + change / 100) * 0.99, 9) AS open_later,
       round(price * (1 + change / 100) * 1.03, 9) AS high_later, round(price * (1 + change / 100) * 0.97, 9) AS low_later,
       round(price * (1 + change / 100) * 1e9 * 166, 2) AS market_cap_later,
       CASE WHEN change IS NOT NULL THEN round((r3 * 5)::numeric, 6) END AS volume_later,
       change, change >= 5 AS reached,
       round(greatest(coalesce(change, 0), 0) + 3 * r1::numeric, 4) AS ath_high,
       round(least(coalesce(change, 0), 0) - 3 * r2::numeric, 4) AS ath_low
  FROM (SELECT k, random() AS r1, random() AS r2, random() AS r3, 1 + k %% 3 AS phase,
               (2.8e-8 * (1 + 0.3 * sin(k / 7.0) + 0.05 * random()))::numeric AS price
          FROM generate_series(0, %(rows)s - 1) AS k) r
 CROSS JOIN LATERAL (SELECT CASE WHEN r3 >= 0.04 THEN round(((r2 - 0.45) * 60)::numeric, 4) END AS change) c
"""
TEMPLATE_ROWS = 100_003  # not a multiple of the models or coins, so values do not repeat in step with them

# One day partition's judged predictions: coins × instants × models, unique on the table's key by construction
# (coin and instant come from the row number), 44-character mints, the values from bench_stored_values.
STORED_SQL = """
INSERT INTO {table} (
    id, prediction_timestamp, evaluation_timestamp, created_at, updated_at, active_model_id, model_id, probability,
    prediction_duration_ms, evaluated_at, ath_highest_timestamp, ath_lowest_timestamp, model_version,
    phase_id_at_prediction, phase_id_at_evaluation, prediction, tag, status, coin_id,
    price_close_at_prediction, price_open_at_prediction, price_high_at_prediction, price_low_at_prediction,
    market_cap_at_prediction, volume_at_prediction,
    price_close_at_evaluation, price_open_at_evaluation, price_high_at_evaluation, price_low_at_evaluation,
    market_cap_at_evaluation, volume_at_evaluation,
    actual_price_change_pct, ath_highest_pct, ath_lowest_pct, evaluation_result, evaluation_note)
SELECT %(first_id)s + s.g, s.at, s.at + %(horizon)s, s.at + interval '0.3 s', s.at + %(horizon)s + interval '20 s',
       s.model, s.model, s.probability, t.duration_ms, s.at + %(horizon)s + interval '20 s',
       s.at + t.high_after, s.at + t.low_after, 1, t.phase, t.phase_at_evaluation, s.prediction,
       CASE WHEN %(alert)s THEN 'alert' WHEN s.prediction = 1 THEN 'positiv' ELSE 'negativ' END, 'inaktiv', c.mint,
       t.close, t.open, t.high, t.low, t.market_cap, t.volume,
       t.close_later, t.open_later, t.high_later, t.low_later, t.market_cap_later, t.volume_later,
       t.change, t.ath_high, t.ath_low,
       CASE WHEN t.change IS NULL THEN 'not_applicable' WHEN t.reached = (s.prediction = 1) THEN 'success'
            ELSE 'failed' END,
       CASE WHEN t.change IS NULL THEN 'no metrics between prediction and evaluation time' END
  FROM (SELECT g, (%(models)s::bigint[])[1 + g %% %(model_count)s] AS model, (g / %(model_count)s) %% %(coins)s AS coin,
               %(day_start)s + make_interval(secs => (g / %(model_count)s / %(coins)s) * %(step)s
                                                     + (g / %(model_count)s) %% %(coins)s %% 60) AS at,
               p.probability, (p.probability >= 0.5)::int AS prediction
          FROM generate_series(0, %(rows)s - 1) AS g
         CROSS JOIN LATERAL (SELECT %(p_low)s + %(p_span)s * random() AS probability) p) s
  JOIN bench_mints c ON c.n = (s.coin + %(coin_offset)s) %% %(pool)s
  JOIN bench_stored_values t ON t.k = s.g %% %(template_rows)s
"""

# The workload's rows: every one lies on START's day.
WORKLOAD_WHERE = "prediction_timestamp >= %(day)s AND prediction_timestamp < %(next_day)s"

# What the runs leave in the workload's rows, except updated_at (the wall clock): equal in (a) and (b).
OUTCOME_SQL = f"""
SELECT md5(string_agg((to_jsonb(p) - 'updated_at')::text, ',' ORDER BY id)) FROM model_predictions p
 WHERE {WORKLOAD_WHERE}
"""


def build_data() -> dict:
    from django.db import connection

    from modelregistry.models import ActiveModel
    from predictions import partitions

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
        # The workload's day has its partitions, as the worker's housekeeping makes them for "today".
        partitions.ensure_partitions(cursor, today=START.date())
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
        cursor.execute(f"CREATE TABLE {WORKLOAD_COPY} AS SELECT * FROM model_predictions WHERE {WORKLOAD_WHERE}",
                       _workload_day())
    return {"prices": prices, "models": 5, **counts}


def _workload_day() -> dict:
    from predictions.partitions import day_start

    return {"day": day_start(START.date()), "next_day": day_start(START.date() + timedelta(days=1))}


def restore_workload() -> None:
    """The workload's rows as built, freshly inserted, with the statistics the planner needs; the same steps before
    (a) and (b)."""
    from django.db import connection
    from psycopg import sql

    from predictions import partitions

    leaves = [partitions.day_partition(kind, START.date()) for kind in partitions.KINDS]
    parents = [partitions.TABLE] + [partitions.kind_table(kind) for kind in partitions.KINDS]
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, leaves))))
        cursor.execute(sql.SQL("INSERT INTO model_predictions ({columns}) SELECT {columns} FROM {copy}").format(
            columns=partitions.stored_columns(), copy=sql.Identifier(WORKLOAD_COPY)))
        cursor.execute("VACUUM ANALYZE coin_metrics")  # also reads it into the cache, after (b)'s build evicted it
        cursor.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, leaves))))
        # The parents' own statistics (autovacuum never gathers them); ONLY: their leaves have theirs.
        cursor.execute(sql.SQL("ANALYZE {}").format(
            sql.SQL(", ").join(sql.SQL("ONLY {}").format(sql.Identifier(name)) for name in parents)))


def timed(function, **kwargs):
    started = time.perf_counter()
    result = function(**kwargs)
    return result, time.perf_counter() - started


def read_partitions() -> dict:
    """The partitions of `model_predictions` each statement's plan reads (bench_storage's EXPLAIN helper)."""
    from django.db import connection

    from alerts.services import DEFAULT_EVALUATION_LIMIT, EVALUATE_DUE_SQL, MORE_DUE_SQL, TRACK_ATH_SQL
    from tests.benchmarks.bench_storage import scanned_partitions

    with connection.cursor() as cursor:
        return {
            "evaluate_due": scanned_partitions(cursor, EVALUATE_DUE_SQL, {"now": NOW,
                                                                          "limit": DEFAULT_EVALUATION_LIMIT}),
            "more_due": scanned_partitions(cursor, MORE_DUE_SQL, {"now": NOW}),
            "track_ath": scanned_partitions(cursor, TRACK_ATH_SQL, {
                "now": NOW, "since": NOW - timedelta(minutes=HORIZON_MINUTES)}),
        }


# Blocks (8 kB, from the cache or the disk) of the stored days' partitions and their indexes read so far.
STORED_BLOCKS_SQL = """
SELECT coalesce(sum(coalesce(heap_blks_read, 0) + coalesce(heap_blks_hit, 0) + coalesce(idx_blks_read, 0)
                    + coalesce(idx_blks_hit, 0) + coalesce(toast_blks_read, 0) + coalesce(toast_blks_hit, 0)), 0)
  FROM pg_statio_all_tables
 WHERE relname ~ '^model_predictions_(alert|other)_[0-9]{8}$' AND right(relname, 8) < %(workload_day)s
"""


def stored_blocks() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this session's counters, at the next statement's end
        cursor.execute("SELECT 1")
        cursor.execute(STORED_BLOCKS_SQL, {"workload_day": START.strftime("%Y%m%d")})
        (blocks,) = cursor.fetchone()
    return int(blocks)


def measure_workload() -> dict:
    from django.db import connection

    from alerts.services import evaluate_due, track_ath

    restore_workload()
    pruning = read_partitions()
    blocks_before = stored_blocks()
    moved, track_seconds = timed(track_ath, now=NOW)
    moved_again, track_again_seconds = timed(track_ath, now=NOW)
    report, evaluate_seconds = timed(evaluate_due, now=NOW)
    blocks = stored_blocks() - blocks_before
    with connection.cursor() as cursor:
        cursor.execute(OUTCOME_SQL, _workload_day())
        (outcome,) = cursor.fetchone()
    return {
        "track_moved": moved, "track_seconds": track_seconds,
        "track_again_moved": moved_again, "track_again_seconds": track_again_seconds,
        "evaluated": report.evaluated, "by_result": {str(k): v for k, v in report.by_result().items()},
        "more_due": report.more_due, "evaluate_seconds": evaluate_seconds,
        "outcome": outcome, "pruning": pruning, "stored_blocks": blocks,
    }


def _free_bytes(cursor) -> int | None:
    """Free bytes on the database's disk, when the server runs on this machine (the embedded one does)."""
    import shutil

    cursor.execute("SHOW data_directory")
    (directory,) = cursor.fetchone()
    return shutil.disk_usage(directory).free if Path(directory).is_dir() else None


def stored_plan(rows: int) -> list[dict]:
    """(kind, day, rows) of every day partition to fill: STORED_DAYS days before the workload's, both kinds."""
    days = [START.date() - timedelta(days=n) for n in range(STORED_DAYS, 0, -1)]
    per_day = rows // STORED_DAYS
    plan = []
    for index, day in enumerate(days):
        day_rows = per_day + (rows - per_day * STORED_DAYS if index == len(days) - 1 else 0)
        alerts = round(day_rows * ALERT_SHARE)
        plan += [{"kind": "alert", "day": day, "rows": alerts, "index": index},
                 {"kind": "other", "day": day, "rows": day_rows - alerts, "index": index}]
    return [part for part in plan if part["rows"]]


def _fill(cursor, part: dict, *, first_id: int, models: list[int]) -> None:
    from psycopg import sql

    from predictions import partitions

    kind, day = part["kind"], part["day"]
    name = partitions.day_partition(kind, day)
    instants = -(-part["rows"] // (len(models) * STORED_COINS_PER_DAY))
    step = (86_400 - 60) // instants
    assert step >= 60, "a coin's instants would collide: raise STORED_COINS_PER_DAY"
    cursor.execute(sql.SQL(
        "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED) "
        "WITH (autovacuum_enabled = false)"
    ).format(sql.Identifier(name), sql.Identifier(partitions.kind_table(kind))))
    alert = kind == "alert"
    cursor.execute(sql.SQL(STORED_SQL).format(table=sql.Identifier(name)), {
        "first_id": first_id, "rows": part["rows"], "models": models, "model_count": len(models),
        "coins": STORED_COINS_PER_DAY, "pool": MINT_POOL,
        "coin_offset": part["index"] * STORED_COINS_PER_DAY + (MINT_POOL // 2 if alert else 0),
        "day_start": partitions.day_start(day), "step": step, "horizon": timedelta(minutes=HORIZON_MINUTES),
        "alert": alert, "p_low": 0.7 if alert else 0.0, "p_span": 0.3 if alert else 0.7,
        "template_rows": TEMPLATE_ROWS,
    })
    start, end = partitions.day_start(day), partitions.day_start(day + timedelta(days=1))
    cursor.execute(sql.SQL(
        "ALTER TABLE {} ADD CONSTRAINT {} CHECK (prediction_timestamp >= {} AND prediction_timestamp < {})"
    ).format(sql.Identifier(name), sql.Identifier(f"{name}_day"), sql.Literal(start), sql.Literal(end)))


def _attach(cursor, part: dict) -> None:
    from psycopg import sql

    from predictions import partitions

    name = partitions.day_partition(part["kind"], part["day"])
    cursor.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES {}").format(
        sql.Identifier(partitions.kind_table(part["kind"])), sql.Identifier(name), partitions.day_bounds(part["day"])))
    cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(name),
                                                                        sql.Identifier(f"{name}_day")))
    cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))


def build_stored(rows: int) -> dict:
    """Fill and attach the stored days' partitions, two at a time (one filling, one attaching)."""
    from queue import Queue
    from threading import Thread

    from django.db import connection

    from pumpserver.database import open_connection
    from tests.benchmarks.bench_storage import base58_mints

    with connection.cursor() as cursor:
        cursor.execute("SELECT array_agg(id ORDER BY id) FROM prediction_active_models")
        (models,) = cursor.fetchone()
        cursor.execute("CREATE TABLE bench_mints (n int PRIMARY KEY, mint text NOT NULL)")
        cursor.execute("INSERT INTO bench_mints SELECT n - 1, mint FROM unnest(%s::text[]) WITH ORDINALITY m(mint, n)",
                       [base58_mints(MINT_POOL)])
        cursor.execute(TEMPLATE_SQL, {"rows": TEMPLATE_ROWS, "horizon": timedelta(minutes=HORIZON_MINUTES)})
        cursor.execute("ANALYZE bench_mints, bench_stored_values")
        cursor.execute("SELECT setval(%s, nextval(%s) + %s)", [ID_SEQUENCE, ID_SEQUENCE, rows])
        (last_id,) = cursor.fetchone()
        cursor.execute("CHECKPOINT")  # (a)'s dirty pages are not the build's to write
    first_id = last_id - rows + 1
    handed: Queue = Queue(maxsize=1)
    failures: list[BaseException] = []

    def attach_all() -> None:
        try:
            with open_connection(autocommit=True) as attacher, attacher.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '512MB'")
                while (part := handed.get()) is not None:
                    _attach(cursor, part)
        except BaseException as error:  # noqa: BLE001 - reported by the loading thread
            failures.append(error)
            while handed.get() is not None:
                pass

    attacher = Thread(target=attach_all)
    started = time.perf_counter()
    attacher.start()
    stored, free = 0, []
    try:
        with open_connection(autocommit=True) as loader, loader.cursor() as cursor:
            for part in stored_plan(rows):
                free.append(_free_bytes(cursor))
                if free[-1] is not None and free[-1] < STOP_BELOW_FREE_BYTES or failures:
                    break
                _fill(cursor, part, first_id=first_id + stored, models=models)
                stored += part["rows"]
                handed.put(part)
    finally:
        handed.put(None)
        attacher.join()
    if failures:
        raise failures[0]
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")  # written out now, not by the checkpointer while (b) is measured
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        free.append(_free_bytes(cursor))
        cursor.execute(LEAVES_CTE + " SELECT sum(pg_total_relation_size(relid)), sum(pg_relation_size(relid)), "
                       "count(*) FROM leaves")
        total, heap, leaves = cursor.fetchone()
        cursor.execute("DROP TABLE bench_mints, bench_stored_values")
    known = [value for value in free if value is not None]
    return {"requested": rows, "stored": stored, "seconds": seconds, "bytes": int(total), "heap_bytes": int(heap),
            "leaves": leaves, "min_free": min(known) if known else None}


def measure_rounds() -> dict:
    """ROUNDS measurements of the workload, each on a fresh copy: the median time of each step (the machine is
    shared), the results of every round (they must be equal), the most stored blocks any round touched."""
    from statistics import median

    rounds = [measure_workload() for _ in range(ROUNDS)]
    timings = {key: median(r[key] for r in rounds) for key in rounds[0] if key.endswith("_seconds")}
    return {**rounds[0], **timings, "outcomes": sorted({r["outcome"] for r in rounds}),
            "stored_blocks": max(r["stored_blocks"] for r in rounds),
            "all_seconds": {key: [r[key] for r in rounds] for key in timings}}


def measure() -> dict:
    load = [os.getloadavg()]
    data = build_data()
    alone = measure_rounds()
    load.append(os.getloadavg())
    stored = build_stored(STORED_ROWS)
    load.append(os.getloadavg())
    beside = measure_rounds()
    load.append(os.getloadavg())
    return {**data, "alone": alone, "stored": stored, "beside": beside, "load": [one for one, *_ in load]}


def _listed(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _partitions_read(names: list[str]) -> str:
    from predictions.partitions import DAY_FORMAT

    stored_days = sum(1 for name in names if name[-8:].isdigit()
                      and datetime.strptime(name[-8:], DAY_FORMAT).date() < START.date())
    return f"{len(names)} ({stored_days} of them stored days)"


def run(url: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"),
           "DJANGO_SETTINGS_MODULE": "pumpserver.settings"}
    finished = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_evaluation"], cwd=PROJECT_DIR, env=env,
                              check=True, capture_output=True, text=True)
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    alone, beside, stored = figures["alone"], figures["beside"], figures["stored"]
    for measured in (alone, beside):
        assert measured["evaluated"] == figures["due"] and not measured["more_due"], measured
    identical = alone["outcomes"] == beside["outcomes"] and len(alone["outcomes"]) == 1
    results = ", ".join(f"{count:,} {result}" for result, count in alone["by_result"].items())
    steps = [("`evaluate_due`, one run", f"{alone['evaluated']:,} judged ({results})", "evaluate_seconds"),
             ("`track_ath`, first run", f"{figures['open']:,} open ({alone['track_moved']:,} moved)", "track_seconds"),
             ("`track_ath`, no new prices", f"{figures['open']:,} open ({alone['track_again_moved']:,} moved)",
              "track_again_seconds")]
    stored_label = f"{stored['stored']:,} stored"
    lines = [
        "### Evaluation and ATH tracking (set-wise SQL), alone and beside stored predictions",
        "",
        f"{COINS:,} coins × {PRICE_ROWS_PER_COIN} price rows ({BUCKET_SECONDS} s buckets; "
        f"{figures['prices']:,} `coin_metrics` rows), {figures['models']} models (4 time-based, 1 classic); "
        f"{figures['due']:,} due and {figures['open']:,} open predictions of one day, through Django, median of "
        f"{ROUNDS} rounds (the workload restored from a copy before each): "
        f"(a) with only these stored, (b) after {stored['stored']:,} judged predictions were stored in the "
        f"{STORED_DAYS} days before (both kinds, {ALERT_SHARE:.0%} alerts).",
        "",
        f"| step | rows | (a) alone, s | (b) beside {stored_label}, s | (b)/(a) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {step} | {rows} | {alone[key]:.2f} | {beside[key]:.2f} | {beside[key] / alone[key]:.2f} |"
          for step, rows, key in steps],
        "",
        "Every round's seconds, (a) | (b): "
        + "; ".join(f"{label} {_listed(alone['all_seconds'][key])} | {_listed(beside['all_seconds'][key])}"
                    for label, (_step, _rows, key) in zip(("evaluate_due", "track_ath first", "track_ath again"),
                                                          steps)) + ".",
        "",
        f"Results of every round of (a) and (b) identical (every column of the workload's rows but `updated_at`): "
        f"{'yes' if identical else '**no**'}.",
        "",
        "Partitions of `model_predictions` in each statement's plan (EXPLAIN), (a) / (b): "
        + "; ".join(f"`{name}` {_partitions_read(alone['pruning'][name])} / {_partitions_read(beside['pruning'][name])}"
                    for name in alone["pruning"])
        + f". Blocks of the stored days' tables and indexes the three runs of (b) touched (pg_statio, cache or disk): "
        f"{beside['stored_blocks']:,} ({beside['stored_blocks'] * 8 / 1024:,.1f} MiB).",
        "",
        f"Stored for (b): {stored['stored']:,} rows"
        + ("" if stored["stored"] == stored["requested"] else
           f" of {stored['requested']:,} requested (stopped before the disk fell below 10 GB free)")
        + f" in {stored['seconds']:.0f} s ({stored['stored'] / stored['seconds']:,.0f} rows/s, filled and attached "
        f"with the production indexes); `model_predictions` then held {stored['bytes'] / 1e9:.1f} GB in "
        f"{stored['leaves']} leaf partitions ({stored['heap_bytes'] / 1e9:.1f} GB heap), "
        f"{stored['bytes'] / (stored['stored'] + figures['due'] + figures['open']):.0f} bytes per row; "
        + (f"lowest free disk {stored['min_free'] / 2**30:.0f} GiB; " if stored["min_free"] is not None else "")
        + "load average (1 min) at start, after (a), after the build, after (b): "
        + ", ".join(f"{value:.2f}" for value in figures["load"]) + ".",
        "",
        f"Target: {TARGET_DUE_ROWS:,} due predictions judged in one run within {TARGET_SECONDS:.0f} s, alone and "
        "beside the stored rows: "
        + ("met." if all(m["evaluated"] >= TARGET_DUE_ROWS and m["evaluate_seconds"] <= TARGET_SECONDS
                         for m in (alone, beside)) else "**not met**."),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(PROJECT_DIR))
    django.setup()
    print(json.dumps(measure(), default=str))
