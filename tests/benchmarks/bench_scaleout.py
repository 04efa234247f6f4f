"""Scale-out against one database: 1, 2 and 4 listeners (and one listener with 2 lanes) on the listener benchmark's
market, each set-up on a fresh database with the same models and market, then 1, 2 and 4 workers judging the same
backlog of due predictions.

Listeners: the listener benchmark as it is (its 10 models, 2,000 coins, 200,000 rows of prefilled history,
`simulate_market` in a process of its own, CPU of each party read from /proc), with N `listen_events` processes
instead of one, and a short ladder of offered rates per N that stops at the first rate not sustained (the claimed
rate there is what N listeners manage). The listener benchmark's watcher stamps a row's prediction when a prediction
id above the highest it has seen becomes visible; with several writers ids no longer become visible in order (a
listener whose INSERT took lower ids can commit after another), so here a row's end is when its queue entry is gone:
a listener deletes it in the transaction that stores its predictions, so both become visible at the same commit.
After each step the rows that got predictions of their own are looked up in `model_predictions`; the latency and
the predictions stored per second are counted over those, as in the listener benchmark.

Workers: the worker benchmark's prices and due predictions (10 models × 2,500 coins × DUE_MINUTES minutes), rebuilt
identically for each N. N processes each run the worker's evaluation task, `alerts.tasks.evaluate_and_track`, in a
loop until nothing is due, all started at once. That is the task a qcluster worker runs for the schedule
"evaluate-predictions"; a qcluster would add only the broker's polling around it, and the schedule hands out one such
task per EVALUATION_INTERVAL_SECONDS whichever cluster picks it up, so N qclusters would not run N evaluations at
once. These processes measure what the database does when N evaluations do overlap (several clusters after an
outage, or a shorter interval than a run takes). Each prediction judged once: the processes' judged counts add up to
the due rows, and every row is judged.

    EMBEDDED_PGDATA=var/pg-bench .venv/bin/python -m tests.benchmarks.run scaleout
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone

import psycopg

from tests.benchmarks import bench_worker
from tests.benchmarks.bench_listener import (
    COINS,
    MODEL_SPECS,
    POLL_SECONDS,
    PROJECT_DIR,
    Bench,
    Phase,
    Watcher,
    _cpu_seconds,
    _env,
    _machine_busy_seconds,
    _mb,
    _postgres_pids,
    _simulate,
    prepare,
)

# (listener processes, lanes per listener): one process with two batches in flight beside the one-lane process it
# is compared with, then more processes. BENCH_SCALEOUT_SETUPS="1x1,1x2" measures only those (and no workers).
LISTENER_SETUPS = ((1, 1), (1, 2), (2, 1), (4, 1))
# Up to issue 16's target rate of 2,500 rows/s; BENCH_SCALEOUT_RATES="2000,2500,3000" offers only those.
RATES = tuple(int(rate) for rate in os.environ.get("BENCH_SCALEOUT_RATES", "500,1000,1500,2000,2500").split(","))
STEP_SECONDS, STEP_WARMUP = 38, 8
WARM_UP_TIMEOUT = 180
# Each listener keeps its own history cache: before the ladder, one unreported step at the lowest rate lets every
# listener read the coins' histories it will need, so the steps measure the steady state, not N cold caches.
PRIME_SECONDS = 30
WORKER_COUNTS = (1, 2, 4)
DUE_MINUTES = list(range(32))  # 10 models × 2,500 coins × 32 minutes = 800,000 due rows: 8 runs of 100,000
RESULTS = ("success", "failed", "not_applicable")


# --- listeners -------------------------------------------------------------------------------------------------


class ClaimWatcher(Watcher):
    """The listener benchmark's watcher for several listeners: a row is done when its queue entry is gone.

    Every poll reads the new coin_metrics rows (one writer: their ids become visible in order) and then the ids of
    the queue's rows; a row seen inserted whose entry is no longer queued was claimed and committed with its
    predictions in between. The whole queue is read each time, which is cheap while listeners keep up; with a deep
    backlog the poll slows down in proportion (the latencies of such a step mean little anyway).
    """

    def __init__(self, url: str):
        super().__init__(url)
        self.queued: dict[int, tuple] = {}  # coin_metrics id -> (mint, timestamp), seen inserted, not yet claimed
        self.claims: list[tuple[tuple, float]] = []  # ((mint, timestamp), claimed at), in the order seen
        self.resolved = 0  # claims looked up in model_predictions so far

    def run(self) -> None:
        try:
            next_depth = 0.0
            while not self.stopping.is_set():
                seen = time.monotonic()
                rows = self.conn.execute('SELECT id, mint, "timestamp" FROM coin_metrics WHERE id > %s',
                                         [self.last_metric], prepare=True).fetchall()
                for row_id, mint, timestamp in rows:
                    self.inserted.setdefault((mint, timestamp), seen)
                    self.queued[row_id] = (mint, timestamp)
                    self.last_metric = max(self.last_metric, row_id)
                self.insert_times.extend([seen] * len(rows))
                present = {row_id for (row_id,) in self.conn.execute(
                    "SELECT coin_metric_id FROM coin_metrics_queue", prepare=True).fetchall()}
                claimed = time.monotonic()
                for row_id in [row_id for row_id in self.queued if row_id not in present]:
                    self.claims.append((self.queued.pop(row_id), claimed))
                if claimed >= next_depth:
                    self.depth.append((claimed, len(present)))
                    next_depth = claimed + 0.25
                time.sleep(max(POLL_SECONDS, len(present) / 200_000))
        except BaseException as exc:  # reported by the main thread
            self.error = exc


class ScaleBench(Bench):
    def analyse(self, phase: Phase) -> None:
        """Which claimed rows got predictions of their own (and how many), then the listener benchmark's figures."""
        watcher = self.watcher
        claims = watcher.claims[watcher.resolved:]
        watcher.resolved += len(claims)
        if claims:
            times = [timestamp for (_mint, timestamp), _at in claims]
            counts = {(coin, timestamp): n for coin, timestamp, n in self.conn.execute(
                "SELECT coin_id, prediction_timestamp, count(*) FROM model_predictions "
                "WHERE prediction_timestamp BETWEEN %s AND %s GROUP BY 1, 2", [min(times), max(times)])}
            for key, at in claims:
                if counts.get(key):
                    watcher.predicted.setdefault(key, at)
                    watcher.prediction_rows.append((at, counts[key]))
        super().analyse(phase)
        # Every batch stamps its predictions with one created_at; with N listeners the stream splits into more,
        # smaller batches.
        phase.batches, rows = self.conn.execute(
            "SELECT count(DISTINCT created_at), count(DISTINCT (coin_id, prediction_timestamp)) FROM model_predictions "
            "WHERE created_at >= to_timestamp(%s) AND created_at < to_timestamp(%s)",
            [phase.began_wall, phase.ended_wall]).fetchone()
        phase.coins_per_batch = rows / phase.batches if phase.batches else 0.0


