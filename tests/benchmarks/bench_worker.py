"""The worker's memory while it judges 1,000,000 due predictions: a real `qcluster` and every process it forks.

The benchmark registers the 10 models of the listener benchmark (real xgboost and random-forest files, so the
worker's quality task loads them for feature drift as it does in production), writes prices for COINS coins into
`coin_metrics` and 1,000,000 predictions that are all due (bulk SQL: the statements of the evaluation benchmark),
then starts `python manage.py qcluster` and samples every process of the cluster once a second until no
prediction is left to judge and the quality task has finished (then once more: what the cluster keeps):

* RSS (VmRSS) – what `ps` and `top` show; summed over processes it counts every page the forked processes share
  once per process, which is how the soak's "1.2 GB" came about;
* PSS (from /proc/<pid>/smaps_rollup) – each shared page divided among the processes sharing it: the sum over the
  cluster is the memory the cluster really occupies, and what we report against the target;
* USS (Private_Clean + Private_Dirty) – what a process alone holds and what ending it returns.

It also reads, from /proc/<pid>/maps, which heavy libraries (numpy, pandas, scipy, scikit-learn, xgboost) each
process has loaded.

The cluster runs twice on the same data and database, one after the other: the code of a baseline revision
(BENCH_WORKER_BASELINE_REV, checked out with `git worktree` into var/bench-worker-baseline: the worker before its
memory was bounded) and the working tree. BENCH_WORKER_VARIANTS=current runs only the latter. The result goes to
docs/benchmarks.md.

    .venv/bin/python -m tests.benchmarks.run worker
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from tests.benchmarks.bench_evaluation import PREDICTIONS_SQL, PRICES_SQL
from tests.benchmarks.bench_listener import PROJECT_DIR, _env
from tests.benchmarks.bench_listener_compare import baseline_checkout, current_commit

COINS = 2_500
BUCKET_SECONDS = 15
PREDICTION_MINUTES = list(range(40))  # 10 models × 2,500 coins × 40 minutes = 1,000,000 predictions
HORIZON_MINUTES = 10
PRICE_MINUTES = 65  # prices from the first prediction until after the last horizon
TARGET_PSS_MB = 500
SAMPLE_SECONDS = 1.0
TIMEOUT_SECONDS = 1800
HEAVY_LIBRARIES = {  # a file each library maps when imported
    "numpy": "numpy/_core/_multiarray_umath", "pandas": "pandas/_libs/lib", "scipy": "scipy/linalg/_fblas",
    "sklearn": "sklearn/utils/_openmp_helpers", "xgboost": "xgboost/lib/libxgboost",
}
# The worker before its memory was bounded (drift references read whole, no recycling by size, no gc.freeze).
BASELINE_REV = os.environ.get("BENCH_WORKER_BASELINE_REV", "3ae6431")
BASELINE_DIR = PROJECT_DIR / "var" / "bench-worker-baseline"
TIMELINE_SECONDS = 15
SETTLE_SECONDS = 180  # after the last judgement, how long to wait for the quality task to finish


def build_data(url: str, *, now: datetime) -> dict:
    """Prices of COINS coins for the last PRICE_MINUTES, and one prediction per model, coin and minute, all due."""
    start = (now - timedelta(minutes=PRICE_MINUTES)).replace(second=0, microsecond=0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.42)")
        prices = conn.execute(PRICES_SQL, {"start": start, "bucket": BUCKET_SECONDS, "coins": COINS,
                                           "rows": PRICE_MINUTES * 60 // BUCKET_SECONDS}).rowcount
        conn.execute("TRUNCATE coin_metrics_queue")  # the insert trigger queued every row for a listener
        conn.execute("ANALYZE coin_metrics")
        # A training window inside these prices: the quality task builds each model's drift reference from it,
        # loading every model file and computing as-of features, as it does in production.
        conn.execute("UPDATE prediction_active_models SET training_details = jsonb_build_object("
                     "'train_start', %(start)s::text, 'train_end', %(end)s::text)",
                     {"start": start.isoformat(), "end": (start + timedelta(minutes=PRICE_MINUTES - 5)).isoformat()})
    return {"start": start, "prices": prices}


def store_due_predictions(url: str, *, start: datetime, minutes: list[int] = PREDICTION_MINUTES) -> int:
    """The due predictions (one per model, coin and minute: 1,000,000 by default), and the worker's state as before
    its first start: every schedule due now, no queued task, no drift reference, no quality aggregate (so each
    variant does the same work)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE model_predictions, model_feature_references, model_drift_hours, model_quality_hours, "
                     "django_q_ormq, django_q_task")
        conn.execute("UPDATE django_q_schedule SET next_run = now()")
        stored = conn.execute(PREDICTIONS_SQL, {"start": start, "horizon": HORIZON_MINUTES, "coins": COINS,
                                                "minutes": minutes}).rowcount
        conn.execute("VACUUM ANALYZE model_predictions")
    return stored


