"""Overlapping a backtest's database work with its computation, below the listener's priority.

A replay alternates PostgreSQL work (reading a group's rows, storing them judged) with Python work (features,
scoring). Here the next group is read, and the previous one stored, on threads of their own (each with its own
database connection) while a third computes the current group, so that on a two-core machine both cores work.
Values do not change: every group goes through the same steps in the same order, and stores are one at a time, in
group order.

The listener shares the machine: the pipeline's threads run at the lower CPU priority BACKTEST_NICE (Linux: a
thread's own nice value), so that the backtest's Python work takes what the listener leaves; alone, it runs at full
speed. The runner does its last steps (the summary) on the compute thread too. Reads and stores start only while the
listener has no work waiting (`yield_to_live`): PostgreSQL work cannot be deprioritised safely. The thread that calls
the pipeline (a worker's task thread, say) keeps its priority; it only waits.

Off inside a transaction (other connections would not see its rows) or when asked: every step then runs in the
caller's thread, in order, at the caller's priority.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from django.conf import settings
from django.db import connection

from predictions.selectors import queue_depth
from pumpserver import heartbeat
from pumpserver.models import ProcessKind

_YIELD_POLL_SECONDS = 0.05
_LISTENER_CHECK_SECONDS = 5.0  # how long a look at the listeners' heartbeats holds


class _Done:
    """A step run at once in the caller's thread (the non-threaded pipeline)."""

    def __init__(self, fn: Callable, args, kwargs):
        self._value = fn(*args, **kwargs)

    def result(self):
        return self._value


class Pipeline:
    def __init__(self, *, threaded: bool = True):
        self.threaded = threaded and not connection.in_atomic_block
        self._pools = {
            name: ThreadPoolExecutor(1, thread_name_prefix=f"backtest-{name}", initializer=lower_priority)
            for name in ("read", "compute", "store")
        } if self.threaded else {}
        self._storing: Future | _Done | None = None
        self._reading: Future | None = None  # the read in flight (finished reads are the caller's to keep)
        self.yielded = 0.0  # seconds paused for the listener (yield_to_live)
        self._listening: tuple[float, bool] | None = None  # (when looked, a listener alive)

    def read(self, fn: Callable, *args, **kwargs):
        """Start a read (once the listener has no work waiting); `.result()` gives its value (or raises its error)."""
        self.yielded += self.yield_to_live()
        if not self.threaded:
            return _Done(fn, args, kwargs)
        self._reading = self._pools["read"].submit(fn, *args, **kwargs)
        return self._reading

    def compute(self, fn: Callable, *args, **kwargs):
        """Run `fn` on the compute thread and return its value."""
        if not self.threaded:
            return fn(*args, **kwargs)
        return self._pools["compute"].submit(fn, *args, **kwargs).result()

    def store(self, fn: Callable, *args, **kwargs) -> None:
        """Store after the previous store has finished (its error is raised here) and once the listener has no work
        waiting."""
        self.wait_stored()
        self.yielded += self.yield_to_live()
        if not self.threaded:
            self._storing = _Done(fn, args, kwargs)
            return
        self._storing = self._pools["store"].submit(fn, *args, **kwargs)

    def yield_to_live(self) -> float:
        """Wait while the listener's queue holds at least BACKTEST_YIELD_QUEUE_ROWS rows, for at most
        BACKTEST_YIELD_MAX_SECONDS; returns the seconds waited. Queued rows (claimed ones stay queued until their batch
        commits) mean the listener has work: a read or a store started then would compete with it in PostgreSQL,
        where priorities do not help (see lower_priority)."""
        deep, longest = settings.BACKTEST_YIELD_QUEUE_ROWS, settings.BACKTEST_YIELD_MAX_SECONDS
        if not deep or not longest or not self._listener_alive():
            return 0.0
        began = waited = time.monotonic()
        while queue_depth() >= deep and waited - began < longest:
            time.sleep(_YIELD_POLL_SECONDS)
            waited = time.monotonic()
        return waited - began

    def _listener_alive(self) -> bool:
        """A queue nobody works off (no listener running) is no reason to wait."""
        now = time.monotonic()
        if self._listening is None or now - self._listening[0] > _LISTENER_CHECK_SECONDS:
            self._listening = (now, heartbeat.alive(ProcessKind.LISTENER))
        return self._listening[1]

    def wait_stored(self) -> None:
        if self._storing is not None:
            storing, self._storing = self._storing, None
            storing.result()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info) -> None:
        """Wait for every step still running (a failed run removes its rows only after the last store), then close
        the threads' connections."""
        for future in (self._reading, self._storing):
            try:
                if future is not None:
                    future.result()
            except Exception:  # noqa: S110 - the caller's own error (or the step's, already raised) is what counts
                pass
        self._reading = self._storing = None
        for pool in self._pools.values():
            pool.submit(_close_connection).result()
            pool.shutdown()


def _close_connection() -> None:
    connection.close()  # this thread's own connection (the proxy resolves it in the thread that calls it)


def lower_priority() -> None:
    """This thread at BACKTEST_NICE: a backtest's Python work takes the CPU the listener leaves. With
    BACKTEST_NICE_BACKENDS also the PostgreSQL backend of its connection, where that is a process of this machine we
    may renice.

    Off by default, measured (docs/benchmarks.md): a niced backend that the scheduler leaves waiting while it holds a
    WAL insertion slot or a buffer lock holds up the listener's backends (a commit waits for every WAL insertion
    before it), and the listener's p99 grew instead of shrinking. The pauses of Pipeline.yield_to_live keep the
    backends' work out of the listener's way instead."""
    nice = settings.BACKTEST_NICE
    if not nice:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # not Linux, or not allowed: full priority
        pass
    backend = _local_backend_pid() if settings.BACKTEST_NICE_BACKENDS else None
    if backend is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, backend, nice)
        except OSError:  # another user's process (PostgreSQL runs as its own user): it keeps its priority
            pass


_LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
# The backend's pid and start time: the pid names a process of this machine only if the server runs here, and only if
# that process started when the backend did (else the pid is another machine's, or a container's).
_BACKEND_SQL = """
SELECT pg_backend_pid(), extract(epoch FROM backend_start)::float8
  FROM pg_stat_activity WHERE pid = pg_backend_pid()
"""


def _local_backend_pid() -> int | None:
    host = str(connection.settings_dict.get("HOST") or "")
    if not (host.startswith("/") or host in _LOCAL_HOSTS):
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute(_BACKEND_SQL)
            pid, started = cursor.fetchone()
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
        process_started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, TypeError, StopIteration):
        return None
    return pid if abs(process_started - started) < 2.0 else None
