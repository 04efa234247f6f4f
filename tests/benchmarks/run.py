"""`make bench`: run every benchmark against a fresh database on the embedded server (or DATABASE_URL's server)
and append the results, with date and machine, to docs/benchmarks.md.

Targets live here, never in timed tests: the machines are shared and noisy, so each benchmark reports ratios
measured within one run next to its absolute figures.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import django

PROJECT_DIR = Path(__file__).resolve().parents[2]
RESULTS = PROJECT_DIR / "docs" / "benchmarks.md"
BENCH_DB = "pump_bench"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, Python {platform.python_version()}"


def fresh_database() -> str:
    from pumpserver.database import open_connection
    from tests.conftest import database_url

    with open_connection(autocommit=True, dbname="postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    url = database_url(BENCH_DB)
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench")}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, env=env, check=True)
    return url


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")
    sys.path.insert(0, str(PROJECT_DIR))
    django.setup()
    from tests.benchmarks import (
        bench_backtest,
        bench_consistency,
        bench_evaluation,
        bench_limits,
        bench_listener,
        bench_listener_compare,
        bench_memory,
        bench_quality,
        bench_scaleout,
        bench_soak,
        bench_storage,
        bench_trigger,
        bench_worker,
    )

    selected = set(sys.argv[1:])
    benchmarks = {"trigger": bench_trigger, "listener": bench_listener, "listener-compare": bench_listener_compare,
                  "soak": bench_soak, "evaluation": bench_evaluation, "quality": bench_quality,
                  "backtest": bench_backtest, "limits": bench_limits, "storage": bench_storage,
                  "worker": bench_worker, "consistency": bench_consistency, "memory": bench_memory,
                  "scaleout": bench_scaleout}
    chosen = [name for name in benchmarks if not selected or name in selected]
    began = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # Each section is appended as soon as its benchmark ends: a long run that is stopped keeps what it measured.
    _append(f"## Run of {stamp}\n\nMachine: {machine()}; benchmarks: {', '.join(chosen)}\n")
    failed = []
    for name in chosen:
        url = fresh_database()
        print(f"== {name}", flush=True)
        try:
            section = benchmarks[name].run(url)
        except Exception as exc:  # one broken benchmark must not cost the hours of the others
            traceback.print_exc()
            failed.append(name)
            section = f"### {name}: failed\n\n`{type(exc).__name__}: {exc}` (traceback in the run's output).\n"
        print(section, flush=True)
        _append(section.rstrip() + "\n")
    failures = f", failed: {', '.join(failed)}" if failed else ""
    _append(f"Whole run ({len(chosen)} benchmarks{failures}): {(time.monotonic() - began) / 60:.1f} min, ended "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n")
    print(f"results appended to {RESULTS.relative_to(PROJECT_DIR)}")
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


def _append(text: str) -> None:
    if not RESULTS.exists():
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text("# Benchmarks\n\nAppended by `make bench`; newest run last.\n")
    with RESULTS.open("a") as results:
        results.write("\n" + text)


if __name__ == "__main__":
    main()
