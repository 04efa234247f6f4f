"""The listener of two revisions, side by side in one run: does a change to the event path cost speed?

A baseline revision (BENCH_BASELINE_REV, default 17142d2: the event path before its leaner writes and lanes) is
checked out into var/bench-baseline with `git worktree` and runs against the very same database, models and market
as the working tree, with the same virtual environment. When the working tree has migrations the baseline lacks,
each revision runs on its own copy of the prefilled database instead, the baseline's migrated back to its schema
(`baseline_bench`), so each listener finds the tables it was written for. BENCH_COMPARE_COPY_DATABASE=1 makes the
copies whatever the migrations (to see what two databases alone change in the figures).

Listeners of the two take turns (baseline, current, baseline, current) so that a machine that gets busier or quieter
during the run weighs on both alike; each turn runs a latency step at 500 rows/s and a load step at 1,000 rows/s
(near the listener's limit with every row predicted on its own, see the listener benchmark). The figures compared
are the medians over the turns of one revision and their ratio current / baseline:

* listener CPU per claimed row at 1,000 rows/s (the least noisy measure of work per row);
* claimed rows/s at 1,000 rows/s, and p50/p99 insert → prediction latency at 500 rows/s.

BENCH_COMPARE_LOAD_RATE sets the load step's rate (default 1,000 rows/s); the load step's p50/p99 are compared too.

    .venv/bin/python -m tests.benchmarks.run listener-compare
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.benchmarks.bench_listener import (
    FIXED_WARMUP,
    PROJECT_DIR,
    Bench,
    Phase,
    Watcher,
    _env,
    _phase_line,
    prepare,
    warm_up,
)

BASELINE_REV = os.environ.get("BENCH_BASELINE_REV", "17142d2")
BASELINE_DIR = PROJECT_DIR / "var" / "bench-baseline"
TURNS = 2  # per revision
LATENCY_RATE = 500
LOAD_RATE = int(os.environ.get("BENCH_COMPARE_LOAD_RATE", 1000))  # e.g. 1500: where the p99 target is 250 ms
STEP_SECONDS = 35


# Where a revision builds its compiled loops, newest layout first (what its `make` runs before anything else).
NATIVE_BUILDERS = ("inference/native.py", "inference/features/native.py")


def build_native(directory: Path) -> None:
    """The checkout's compiled loops, as `make` builds them: without them a baseline would run its numpy fallback
    and look slower than it is."""
    for relative in NATIVE_BUILDERS:
        if (directory / relative).exists():
            module = relative.removesuffix(".py").replace("/", ".")
            subprocess.run([sys.executable, "-c", f"import {module} as native; native.main()"], cwd=directory,
                           check=True, capture_output=True)
            return


def baseline_checkout(rev: str = BASELINE_REV, directory: Path = BASELINE_DIR) -> tuple[Path, str]:
    """A detached worktree at `rev` (made afresh, its compiled loops built), and its full commit id."""
    subprocess.run(["git", "worktree", "remove", "--force", str(directory)], cwd=PROJECT_DIR, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(directory), rev], cwd=PROJECT_DIR, check=True,
                   capture_output=True)
    build_native(directory)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, check=True, capture_output=True,
                            text=True).stdout.strip()
    return directory, commit


def _migrations(code_dir: Path) -> dict[str, list[str]]:
    """Each app's migration names in a checkout, in order."""
    return {folder.parent.name: sorted(path.stem for path in folder.glob("[0-9][0-9][0-9][0-9]_*.py"))
            for folder in code_dir.glob("*/migrations")}


def migrations_back(baseline_dir: Path) -> list[tuple[str, str]]:
    """(app, migration) to migrate the working tree's schema back to the baseline's; empty when they are the same."""
    ours, theirs = _migrations(PROJECT_DIR), _migrations(baseline_dir)
    steps = []
    for app in sorted(set(ours) | set(theirs)):
        mine, old = ours.get(app, []), theirs.get(app, [])
        if not set(old) <= set(mine):
            lacking = sorted(set(old) - set(mine))
            raise RuntimeError(f"the baseline has {app} migrations the working tree lacks: {lacking}")
        if old != mine:
            steps.append((app, old[-1] if old else "zero"))
    return steps