def quality_done(conn: psycopg.Connection) -> bool:
    """Has the quality task (drift references of every model) finished since the cluster started?"""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM django_q_task WHERE func = 'quality.tasks.refresh_and_check')"
                        ).fetchone()[0]


def pending(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM model_predictions WHERE status = 'aktiv'").fetchone()[0]


# --- the processes ---------------------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return sorted(int(child) for child in found)


def memory(pid: int) -> dict[str, int] | None:
    """RSS, PSS and USS of one process in bytes (None once it has gone)."""
    try:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, value, *_unit = line.split()
            fields[name.rstrip(":")] = int(value) * 1024
    except (OSError, ValueError):
        return None
    return {"rss": fields["Rss"], "pss": fields["Pss"], "uss": fields["Private_Clean"] + fields["Private_Dirty"]}


def heavy_libraries(pid: int) -> set[str]:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {name for name, marker in HEAVY_LIBRARIES.items() if marker in maps}


@dataclass
class Cluster:
    """The qcluster processes by role: the command (main), django-q2's sentinel, and the sentinel's children,
    spawned in the order workers, monitor, pusher (a recycled worker's successor is a new child)."""

    main: int
    workers: int
    roles: dict[int, str] = field(default_factory=dict)
    spawned: int = 0

    def discover(self) -> dict[int, str]:
        self.roles = {pid: role for pid, role in self.roles.items() if Path(f"/proc/{pid}").exists()}
        self.roles.setdefault(self.main, "main")
        for sentinel in children(self.main):
            self.roles.setdefault(sentinel, "sentinel")
            first_spawned = ["worker"] * self.workers + ["monitor", "pusher"]
            for child in children(sentinel):
                if child not in self.roles:
                    self.spawned += 1
                    self.roles[child] = first_spawned[self.spawned - 1] if self.spawned <= len(first_spawned) \
                        else "worker"
        return self.roles


@dataclass
class Sample:
    at: float
    by_role: dict[str, dict[str, int]]  # role -> summed rss/pss/uss
    total: dict[str, int]
    largest_rss: int  # of any one process


@dataclass
class Measurement:
    variant: str
    code: str
    predictions: int
    seconds: float | None
    judged: int
    samples: list[Sample]
    libraries: dict[str, set[str]]
    processes: dict[str, int]
    load: tuple[float, float]

    def peak(self, measure: str, role: str | None = None) -> int:
        if role is None:
            return max((s.total[measure] for s in self.samples), default=0)
        return max((s.by_role.get(role, {}).get(measure, 0) for s in self.samples), default=0)


def sample(cluster: Cluster, began: float, libraries: dict[str, set[str]], processes: dict[str, set[int]]) -> Sample:
    by_role: dict[str, dict[str, int]] = {}
    largest_rss = 0
    for pid, role in cluster.discover().items():
        figures = memory(pid)
        if figures is None:
            continue
        largest_rss = max(largest_rss, figures["rss"])
        processes.setdefault(role, set()).add(pid)
        libraries.setdefault(role, set()).update(heavy_libraries(pid))
        summed = by_role.setdefault(role, dict.fromkeys(figures, 0))
        for key, value in figures.items():
            summed[key] += value
    total = {key: sum(role[key] for role in by_role.values()) for key in ("rss", "pss", "uss")}
    return Sample(time.monotonic() - began, by_role, total, largest_rss)


def measure(url: str, *, variant: str, code_dir: Path, code: str, start: datetime) -> Measurement:
    stored = store_due_predictions(url, start=start)
    load_before = os.getloadavg()[0]
    worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=code_dir, env=_env(url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster = Cluster(main=worker.pid, workers=int(_env(url).get("WORKER_PROCESSES", 2)))
    samples, libraries, processes = [], {}, {}
    began = time.monotonic()
    seconds = None
    left = stored
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - began < TIMEOUT_SECONDS and worker.poll() is None:
            samples.append(sample(cluster, began, libraries, processes))
            if len(samples) % 5 == 0:
                left = pending(conn)
                roles = samples[-1].by_role.items()
                print(f"{variant} {samples[-1].at:.0f} s: {left:,} due; PSS/USS MB "
                      + ", ".join(f"{role} {_mb(v['pss'])}/{_mb(v['uss'])}" for role, v in roles),
                      file=sys.stderr, flush=True)
                if left == 0 and seconds is None:
                    seconds = time.monotonic() - began
                if seconds is not None and (quality_done(conn) or time.monotonic() - began > seconds + SETTLE_SECONDS):
                    break
            time.sleep(SAMPLE_SECONDS)
    samples.append(sample(cluster, began, libraries, processes))  # after the last task: what the cluster keeps
    worker.terminate()
    worker.wait(timeout=120)
    return Measurement(variant, code, stored, seconds, stored - left, samples, libraries,
                       {role: len(pids) for role, pids in processes.items()}, (load_before, os.getloadavg()[0]))


# --- the report ------------------------------------------------------------------------------------------------

def _mb(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def every(samples: list[Sample], seconds: float) -> list[Sample]:
    """The first sample at or after each multiple of `seconds`."""
    picked, mark = [], 0.0
    for one in samples:
        if one.at >= mark:
            picked.append(one)
            mark = (one.at // seconds + 1) * seconds
    return picked


def report(measurements: list[Measurement], data: dict) -> str:
    lines = [
        "### Worker memory while judging 1,000,000 due predictions",
        "",
        f"{data['prices']:,} `coin_metrics` rows ({COINS:,} coins), 10 models (the listener benchmark's xgboost and "
        f"random-forest files), {measurements[0].predictions:,} due predictions; a real `qcluster` "
        "(WORKER_PROCESSES=2) sampled every second until none was left and the quality task (drift references of "
        "the 10 models, in one worker while the other judges) had finished. Peak of the sums over the cluster's "
        "processes; PSS divides a shared page among the processes sharing it (the honest total), RSS counts it "
        "once per process.",
        "",
        "| variant (code) | judged | time to judge all | peak PSS total | peak RSS total | peak USS total "
        "| largest RSS of one process | PSS total at the end | load 1 min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        took = (f"{m.seconds:.0f} s ({m.judged / m.seconds:,.0f}/s)" if m.seconds
                else f"not done in {TIMEOUT_SECONDS} s")
        largest = max((s.largest_rss for s in m.samples), default=0)
        lines.append(f"| {m.variant} ({m.code}) | {m.judged:,} | {took} | {_mb(m.peak('pss'))} MB | "
                     f"{_mb(m.peak('rss'))} MB | {_mb(m.peak('uss'))} MB | {_mb(largest)} MB | "
                     f"{_mb(m.samples[-1].total['pss'])} MB | "
                     f"{m.load[0]:.1f} → {m.load[1]:.1f} |")
    lines += ["", "Per process (summed over the processes of a role; count: processes seen, a recycled worker's "
                  "successor included):", "",
              "| variant | process (count) | peak PSS | peak RSS | peak USS | heavy libraries loaded |",
              "|---|---|---:|---:|---:|---|"]
    for m in measurements:
        for role in ("main", "sentinel", "monitor", "pusher", "worker"):
            if role not in m.processes:
                continue
            libraries = ", ".join(sorted(m.libraries.get(role, ()))) or "none"
            lines.append(f"| {m.variant} | {role} ({m.processes[role]}) | {_mb(m.peak('pss', role))} MB | "
                         f"{_mb(m.peak('rss', role))} MB | {_mb(m.peak('uss', role))} MB | {libraries} |")
    lines += ["", f"PSS total of the cluster every {TIMELINE_SECONDS} s, then at the end (MB):", ""]
    for m in measurements:
        timeline = every(m.samples[:-1], TIMELINE_SECONDS) + m.samples[-1:]
        lines.append(f"* {m.variant}: " + ", ".join(_mb(s.total["pss"]) for s in timeline))
    current = measurements[-1]
    met = current.seconds is not None and current.peak("pss") <= TARGET_PSS_MB * 2**20
    lines += ["", f"Target: the worker (whole cluster, PSS) at most {TARGET_PSS_MB} MB while judging 1 M due "
                  "predictions: " + ("met." if met else "**not met**.")]
    return "\n".join(lines)


def run(url: str) -> str:
    subprocess.run([sys.executable, "-c",
                    "from tests.benchmarks.bench_listener import register_models; register_models()"],
                   cwd=PROJECT_DIR, env=_env(url), check=True)
    data = build_data(url, now=datetime.now(timezone.utc))
    wanted = os.environ.get("BENCH_WORKER_VARIANTS", "before,current").split(",")
    measurements = []
    if "before" in wanted:
        baseline_dir, commit = baseline_checkout(BASELINE_REV, BASELINE_DIR)
        measurements.append(measure(url, variant="before", code_dir=baseline_dir, code=commit[:7],
                                    start=data["start"]))
    if "current" in wanted:
        measurements.append(measure(url, variant="current", code_dir=PROJECT_DIR, code=current_commit(),
                                    start=data["start"]))
    return report(measurements, data)
