"""The event path under load: `simulate_market` feeding the database while one real listener predicts every row
with 10 active models (5 XGBoost × 300 trees, 5 RandomForest × 200 trees, 87 engineered features).

Everything runs as separate processes on the same machine, as in production: the generator
(`manage.py simulate_market --coins 2000 --rate R --seed 1`), PostgreSQL and the listener (`manage.py
listen_events`); this process only watches.

Latency (INSERT commit → prediction commit) is measured by a watcher connection that polls, every ~10 ms,
`coin_metrics` and `model_predictions` for rows with a higher id than it has seen (one writer each, so ids
become visible in order) and stamps each (coin, timestamp) with the monotonic time it first saw it. A row's
latency is "first seen in model_predictions" − "first seen in coin_metrics": both ends carry the same polling
delay (uniform 0 … one poll), so it cancels on average and adds at most one poll period of noise per sample.
All models' predictions of a row commit in one transaction, so the first sighting is the commit of all ten.

A rate is *sustained* when over the phase's last 30 s the queue depth grows by less than 5 % of the offered rate
and ends below one listener batch (BATCH_SIZE), and the generator delivered at least 95 % of the rate.

    EMBEDDED_PGDATA=var/pg-bench .venv/bin/python -m tests.benchmarks.run listener
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg

PROJECT_DIR = Path(__file__).resolve().parents[2]
FEATURES = json.loads((PROJECT_DIR / "tests/fixtures/parity_public/model_xgb.meta.json").read_text())["features"]

COINS = 2000
SEED = 1
PREFILL_ROWS = 200_000  # ~27 simulated minutes of market: coins carry realistic histories from the start
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
# (kind, phase filter): a mix of both estimators and of both phase filters (two history blocks, two feature sets)
MODEL_SPECS = [
    ("xgboost", [1, 2, 3]), ("random_forest", None), ("xgboost", None), ("random_forest", [1, 2, 3]),
    ("xgboost", [1, 2, 3]), ("random_forest", None), ("xgboost", None), ("random_forest", [1, 2, 3]),
    ("xgboost", [1, 2, 3]), ("random_forest", None),
]
XGB_TREES, RF_TREES = 300, 200
TRAIN_ROWS = 4000

FIXED_PHASES = (100, 500)
FIXED_SECONDS, FIXED_WARMUP = 35, 5
MAX_RATES = (1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)
MAX_SECONDS, MAX_WARMUP = 40, 10
STABILITY_WINDOW = 30.0
DRAIN_SECONDS = 30.0
BUDGET_SECONDS = 7 * 60  # the max search stops starting new steps after this
POLL_SECONDS = 0.01
BATCH_SIZE = 5000  # the listener's default (settings.BATCH_SIZE)


# --- models ----------------------------------------------------------------------------------------------------


def register_models() -> None:
    """Train and register the 10 models (run in a subprocess whose DATABASE_URL is the benchmark database)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")
    django.setup()
    import skops.io
    import xgboost
    from sklearn.ensemble import RandomForestClassifier

    from modelregistry.models import ActiveModel, ModelSource
    from modelregistry.services import register_model

    rng = np.random.default_rng(7)
    # Feature-like scales (heavy tails, many zeros) and a noisy target, so trees grow to realistic depths.
    X = rng.lognormal(0.0, 2.0, (TRAIN_ROWS, len(FEATURES))) * rng.choice([0.0, 1.0], (TRAIN_ROWS, len(FEATURES)),
                                                                         p=[0.2, 0.8])
    X[:, ::3] *= rng.choice([-1.0, 1.0], (TRAIN_ROWS, len(X[0, ::3])))
    signal_ = np.log1p(np.abs(X[:, :8])).sum(axis=1) + rng.normal(0, 3.0, TRAIN_ROWS)
    y = (signal_ > np.median(signal_)).astype(int)
    for number, (kind, phases) in enumerate(MODEL_SPECS):
        if kind == "xgboost":
            estimator = xgboost.XGBClassifier(n_estimators=XGB_TREES, max_depth=6, learning_rate=0.05,
                                              tree_method="hist", n_jobs=2, random_state=number)
            estimator.fit(X, y)
            artifact = bytes(estimator.get_booster().save_raw("json"))
            params = {"n_estimators": XGB_TREES, "max_depth": 6}
        else:
            estimator = RandomForestClassifier(n_estimators=RF_TREES, n_jobs=2, random_state=number)
            estimator.fit(X, y)
            artifact = skops.io.dumps(estimator)
            params = {"n_estimators": RF_TREES}
        params.update(
            _time_based={"enabled": True, "future_minutes": 5, "min_percent_change": 10.0, "direction": "up"},
            use_engineered_features=True, feature_engineering_windows=[5, 10, 15],
        )
        meta = {"id": 9001 + number, "name": f"bench_{kind}_{number}", "model_type": kind,
                "target_variable": "price_close", "target_operator": None, "target_value": None,
                "phases": phases, "features": FEATURES, "params": params}
        model = register_model(artifact=artifact, meta=meta, source=ModelSource.COMMAND_LINE, activate=True)
        ActiveModel.objects.filter(pk=model.pk).update(min_scan_interval_seconds=0)