def _database_name(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


def baseline_bench(bench: Bench, baseline_dir: Path) -> tuple[Bench, Bench]:
    """(bench for the baseline, bench for the working tree). One database when both have the same migrations.
    Otherwise each side gets a copy of the prefilled database, made alike (copied, then vacuumed; neither runs on the
    original), the baseline's migrated back by the working tree's migrations (they know the way back). `bench` is
    closed then; `drop_copies` removes the copies."""
    from pumpserver.database import open_connection
    from tests.conftest import database_url

    steps = migrations_back(baseline_dir)
    if not steps and os.environ.get("BENCH_COMPARE_COPY_DATABASE") != "1":
        return bench, bench
    name = _database_name(bench.url)
    bench.conn.close()  # a template database takes no connections while it is copied
    sides = []
    for suffix, back in (("_baseline", steps), ("_current", [])):
        with open_connection(autocommit=True, dbname="postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}{suffix}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}{suffix}" TEMPLATE "{name}"')
        url = database_url(name + suffix)
        for app, migration in back:
            print(f"baseline database: migrate {app} {migration}", flush=True)
            subprocess.run([sys.executable, "manage.py", "migrate", app, migration, "-v0"], cwd=PROJECT_DIR,
                           env=_env(url), check=True)
        side = Bench(url)
        side.conn.execute("VACUUM ANALYZE")
        sides.append(side)
    return sides[0], sides[1]


def drop_copies(baseline: Bench, current: Bench) -> None:
    """Close both benches, and drop their databases where they are copies (`baseline_bench`)."""
    from pumpserver.database import open_connection

    for side in {id(side): side for side in (baseline, current)}.values():
        side.conn.close()
    if baseline is current:
        return
    with open_connection(autocommit=True, dbname="postgres") as admin:
        for side in (baseline, current):
            admin.execute(f'DROP DATABASE IF EXISTS "{_database_name(side.url)}" WITH (FORCE)')


def current_commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True)
    # the results file itself is written while the benchmarks run
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)docs/benchmarks.md"],
                           cwd=PROJECT_DIR, capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + (" with uncommitted changes" if dirty else "")


def run(url: str) -> str:
    began = time.monotonic()
    baseline_dir, baseline_commit = baseline_checkout()
    bench, _setup, _prefill = prepare(url)
    baseline, current = baseline_bench(bench, baseline_dir)
    sides = {"baseline": (baseline, baseline_dir), "current": (current, PROJECT_DIR)}
    turns: dict[str, list[tuple[Phase, Phase]]] = {"baseline": [], "current": []}
    try:
        # One uncounted step first (on each database): the first step after the prefill found PostgreSQL busier than
        # any later one (in two runs), and it would always be the baseline's.
        for side in {id(b): b for b in (baseline, current)}.values():
            print("listener compare: settling step (not counted)", flush=True)
            _steps(side, side.url, PROJECT_DIR if side is current else baseline_dir, [LATENCY_RATE])
        for turn in range(TURNS):
            for name, (side, code_dir) in sides.items():
                print(f"listener compare: turn {turn + 1}, {name}", flush=True)
                latency, load = _steps(side, side.url, code_dir, [LATENCY_RATE, LOAD_RATE])
                turns[name].append((latency, load))
    finally:
        drop_copies(baseline, current)
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline_dir)], cwd=PROJECT_DIR,
                       capture_output=True)
    return _report(turns, baseline_commit=baseline_commit, separate=baseline is not current,
                   elapsed=time.monotonic() - began)


def _steps(bench, url: str, code_dir: Path, rates: list[int]) -> list[Phase]:
    """One listener of `code_dir`, warmed up, through a step at each rate; its watcher measures them."""
    bench.start_listener(code_dir)
    bench.watcher = Watcher(url)
    bench.watcher.start()
    try:
        warm_up(bench)
        phases = []
        for rate in rates:
            phases.append(bench.run_phase(Phase(rate, STEP_SECONDS, FIXED_WARMUP)))
            print("  " + _phase_line(phases[-1]), flush=True)
    finally:
        bench.stop_listener()
        bench.watcher.stop()
    if bench.watcher.error:
        raise bench.watcher.error
    return phases


