"""A soak: the whole system (web, listener, worker) under simulated load, and what a week of it would need.

Runs SOAK_SECONDS (default 600) at SOAK_RATE rows/s (default 500, the rate issue 16 asks a projection for) with
the listener benchmark's 10 models and 2,000 coins. Reports per process the proportional memory (PSS: pages shared
between the worker's processes divided among them, so the figures add up; RSS beside it), the queue, the stored
predictions and the database's growth, then projects 7 days: disk from the bytes written per second (table by
table, bounded by the retention settings when they are set), memory from its growth after the warm-up, the queue
from its slope.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import psycopg

from tests.benchmarks.bench_listener import PROJECT_DIR, _env, _manage, _simulate
from tests.benchmarks.bench_worker import children, memory

SOAK_RATE = float(os.environ.get("SOAK_RATE", 500))
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", 600))
SAMPLE_SECONDS = 30
WARM_UP_SECONDS = 120  # caches, model loading and the first partitions: growth before this is not a trend
PROJECTION_DAYS = 7
DAY = 86_400
# Tables whose size the projection follows one by one; everything else is "other".
TABLES = ("coin_metrics", "model_predictions", "coin_metrics_queue", "coin_metrics_changes", "webhook_deliveries",
          "django_q_ormq", "django_q_task", "quality_drifthour")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_memory(pid: int) -> dict[str, int]:
    """PSS and RSS of a process and all its descendants (the worker is a cluster of processes)."""
    total = {"pss": 0, "rss": 0}
    pending = [pid]
    while pending:
        current = pending.pop()
        figures = memory(current)
        if figures is not None:
            total["pss"] += figures["pss"]
            total["rss"] += figures["rss"]
        pending += children(current)
    return total


def table_bytes(conn) -> dict[str, int]:
    """Total bytes (heap, TOAST, indexes) per followed table, partitions included, and the whole database."""
    sizes = {}
    for table in TABLES:
        row = conn.execute(  # a plain table has no partition tree: its own size then
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(to_regclass(%s))), "
            "pg_total_relation_size(to_regclass(%s)), 0)", [table, table]).fetchone()
        sizes[table] = int(row[0] or 0)
    sizes["database"] = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return sizes


def _mb(value: float) -> str:
    return f"{value / 2**20:,.0f} MB"


def _gb(value: float) -> str:
    return f"{value / 2**30:,.1f} GB"


def _retention_days() -> dict[str, int | None]:
    def days(name):
        value = os.environ.get(name)
        return int(value) if value else None
    return {"predictions": days("PREDICTION_RETENTION_DAYS"), "alerts": days("ALERT_RETENTION_DAYS")}


def run(url: str) -> str:
    subprocess.run(
        [sys.executable, "-c", "from tests.benchmarks.bench_listener import register_models; register_models()"],
        cwd=PROJECT_DIR, env=_env(url), check=True,
    )
    port = _free_port()
    processes = {
        "web": subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                 "pumpserver.asgi:application"], cwd=PROJECT_DIR, env=_env(url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "listener": _manage(url, "listen_events", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "worker": _manage(url, "qcluster", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    time.sleep(10)
    samples = []  # (seconds, queue depth, predictions, judged, outbox, sizes, memory per process)
    began = time.monotonic()
    market = _simulate(url, rate=SOAK_RATE, start=datetime.now(timezone.utc), duration=SOAK_SECONDS)
    with psycopg.connect(url, autocommit=True) as conn:
        def sample():
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM coin_metrics_queue), count(*), count(*) FILTER (WHERE status = "
                "'inaktiv'), (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') "
                "FROM model_predictions").fetchone()
            memories = {name: tree_memory(p.pid) for name, p in processes.items()}
            samples.append((time.monotonic() - began, *counts, table_bytes(conn), memories))

        sample()
        while market.poll() is None:
            time.sleep(SAMPLE_SECONDS)
            sample()
        sample()
        rows = conn.execute("SELECT count(*) FROM coin_metrics").fetchone()[0]
    alive = {name: p.poll() is None for name, p in processes.items()}
    for p in processes.values():
        p.terminate()
    exits = {name: _stopped(p) for name, p in processes.items()}
    return report(samples=samples, rows=rows, alive=alive, exits=exits)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares growth per second (single samples jump with garbage collection; the fit does not)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def _stopped(process: subprocess.Popen, *, grace: float = 90) -> int | str:
    """The exit code after SIGTERM, or "killed" when the process had not stopped within `grace` seconds."""
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return f"killed after {grace:.0f} s"


def report(*, samples, rows: int, alive: dict, exits: dict) -> str:
    first, last = samples[0], samples[-1]
    elapsed = last[0] - first[0]
    warm = next((s for s in samples if s[0] - first[0] >= WARM_UP_SECONDS), first)
    names = list(last[6])
    lines = [
        f"### Soak: {SOAK_SECONDS / 60:.0f} minutes at {SOAK_RATE:g} rows/s (10 models, 2,000 coins), and 7 days "
        "projected",
        "",
        f"{rows:,} coin_metrics rows written in {elapsed:.0f} s ({rows / max(elapsed, 1):,.0f} rows/s). Web, listener "
        "and worker (the django-q2 cluster with its children) ran throughout; all alive at the end: "
        + ("yes" if all(alive.values()) else f"no {alive}") + f"; exit codes after SIGTERM: {exits}. Memory is PSS "
        "(shared pages divided among the processes sharing them, so the worker's figure is what its processes "
        "really hold together); RSS beside it counts shared pages in every process.",
        "",
        "| process | PSS at start | PSS after warm-up | PSS at end | peak PSS | growth after warm-up per hour | "
        "RSS at end |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    growth_per_hour = {}
    settled = [s for s in samples if s[0] >= warm[0]]
    for name in names:
        pss = [s[6][name]["pss"] for s in samples]
        growth_per_hour[name] = _slope([(s[0], s[6][name]["pss"]) for s in settled]) * 3600
        lines.append(f"| {name} | {_mb(first[6][name]['pss'])} | {_mb(warm[6][name]['pss'])} | "
                     f"{_mb(last[6][name]['pss'])} | {_mb(max(pss))} | {growth_per_hour[name] / 2**20:+,.0f} MB | "
                     f"{_mb(last[6][name]['rss'])} |")
    lines += ["", "| minute | queue depth | predictions stored | judged | webhook outbox pending | database |",
              "|---:|---:|---:|---:|---:|---:|"]
    for at, depth, predictions, judged, outbox, sizes, _memories in samples:
        lines.append(f"| {(at - first[0]) / 60:.1f} | {depth:,} | {predictions:,} | {judged:,} | {outbox:,} | "
                     f"{_mb(sizes['database'])} |")
    depths = [s[1] for s in samples]
    half = len(depths) // 2
    earlier, later = max(depths[:half] or [0]), max(depths[half:] or [0])
    queue_slope = (last[1] - warm[1]) / max(last[0] - warm[0], 1)
    lines += ["", f"Queue depth: max {max(depths):,}; first half max {earlier:,}, second half max {later:,} "
                  f"({'no backlog growth' if later <= max(earlier, 2 * SOAK_RATE) else 'GROWING'}); slope after "
                  f"warm-up {queue_slope:+.1f} rows/s."]
    lines += ["", *projection(samples=samples, growth_per_hour=growth_per_hour, queue_slope=queue_slope)]
    return "\n".join(lines)


def projection(*, samples, growth_per_hour: dict, queue_slope: float) -> list[str]:
    """Seven days at this rate: disk per table from its bytes per second (the predictions bounded by retention
    when set), memory from its growth after the warm-up, the queue from its slope."""
    warm = next((s for s in samples if s[0] - samples[0][0] >= WARM_UP_SECONDS), samples[0])
    last = samples[-1]
    seconds = max(last[0] - warm[0], 1)
    retention = _retention_days()
    kept_days = {table: PROJECTION_DAYS for table in TABLES}
    if retention["predictions"] is not None and retention["alerts"] is not None:
        kept_days["model_predictions"] = min(PROJECTION_DAYS, max(retention["predictions"], retention["alerts"]))
    lines = [f"Projection for {PROJECTION_DAYS} days at {SOAK_RATE:g} rows/s (rates measured after the first "
             f"{WARM_UP_SECONDS} s; PREDICTION_RETENTION_DAYS={retention['predictions'] or 'unset'}, "
             f"ALERT_RETENTION_DAYS={retention['alerts'] or 'unset'}; coin_metrics belongs to the collector, "
             "which prunes it or not):", "",
             "| table | bytes/s | per day | after 7 days |", "|---|---:|---:|---:|"]
    total_week = 0.0
    for table in TABLES:
        rate = max(last[5][table] - warm[5][table], 0) / seconds
        week = rate * DAY * kept_days[table]
        total_week += week
        lines.append(f"| {table} | {rate / 1024:,.0f} KiB | {_gb(rate * DAY)} | {_gb(week)} |")
    database_rate = max(last[5]["database"] - warm[5]["database"], 0) / seconds
    lines.append(f"| whole database | {database_rate / 1024:,.0f} KiB | {_gb(database_rate * DAY)} | "
                 f"{_gb(database_rate * DAY * PROJECTION_DAYS)} |")
    if seconds < 300:
        lines += ["", f"Memory: the run after its warm-up ({seconds:.0f} s) is too short to project a week."]
    else:
        lines += ["", "| process | PSS at end | after 7 days if the fitted growth went on |", "|---|---:|---:|"]
        for name, per_hour in growth_per_hour.items():
            week = last[6][name]["pss"] + max(per_hour, 0) * 24 * PROJECTION_DAYS
            lines.append(f"| {name} | {_mb(last[6][name]['pss'])} | {_mb(week)} |")
    backlog = max(queue_slope, 0) * DAY * PROJECTION_DAYS
    lines += ["", f"Queue after {PROJECTION_DAYS} days: {backlog:,.0f} rows waiting "
                  f"({'the listener keeps up' if backlog == 0 else 'the listener falls behind at this rate'}). "
                  "Growth figures from a 10-minute run are an upper bound for processes whose caches fill within "
                  "the first minutes (the history cache is bounded by coins × 1,000 rows)."]
    return lines