# --- processes -------------------------------------------------------------------------------------------------


def _env(url: str) -> dict:
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "pumpserver.settings",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key")}


def _manage(url: str, *args: str, code_dir: Path = PROJECT_DIR, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=code_dir, env=_env(url), **kwargs)


def _simulate(url: str, *, rate: float, start: datetime, duration: float | None = None,
              rows: int | None = None) -> subprocess.Popen:
    limit = ["--duration", f"{duration:g}"] if duration is not None else ["--rows", str(rows)]
    return _manage(url, "simulate_market", "--coins", str(COINS), "--rate", f"{rate:g}", *limit,
                   "--seed", str(SEED), "--start", start.isoformat(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   text=True)


def _cpu_seconds(pids) -> float:
    """utime + stime of the given processes (those that still exist)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def _postgres_pids(postmaster: int | None) -> list[int]:
    if postmaster is None:
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def _postmaster_pid(conn: psycopg.Connection) -> int | None:
    try:
        datadir = conn.execute("SHOW data_directory").fetchone()[0]
        return int(Path(datadir, "postmaster.pid").read_text().split()[0])
    except (psycopg.Error, OSError, ValueError, IndexError):
        return None  # a server elsewhere: its CPU is not ours to read


def _vm(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --- the watcher -----------------------------------------------------------------------------------------------


def watcher_connection(url: str) -> psycopg.Connection:
    """A connection for polls ~100 times a second, made cheap so that the watcher takes little of the CPU it
    measures: each poll is planned once (planning `model_predictions` looks at every partition, ~1 ms; its
    execution with an index probe per partition ~0.2 ms). A plan made once cannot know how few rows `id > $1` finds,
    so sequential scans are ruled out: every poll reads an index on id."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute("SET enable_seqscan = off")
    return conn


class Watcher(threading.Thread):
    """Stamps every coin_metrics row and every predicted (coin, timestamp) with the time it first became visible,
    and samples the queue depth."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.conn = watcher_connection(url)
        self.inserted: dict[tuple, float] = {}
        self.insert_times: list[float] = []
        self.predicted: dict[tuple, float] = {}
        self.prediction_rows: list[tuple[float, int]] = []  # (seen at, rows)
        self.depth: list[tuple[float, int]] = []
        self.stopping = threading.Event()
        self.last_metric = self.conn.execute("SELECT coalesce(max(id), 0) FROM coin_metrics").fetchone()[0]
        self.last_prediction = self.conn.execute("SELECT coalesce(max(id), 0) FROM model_predictions").fetchone()[0]
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            next_depth = 0.0
            while not self.stopping.is_set():
                seen = time.monotonic()
                rows = self.conn.execute(
                    'SELECT id, mint, "timestamp" FROM coin_metrics WHERE id > %s', [self.last_metric], prepare=True
                ).fetchall()
                for row_id, mint, timestamp in rows:
                    self.inserted.setdefault((mint, timestamp), seen)
                    self.last_metric = max(self.last_metric, row_id)
                self.insert_times.extend([seen] * len(rows))
                seen = time.monotonic()
                rows = self.conn.execute(
                    "SELECT coin_id, prediction_timestamp, max(id), count(*) FROM model_predictions WHERE id > %s "
                    "GROUP BY 1, 2", [self.last_prediction], prepare=True
                ).fetchall()
                total = 0
                for mint, timestamp, row_id, count in rows:
                    self.predicted.setdefault((mint, timestamp), seen)
                    self.last_prediction = max(self.last_prediction, row_id)
                    total += count
                if total:
                    self.prediction_rows.append((seen, total))
                if seen >= next_depth:
                    depth = self.conn.execute("SELECT count(*) FROM coin_metrics_queue", prepare=True).fetchone()[0]
                    self.depth.append((time.monotonic(), depth))
                    next_depth = seen + 0.25
                time.sleep(POLL_SECONDS)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def queue_depth(self) -> int:
        return self.depth[-1][1] if self.depth else 0

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
        self.conn.close()


# --- phases ----------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    rate: float
    seconds: float
    warmup: float
    began: float = 0.0
    ended: float = 0.0
    generator_output: str = ""
    cpu: dict = field(default_factory=dict)
    # results
    offered: float = 0.0
    claimed: float = 0.0
    predictions: float = 0.0
    depth_end: int = 0
    depth_slope: float = 0.0
    sustained: bool = False
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    predicted_share: float = 0.0
    drained: bool = True
    dropped: int = 0
    began_wall: float = 0.0
    ended_wall: float = 0.0
    batches: int = 0
    coins_per_batch: float = 0.0

    @property
    def every_row(self) -> bool:
        """Sustained, and (nearly) every row got predictions of its own rather than being collapsed."""
        return self.sustained and self.predicted_share >= 0.95

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if len(self.latencies) else math.nan


class Bench:
    def __init__(self, url: str):
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self.postmaster = _postmaster_pid(self.conn)
        self.listeners: list[subprocess.Popen] = []
        self.logs: list = []
        self.watcher: Watcher | None = None
        self.log_path = PROJECT_DIR / "var" / "bench-listener.log"

    def next_start(self) -> datetime:
        newest = self.conn.execute('SELECT max("timestamp") FROM coin_metrics').fetchone()[0]
        return (newest or START) + timedelta(seconds=1)

    def wait_for_empty_queue(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.conn.execute("SELECT count(*) FROM coin_metrics_queue").fetchone()[0] == 0:
                return True
            time.sleep(0.2)
        return False

    def snapshot(self, generator: subprocess.Popen) -> dict:
        """Wall time and CPU seconds so far of each party (and of the whole machine). PostgreSQL's backends come and
        go, so its figure is per process: {pid: seconds}. The backend serving the watcher's polls counts as the
        watcher's, not as PostgreSQL's work for the listener and the generator."""
        watcher_backend = self.watcher.conn.info.backend_pid if self.watcher else None
        return {
            "wall": time.monotonic(),
            "listener": _cpu_seconds([listener.pid for listener in self.listeners]),
            "generator": _cpu_seconds([generator.pid]),
            "postgres": {pid: _cpu_seconds([pid])
                         for pid in _postgres_pids(self.postmaster) if pid != watcher_backend},
            "watcher": time.process_time() + (_cpu_seconds([watcher_backend]) if watcher_backend else 0.0),
            "machine": _machine_busy_seconds()[0],
        }

    def run_phase(self, phase: Phase) -> Phase:
        generator_started = time.monotonic()
        generator = _simulate(self.url, rate=phase.rate, duration=phase.seconds, start=self.next_start())
        # The generator needs a moment to start (Django setup); the phase begins at its first row.
        while not self.watcher.insert_times or self.watcher.insert_times[-1] < generator_started:
            if generator.poll() is not None:
                break
            time.sleep(0.02)
        phase.began = time.monotonic()
        phase.began_wall = time.time() + phase.warmup
        time.sleep(phase.warmup)
        warm = last = self.snapshot(generator)
        # Each backend's CPU as last seen: a listener's connection may be replaced during the phase (CONN_MAX_AGE),
        # and the old backend's work must still count.
        postgres_seen = dict(warm["postgres"])
        while generator.poll() is None:
            last = self.snapshot(generator)
            postgres_seen.update(last["postgres"])
            time.sleep(0.5)
        phase.generator_output = generator.communicate()[0].strip().splitlines()[-1]
        phase.ended = time.monotonic()
        phase.ended_wall = time.time()
        wall = max(last["wall"] - warm["wall"], 1e-9)
        phase.cpu = {name: (last[name] - warm[name]) / wall for name in warm if name not in ("wall", "postgres")}
        # A backend that ended between two snapshots is missed for that half second at most.
        phase.cpu["postgres"] = sum(seconds - warm["postgres"].get(pid, 0.0)
                                    for pid, seconds in postgres_seen.items()) / wall
        phase.cpu["other"] = phase.cpu["machine"] - sum(phase.cpu[k] for k in ("listener", "generator", "postgres",
                                                                                "watcher"))
        # Let the listener finish the rows of this phase, so their latencies are recorded; a backlog it cannot work
        # off within DRAIN_SECONDS is dropped, so that the next phase starts on an empty queue.
        phase.drained = self.wait_for_empty_queue(timeout=DRAIN_SECONDS)
        time.sleep(0.3)
        self.analyse(phase)
        if not phase.drained:
            phase.dropped = self.conn.execute("WITH d AS (DELETE FROM coin_metrics_queue RETURNING 1) "
                                              "SELECT count(*) FROM d").fetchone()[0]
            self.wait_for_empty_queue(timeout=DRAIN_SECONDS)
        return phase

    def analyse(self, phase: Phase) -> None:
        watcher = self.watcher
        start, end = phase.began + phase.warmup, phase.ended
        window = max(end - start, 1e-9)
        insert_times = np.asarray(watcher.insert_times)
        inserted = int(((insert_times >= start) & (insert_times < end)).sum())
        phase.offered = inserted / window
        depth = np.asarray([(t, d) for t, d in watcher.depth if start <= t < end], dtype=float).reshape(-1, 2)
        stable = depth[depth[:, 0] >= end - STABILITY_WINDOW] if len(depth) else depth
        if len(stable) >= 2:
            phase.depth_slope = float(np.polyfit(stable[:, 0], stable[:, 1], 1)[0])
        if len(depth):
            phase.depth_end = int(depth[-1, 1])
            growth = depth[-1, 1] - depth[0, 1]
        else:
            growth = 0
        phase.claimed = (inserted - growth) / window
        phase.predictions = sum(n for t, n in watcher.prediction_rows if start <= t < end) / window
        latencies, events = [], 0
        for key, seen in watcher.inserted.items():
            if start <= seen < end:
                events += 1
                predicted = watcher.predicted.get(key)
                if predicted is not None:
                    latencies.append(predicted - seen)
        phase.latencies = np.asarray(latencies)
        phase.predicted_share = len(latencies) / events if events else 0.0
        phase.sustained = (
            phase.depth_slope <= 0.05 * phase.rate
            and phase.depth_end <= BATCH_SIZE
            and phase.offered >= 0.85 * phase.rate  # else the generator (starved of CPU) did not offer the rate
        )

    def start_listener(self, code_dir: Path = PROJECT_DIR, *, processes: int = 1, lanes: int | None = None) -> None:
        """`processes` `listen_events` processes against the one database (their CPU is counted together), each
        with `lanes` batches in flight (None: the code's default), running the code in `code_dir` (another checkout,
        to compare revisions). The first logs to log_path, the others beside it."""
        # Only passed when asked for: older revisions compared by listener-compare have no --lanes.
        lane_args = ["--lanes", str(lanes)] if lanes is not None else []
        paths = [self.log_path] + [self.log_path.with_name(f"{self.log_path.stem}-{n}.log")
                                   for n in range(2, processes + 1)]
        self.logs = [open(path, "w") for path in paths]
        self.listeners = [_manage(self.url, "listen_events", *lane_args, code_dir=code_dir, stdout=log, stderr=subprocess.STDOUT)
                          for log in self.logs]

    def stop_listener(self) -> tuple[int | None, int | None]:
        """Stops every listener; returns the largest peak RSS (VmHWM) and the largest RSS at the end of any one."""
        peaks = [_vm(listener.pid, "VmHWM") for listener in self.listeners]
        currents = [_vm(listener.pid, "VmRSS") for listener in self.listeners]
        for listener in self.listeners:
            listener.send_signal(signal.SIGTERM)
        for listener in self.listeners:
            try:
                listener.wait(timeout=60)
            except subprocess.TimeoutExpired:
                listener.kill()
                listener.wait()
        for log in self.logs:
            log.close()
        self.listeners, self.logs = [], []
        return (max((v for v in peaks if v is not None), default=None),
                max((v for v in currents if v is not None), default=None))


def prepare(url: str, *, bench_type: type[Bench] = Bench) -> tuple[Bench, float, str]:
    """The 10 models registered and PREFILL_ROWS of history stored; returns the bench (a `bench_type`), setup
    seconds and the prefill's summary line."""
    began = time.monotonic()
    bench = bench_type(url)
    print("listener bench: training and registering 10 models", flush=True)
    subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_listener", "register"], cwd=PROJECT_DIR,
                   env=_env(url), check=True)
    setup_models = time.monotonic() - began

    print(f"listener bench: prefilling {PREFILL_ROWS:,} rows of history", flush=True)
    prefill = _simulate(url, rate=50_000, rows=PREFILL_ROWS, start=START)
    prefill_output = prefill.communicate()[0].strip().splitlines()[-1]
    if prefill.returncode:
        raise RuntimeError(f"prefill failed: {prefill_output}")
    bench.conn.execute("TRUNCATE coin_metrics_queue")  # history, not work: the listener starts on an empty queue
    bench.conn.execute("VACUUM ANALYZE coin_metrics")
    return bench, setup_models, prefill_output