def warm_up_all(bench: Bench) -> None:
    """Rows until every listener has loaded the 10 models (each reports them in its heartbeat)."""
    pids = [listener.pid for listener in bench.listeners]
    deadline = time.monotonic() + WARM_UP_TIMEOUT
    while time.monotonic() < deadline:
        _simulate(bench.url, rate=500, rows=500, start=bench.next_start()).communicate()
        bench.wait_for_empty_queue(timeout=60)
        loaded = bench.conn.execute(
            "SELECT count(*) FROM process_heartbeats WHERE kind = 'listener' AND pid = ANY(%s) "
            "AND (details->>'models_loaded')::int >= %s", [pids, len(MODEL_SPECS)]).fetchone()[0]
        if loaded == len(pids):
            return
        time.sleep(5)  # a listener's heartbeat is written at most every 5 s
    raise RuntimeError(f"not every listener loaded its models; see {bench.log_path.parent}/bench-listener*.log")


def listener_curve(bench: Bench, processes: int, lanes: int) -> tuple[list[Phase], int | None]:
    bench.start_listener(processes=processes, lanes=lanes)
    bench.watcher = ClaimWatcher(bench.url)
    bench.watcher.start()
    phases: list[Phase] = []
    try:
        warm_up_all(bench)
        print(f"scale-out: {processes} listener(s) × {lanes} lane(s), priming the history caches at {RATES[0]} rows/s", flush=True)
        primed = bench.run_phase(Phase(RATES[0], PRIME_SECONDS, STEP_WARMUP))
        print("  (not reported) " + _phase_line(primed), flush=True)
        for rate in RATES:
            print(f"scale-out: {processes} listener(s) × {lanes} lane(s), {rate} rows/s", flush=True)
            phases.append(bench.run_phase(Phase(rate, STEP_SECONDS, STEP_WARMUP)))
            print("  " + _phase_line(phases[-1]), flush=True)
            if bench.watcher.error:
                raise bench.watcher.error
            if not phases[-1].sustained:
                break  # the claimed rate of this step is what these listeners manage; higher rates only queue up
    finally:
        peak, _current = bench.stop_listener()
        bench.watcher.stop()
    return phases, peak


