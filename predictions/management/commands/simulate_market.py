"""python manage.py simulate_market --coins N --rate ROWS_PER_S (--duration S | --rows K) [--seed K]
[--start ISO8601] [--realtime]

A synthetic collector: writes realistic coin_metrics rows (predictions/simulation.py) into the configured database
exactly as an external collector does, on its own connection, one committed multi-row INSERT at a time.

Left to itself a market of N coins produces about 0.05-0.07 rows per coin per simulated second (N=100: ~5-6 rows/s,
N=1000: ~50-65 rows/s). Without --realtime the simulated clock runs as fast as --rate allows; with it, one simulated
second passes per real second and --rate only caps bursts.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from predictions.demo_services import record_simulated_market
from predictions.simulation import COLUMNS, MarketSimulator
from pumpserver.database import open_connection

# Large enough to amortise round trips, small enough to keep each collector transaction (and its trigger) short.
MAX_ROWS_PER_STATEMENT = 500


@dataclass(frozen=True)
class Plan:
    coins: int
    rate: float
    duration: float | None
    rows: int | None
    seed: int
    start: datetime | None  # None with --realtime: the wall clock stamps the rows
    realtime: bool

    @property
    def rows_per_statement(self) -> int:
        # At most a tenth of a second's worth of rows per statement, so the cap also holds over short windows.
        return max(1, min(MAX_ROWS_PER_STATEMENT, math.ceil(self.rate / 10)))


class Command(BaseCommand):
    help = (
        "Simulate a pump.fun market: insert realistic coin_metrics rows as a collector would, at most --rate rows "
        "per second, for --duration seconds or exactly --rows rows. Ctrl-C stops after the current statement."
    )
    # It only needs the database: the web stack's system checks would slow every start and add nothing.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--coins", type=int, help="coins kept alive at once (dead coins are replaced)")
        parser.add_argument("--rate", type=float, help="at most this many rows per second of wall time")
        parser.add_argument("--duration", type=float, help="stop after this many seconds of wall time")
        parser.add_argument("--rows", type=int, help="stop after exactly this many rows")
        parser.add_argument("--seed", type=int, default=1, help="same seed, start and --coins give the same rows")
        parser.add_argument("--start", help="simulated clock start, ISO 8601 (default: now, UTC)")
        parser.add_argument(
            "--realtime",
            action="store_true",
            help="one simulated second per real second, rows stamped with the wall clock (--rate is then a cap)",
        )

    def handle(self, *args, **options):
        plan = _plan(options)
        collector = SyntheticCollector(plan)
        limit = f"{plan.rows} rows" if plan.rows is not None else f"{plan.duration:g} s"
        clock = "wall clock" if plan.realtime else f"simulated clock from {_iso(plan.start)}"
        self.stdout.write(
            f"simulate_market: {plan.coins} coins, seed {plan.seed}, at most {plan.rate:g} rows/s, {clock}, "
            f"stopping after {limit} (Ctrl-C stops early)"
        )
        # Recorded for the pages (the dashboard's demo banner): this database's market data is simulated.
        record = {"coins": plan.coins, "seed": plan.seed, "realtime": plan.realtime, "started_at": _now()}
        record_simulated_market(**record)
        try:
            with _stop_on_signals(collector.stop):
                try:
                    with open_connection(autocommit=True) as connection, psycopg.RawCursor(connection) as cursor:
                        collector.run(cursor)
                except psycopg.Error as exc:
                    reason = " ".join(str(exc).split()) or type(exc).__name__
                    raise CommandError(f"simulate_market stopped after {collector.rows} rows: {reason}") from None
        finally:
            with suppress(DatabaseError):  # the database went away: the record stays "running"
                record_simulated_market(**record, finished_at=_now(), rows=collector.rows)
        self.stdout.write(collector.summary())


class SyntheticCollector:
    """Inserts the simulator's rows as the collector would: one committed multi-row INSERT per flush cycle (split
    into chunks when large), paced to the rate, until the duration or row count is reached or a stop is asked."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.simulator = MarketSimulator(coins=plan.coins, seed=plan.seed)
        self.stop = threading.Event()
        self.rows = 0
        self.statements = 0
        self.first_timestamp: datetime | None = None
        self.last_timestamp: datetime | None = None
        self.started = self.finished = time.monotonic()

    def run(self, cursor: psycopg.RawCursor) -> None:
        plan = self.plan
        self.started = time.monotonic()
        deadline = self.started + plan.duration if plan.duration is not None else math.inf
        pacer = Pacer(plan.rate, self.stop, deadline)
        if plan.realtime:
            ticks = _wall_clock_ticks(self.simulator, self.stop, deadline)
        else:
            ticks = self.simulator.ticks(plan.start)
        try:
            for rows in ticks:
                if plan.rows is not None:
                    rows = rows[: plan.rows - self.rows]
                for first in range(0, len(rows), plan.rows_per_statement):
                    chunk = rows[first : first + plan.rows_per_statement]
                    if not pacer.wait_for(len(chunk)):
                        return
                    cursor.execute(_insert_statement(len(chunk)), [value for row in chunk for value in row])
                    self.rows += len(chunk)
                    self.statements += 1
                    self.first_timestamp = self.first_timestamp or chunk[0].timestamp
                    self.last_timestamp = chunk[-1].timestamp
                if self.rows == plan.rows or self.stop.is_set() or time.monotonic() >= deadline:
                    return
        finally:
            self.finished = time.monotonic()

    def summary(self) -> str:
        elapsed = self.finished - self.started
        simulated = f"{self.simulator.tick_count} simulated s"
        if self.first_timestamp:
            simulated += f" ({_iso(self.first_timestamp)} .. {_iso(self.last_timestamp)})"
        return (
            f"simulate_market: {self.rows} rows in {self.statements} statements, "
            f"{self.simulator.coins_born} coins born (+{self.plan.coins} at start, {self.simulator.coins_alive} "
            f"alive), {elapsed:.1f} s, {self.rows / elapsed if elapsed > 0 else 0:.0f} rows/s, {simulated}"
            + (", stopped by signal" if self.stop.is_set() else "")
        )


