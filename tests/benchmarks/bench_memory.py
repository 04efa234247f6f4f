"""Listener memory of two revisions, side by side in one run: one model at a slow steady rate, ten models under load.

A baseline revision (BENCH_MEMORY_BASELINE_REV, default: the last commit before the listener's memory work) is
checked out into var/bench-memory-baseline with `git worktree` and runs against the very same database, models and
market as the working tree, with the same virtual environment (as bench_listener_compare does, including its copies
of the database for a baseline of an older schema); before each revision the market is rewound to the prefill, so
both are fed the very same rows. Per revision:

* one model (one XGBoost × 300 trees of the listener benchmark, the others deactivated): the listener's RSS idle
  after start (no row yet, so no model loaded), after a warm-up of 500 rows (model loaded), and after
  ONE_MODEL_SECONDS of `simulate_market` at 100 rows/s over 2,000 coins; its peak (VmHWM) and PSS at the end;
* ten models (the listener benchmark's 5 XGBoost × 300 trees and 5 RandomForest × 200 trees): steps at 100, 500
  and 1,500 rows/s (batches of up to 5,000 rows, full history loads of the coins it has not seen); the peak RSS
  (VmHWM) over the whole run, and RSS and PSS at its end.

RSS counts the shared library pages too (what the issue's targets are written in); PSS divides shared pages among
the processes that map them (one listener maps them alone, so the two differ little).

    .venv/bin/python -m tests.benchmarks.run memory
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks.bench_listener import COINS, PROJECT_DIR, _manage, _simulate, _vm, prepare
from tests.benchmarks.bench_listener_compare import (
    baseline_bench,
    baseline_checkout,
    current_commit,
    drop_copies,
)

BASELINE_REV = os.environ.get("BENCH_MEMORY_BASELINE_REV", "0c1971d")
BASELINE_DIR = PROJECT_DIR / "var" / "bench-memory-baseline"
ONE_MODEL_RATE = 100
ONE_MODEL_SECONDS = float(os.environ.get("BENCH_MEMORY_ONE_MODEL_SECONDS", 180))
TEN_MODEL_STEPS = ((100, 30), (500, 30), (1500, 40))  # (rows/s, seconds)
ONE_MODEL_NAME = "bench_xgboost_0"
MB = 2**20


def _pss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Sampler(threading.Thread):
    """The listener's RSS every 0.25 s (its own VmHWM gives the exact peak; this gives the curve's end points)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            rss = _vm(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            time.sleep(0.25)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


@dataclass
class Figures:
    points: dict = field(default_factory=dict)  # label → RSS bytes
    peak: int | None = None
    pss_end: int | None = None
    notes: list = field(default_factory=list)


class Listener:
    def __init__(self, bench, code_dir: Path, log_name: str):
        self.bench = bench
        self.log = open(PROJECT_DIR / "var" / log_name, "w")
        self.process = _manage(bench.url, "listen_events", code_dir=code_dir, stdout=self.log,
                               stderr=subprocess.STDOUT)
        self.sampler = Sampler(self.process.pid)
        self.sampler.start()

    def rss(self) -> int | None:
        return _vm(self.process.pid, "VmRSS")

    def wait_started(self, timeout: float = 120) -> None:
        """Until the listener's heartbeat row says it runs (Django set up, models not loaded yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the listener exited; see {self.log.name}")
            if self.bench.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pump-listener'"
            ).fetchone()[0]:
                time.sleep(2)  # settled: the first (empty) batch ran
                return
            time.sleep(0.2)
        raise RuntimeError(f"the listener did not start; see {self.log.name}")

    def feed(self, rate: float, seconds: float) -> None:
        generator = _simulate(self.bench.url, rate=rate, duration=seconds, start=self.bench.next_start())
        output = generator.communicate()[0]
        if generator.returncode:
            raise RuntimeError(f"simulate_market failed: {output[-500:]}")
        if not self.bench.wait_for_empty_queue(timeout=120):
            raise RuntimeError(f"the listener did not work off the queue; see {self.log.name}")

    def stop(self) -> tuple[int | None, int | None, int | None]:
        """Stops the listener; (peak RSS, RSS, PSS) just before."""
        peak, rss, pss = _vm(self.process.pid, "VmHWM"), self.rss(), _pss(self.process.pid)
        self.sampler.stop()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        return peak, rss, pss


def _activate(bench, names: list[str] | None) -> None:
    """Only the named benchmark models active (None: all ten)."""
    bench.conn.execute("UPDATE prediction_active_models SET is_active = (%s::text[] IS NULL OR model_name = ANY(%s))",
                       [names, names])


def one_model(bench, code_dir: Path, label: str) -> Figures:
    _activate(bench, [ONE_MODEL_NAME])
    figures = Figures()
    listener = Listener(bench, code_dir, f"bench-memory-{label}-one.log")
    try:
        listener.wait_started()
        figures.points["idle after start"] = listener.rss()
        listener.feed(500, 1)
        time.sleep(1)
        figures.points["model loaded (after 500 rows)"] = listener.rss()
        listener.feed(ONE_MODEL_RATE, ONE_MODEL_SECONDS)
        time.sleep(1)
        figures.points[f"after {ONE_MODEL_SECONDS / 60:.0f} min at {ONE_MODEL_RATE} rows/s"] = listener.rss()
    finally:
        figures.peak, _rss, figures.pss_end = listener.stop()
    return figures


def ten_models(bench, code_dir: Path, label: str) -> Figures:
    _activate(bench, None)
    figures = Figures()
    listener = Listener(bench, code_dir, f"bench-memory-{label}-ten.log")
    try:
        listener.wait_started()
        figures.points["idle after start"] = listener.rss()
        for rate, seconds in TEN_MODEL_STEPS:
            listener.feed(rate, seconds)
            figures.points[f"after {seconds} s at {rate:,} rows/s"] = listener.rss()
    finally:
        figures.peak, _rss, figures.pss_end = listener.stop()
    return figures


def _rewind(bench, prefilled_until) -> None:
    """Back to the prefilled market: every revision is fed the very same rows (the generator is seeded and starts
    after the newest row) into the same tables."""
    for sql in ('DELETE FROM coin_metrics WHERE "timestamp" > %s', "DELETE FROM coin_metrics_queue",
                "DELETE FROM model_predictions", "DELETE FROM coin_scan_cache", "DELETE FROM webhook_deliveries"):
        bench.conn.execute(sql, [prefilled_until] if "%s" in sql else None)
    bench.conn.execute("VACUUM ANALYZE coin_metrics")


def run(url: str) -> str:
    began = time.monotonic()
    baseline_dir, baseline_commit = baseline_checkout(BASELINE_REV, BASELINE_DIR)
    bench, _setup, _prefill = prepare(url)
    prefilled_until = bench.conn.execute('SELECT max("timestamp") FROM coin_metrics').fetchone()[0]
    baseline, current = baseline_bench(bench, baseline_dir)
    results: dict[str, dict[str, Figures]] = {}
    try:
        for name, side, code_dir in (("baseline", baseline, baseline_dir), ("current", current, PROJECT_DIR)):
            _rewind(side, prefilled_until)
            print(f"memory bench: {name}, one model", flush=True)
            one = one_model(side, code_dir, name)
            print(f"memory bench: {name}, ten models", flush=True)
            ten = ten_models(side, code_dir, name)
            results[name] = {"one": one, "ten": ten}
            print(f"  one: {one}\n  ten: {ten}", flush=True)
        load = os.getloadavg()
    finally:
        _activate(current, None)
        drop_copies(baseline, current)
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline_dir)], cwd=PROJECT_DIR,
                       capture_output=True)
    return _report(results, baseline_commit=baseline_commit, load=load, elapsed=time.monotonic() - began)


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MB:,.0f}"


def _ratio(new: int | None, old: int | None) -> str:
    return f"{new / old:.2f}" if new and old else "n/a"


def _report(results: dict, *, baseline_commit: str, load: tuple, elapsed: float) -> str:
    old, new = results["baseline"], results["current"]
    lines = [
        "### Listener memory: one model and ten models, two revisions in one run",
        "",
        f"Baseline `{baseline_commit[:12]}` (a `git worktree` of BENCH_MEMORY_BASELINE_REV) against the working tree "
        f"(`{current_commit()}`), same database, models and {COINS:,}-coin market as the listener benchmark (rewound "
        "to the prefill before each revision: both are fed the same rows). One model: "
        f"`{ONE_MODEL_NAME}` (XGBoost, 300 trees) alone active, {ONE_MODEL_SECONDS / 60:.0f} min at "
        f"{ONE_MODEL_RATE} rows/s after a warm-up of 500 rows. Ten models: all ten active, steps "
        + ", ".join(f"{seconds} s at {rate:,} rows/s" for rate, seconds in TEN_MODEL_STEPS)
        + f". RSS and PSS in MB (2^20 bytes); ratio = current / baseline. Load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        "| listener | figure | baseline | current | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for key, title in (("one", "one model"), ("ten", "ten models")):
        for point, value in new[key].points.items():
            before = old[key].points.get(point)
            lines.append(f"| {title} | RSS {point} | {_mb(before)} | {_mb(value)} | {_ratio(value, before)} |")
        lines.append(f"| {title} | **peak RSS (VmHWM)** | {_mb(old[key].peak)} | **{_mb(new[key].peak)}** | "
                     f"{_ratio(new[key].peak, old[key].peak)} |")
        lines.append(f"| {title} | PSS at the end | {_mb(old[key].pss_end)} | {_mb(new[key].pss_end)} | "
                     f"{_ratio(new[key].pss_end, old[key].pss_end)} |")
    one_peak, ten_peak = new["one"].peak, new["ten"].peak
    lines += [
        "",
        f"- Targets: ten models and {COINS:,} coins at most 400 MB RSS: "
        f"{'met' if ten_peak and ten_peak <= 400 * MB else '**missed**'} (peak {_mb(ten_peak)} MB); one model no "
        "more than the old server's 173–223 MB: "
        f"{'met' if one_peak and one_peak <= 223 * MB else '**missed**'} (peak {_mb(one_peak)} MB).",
        f"- Whole benchmark {elapsed / 60:.1f} min.",
    ]
    return "\n".join(lines)
