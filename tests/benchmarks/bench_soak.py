"""A soak: the whole system (web, listener, worker) under simulated load, and what a week of it would need.

Runs SOAK_SECONDS (default 600) at SOAK_RATE rows/s (default 500, the rate issue 16 asks a projection for) with
the listener benchmark's 10 models and 2,000 coins. Reports per process the proportional memory (PSS: pages shared
between the worker's processes divided among them, so the figures add up; RSS beside it), the queue, the stored
predictions and the database's growth, then projects 7 days: disk from the bytes written per second (table by
table, each kind of prediction kept as long as its retention setting says), the listener's memory at its history
cache's bound (the PSS each held row costs, measured, times the rows the bound allows), the other processes' memory
from their growth after the warm-up, the queue from its slope. CPU per interval is split by process, and
PostgreSQL's by the client each backend serves (every process connects with its own application_name).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import psycopg

from tests.benchmarks.bench_listener import (
    PROJECT_DIR,
    _cpu_seconds,
    _env,
    _machine_busy_seconds,
    _manage,
    _postgres_pids,
    _postmaster_pid,
    _simulate,
)
from tests.benchmarks.bench_worker import children, memory

SOAK_RATE = float(os.environ.get("SOAK_RATE", 500))
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", 600))
SAMPLE_SECONDS = 30
WARM_UP_SECONDS = 120  # caches, model loading and the first partitions: growth before this is not a trend
PROJECTION_DAYS = 7
DAY = 86_400
# Tables whose size the projection follows one by one; everything else is "other".
TABLES = ("coin_metrics", "model_predictions_alert", "model_predictions_other", "coin_metrics_queue", "coin_metrics_changes", "webhook_deliveries",
          "django_q_ormq", "django_q_task", "quality_drifthour")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += children(current)
    return found


def tree_memory(pid: int) -> dict[str, int]:
    """PSS and RSS of a process and all its descendants (the worker is a cluster of processes)."""
    total = {"pss": 0, "rss": 0}
    for member in tree_pids(pid):
        figures = memory(member)
        if figures is not None:
            total["pss"] += figures["pss"]
            total["rss"] += figures["rss"]
    return total


@contextlib.contextmanager
def application_name(name: str):
    """Processes started inside connect to PostgreSQL as `name` (libpq's PGAPPNAME), so their backends' CPU can be
    told apart."""
    before = os.environ.get("PGAPPNAME")
    os.environ["PGAPPNAME"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PGAPPNAME", None)
        else:
            os.environ["PGAPPNAME"] = before


class CpuMeter:
    """CPU seconds used since the previous reading, per process tree and per PostgreSQL client (by the
    application_name of each backend; backends of other clients and PostgreSQL's own processes count as "other").

    Backends come and go (Django closes connections after CONN_MAX_AGE), so each is followed by its pid: a new one
    counts from its start; what a backend used between the last reading and its exit is not seen."""

    def __init__(self, conn, processes: dict[str, subprocess.Popen]):
        self.conn = conn
        self.processes = processes
        self.postmaster = _postmaster_pid(conn)
        self.client_of: dict[int, str] = {}
        self.previous: dict = {}
        self.read()

    def _readings(self) -> dict:
        readings = {name: _cpu_seconds(tree_pids(p.pid)) for name, p in self.processes.items()}
        for pid, name in self.conn.execute(
                "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()").fetchall():
            self.client_of[pid] = name if name in self.processes else "other"
        for pid in _postgres_pids(self.postmaster):
            readings[("pg", pid)] = _cpu_seconds([pid])
        readings["machine"] = _machine_busy_seconds()[0]
        return readings

    def read(self) -> dict[str, float]:
        now = self._readings()
        used: dict[str, float] = {}
        for key, value in now.items():
            spent = max(value - self.previous.get(key, 0.0), 0.0)
            name = f"pg {self.client_of.get(key[1], 'other')}" if isinstance(key, tuple) else key
            used[name] = used.get(name, 0.0) + spent
        self.previous = now
        return used


def history_held(conn) -> tuple[int, int]:
    """(rows held, the bound) of the listener's history cache, from its heartbeat (0, 0 before its first beat)."""
    row = conn.execute("SELECT (details->>'history_rows')::bigint, (details->>'history_max_rows')::bigint "
                       "FROM process_heartbeats WHERE kind = 'listener' ORDER BY last_seen DESC LIMIT 1").fetchone()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


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
    """The worker's retention settings as the soak's processes read them (from the environment)."""
    def days(name):
        value = os.environ.get(name)
        return int(value) if value else None
    return {"model_predictions_other": days("PREDICTION_RETENTION_DAYS"),
            "model_predictions_alert": days("ALERT_RETENTION_DAYS")}


def run(url: str) -> str:
    subprocess.run(
        [sys.executable, "-c", "from tests.benchmarks.bench_listener import register_models; register_models()"],
        cwd=PROJECT_DIR, env=_env(url), check=True,
    )
    port = _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = {}
    with application_name("web"):
        processes["web"] = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                             "pumpserver.asgi:application"], cwd=PROJECT_DIR, env=_env(url), **quiet)
    with application_name("listener"):
        processes["listener"] = _manage(url, "listen_events", **quiet)
    with application_name("worker"):
        processes["worker"] = _manage(url, "qcluster", **quiet)
    time.sleep(10)
    samples = []  # (seconds, queue depth, predictions, judged, outbox, sizes, memory per process, CPU, held rows)
    began = time.monotonic()
    with application_name("generator"):
        market = _simulate(url, rate=SOAK_RATE, start=datetime.now(timezone.utc), duration=SOAK_SECONDS)
    with psycopg.connect(url, autocommit=True) as conn:
        meter = CpuMeter(conn, {**processes, "generator": market})

        def sample():
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM coin_metrics_queue), count(*), count(*) FILTER (WHERE status = "
                "'inaktiv'), (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') "
                "FROM model_predictions").fetchone()
            memories = {name: tree_memory(p.pid) for name, p in processes.items()}
            samples.append((time.monotonic() - began, *counts, table_bytes(conn), memories, meter.read(),
                            history_held(conn)))

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


