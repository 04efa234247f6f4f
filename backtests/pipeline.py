"""Overlapping a backtest's database work with its computation, below the listener's priority.

A replay alternates PostgreSQL work (reading a group's rows, storing them judged) with Python work (features,
scoring). Here the next group is read, and the previous one stored, on threads of their own (each with its own
database connection) while a third computes the current group, so that on a two-core machine both cores work.
Values do not change: every group goes through the same steps in the same order, and stores are one at a time, in
group order.

The listener shares the machine: the pipeline's threads run at the lower CPU priority BACKTEST_NICE (Linux: a
thread's own nice value), so that the backtest's Python work takes what the listener leaves; alone, it runs at full
speed. The thread that calls the pipeline (a worker's task thread, say) keeps its priority.

Off inside a transaction (other connections would not see its rows) or when asked: every step then runs in the
caller's thread, in order, at the caller's priority.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from django.conf import settings
from django.db import connection


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
            name: ThreadPoolExecutor(1, thread_name_prefix=f"backtest-{name}", initializer=_lower_priority)
            for name in ("read", "compute", "store")
        } if self.threaded else {}
        self._storing: Future | _Done | None = None
        self._reading: Future | None = None  # the read in flight (finished reads are the caller's to keep)

    def read(self, fn: Callable, *args, **kwargs):
        """Start a read; `.result()` gives its value (or raises its error)."""
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
        """Store after the previous store has finished (its error is raised here)."""
        self.wait_stored()
        if not self.threaded:
            self._storing = _Done(fn, args, kwargs)
            return
        self._storing = self._pools["store"].submit(fn, *args, **kwargs)

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


def _lower_priority() -> None:
    """This thread at BACKTEST_NICE (where allowed). PostgreSQL's backends keep their priority: a backend descheduled
    while it holds one of the server's shared locks would hold up the listener's backends (priority inversion)."""
    nice = settings.BACKTEST_NICE
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except (OSError, AttributeError):  # not Linux, or not allowed: full priority
            pass