def warm_up(bench: Bench) -> None:
    """The listener loads its 10 models on its first batch."""
    warm = _simulate(bench.url, rate=500, rows=500, start=bench.next_start())
    warm.communicate()
    if not bench.wait_for_empty_queue(timeout=120):
        raise RuntimeError(f"the listener did not start predicting; see {bench.log_path}")


def run(url: str) -> str:
    began = time.monotonic()
    bench, setup_models, prefill_output = prepare(url)
    bench.start_listener()
    bench.watcher = Watcher(url)
    bench.watcher.start()
    phases: list[Phase] = []
    try:
        warm_up(bench)
        for rate in FIXED_PHASES:
            print(f"listener bench: {rate} rows/s", flush=True)
            phases.append(bench.run_phase(Phase(rate, FIXED_SECONDS, FIXED_WARMUP)))
            print("  " + _phase_line(phases[-1]), flush=True)
        # Maximum: climb the ladder while rates are sustained, then narrow down between the best sustained and the
        # lowest failed rate, as long as the time budget allows.
        sustained = [p.rate for p in phases if p.sustained]
        failed = [p.rate for p in phases if not p.sustained]
        while time.monotonic() - began < BUDGET_SECONDS:
            low, high = max(sustained, default=0), min(failed, default=None)
            if high is None:
                rate = next((r for r in MAX_RATES if r > low), None)
            elif high / max(low, 1) > 1.25:
                rate = round((max(low, FIXED_PHASES[0]) * high) ** 0.5 / 50) * 50  # geometric midpoint
            else:
                rate = None
            if rate is None or rate in sustained or rate in failed:
                break
            print(f"listener bench: {rate} rows/s (max search)", flush=True)
            phases.append(bench.run_phase(Phase(rate, MAX_SECONDS, MAX_WARMUP)))
            print("  " + _phase_line(phases[-1]), flush=True)
            (sustained if phases[-1].sustained else failed).append(rate)
            if bench.watcher.error:
                raise bench.watcher.error
    finally:
        peak, current = bench.stop_listener()
        bench.watcher.stop()
    history = bench.conn.execute(
        "SELECT percentile_cont(array[0.5, 0.9]) WITHIN GROUP (ORDER BY least(n, 1000)), avg(least(n, 1000)), "
        "count(*) FROM (SELECT count(*) AS n FROM coin_metrics GROUP BY mint) s"
    ).fetchone()
    total_rows = bench.conn.execute("SELECT count(*) FROM coin_metrics").fetchone()[0]
    for phase in phases:  # every batch stamps its predictions with one created_at
        batches, coins = bench.conn.execute(
            "SELECT count(DISTINCT created_at), count(DISTINCT (created_at, coin_id)) FROM model_predictions "
            "WHERE created_at >= to_timestamp(%s) AND created_at < to_timestamp(%s)",
            [phase.began_wall, phase.ended_wall],
        ).fetchone()
        phase.batches, phase.coins_per_batch = batches, coins / batches if batches else 0.0
    bench.conn.close()
    return _report(phases, peak=peak, current=current, history=history, total_rows=total_rows,
                   setup_models=setup_models, prefill=prefill_output, elapsed=time.monotonic() - began)


