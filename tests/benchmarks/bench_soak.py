"""A 10-minute soak: the whole system (web, listener, worker) under simulated load at half the measured maximum.

Reports each process's memory at start and end, the queue depth over time, and whether anything grows. The
rate is SOAK_RATE rows/s (default 500: half of the listener target of 1,000 rows/s; set it to half of the
maximum `bench_listener` measured on your machine), for SOAK_SECONDS (default 600).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import psycopg

from tests.benchmarks.bench_listener import PROJECT_DIR, _env, _manage, _simulate, _vm

SOAK_RATE = float(os.environ.get("SOAK_RATE", 500))
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", 600))
SAMPLE_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_rss(pid: int) -> int:
    """RSS of a process and its children (the worker is a cluster of processes)."""
    total = _vm(pid, "VmRSS") or 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return total + sum(_tree_rss(int(child)) for child in children)


def run(url: str) -> str:
    register = subprocess.run(
        [sys.executable, "-c", "from tests.benchmarks.bench_listener import register_models; register_models()"],
        cwd=PROJECT_DIR, env=_env(url), check=True,
    )
    del register
    port = _free_port()
    processes = {
        "web": subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                 "pumpserver.asgi:application"], cwd=PROJECT_DIR, env=_env(url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "listener": _manage(url, "listen_events", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "worker": _manage(url, "qcluster", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    time.sleep(10)
    start_rss = {name: _tree_rss(p.pid) for name, p in processes.items()}
    market = _simulate(url, rate=SOAK_RATE, start=datetime.now(timezone.utc), duration=SOAK_SECONDS)
    samples = []
    peak_rss = dict(start_rss)
    began = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while market.poll() is None:
            time.sleep(SAMPLE_SECONDS)
            depth = conn.execute("SELECT count(*) FROM coin_metrics_queue").fetchone()[0]
            predictions = conn.execute("SELECT count(*) FROM model_predictions").fetchone()[0]
            evaluated = conn.execute("SELECT count(*) FROM model_predictions WHERE status = 'inaktiv'").fetchone()[0]
            outbox = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'").fetchone()[0]
            for name, p in processes.items():
                peak_rss[name] = max(peak_rss[name], _tree_rss(p.pid))
            samples.append((time.monotonic() - began, depth, predictions, evaluated, outbox))
        rows = conn.execute("SELECT count(*) FROM coin_metrics").fetchone()[0]
    end_rss = {name: _tree_rss(p.pid) for name, p in processes.items()}
    alive = {name: p.poll() is None for name, p in processes.items()}
    for p in processes.values():
        p.terminate()
    exits = {name: p.wait(timeout=90) for name, p in processes.items()}

    lines = [
        f"### Soak: {SOAK_SECONDS / 60:.0f} minutes at {SOAK_RATE:g} rows/s (10 models, 2,000 coins)",
        "",
        f"{rows:,} coin_metrics rows written. Web, listener and worker (django-q2 cluster, children included) ran "
        "throughout; all alive at the end: " + ("yes" if all(alive.values()) else f"no {alive}") +
        f"; exit codes after SIGTERM: {exits}.",
        "",
        "| process | RSS at start | RSS at end | peak | growth |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in processes:
        growth = end_rss[name] - start_rss[name]
        lines.append(f"| {name} | {start_rss[name] / 2**20:.0f} MB | {end_rss[name] / 2**20:.0f} MB | "
                     f"{peak_rss[name] / 2**20:.0f} MB | {growth / 2**20:+.0f} MB |")
    lines += ["", "| minute | queue depth | predictions stored | evaluated | webhook outbox pending |",
              "|---:|---:|---:|---:|---:|"]
    for at, depth, predictions, evaluated, outbox in samples:
        lines.append(f"| {at / 60:.1f} | {depth:,} | {predictions:,} | {evaluated:,} | {outbox:,} |")
    depths = [d for _, d, *_ in samples]
    half = len(depths) // 2
    if depths:
        first, second = max(depths[:half] or [0]), max(depths[half:] or [0])
        lines += ["", f"Queue depth: max {max(depths):,}; first half max {first:,}, second half max {second:,} "
                      f"({'no backlog growth' if second <= max(first, 2 * SOAK_RATE) else 'GROWING'})."]
    return "\n".join(lines)