CPU_COLUMNS = ("listener", "pg listener", "worker", "pg worker", "web", "pg web", "generator", "pg generator")


def _cpu_cells(used: dict, seconds: float) -> str:
    """Share of one core per process and per PostgreSQL client over an interval, then everything else."""
    ours = sum(used.get(key, 0.0) for key in CPU_COLUMNS)
    rest = max(used.get("machine", 0.0) - ours, 0.0)  # PostgreSQL's own processes, other clients, other users
    return " / ".join(f"{100 * used.get(key, 0.0) / seconds:.0f}" for key in CPU_COLUMNS) + \
        f" / {100 * rest / seconds:.0f}"


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
    lines += ["", "Per interval: CPU in % of one core (both cores = 200 %) for listener / its PostgreSQL backends / "
                  "worker / its backends / web / its backends / generator / its backends / everything else "
                  "(PostgreSQL's own processes, other users); the listener's history cache in rows held.", "",
              "| minute | queue depth | predictions stored | judged | webhook outbox pending | database | "
              "history rows held | CPU % |",
              "|---:|---:|---:|---:|---:|---:|---:|---|"]
    previous_at = first[0]
    for at, depth, predictions, judged, outbox, sizes, _memories, used, held in samples:
        cpu = _cpu_cells(used, at - previous_at) if at - previous_at >= 1 else ""
        previous_at = at
        lines.append(f"| {(at - first[0]) / 60:.1f} | {depth:,} | {predictions:,} | {judged:,} | {outbox:,} | "
                     f"{_mb(sizes['database'])} | {held[0]:,} | {cpu} |")
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
    """Seven days at this rate: disk per table from its bytes per second, each kind of prediction kept as long as
    its retention says; the listener's memory at its history cache's bound; the other processes' memory from their
    growth after the warm-up; the queue from its slope."""
    warm = next((s for s in samples if s[0] - samples[0][0] >= WARM_UP_SECONDS), samples[0])
    last = samples[-1]
    seconds = max(last[0] - warm[0], 1)
    retention = _retention_days()
    lines = [f"Projection for {PROJECTION_DAYS} days at {SOAK_RATE:g} rows/s (rates measured after the first "
             f"{WARM_UP_SECONDS} s; PREDICTION_RETENTION_DAYS={retention['model_predictions_other'] or 'unset'}, "
             f"ALERT_RETENTION_DAYS={retention['model_predictions_alert'] or 'unset'}: a kind of prediction is kept "
             "that many days and at most one more, as whole day partitions are dropped; coin_metrics belongs to the "
             "collector, which prunes it or not):", "",
             "| table | bytes/s | per day | kept days | after 7 days |", "|---|---:|---:|---:|---:|"]
    week_total = rate_total = 0.0
    for table in TABLES:
        rate = max(last[5][table] - warm[5][table], 0) / seconds
        # A day partition goes once all of it is older than the retention: up to one day more is on disk.
        kept = min(PROJECTION_DAYS, (retention.get(table) or PROJECTION_DAYS) + 1)
        week_total += rate * DAY * kept
        rate_total += rate
        lines.append(f"| {table} | {rate / 1024:,.0f} KiB | {_gb(rate * DAY)} | {kept} | {_gb(rate * DAY * kept)} |")
    database_rate = max(last[5]["database"] - warm[5]["database"], 0) / seconds
    rest = max(database_rate - rate_total, 0) * DAY * PROJECTION_DAYS  # tables not followed one by one
    lines.append(f"| whole database | {database_rate / 1024:,.0f} KiB | {_gb(database_rate * DAY)} | | "
                 f"{_gb(week_total + rest)} |")
    lines += ["", *_memory_projection(samples=samples, warm=warm, growth_per_hour=growth_per_hour)]
    backlog = max(queue_slope, 0) * DAY * PROJECTION_DAYS
    lines += ["", f"Queue after {PROJECTION_DAYS} days: {backlog:,.0f} rows waiting "
                  f"({'the listener keeps up' if backlog == 0 else 'the listener falls behind at this rate'})."]
    return lines