def _phase_line(p: Phase) -> str:
    return (f"offered {p.offered:,.0f}, claimed {p.claimed:,.0f} rows/s, {p.predictions:,.0f} predictions/s, "
            f"own {p.predicted_share:.0%}, {p.batches} batches ({p.coins_per_batch:,.0f} coins), p50/p99 {p.percentile(50):.0f}/{p.percentile(99):.0f} ms, cpu listeners "
            f"{p.cpu['listener']:.0%} pg {p.cpu['postgres']:.0%} gen {p.cpu['generator']:.0%} machine "
            f"{p.cpu['machine']:.0%} (other {p.cpu['other']:.0%}), {'sustained' if p.sustained else 'NOT sustained'}")


# --- workers ---------------------------------------------------------------------------------------------------


def evaluator() -> None:
    """One evaluating process: says "ready", waits for a line on stdin, runs the evaluation task until nothing is due,
    prints its figures as JSON, and waits for another line before it exits (so its backend's CPU can be read)."""
    import django

    sys.path.insert(0, str(PROJECT_DIR))
    django.setup()
    from alerts.tasks import evaluate_and_track

    totals = dict.fromkeys(RESULTS, 0)
    runs = empty_runs = 0
    print("ready", flush=True)
    sys.stdin.readline()
    last_judged = time.monotonic()
    while True:
        result = evaluate_and_track()
        judged = sum(result[name] for name in RESULTS)
        for name in RESULTS:
            totals[name] += result[name]
        runs += 1
        if judged:
            last_judged = time.monotonic()
        if not result["more_due"]:
            break
        if not judged:  # the rows still due are being judged by another process
            empty_runs += 1
            time.sleep(0.1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**totals, "runs": runs, "empty_runs": empty_runs, "last_judged": last_judged,
                      "cpu": usage.ru_utime + usage.ru_stime}), flush=True)
    sys.stdin.readline()


def judge_backlog(url: str, postmaster: int | None, *, processes: int, start: datetime) -> dict:
    due = bench_worker.store_due_predictions(url, start=start, minutes=DUE_MINUTES)
    load = os.getloadavg()[0]
    workers = [subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_scaleout", "evaluate"], cwd=PROJECT_DIR,
                                env=_env(url), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True) for _ in range(processes)]
    for worker in workers:
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("an evaluating process did not start")
    postgres_before = {pid: _cpu_seconds([pid]) for pid in _postgres_pids(postmaster)}
    machine_before = _machine_busy_seconds()[0]
    began = time.monotonic()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    figures = []
    for worker in workers:
        line = ""
        while not line.startswith("{"):
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError("an evaluating process ended without its figures")
        figures.append(json.loads(line))
    wall = time.monotonic() - began
    postgres = sum(_cpu_seconds([pid]) - postgres_before.get(pid, 0.0) for pid in _postgres_pids(postmaster))
    machine = _machine_busy_seconds()[0] - machine_before
    for worker in workers:
        worker.stdin.write("done\n")
        worker.stdin.flush()
        worker.wait(timeout=60)
    seconds = max(f["last_judged"] for f in figures) - began
    judged = sum(f[name] for f in figures for name in RESULTS)
    with psycopg.connect(url, autocommit=True) as conn:
        left, evaluated = conn.execute("SELECT count(*) FILTER (WHERE status = 'aktiv'), "
                                       "count(*) FILTER (WHERE evaluated_at IS NOT NULL) FROM model_predictions"
                                       ).fetchone()
    # Judged once: the processes' counts add up to the due rows exactly, and every one of them is judged.
    assert judged == due == evaluated and left == 0, (judged, due, evaluated, left)
    return {"processes": processes, "due": due, "judged": judged, "seconds": seconds, "wall": wall,
            "postgres": postgres, "workers": sum(f["cpu"] for f in figures), "machine": machine,
            "runs": [f["runs"] - f["empty_runs"] for f in figures], "load": (load, os.getloadavg()[0])}


