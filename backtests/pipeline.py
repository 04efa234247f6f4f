"""Overlapping a backtest's database work with its computation.

A replay alternates PostgreSQL work (reading a group's rows, storing them judged) with Python work (features,
scoring). Here the next group is read, and the previous one stored, on two threads of their own (each with its own
database connection) while the caller computes the current group, so that on a two-core machine both cores work.
Values do not change: every group goes through the same steps in the same order, and stores are one at a time, in
group order.

Off inside a transaction (other connections would not see its rows) or when asked: every step then runs in the
caller's thread, in order.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

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
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="backtest-read") if self.threaded else None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="backtest-store") if self.threaded else None
        self._storing: Future | _Done | None = None
        self._reading: Future | None = None  # the read in flight (finished reads are the caller's to keep)

    def read(self, fn: Callable, *args, **kwargs):
        """Start a read; `.result()` gives its value (or raises its error)."""
        if not self.threaded:
            return _Done(fn, args, kwargs)
        self._reading = self._reader.submit(fn, *args, **kwargs)
        return self._reading

    def store(self, fn: Callable, *args, **kwargs) -> None:
        """Store after the previous store has finished (its error is raised here)."""
        self.wait_stored()
        if not self.threaded:
            self._storing = _Done(fn, args, kwargs)
            return
        self._storing = self._writer.submit(fn, *args, **kwargs)

    def wait_stored(self) -> None:
        if self._storing is not None:
            storing, self._storing = self._storing, None
            storing.result()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info) -> None:
        """Wait for every step still running (a failed run removes its rows only after the last store), then close
        the threads' connections."""
        if not self.threaded:
            return
        for future in (self._reading, self._storing):
            try:
                if future is not None:
                    future.result()
            except Exception:  # noqa: S110 - the caller's own error (or the step's, already raised) is what counts
                pass
        self._reading = self._storing = None
        for pool in (self._reader, self._writer):
            pool.submit(_close_connection).result()
            pool.shutdown()


def _close_connection() -> None:
    connection.close()  # this thread's own connection (the proxy resolves it in the thread that calls it)
