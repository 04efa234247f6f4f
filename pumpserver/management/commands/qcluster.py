"""python manage.py qcluster — the worker process: django-q2's cluster, kept in the foreground.

Replaces django-q2's own command, which returns right after starting the cluster and leaves the interpreter
waiting for its children at exit, where SIGTERM kills it without stopping them (orphaned workers). Here the main
process stays in a loop: SIGTERM/SIGINT stop the cluster gracefully (tasks in hand finish), and it writes the
worker heartbeat that the health check reads. Worker sizing and memory: docs/operations.md, "Worker".
"""

import gc
import logging
import signal
import threading

# What the tasks' models need (drift, backtests, training), imported before the cluster forks so that every process
# shares it: inference imports these libraries only on first use, which in each forked worker would be a copy of
# its own (~150 MB).
import sklearn.ensemble  # noqa: F401
import skops.io  # noqa: F401
import xgboost  # noqa: F401
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections
from django_q.cluster import Cluster

from pumpserver.heartbeat import Heartbeat

logger = logging.getLogger("pumpserver.worker")


class Command(BaseCommand):
    help = "Start the django-q2 worker cluster; SIGTERM or SIGINT stops it after the tasks in hand."

    def add_arguments(self, parser):
        parser.add_argument("--run-once", action="store_true", help="start and stop again (a smoke test)")

    def handle(self, *args, run_once: bool, **options):
        stopping = threading.Event()
        cluster = Cluster()
        # Every process of the cluster is forked from this one and shares its pages (Django, the apps, numpy,
        # xgboost, scikit-learn: about 190 MB). A garbage collection writes to each object it scans, which would
        # copy the page holding it into the collecting process; frozen objects are never scanned again.
        gc.collect()
        gc.freeze()
        cluster.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        heartbeat = Heartbeat("worker")
        while not run_once and not stopping.is_set() and cluster.sentinel.is_alive():
            try:
                close_old_connections()
                heartbeat.beat()
            except DatabaseError as exc:  # the database restarts: keep the cluster, beat again later
                logger.warning("worker heartbeat failed: %s", exc)
            stopping.wait(1.0)
        cluster.stop()
        try:
            heartbeat.stop()
        except DatabaseError:
            pass