# --- the benchmark ---------------------------------------------------------------------------------------------


def run(url: str) -> str:
    from tests.benchmarks.run import fresh_database  # the runner imports this module: imported when it runs

    began = time.monotonic()
    curves: dict[tuple[int, int], tuple[list[Phase], int | None]] = {}
    load_listeners = os.getloadavg()
    chosen = os.environ.get("BENCH_SCALEOUT_SETUPS", "")
    setups = [tuple(int(n) for n in pair.split("x")) for pair in chosen.split(",")] if chosen else LISTENER_SETUPS
    worker_counts = () if chosen else WORKER_COUNTS
    bench = None
    for processes, lanes in setups:
        # Every set-up gets the same fresh database, models and market: one that ran after others would find a
        # database grown by their rows and do worse for it.
        if bench is not None:
            bench.conn.close()
            url = fresh_database()
        bench, _setup, prefill = prepare(url, bench_type=ScaleBench)
        curves[processes, lanes] = listener_curve(bench, processes, lanes)
    listener_minutes = (time.monotonic() - began) / 60
    if not worker_counts:
        bench.conn.close()
        return _report(curves, [], prefill=prefill, data=None, loads=(load_listeners, None),
                       listener_minutes=listener_minutes, elapsed=(time.monotonic() - began) / 60)
    print("scale-out: due predictions for the workers", flush=True)
    data = bench_worker.build_data(url, now=datetime.now(timezone.utc))
    load_workers = os.getloadavg()
    judged = []
    for processes in worker_counts:
        print(f"scale-out: {processes} evaluating process(es)", flush=True)
        judged.append(judge_backlog(url, bench.postmaster, processes=processes, start=data["start"]))
        one = judged[-1]
        print(f"  {one['judged']:,} judged in {one['seconds']:.1f} s ({one['judged'] / one['seconds']:,.0f}/s), "
              f"PostgreSQL {one['postgres']:.0f} s CPU", flush=True)
    bench.conn.close()
    return _report(curves, judged, prefill=prefill, data=data, loads=(load_listeners, load_workers),
                   listener_minutes=listener_minutes, elapsed=(time.monotonic() - began) / 60)