def _wall_clock_ticks(simulator: MarketSimulator, stop: threading.Event, deadline: float) -> Iterator[list]:
    """One simulated second per real second, stamped with the time the cycle runs (like the collector's flush)."""
    began = time.monotonic()
    while True:
        due = began + simulator.tick_count
        if due >= deadline or stop.wait(max(0.0, due - time.monotonic())):
            return
        yield simulator.step(datetime.now(timezone.utc))


class Pacer:
    """Keeps inserts at or below `rate` rows per second of wall time.

    A statement of n rows may go once n ÷ rate seconds have passed since the previous statement went; time spent
    idle earlier does not build up into a burst later.
    """

    def __init__(self, rate: float, stop: threading.Event, deadline: float):
        self.rate = rate
        self.stop = stop
        self.deadline = deadline
        self.previous_sent_at = time.monotonic()

    def wait_for(self, rows: int) -> bool:
        """Wait until `rows` rows may go; False if a stop was requested or the deadline comes first."""
        allowed_at = self.previous_sent_at + rows / self.rate
        if allowed_at > self.deadline:
            self.stop.wait(max(0.0, self.deadline - time.monotonic()))
            return False
        if self.stop.wait(max(0.0, allowed_at - time.monotonic())):
            return False
        self.previous_sent_at = time.monotonic()
        return True


_INSERT_INTO = "INSERT INTO coin_metrics ({}) VALUES ".format(", ".join(f'"{column}"' for column in COLUMNS))
# PostgreSQL's own $n placeholders (run on a RawCursor): psycopg re-parses long %s queries on every execution, which
# costs more than the insert itself at 500 rows × 30 columns.
_ROW_PLACEHOLDERS = [
    "(" + ", ".join(f"${row * len(COLUMNS) + column}" for column in range(1, len(COLUMNS) + 1)) + ")"
    for row in range(MAX_ROWS_PER_STATEMENT)
]


def _insert_statement(rows: int) -> str:
    """`INSERT INTO coin_metrics (<collector columns>) VALUES ($1, …, $30), ($31, …)` for `rows` rows."""
    return _INSERT_INTO + ", ".join(_ROW_PLACEHOLDERS[:rows])


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """SIGINT/SIGTERM only ask the loop to stop: the statement in flight finishes and the summary is printed."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers can only be set there
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _plan(options: dict) -> Plan:
    """Validated options; every problem is one readable CommandError line."""
    coins = _number(options, "coins", int, minimum=1, required=True)
    rate = _number(options, "rate", float, minimum=0, required=True, exclusive=True)
    duration = _number(options, "duration", float, minimum=0, exclusive=True)
    rows = _number(options, "rows", int, minimum=1)
    seed = _number(options, "seed", int, minimum=0)
    if (duration is None) == (rows is None):
        raise CommandError("give exactly one of --duration (seconds) or --rows (row count)")
    realtime = bool(options.get("realtime"))
    start = options.get("start")
    if realtime and start:
        raise CommandError("--start and --realtime exclude each other: with --realtime the wall clock stamps the rows")
    return Plan(
        coins=coins,
        rate=rate,
        duration=duration,
        rows=rows,
        seed=seed,
        start=None if realtime else _start_time(start),
        realtime=realtime,
    )


def _number(options: dict, name: str, kind: type, *, minimum: float, required=False, exclusive=False):
    value = options.get(name)
    if value is None:
        if required:
            raise CommandError(f"--{name} is required")
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or (kind is int and isinstance(value, float) and number != value):
        raise CommandError(f"--{name} must be {'a whole number' if kind is int else 'a number'}, not {value!r}")
    if not math.isfinite(number) or number < minimum or (exclusive and number == minimum):
        bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
        raise CommandError(f"--{name} must be {bound}, not {value!r}")
    return number


def _start_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        start = datetime.fromisoformat(str(value))
    except ValueError:
        raise CommandError(f"--start must be an ISO 8601 time such as 2025-01-01T00:00:00Z, not {value!r}") from None
    if start.tzinfo is None:  # a collector writes UTC; a naive time is read as UTC, not as the machine's zone
        start = start.replace(tzinfo=timezone.utc)
    return start.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else "-"