def _phase_line(p: Phase) -> str:
    return (f"offered {p.offered:,.0f} rows/s, claimed {p.claimed:,.0f} rows/s, {p.predictions:,.0f} predictions/s, "
            f"queue end {p.depth_end} (slope {p.depth_slope:+.1f}/s), p50/p95/p99 {p.percentile(50):.0f}/"
            f"{p.percentile(95):.0f}/{p.percentile(99):.0f} ms, "
            f"cpu listener {p.cpu.get('listener', 0):.0%} pg {p.cpu.get('postgres', 0):.0%} "
            f"gen {p.cpu.get('generator', 0):.0%} other {p.cpu.get('other', 0):.0%}, "
            f"{'sustained' if p.sustained else 'NOT sustained'}")


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MB"


def _report(phases, *, peak, current, history, total_rows, setup_models, prefill, elapsed) -> str:
    def best_of(candidates):
        return max(candidates, key=lambda p: p.claimed) if candidates else None

    best = best_of([p for p in phases if p.sustained])
    best_every_row = best_of([p for p in phases if p.every_row])
    fixed = {p.rate: p for p in phases if p.rate in FIXED_PHASES}
    p99_500 = fixed[500].percentile(99) if 500 in fixed else math.nan
    lines = [
        "### Listener: sustained rate and latency (10 models, 2,000 coins)",
        "",
        f"`simulate_market --coins {COINS} --seed {SEED}` (its own process, one committed INSERT per statement) feeds "
        "the database while one `listen_events` process predicts every row with 10 active models: "
        f"{sum(k == 'xgboost' for k, _ in MODEL_SPECS)} XGBoost × {XGB_TREES} trees and "
        f"{sum(k == 'random_forest' for k, _ in MODEL_SPECS)} RandomForest × {RF_TREES} trees, "
        f"{len(FEATURES)} features (engineered, windows 5/10/15), phases [1,2,3] for "
        f"{sum(p is not None for _, p in MODEL_SPECS)} models and all phases for the others, minimum scan interval 0, "
        "BATCH_SIZE 5000, FEATURE_HISTORY_SIZE 1000. Generator, PostgreSQL, listener and watcher share the machine's "
        f"cores. Prefill: {prefill.removeprefix('simulate_market: ')}; at the end {total_rows:,} rows, "
        f"{history[2]:,} coins, history rows per coin (capped at 1000) median {history[0][0]:.0f}, "
        f"p90 {history[0][1]:.0f}, mean {float(history[1]):.0f}.",
        "",
        "Latency = INSERT commit → prediction commit, both seen by a watcher connection polling new ids every "
        f"{POLL_SECONDS * 1000:.0f} ms (see the module docstring); measured after a warm-up at the start of each "
        "step, over the rows that got predictions of their own. *Claimed* = rows taken off the queue per second "
        "(several queued rows of one coin collapse into one prediction, by design); *rows predicted* = share of the "
        "step's rows with predictions of their own; *sustained* = the queue grows by < 5 % of the rate over the last "
        "30 s and ends below one batch (5,000). Steps: 100 and 500 rows/s, then up a ladder (1,000, 1,500, 2,000, "
        "3,000, …) until a rate fails, then the geometric midpoint between the best sustained and the failed rate "
        "while time allows. CPU = share of one core over the measured part (both cores = 200 %; *watcher* = this "
        "process and the PostgreSQL backend serving its polls; *other* = the rest of the machine, e.g. other users' "
        "jobs).",
        "",
        "| offered rows/s | claimed rows/s | predictions stored/s | rows predicted | batches/s (coins each) | "
        "queue at end (slope/s) | p50 ms | p95 ms | p99 ms | CPU listener / PostgreSQL / generator / watcher / other "
        "| sustained |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for p in phases:
        cpu = " / ".join(f"{p.cpu.get(k, 0):.0%}" for k in ("listener", "postgres", "generator", "watcher", "other"))
        window = max(p.ended_wall - p.began_wall, 1e-9)
        lines.append(
            f"| {p.offered:,.0f} (target {p.rate:,.0f}) | {p.claimed:,.0f} | {p.predictions:,.0f} | "
            f"{p.predicted_share:.0%} | {p.batches / window:.1f} ({p.coins_per_batch:,.0f}) | "
            f"{p.depth_end:,} ({p.depth_slope:+.0f}) | {p.percentile(50):,.0f} | {p.percentile(95):,.0f} | "
            f"{p.percentile(99):,.0f} | {cpu} | {'yes' if p.sustained else '**no**'} |"
        )
    dropped = [f"{p.dropped:,} rows after the {p.rate:,.0f} rows/s step" for p in phases if p.dropped]

    def summary(p: Phase) -> str:
        per_row = f"{1000 * p.cpu.get('listener', 0) / max(p.claimed, 1e-9):.2f}"
        pg_per_row = f"{1000 * p.cpu.get('postgres', 0) / max(p.claimed, 1e-9):.2f}"
        return (f"**{p.claimed:,.0f} rows/s** claimed, **{p.predictions:,.0f} predictions/s** stored (step "
                f"{p.rate:,.0f} rows/s; p50/p95/p99 {p.percentile(50):,.0f}/{p.percentile(95):,.0f}/"
                f"{p.percentile(99):,.0f} ms; CPU per claimed row: listener {per_row} ms, PostgreSQL {pg_per_row} ms)")

    lines += [
        "",
        *([f"- Backlog not worked off within {DRAIN_SECONDS:.0f} s and dropped before the next step: "
           + "; ".join(dropped) + "."] if dropped else []),
        f"- Maximum sustained: {summary(best)}." if best else "- No rate was sustained.",
        f"- Maximum sustained with (nearly, ≥ 95 %) every row predicted on its own: {summary(best_every_row)}."
        if best_every_row else "- No rate was sustained with every row predicted on its own.",
        f"- Listener peak RSS (VmHWM): **{_mb(peak)}** (RSS at the end {_mb(current)}).",
        "- Targets: ≥ 1,000 rows/s sustained with 10,000 predictions/s stored: "
        f"{_verdict(best_every_row is not None and best_every_row.rate >= 1000)}"
        + (f" ({best_every_row.claimed:,.0f} of {best_every_row.offered:,.0f} offered rows/s claimed, "
           f"{best_every_row.predictions:,.0f} predictions/s, queue {best_every_row.depth_slope:+.0f} rows/s)"
           if best_every_row else "") + "; "
        f"p99 ≤ 250 ms at 500 rows/s: {_verdict(p99_500 <= 250)} ({p99_500:,.0f} ms); "
        f"RSS ≤ 500 MB: {_verdict(peak is not None and peak <= 500 * 2**20)}.",
        f"- Setup (training and registering the models) {setup_models:.0f} s; whole benchmark {elapsed / 60:.1f} min.",
    ]
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


if __name__ == "__main__":
    if sys.argv[1:] == ["register"]:
        sys.path.insert(0, str(PROJECT_DIR))
        register_models()
    else:
        sys.exit("usage: python -m tests.benchmarks.bench_listener register  (the benchmark itself: run.py listener)")
