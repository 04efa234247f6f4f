"""Statement-level vs row-level insert trigger, for the ways collectors write (bulk and one row at a time)."""

from __future__ import annotations

import time

import psycopg

from predictions.collector_schema import install_trigger

COLUMNS = "mint, timestamp, phase_id_at_time, price_open, price_high, price_low, price_close, volume_sol"
ROW_SQL = "(%s, now(), 1, 0.000000028, 0.000000029, 0.000000027, 0.000000028, 1.5)"


def insert_rows(conn: psycopg.Connection, *, total: int, rows_per_statement: int) -> float:
    statement = f"INSERT INTO coin_metrics ({COLUMNS}) VALUES " + ", ".join([ROW_SQL] * rows_per_statement)
    started = time.perf_counter()
    for batch in range(total // rows_per_statement):
        conn.execute(statement, [f"bench{batch % 2000}_{i}pump" for i in range(rows_per_statement)])
        conn.commit()  # one transaction per statement, as a collector flush does
    return total / (time.perf_counter() - started)


def measure(url: str, *, row_level: bool, total: int, rows_per_statement: int) -> float:
    with psycopg.connect(url) as conn:
        with conn.cursor() as cursor:
            assert install_trigger(cursor, row_level=row_level) == ("row" if row_level else "statement")
        conn.execute("TRUNCATE coin_metrics, coin_metrics_queue")
        conn.commit()
        rate = insert_rows(conn, total=total, rows_per_statement=rows_per_statement)
        queued = conn.execute("SELECT count(*) FROM coin_metrics_queue").fetchone()[0]
        assert queued == total, f"trigger lost rows: {queued} of {total}"
        with conn.cursor() as cursor:
            install_trigger(cursor)
        conn.commit()
    return rate


def run(url: str) -> str:
    cases = [("bulk, 500 rows per INSERT", 100_000, 500), ("bulk, 50 rows per INSERT", 50_000, 50),
             ("one row per INSERT", 5_000, 1)]
    lines = [
        "### Insert trigger: statement-level vs row-level",
        "",
        "Rows/s a single collector connection inserts into `coin_metrics` (each statement its own transaction),",
        "with each trigger variant queueing every row; best of 3 runs.",
        "",
        "| case | statement-level rows/s | row-level rows/s | statement / row |",
        "|---|---:|---:|---:|",
    ]
    for label, total, per_statement in cases:
        statement = max(measure(url, row_level=False, total=total, rows_per_statement=per_statement) for _ in range(3))
        row = max(measure(url, row_level=True, total=total, rows_per_statement=per_statement) for _ in range(3))
        lines.append(f"| {label} | {statement:,.0f} | {row:,.0f} | {statement / row:.2f} |")
    return "\n".join(lines)