def _figures(pairs: list[tuple[Phase, Phase]]) -> dict[str, float]:
    def median(values) -> float:
        return statistics.median(values)

    def ms_per_row(phase: Phase, process: str) -> float:
        return 1000 * phase.cpu.get(process, 0) / max(phase.claimed, 1e-9)

    return {
        "cpu_ms_per_row": median(ms_per_row(load, "listener") for _, load in pairs),
        "cpu_ms_per_row_latency": median(ms_per_row(latency, "listener") for latency, _ in pairs),
        "pg_ms_per_row": median(ms_per_row(load, "postgres") for _, load in pairs),
        "pg_ms_per_row_latency": median(ms_per_row(latency, "postgres") for latency, _ in pairs),
        "claimed": median(load.claimed for _, load in pairs),
        "p50": median(latency.percentile(50) for latency, _ in pairs),
        "p99": median(latency.percentile(99) for latency, _ in pairs),
        "p50_load": median(load.percentile(50) for _, load in pairs),
        "p99_load": median(load.percentile(99) for _, load in pairs),
    }


def _report(turns: dict, *, baseline_commit: str, separate: bool, elapsed: float) -> str:
    old, new = _figures(turns["baseline"]), _figures(turns["current"])
    load = f"{LOAD_RATE:,} rows/s"
    rows = [
        (f"listener CPU per claimed row at {load} (ms)", "cpu_ms_per_row", "{:.3f}", "lower is better"),
        ("listener CPU per claimed row at 500 rows/s (ms)", "cpu_ms_per_row_latency", "{:.3f}", "lower is better"),
        (f"PostgreSQL CPU per claimed row at {load} (ms)", "pg_ms_per_row", "{:.3f}", "lower is better"),
        ("PostgreSQL CPU per claimed row at 500 rows/s (ms)", "pg_ms_per_row_latency", "{:.3f}", "lower is better"),
        (f"claimed rows/s at {load} offered", "claimed", "{:,.0f}", "higher is better"),
        ("p50 latency at 500 rows/s (ms)", "p50", "{:,.0f}", "lower is better"),
        ("p99 latency at 500 rows/s (ms)", "p99", "{:,.0f}", "lower is better"),
        (f"p50 latency at {load} (ms)", "p50_load", "{:,.0f}", "lower is better"),
        (f"p99 latency at {load} (ms)", "p99_load", "{:,.0f}", "lower is better"),
    ]
    lines = [
        "### Listener before and after: two revisions in one run",
        "",
        f"Baseline `{baseline_commit[:12]}` (a `git worktree` of BENCH_BASELINE_REV) against the working tree "
        f"(`{current_commit()}`), "
        + ("each on its own copy of one prefilled database (the baseline's migrated back to its schema)"
           if separate else "same database")
        + ", 10 models and 2,000-coin market as the listener benchmark; the two "
        f"listeners take turns ({TURNS} turns each, alternating, after one uncounted {LATENCY_RATE} rows/s step of the "
        f"current code), each turn a {STEP_SECONDS} s step at "
        f"{LATENCY_RATE} rows/s and one at {LOAD_RATE:,} rows/s after a {FIXED_WARMUP} s warm-up. Medians over the "
        "turns; ratio = current / baseline.",
        "",
        "| figure | baseline | current | ratio | |",
        "|---|---:|---:|---:|---|",
    ]
    for label, key, fmt, better in rows:
        ratio = new[key] / old[key] if old[key] else float("nan")
        lines.append(f"| {label} | {fmt.format(old[key])} | {fmt.format(new[key])} | {ratio:.2f} | {better} |")
    lines += ["", "Every step:", ""]
    for name, pairs in turns.items():
        for turn, (latency, load) in enumerate(pairs, 1):
            lines.append(f"- {name}, turn {turn}, {LATENCY_RATE} rows/s: {_phase_line(latency)}")
            lines.append(f"- {name}, turn {turn}, {LOAD_RATE:,} rows/s: {_phase_line(load)}")
    lines.append(f"- Whole comparison {elapsed / 60:.1f} min.")
    return "\n".join(lines)