def _memory_projection(*, samples, warm, growth_per_hour: dict) -> list[str]:
    """The listener's memory grows with its history cache, which is bounded (HISTORY_CACHE_MAX_ROWS rows, least
    recently used coins evicted): its PSS per held row, fitted after the warm-up, times the rows still free under
    the bound. Other processes: their fitted growth, carried on for 7 days (an upper bound: caches level off)."""
    last = samples[-1]
    settled = [s for s in samples if s[0] >= warm[0]]
    if last[0] - warm[0] < 300:
        return [f"Memory: the run after its warm-up ({last[0] - warm[0]:.0f} s) is too short to project a week."]
    lines = ["| process | PSS at end | after 7 days | how |", "|---|---:|---:|---|"]
    for name, per_hour in growth_per_hour.items():
        end = last[6][name]["pss"]
        held, bound = last[8]
        if name == "listener" and bound and len({s[8][0] for s in settled}) > 1:
            per_row = _slope([(s[8][0], s[6][name]["pss"]) for s in settled])
            week = end + max(per_row, 0) * max(bound - held, 0)
            how = (f"{per_row:,.0f} bytes of PSS per held history row (fitted), {held:,} rows held at the end, "
                   f"bound {bound:,}")
        else:
            week = end + max(per_hour, 0) * 24 * PROJECTION_DAYS
            how = f"fitted growth {per_hour / 2**20:+,.0f} MB per hour carried on"
        lines.append(f"| {name} | {_mb(end)} | {_mb(week)} | {how} |")
    return lines
