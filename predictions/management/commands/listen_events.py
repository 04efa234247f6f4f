"""python manage.py listen_events — predict every new coin_metrics row with every active model.

Wakes on NOTIFY coin_metrics_insert, claims all queued rows at once (a busy system drains the queue in batches, an
idle one handles a single row immediately), and polls every POLLING_INTERVAL_SECONDS as a safety net. Several
listeners may run: claims use FOR UPDATE SKIP LOCKED. SIGTERM/SIGINT finish the batch in hand and exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection

from inference import ml_imports
from inference.history_cache import HistoryCache
from inference.scoring import return_freed_memory, share_one_heap
from modelregistry.serving import model_cache
from predictions import selectors
from predictions.collector_schema import CHANNEL
from predictions.services import Lanes, process_pending_batch
from pumpserver import metrics
from pumpserver.database import open_connection
from pumpserver.heartbeat import Heartbeat

logger = logging.getLogger("pumpserver.listener")

CONNECTION_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
MAX_BACKOFF_SECONDS = 30.0
WAIT_SLICE_SECONDS = 0.5  # how quickly a wait notices SIGTERM
TRIM_SECONDS = 10.0  # freed heap is given back to the operating system at most this often
LANE_RETRY_SECONDS = 0.05  # a lane with nothing to claim looks again this often while another lane is busy


class Command(BaseCommand):
    help = "Listen for new coin_metrics rows and predict them with every active model."
    # The system checks import the URLconf and with it every view, API and page module (and through them pandas,
    # scikit-learn, XGBoost: ~150 MB the listener would hold for nothing); the web process runs them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="process everything queued, then exit")
        parser.add_argument("--batch-size", type=int, default=None, help="most rows per batch (BATCH_SIZE)")
        parser.add_argument("--poll-interval", type=float, default=None, help="seconds (POLLING_INTERVAL_SECONDS)")
        parser.add_argument("--lanes", type=int, default=None, help="batches in flight at once, 1 to 8 (LISTENER_LANES)")

    def handle(self, *args, once: bool, batch_size: int | None, poll_interval: float | None, lanes: int | None,
               **options):
        self.batch_size = batch_size or settings.BATCH_SIZE
        self.poll_interval = poll_interval or settings.POLLING_INTERVAL_SECONDS
        lanes = settings.LISTENER_LANES if lanes is None else lanes
        if not 1 <= lanes <= settings.MAX_LISTENER_LANES:
            raise CommandError(f"--lanes must be between 1 and {settings.MAX_LISTENER_LANES}, not {lanes}")
        # With more than one lane, threads of their own (each with its own database connection) run batches side by
        # side; one lane runs in this thread, as it always did.
        self.lanes, self.pool = None, None
        if lanes > 1:
            share_one_heap()  # before the lane threads start
            self.lanes = Lanes()
            self.pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="lane")
        self.lane_count = lanes
        self.counter_lock = threading.Lock()
        self.stopping = False
        ml_imports.serve_only()  # before the first batch loads the models: ~65-95 MB less
        previous_handlers = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.cache = model_cache(size=settings.MODEL_CACHE_SIZE)
        self.histories = HistoryCache(
            limit=settings.FEATURE_HISTORY_SIZE,
            max_rows=settings.HISTORY_CACHE_MAX_ROWS,
            idle_seconds=settings.HISTORY_CACHE_IDLE_SECONDS,
            max_age_seconds=settings.HISTORY_CACHE_MAX_AGE_SECONDS,
        )
        self.heartbeat = Heartbeat("listener")
        self.doorbell: psycopg.Connection | None = None
        self.database_down_since: float | None = None
        self.predicted = 0
        self.next_trim = 0.0
        backoff = 1.0

        logger.info("listener started (batch size %d, poll every %.1fs, %d lane%s)", self.batch_size,
                    self.poll_interval, lanes, "" if lanes == 1 else "s")
        while not self.stopping:
            try:
                self._ensure_doorbell()
                drained = self._drain()
                self._database_is_back()
                backoff = 1.0
                if once:
                    break
                if not drained:
                    self._wait_for_doorbell()
            except CONNECTION_ERRORS as exc:
                self._database_is_down(exc)
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self._shutdown()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)

    def _stop(self, signum, frame):
        self.stopping = True

    def _drain(self) -> bool:
        """Process batches until the queue is empty (or we are asked to stop). True if anything was claimed."""
        if self.pool is None:
            claimed_any = self._drain_lane()
        else:
            # Every lane drains; all have finished before this returns, so that a database error (raised here, after
            # the others stopped) is handled while no lane uses the caches.
            futures = [self.pool.submit(self._drain_lane) for _ in range(self.lane_count)]
            wait(futures)
            claimed_any = any([future.result() for future in futures])
        metrics.QUEUE_DEPTH.set(selectors.queue_depth())
        return claimed_any

    def _drain_lane(self) -> bool:
        claimed_any = False
        try:
            while not self.stopping:
                close_old_connections()
                turn = self.lanes.turn() if self.lanes is not None else 0
                report = process_pending_batch(
                    limit=self.batch_size, cache=self.cache, history_limit=settings.FEATURE_HISTORY_SIZE,
                    history_cache=self.histories, lanes=self.lanes,
                )
                with self.counter_lock:
                    self.predicted += len(report.stored)
                self.heartbeat.beat(predicted=self.predicted, models_loaded=len(self.cache),
                                    history_rows=self.histories.rows, history_max_rows=self.histories.max_rows,
                                    history_entries=len(self.histories))
                if not report.claimed:
                    if self.lanes is not None and self.lanes.busy():
                        # Another lane's batch is in flight: rows arriving during it are this lane's to take.
                        self.lanes.wait_for_turn(after=turn, timeout=LANE_RETRY_SECONDS)
                        continue
                    break
                claimed_any = True
                if time.monotonic() >= self.next_trim:
                    # Feature arrays and history reads leave freed heap behind; glibc keeps it resident
                    # unless asked (~1-8 ms per call, so at most every TRIM_SECONDS).
                    self.next_trim = time.monotonic() + TRIM_SECONDS
                    return_freed_memory()
                logger.debug(
                    "batch: %d rows, %d coins, %d stored, %d capped, %d model failures",
                    report.claimed, report.coins, len(report.stored), len(report.capped), len(report.failures),
                )
                if report.claimed < self.batch_size and self.lanes is None:
                    break  # (a lane claims again at once: the queue is empty only if it then finds nothing)
        finally:
            if self.pool is not None:
                connection.close_if_unusable_or_obsolete()  # a lane's connection must not outlive a failure
        return claimed_any

    def _ensure_doorbell(self) -> None:
        if self.doorbell is None or self.doorbell.closed:
            self.doorbell = open_connection(autocommit=True, application_name="pump-listener")
            self.doorbell.execute(f"LISTEN {CHANNEL}")

    def _wait_for_doorbell(self) -> None:
        """Return on the first notification, at the poll interval, or soon after SIGTERM."""
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            rang = False
            for _ in self.doorbell.notifies(timeout=min(WAIT_SLICE_SECONDS, remaining), stop_after=1):
                rang = True
            if rang:
                # Swallow the doorbells that rang meanwhile: one drain covers them all.
                for _ in self.doorbell.notifies(timeout=0.001):
                    pass
                return

    def _database_is_down(self, exc: Exception) -> None:
        metrics.ERRORS.labels(type="db").inc()
        if self.database_down_since is None:
            self.database_down_since = time.monotonic()
            logger.error("database unavailable, retrying with backoff: %s", " ".join(str(exc).split()))
        for conn in (self.doorbell,):
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
        self.doorbell = None
        self.histories.clear()  # the database may come back as another one (failover, restore)
        try:
            connection.close()
        except DatabaseError:
            pass

    def _database_is_back(self) -> None:
        if self.database_down_since is not None:
            logger.warning("database reachable again after %.0fs; catching up", time.monotonic() - self.database_down_since)
            self.database_down_since = None

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(WAIT_SLICE_SECONDS, deadline - time.monotonic()))

    @staticmethod
    def _close_lane_connection(everyone: threading.Barrier) -> None:
        connection.close()
        everyone.wait(timeout=10)  # so that every lane thread takes one of these calls

    def _shutdown(self) -> None:
        if self.pool is not None:  # each lane closes its own connection (connections belong to their thread)
            everyone = threading.Barrier(self.lane_count)
            wait([self.pool.submit(self._close_lane_connection, everyone) for _ in range(self.lane_count)])
            self.pool.shutdown(wait=True)
        try:
            self.heartbeat.stop()
        except DatabaseError:
            pass
        if self.doorbell is not None:
            self.doorbell.close()
        logger.info("listener stopped after %d stored predictions", self.predicted)
