"""The backtest under load: one 300-tree XGBoost model replayed over a stored 2,000-coin market of 1,000,000 rows
(`manage.py backtest`, its own process, as an operator runs it; the worker runs the same `execute_run`).

* Speed: rows/s end to end (read, features, score, judge, summary) of the committed core before the optimisation
  (BENCH_BACKTEST_BASELINE_REV, run from a `git worktree`) and of the working tree, on the same database in one run.
* Memory: peak RSS of the backtest process (its rusage at exit: VmHWM, every thread included), at 1 M rows and after
  the market has grown to each further step of BENCH_BACKTEST_ROWS (default 1 M and 3 M; 10 M when time allows).
* The listener's latency while a backtest runs: a 500 rows/s step of the listener benchmark (10 models) alone, then
  with backtests running back to back at full priority (BACKTEST_NICE=0, no pauses: how a backtest ran before it
  yielded to live work), then with backtests at the default settings (BACKTEST_NICE, BACKTEST_YIELD_QUEUE_ROWS), and
  the ratios to the step alone.
* The live path: the newest rows of the market taken out and put back batch by batch (one row per coin per batch, in
  time order), each batch through `process_pending_batch` with the listener's history cache and only the backtested
  model active: claim, histories, features, score, store. Seconds per row over the batches after a warm-up,
  extrapolated linearly to the backtest's rows.

    EMBEDDED_PGDATA=var/pg-bench-backtest .venv/bin/python -m tests.benchmarks.run backtest
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from tests.benchmarks.bench_listener import (
    COINS,
    FIXED_WARMUP,
    PROJECT_DIR,
    SEED,
    START,
    XGB_TREES,
    Bench,
    Phase,
    Watcher,
    _cpu_seconds,
    _env,
    _machine_busy_seconds,
    _mb,
    _phase_line,
    _postgres_pids,
    _simulate,
    _verdict,
    warm_up,
)
from tests.benchmarks.bench_listener_compare import baseline_checkout, current_commit

BASELINE_REV = os.environ.get("BENCH_BACKTEST_BASELINE_REV", "3594901")
BASELINE_DIR = PROJECT_DIR / "var" / "bench-backtest-baseline"
ROW_STEPS = tuple(int(n) for n in os.environ.get("BENCH_BACKTEST_ROWS", "1000000,3000000").split(","))
BASELINE = os.environ.get("BENCH_BACKTEST_BASELINE", "1") != "0"
MODEL_NAME = "bench_xgboost_2"  # XGBoost, 300 trees, all phases: every stored row is replayed
LISTENER_RATE, LISTENER_SECONDS = 500, 35
LIVE_SAMPLE_ROWS = int(os.environ.get("BENCH_BACKTEST_LIVE_ROWS", "30000"))
LIVE_WARMUP_BATCHES = 3
LOG_DIR = PROJECT_DIR / "var"
# The speed runs take the whole machine (no listener runs then): the backtest's own priority and pauses are measured
# in the listener steps.
FULL_PRIORITY = {"BACKTEST_NICE": "0", "BACKTEST_YIELD_QUEUE_ROWS": "0"}


# --- the backtest process ----------------------------------------------------------------------------------------


class BacktestProcess:
    """`manage.py backtest` of `code_dir` over the whole market; its peak RSS from its rusage at exit, the CPU of
    PostgreSQL's backends sampled while it runs (they come and go with its connections)."""

    def __init__(self, bench: Bench, model_id: int, start: datetime, end: datetime, *, code_dir: Path = PROJECT_DIR,
                 name: str = "current", env: dict | None = None):
        self.bench, self.name = bench, name
        self.json_path = LOG_DIR / f"bench-backtest-{name}.json"
        self.log_path = LOG_DIR / f"bench-backtest-{name}.log"
        self.json_path.unlink(missing_ok=True)
        self.log = open(self.log_path, "w")
        self.began = time.monotonic()
        self.machine_began = _machine_busy_seconds()[0]
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "backtest", str(model_id), "--start", start.isoformat(), "--end",
             end.isoformat(), "--json", str(self.json_path)],
            cwd=code_dir, env={**_env(bench.url), **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.postgres: dict[int, tuple[float, float]] = {}  # pid -> (first seen, last seen) CPU seconds

    def _sample_postgres(self) -> None:
        for pid in _postgres_pids(self.bench.postmaster):
            seconds = _cpu_seconds([pid])
            first, _last = self.postgres.get(pid, (seconds, seconds))
            self.postgres[pid] = (first, seconds)

    def wait(self) -> dict:
        self._sample_postgres()
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                break
            self._sample_postgres()
            time.sleep(0.25)
        wall = time.monotonic() - self.began
        machine = _machine_busy_seconds()[0] - self.machine_began
        self.log.close()
        if os.waitstatus_to_exitcode(status) != 0 or not self.json_path.exists():
            raise RuntimeError(f"backtest ({self.name}) failed; see {self.log_path}")
        summary = json.loads(self.json_path.read_text())
        process_cpu = usage.ru_utime + usage.ru_stime
        postgres_cpu = sum(last - first for first, last in self.postgres.values())
        return {
            "name": self.name, "rows": summary["rows_replayed"], "predictions": summary["predictions"],
            "run_seconds": summary["duration_s"], "rows_per_s": summary["rows_per_s"], "wall": wall,
            "peak_rss": usage.ru_maxrss * 1024, "cpu_process": process_cpu, "cpu_postgres": postgres_cpu,
            "cpu_other": max(machine - process_cpu - postgres_cpu, 0.0), "roc_auc": summary["roc_auc"],
            "alerts": summary["alerts"], "success": summary["success"], "failed": summary["failed"],
            "yielded_s": summary.get("yielded_s", 0.0),
        }


# --- the market ----------------------------------------------------------------------------------------------------


def market_range(bench: Bench) -> tuple[datetime, datetime, int]:
    first, last, rows = bench.conn.execute('SELECT min("timestamp"), max("timestamp"), count(*) '
                                           "FROM coin_metrics").fetchone()
    return first, last, rows


def grow_market(bench: Bench, rows: int) -> str:
    """`rows` more rows of the 2,000-coin market, as fast as the generator goes (the queue is emptied: history, not
    work for a listener)."""
    generator = _simulate(bench.url, rate=200_000, rows=rows, start=bench.next_start())
    output = generator.communicate()[0].strip().splitlines()[-1]
    if generator.returncode:
        raise RuntimeError(f"simulate_market failed: {output}")
    bench.conn.execute("TRUNCATE coin_metrics_queue")
    bench.conn.execute("VACUUM ANALYZE coin_metrics")
    return output


def model_id(bench: Bench) -> int:
    return bench.conn.execute("SELECT id FROM prediction_active_models WHERE model_name = %s",
                              [MODEL_NAME]).fetchone()[0]


# --- the live path, in a process of its own (tests/benchmarks/backtest_live_sample.py) ------------------------


def run_live_sample(bench: Bench, active_model_id: int) -> dict:
    output = subprocess.run([sys.executable, "-m", "tests.benchmarks.backtest_live_sample", str(active_model_id),
                             str(LIVE_SAMPLE_ROWS), str(LIVE_WARMUP_BATCHES)], cwd=PROJECT_DIR, env=_env(bench.url),
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- the listener while backtests run ------------------------------------------------------------------------------


class BacktestLoop(threading.Thread):
    """Backtests back to back until stopped (the one running then is let finish)."""

    def __init__(self, bench: Bench, active_model_id: int, start: datetime, end: datetime, *, env: dict | None,
                 name: str):
        super().__init__(daemon=True)
        self.bench, self.args, self.env, self.name = bench, (active_model_id, start, end), env, name
        self.stopping = threading.Event()
        self.results: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                process = BacktestProcess(self.bench, *self.args, name=f"{self.name}-{len(self.results)}",
                                          env=self.env)
                self.results.append(process.wait())
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def listener_steps(bench: Bench, active_model_id: int, start: datetime, end: datetime) -> tuple[Phase, list]:
    """The step alone, then during backtests at full priority, then during backtests at the default settings: each
    as (phase, the backtests that ran during it)."""
    bench.start_listener()
    bench.watcher = Watcher(bench.url)
    bench.watcher.start()
    try:
        warm_up(bench)
        print(f"backtest bench: listener alone at {LISTENER_RATE} rows/s", flush=True)
        alone = bench.run_phase(Phase(LISTENER_RATE, LISTENER_SECONDS, FIXED_WARMUP))
        print("  " + _phase_line(alone), flush=True)
        during = []
        for name, env in (("full-priority", FULL_PRIORITY), ("yielding", None)):
            print(f"backtest bench: listener at {LISTENER_RATE} rows/s while backtests run ({name})", flush=True)
            loop = BacktestLoop(bench, active_model_id, start, end, env=env, name=name)
            loop.start()
            time.sleep(2.0)  # the first backtest is starting up (Django, model) while the step warms up
            busy = bench.run_phase(Phase(LISTENER_RATE, LISTENER_SECONDS, FIXED_WARMUP))
            loop.stopping.set()
            loop.join()
            print("  " + _phase_line(busy), flush=True)
            if loop.error:
                raise loop.error
            during.append((name, busy, loop.results))
    finally:
        bench.stop_listener()
        bench.watcher.stop()
    return alone, during


# --- the benchmark -------------------------------------------------------------------------------------------------


def run(url: str) -> str:
    began = time.monotonic()
    bench = Bench(url)
    load_before = os.getloadavg()
    print("backtest bench: training and registering the listener benchmark's 10 models", flush=True)
    subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_listener", "register"], cwd=PROJECT_DIR,
                   env=_env(url), check=True)
    active_model_id = model_id(bench)
    print(f"backtest bench: simulating {ROW_STEPS[0]:,} rows", flush=True)
    simulated = [grow_market(bench, ROW_STEPS[0])]
    first, last, total = market_range(bench)
    runs: list[dict] = []
    baseline_commit = None
    if BASELINE:
        baseline_dir, baseline_commit = baseline_checkout(BASELINE_REV, BASELINE_DIR)
        print(f"backtest bench: baseline {baseline_commit[:12]} over {total:,} rows", flush=True)
        try:
            runs.append({**BacktestProcess(bench, active_model_id, first, last, code_dir=baseline_dir,
                                           name="baseline", env=FULL_PRIORITY).wait(), "code": "before"})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline_dir)], cwd=PROJECT_DIR,
                           capture_output=True)
        print(f"  {_run_line(runs[-1])}", flush=True)
    print(f"backtest bench: working tree over {total:,} rows", flush=True)
    runs.append({**BacktestProcess(bench, active_model_id, first, last, env=FULL_PRIORITY).wait(), "code": "after"})
    print(f"  {_run_line(runs[-1])}", flush=True)

    # The live path on the newest rows of the market (never predicted yet: the listener has not run).
    print(f"backtest bench: live path, {LIVE_SAMPLE_ROWS:,} rows batch by batch", flush=True)
    live = run_live_sample(bench, active_model_id)
    print(f"  {live}", flush=True)

    alone, during = listener_steps(bench, active_model_id, first, last)

    for target in ROW_STEPS[1:]:
        missing = target - market_range(bench)[2]
        if missing <= 0:
            continue
        print(f"backtest bench: growing the market to {target:,} rows", flush=True)
        simulated.append(grow_market(bench, missing))
        first, last, total = market_range(bench)
        print(f"backtest bench: working tree over {total:,} rows", flush=True)
        runs.append({**BacktestProcess(bench, active_model_id, first, last, name=f"after-{total}",
                                       env=FULL_PRIORITY).wait(), "code": "after"})
        print(f"  {_run_line(runs[-1])}", flush=True)
    bench.conn.close()
    return _report(runs=runs, alone=alone, during=during, live=live, baseline_commit=baseline_commit,
                   simulated=simulated, load=(load_before, os.getloadavg()), elapsed=time.monotonic() - began)


