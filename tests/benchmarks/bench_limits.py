"""The request rate counter (pumpserver.limits): what its one upsert per request costs, next to a bare round trip.

Cases: one busy token, many keys in turn, several web processes counting the same token at once (row lock
contention), and the cleanup of many expired keys. Standalone: `python -m tests.benchmarks.bench_limits URL`.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

import psycopg

from pumpserver.limits import CLEANUP_SQL, COUNT_SQL, WINDOW_SECONDS

REQUESTS = 20_000


def timed(conn: psycopg.Connection, sql: str, params_for, count: int) -> list[float]:
    durations = []
    for index in range(count):
        started = time.perf_counter()
        conn.execute(sql, params_for(index)).fetchone()
        durations.append(time.perf_counter() - started)
    return durations


def row(name: str, durations: list[float]) -> str:
    ordered = sorted(durations)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
    return (f"| {name} | {len(durations):,} | {statistics.fmean(durations) * 1e6:.0f} | {p50 * 1e6:.0f} | "
            f"{p99 * 1e6:.0f} |")


def concurrent(url: str, *, threads: int, per_thread: int) -> tuple[list[float], float]:
    """`threads` connections counting one key at once (web processes serving one agent); latencies and requests/s."""
    results: list[list[float]] = [[] for _ in range(threads)]

    def work(slot: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            results[slot] = timed(conn, COUNT_SQL, lambda _i: {"key": "token:shared", "window": WINDOW_SECONDS},
                                  per_thread)

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return [d for durations in results for d in durations], threads * per_thread / elapsed


def run(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE request_rate_counters")
        baseline = timed(conn, "SELECT 1", lambda _i: None, REQUESTS)
        one_key = timed(conn, COUNT_SQL, lambda _i: {"key": "token:busy", "window": WINDOW_SECONDS}, REQUESTS)
        many_keys = timed(conn, COUNT_SQL, lambda i: {"key": f"token:{i % 1000}", "window": WINDOW_SECONDS}, REQUESTS)
        contended, rate = concurrent(url, threads=4, per_thread=REQUESTS // 4)

        conn.execute("INSERT INTO request_rate_counters SELECT 'address:' || n, 0, 1 FROM generate_series(1, 100000) n")
        started = time.perf_counter()
        deleted = conn.execute(CLEANUP_SQL, {"window": WINDOW_SECONDS}).rowcount
        cleanup_ms = (time.perf_counter() - started) * 1000
        table_kib = conn.execute("SELECT pg_total_relation_size('request_rate_counters') / 1024").fetchone()[0]

    lines = [
        "### Request rate counter (pumpserver.limits)",
        "",
        "One `INSERT … ON CONFLICT DO UPDATE … RETURNING` per request on an UNLOGGED table, over a local socket.",
        "",
        "| statement | requests | mean µs | p50 µs | p99 µs |",
        "|---|---|---|---|---|",
        row("`SELECT 1` (a bare round trip)", baseline),
        row("count, one busy token", one_key),
        row("count, 1,000 keys in turn", many_keys),
        row("count, 4 connections on one token at once", contended),
        "",
        f"4 connections on one token: {rate:,.0f} counted requests/s. Cleanup of {deleted:,} expired keys: "
        f"{cleanup_ms:.0f} ms (once per minute per web process); table afterwards {table_kib:,} KiB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(sys.argv[1]))