def _report(curves, judged, *, prefill, data, loads, listener_minutes, elapsed) -> str:
    lines = [
        "### Scale-out: 1, 2 and 4 listeners (and one with 2 lanes), 1, 2 and 4 workers, one PostgreSQL",
        "",
        f"Listeners: the listener benchmark's market and models (10 models, {COINS:,} coins; prefill "
        f"{prefill.removeprefix('simulate_market: ')}; every set-up on a fresh database with this same market), N `listen_events` processes against the one database (× 2 lanes: one process with "
        "`--lanes 2`, two batches in flight), the "
        f"generator, PostgreSQL and all listeners on the same machine. Each step offers a rate for {STEP_SECONDS} s "
        f"(measured after {STEP_WARMUP} s); the ladder ({', '.join(f'{r:,}' for r in RATES)} rows/s) stops at the "
        f"first rate not sustained; before it, an unreported {PRIME_SECONDS} s step at {RATES[0]:,} rows/s fills every "
        "listener's history cache (each listener keeps its own). A row's end is the commit that removes its queue entry together with storing its "
        "predictions (see the module docstring); latency = INSERT commit → that commit, over the rows predicted on "
        "their own. CPU as a share of one core (the machine has "
        f"{os.cpu_count()} cores = {os.cpu_count() * 100} %; *other* = the rest of the machine, e.g. other users' jobs"
        "); per claimed row in ms. "
        f"Load average (1/5/15 min) at the start: {loads[0][0]:.2f} / {loads[0][1]:.2f} / {loads[0][2]:.2f}.",
        "",
        "| listeners × lanes | offered rows/s | claimed rows/s | predictions stored/s | rows predicted on their own | "
        "batches/s (coins predicted each) | p50 / p99 ms | CPU listeners / PostgreSQL / generator / other | CPU per claimed row: listeners / "
        "PostgreSQL | sustained |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for (processes, lanes), (phases, _peak) in curves.items():
        for p in phases:
            per_row = " / ".join(f"{1000 * p.cpu[k] / max(p.claimed, 1e-9):.2f}" for k in ("listener", "postgres"))
            cpu = " / ".join(f"{p.cpu[k]:.0%}" for k in ("listener", "postgres", "generator", "other"))
            lines.append(
                f"| {processes} × {lanes} | {p.offered:,.0f} (target {p.rate:,}) | {p.claimed:,.0f} | {p.predictions:,.0f} | "
                f"{p.predicted_share:.0%} | {p.batches / max(p.ended_wall - p.began_wall, 1e-9):.1f} "
                f"({p.coins_per_batch:,.0f}) | {p.percentile(50):,.0f} / {p.percentile(99):,.0f} | {cpu} | {per_row} | "
                f"{'yes' if p.sustained else '**no**'} |")
    lines.append("")
    base = None
    for (processes, lanes), (phases, peak) in curves.items():
        sustained = [p for p in phases if p.sustained]
        every_row = [p for p in sustained if p.every_row]
        best = max((p.claimed for p in phases), default=0.0)
        base = base or best
        lines.append(
            f"- {processes} listener(s) × {lanes} lane(s): highest claimed {best:,.0f} rows/s ({best / max(base, 1e-9):.2f}× one "
            f"listener); highest sustained step {max((p.rate for p in sustained), default=0):,} rows/s, with every row "
            f"predicted on its own {max((p.rate for p in every_row), default=0):,} rows/s; largest peak RSS of one "
            f"listener {_mb(peak)}.")
    lines.append(f"- Listener part {listener_minutes:.1f} min.")
    if not judged:
        return "\n".join(lines)
    lines += [
        "",
        f"Workers: {data['prices']:,} `coin_metrics` rows ({bench_worker.COINS:,} coins), "
        f"{judged[0]['due']:,} due predictions (10 models × {bench_worker.COINS:,} coins × {len(DUE_MINUTES)} minutes) "
        "rebuilt identically for each N; N processes each run the worker's evaluation task "
        "(`alerts.tasks.evaluate_and_track`, runs of up to 100,000 rows claimed with SKIP LOCKED) in a loop until "
        "nothing is due, all started at once. Time = start → the last run that judged a row. Load average at the "
        f"start: {loads[1][0]:.2f} / {loads[1][1]:.2f} / {loads[1][2]:.2f}.",
        "",
        "| workers | judged (task runs that judged rows, per process) | seconds | judged rows/s | × one worker | CPU PostgreSQL / workers / machine "
        "| PostgreSQL CPU per judged row | judged once | load 1 min |",
        "|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    one = judged[0]["judged"] / judged[0]["seconds"]
    for j in judged:
        rate = j["judged"] / j["seconds"]
        cpu = " / ".join(f"{j[k] / j['wall']:.0%}" for k in ("postgres", "workers", "machine"))
        lines.append(
            f"| {j['processes']} | {j['judged']:,} ({', '.join(map(str, j['runs']))}) | {j['seconds']:.1f} | "
            f"{rate:,.0f} | {rate / one:.2f} | {cpu} | {1e6 * j['postgres'] / j['judged']:.0f} µs | yes (counts "
            f"add up to the {j['due']:,} due rows, all judged) | {j['load'][0]:.1f} → {j['load'][1]:.1f} |")
    lines += ["", f"Whole benchmark {elapsed:.1f} min."]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["evaluate"]:
        evaluator()
    else:
        sys.exit("usage: python -m tests.benchmarks.bench_scaleout evaluate  (the benchmark: run.py scaleout)")