def _run_line(r: dict) -> str:
    return (f"{r['name']}: {r['rows']:,} rows in {r['run_seconds']:.1f} s ({r['rows_per_s']:,.0f} rows/s; process "
            f"{r['wall']:.1f} s), peak RSS {_mb(r['peak_rss'])}, CPU backtest {r['cpu_process']:.0f} s, PostgreSQL "
            f"{r['cpu_postgres']:.0f} s, other {r['cpu_other']:.0f} s")


def _report(*, runs, alone, during, live, baseline_commit, simulated, load, elapsed) -> str:
    before = next((r for r in runs if r["code"] == "before"), None)
    after = next(r for r in runs if r["code"] == "after")
    largest = max((r for r in runs if r["code"] == "after"), key=lambda r: r["rows"])
    live_per_row = live["seconds"] / max(live["timed_rows"], 1)
    live_seconds = live_per_row * after["rows"]
    lines = [
        "### Backtest: one XGBoost model over the stored market",
        "",
        f"`manage.py backtest` (its own process) replays `{MODEL_NAME}` ({XGB_TREES} trees, 87 engineered features, "
        "all phases, minimum scan interval 0: every stored row is predicted) over the whole stored market of "
        f"`simulate_market --coins {COINS} --seed {SEED}` (from {START:%Y-%m-%d}), and judges every prediction as the "
        "worker would. *Rows/s* = rows of the range / the run's own duration (claim to summary: read, features, "
        "score, store judged, summary; at full priority: BACKTEST_NICE=0, no pauses, as no listener runs then); "
        "*process* = the command's wall time (Django start and model load included). "
        "Peak RSS = the process's maximum resident size (rusage at exit, all threads). CPU = seconds of the backtest "
        "process, of PostgreSQL's backends and of everything else on the machine while it ran (other users' jobs). "
        f"Before = `{(baseline_commit or 'n/a')[:12]}` (BENCH_BACKTEST_BASELINE_REV: the committed backtest core, "
        f"a `git worktree`), after = `{current_commit()}`; same database, same run. Market: "
        + "; ".join(line.removeprefix("simulate_market: ") for line in simulated) + ".",
        "",
        "| code | rows | run s | rows/s | process s | peak RSS | CPU backtest / PostgreSQL / other s | predictions |"
        " alerts (success / failed) | ROC AUC |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in runs:
        auc = "–" if r["roc_auc"] is None else f"{r['roc_auc']:.4f}"
        lines.append(f"| {r['code']} | {r['rows']:,} | {r['run_seconds']:.1f} | {r['rows_per_s']:,.0f} | "
                     f"{r['wall']:.1f} | {_mb(r['peak_rss'])} | {r['cpu_process']:.0f} / {r['cpu_postgres']:.0f} / "
                     f"{r['cpu_other']:.0f} | {r['predictions']:,} | {r['alerts']:,} ({r['success']:,} / "
                     f"{r['failed']:,}) | {auc} |")
    sized = sorted((r for r in runs if r["code"] == "after"), key=lambda r: r["rows"])
    slope = ((sized[-1]["peak_rss"] - sized[0]["peak_rss"]) / ((sized[-1]["rows"] - sized[0]["rows"]) / 1e6)
             if len(sized) > 1 and sized[-1]["rows"] > sized[0]["rows"] else None)
    at_10m = (sized[0]["peak_rss"] + slope * (10 - sized[0]["rows"] / 1e6)) if slope is not None else None
    memory = ", ".join(f"{_mb(r['peak_rss'])} at {r['rows'] / 1e6:.1f} M rows" for r in sized)
    same = before is not None and all(before[k] == after[k] for k in ("predictions", "alerts", "success", "failed",
                                                                      "roc_auc"))
    labels = {"full-priority": "while a backtest runs at full priority (BACKTEST_NICE=0, no pauses)",
              "yielding": "while a backtest runs, default settings (yields to live work)"}
    alone_p = {q: alone.percentile(q) for q in (50, 95, 99)}
    listener_rows = [f"| alone | {alone_p[50]:,.0f} | {alone_p[95]:,.0f} | {alone_p[99]:,.0f} | | "
                     f"{alone.claimed:,.0f} | {'yes' if alone.sustained else '**no**'} | |"]
    notes = []
    for name, busy, results in during:
        busy_p = {q: busy.percentile(q) for q in (50, 95, 99)}
        ratios = " / ".join(f"{busy_p[q] / alone_p[q]:.2f}" for q in (50, 95, 99))
        rates = ", ".join(f"{r['rows_per_s']:,.0f}" for r in results)
        listener_rows.append(
            f"| {labels[name]} | {busy_p[50]:,.0f} | {busy_p[95]:,.0f} | {busy_p[99]:,.0f} | {ratios} | "
            f"{busy.claimed:,.0f} | {'yes' if busy.sustained else '**no**'} | {len(results)}: {rates} rows/s |")
        notes.append(f"{name}: {sum(r['yielded_s'] for r in results):.1f} s paused in {len(results)} backtest(s), "
                     f"CPU {sum(r['cpu_process'] for r in results):.0f} s backtest, "
                     f"{sum(r['cpu_postgres'] for r in results):.0f} s PostgreSQL (all backends, the listener's too)")
    yielding = dict((name, busy) for name, busy, _results in during)["yielding"]
    p99_ratio = yielding.percentile(99) / alone_p[99]
    lines += [
        "",
        "Listener at the same time (the listener benchmark's 10 models, 500 rows/s; latency = INSERT commit → "
        "prediction commit, see the listener benchmark): alone, then with backtests running back to back at full "
        "priority (as before backtests yielded), then with backtests at the default settings (threads at "
        "BACKTEST_NICE, each read and store waiting while the listener's queue holds BACKTEST_YIELD_QUEUE_ROWS rows, "
        "BACKTEST_NICE_BACKENDS as set). Ratios are to the step alone, in the same run.",
        "",
        "| listener at 500 rows/s | p50 ms | p95 ms | p99 ms | ratio p50 / p95 / p99 | claimed rows/s | sustained | "
        "backtests during the step: rows/s |",
        "|---|---:|---:|---:|---|---:|---|---|",
        *listener_rows,
        "",
        "Backtests during the steps: " + "; ".join(notes) + ".",
        "",
        f"- Live path: the newest {live['rows']:,} rows put back in {live['batches']} batches of one row per coin, "
        f"each through `process_pending_batch` (history cache, only this model active); the {live['timed_batches']} "
        f"batches after {LIVE_WARMUP_BATCHES} warm-up batches took {live['seconds']:.1f} s for {live['timed_rows']:,} "
        f"rows ({1000 * live_per_row:.2f} ms per row, {live['predictions']:,} predictions stored, not judged). "
        f"Extrapolated linearly to the {after['rows']:,} rows of the backtest: {live_seconds:,.0f} s "
        f"(~{live_seconds / 3600:.1f} h), against {after['run_seconds']:.1f} s for the backtest, which also judges: "
        f"**{live_seconds / after['run_seconds']:,.0f}× faster** than replaying through the live path.",
        (f"- Before → after on the same {after['rows']:,} rows: {before['rows_per_s']:,.0f} → "
         f"{after['rows_per_s']:,.0f} rows/s (**{after['rows_per_s'] / before['rows_per_s']:.1f}×**), peak RSS "
         f"{_mb(before['peak_rss'])} → {_mb(after['peak_rss'])}; same predictions and verdicts "
         f"({'equal' if same else '**they differ**'}: "
         "predictions, alerts, successes, failures, ROC AUC)." if before else "- No baseline run (BENCH_BACKTEST_BASELINE=0)."),
        (f"- Memory: peak RSS {memory}"
         + (f"; slope {slope / 2**20:+,.0f} MB per million rows, i.e. ~{_mb(at_10m)} at 10 M rows if it stays linear"
            if slope is not None else "") + "."),
        f"- Targets: ≥ 50,000 rows/s at 1 M rows: {_verdict(after['rows_per_s'] >= 50_000)} "
        f"({after['rows_per_s']:,.0f} rows/s); RSS ≤ 1 GB at 10 M rows: "
        + (f"{_verdict(largest['peak_rss'] <= 2**30)} (measured {_mb(largest['peak_rss'])} at "
           f"{largest['rows'] / 1e6:.1f} M rows)" if largest["rows"] >= 9_500_000 else
           f"not measured at 10 M rows ({_mb(largest['peak_rss'])} at {largest['rows'] / 1e6:.1f} M"
           + (f", ~{_mb(at_10m)} extrapolated" if at_10m is not None else "") + ")")
        + f"; listener p99 while a backtest runs (default settings) {p99_ratio:.2f}× its p99 alone "
        f"({_verdict(p99_ratio <= 2.0)} against ≤ 2×).",
        f"- Load average (1/5/15 min) at the start {' / '.join(f'{x:.1f}' for x in load[0])}, at the end "
        f"{' / '.join(f'{x:.1f}' for x in load[1])} (other users' tests share the 2 cores); whole benchmark "
        f"{elapsed / 60:.1f} min.",
    ]
    return "\n".join(lines)

