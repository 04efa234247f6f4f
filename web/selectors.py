"""Reads for the monitoring endpoints and the info page: health (cheap, polled by container health checks), the
log tail, process heartbeats and the installation's versions."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timedelta
from pathlib import Path

import django
from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection, transaction
from django.utils import timezone

from modelregistry.models import ActiveModel
from predictions import selectors as prediction_selectors
from predictions.models import ModelPrediction
from pumpserver.models import ProcessHeartbeat

DEFAULT_HEARTBEAT_STALE_SECONDS = 30
QUEUE_DEPTH_CAP = prediction_selectors.QUEUE_DEPTH_CAP  # the health check counts queued rows up to this many
HEALTH_STATEMENT_TIMEOUT_MS = 2000


def _process_start_time() -> float:
    """This process's start as a Unix time (from /proc; the import time where /proc is not available)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        with open("/proc/stat", encoding="ascii") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


PROCESS_START_TIME = _process_start_time()


def heartbeat_stale_seconds() -> float:
    return float(getattr(settings, "HEARTBEAT_STALE_SECONDS", DEFAULT_HEARTBEAT_STALE_SECONDS))


def _process_check(beats: list[dict], kind: str, live_after: datetime) -> dict:
    mine = [beat for beat in beats if beat["kind"] == kind]
    live = [beat for beat in mine if beat["last_seen"] >= live_after]
    return {
        "alive": bool(live),
        "last_seen": max((beat["last_seen"] for beat in mine), default=None),
        "count": len(live),
    }


def _database_checks(now: datetime, live_after: datetime) -> dict:
    """Every database figure the health check shows, in one short transaction with a statement timeout."""
    started = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {HEALTH_STATEMENT_TIMEOUT_MS}")
            cursor.execute("SELECT 1")
            cursor.fetchone()
        latency_ms = (time.perf_counter() - started) * 1000
        # Every model (few rows) with its live-quality flag: a degraded model may be paused by then.
        models = list(ActiveModel.objects.values_list("id", "is_active", "load_error", "quality_settings__degraded"))
        active = [(pk, error) for pk, is_active, error, _ in models if is_active]
        degraded = sorted(pk for pk, _, _, flagged in models if flagged)
        # created_at index (predictions_created_idx): a range scan over one hour of rows.
        last_hour = ModelPrediction.objects.filter(created_at__gte=now - timedelta(hours=1)).count()
        beats = list(ProcessHeartbeat.objects.values("kind", "last_seen", "details"))
        queue_depth = prediction_selectors.queue_depth()
    loaded = [
        beat["details"].get("models_loaded")
        for beat in beats
        if beat["kind"] == "listener" and beat["last_seen"] >= live_after and isinstance(beat["details"], dict)
    ]
    return {
        "latency_ms": round(latency_ms, 3),
        "active_models": len(active),
        "errored": sorted(pk for pk, error in active if error),
        "predictions_last_hour": last_hour,
        "beats": beats,
        "loaded": max((n for n in loaded if isinstance(n, int) and not isinstance(n, bool)), default=0),
        "queue_depth": queue_depth,
        "degraded_models": degraded,
    }


def health() -> dict:
    """The health report: `status` is healthy when the database answers and a listener and a worker beat lately.

    Never raises for a database failure: that is what it reports.
    """
    now = timezone.now()
    stale = heartbeat_stale_seconds()
    live_after = now - timedelta(seconds=stale)
    problems: list[str] = []
    try:
        figures = _database_checks(now, live_after)
    except (DatabaseError, InterfaceError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        problems.append(f"database: {reason}")
        figures = None
        try:
            connection.close()  # a broken connection must not be reused by the next request
        except (DatabaseError, InterfaceError):
            pass
    if figures is None:
        listener = worker = {"alive": False, "last_seen": None, "count": 0}
    else:
        listener = _process_check(figures["beats"], "listener", live_after)
        worker = _process_check(figures["beats"], "worker", live_after)
        for name, check in (("listener", listener), ("worker", worker)):
            if not check["alive"]:
                seen = check["last_seen"].isoformat() if check["last_seen"] else "never"
                problems.append(f"no {name} heartbeat within {stale:g} s (last seen: {seen})")
    uptime = max(0, int(time.time() - PROCESS_START_TIME))
    return {
        "status": "degraded" if problems else "healthy",
        "db_connected": figures is not None,
        "active_models": figures["active_models"] if figures else 0,
        "predictions_last_hour": figures["predictions_last_hour"] if figures else 0,
        "degraded_models": figures["degraded_models"] if figures else [],
        "uptime_seconds": uptime,
        "start_time": PROCESS_START_TIME,
        "last_error": "; ".join(problems) or None,
        "checks": {
            "database": {"connected": figures is not None, "latency_ms": figures["latency_ms"] if figures else None},
            "listener": listener,
            "worker": worker,
            "models": {
                "active": figures["active_models"] if figures else 0,
                "loaded": figures["loaded"] if figures else 0,
                "errored": figures["errored"] if figures else [],
            },
            "queue_depth": figures["queue_depth"] if figures else None,
        },
    }


# --- logs ----------------------------------------------------------------------------------------------------------

LOG_TAIL_MAX = 10_000
_BLOCK = 64 * 1024


def log_file() -> Path | None:
    configured = getattr(settings, "LOG_FILE", None)
    return Path(configured) if configured else None


def log_tail(*, lines: int) -> str:
    """The last `lines` lines of LOG_FILE (read backwards in blocks, never the whole file), or a one-line hint."""
    path = log_file()
    if path is None:
        return (
            "No LOG_FILE is configured: each process (web, listener, worker) logs to its standard error; "
            "read it with journalctl, docker logs or your process manager.\n"
        )
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = handle.tell()
            data = b""
            while position > 0 and data.count(b"\n") <= lines:
                step = min(_BLOCK, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except OSError as exc:
        return f"The log file {path} cannot be read: {exc.strerror or exc}\n"
    tail = data.splitlines()[-lines:]
    text = b"\n".join(tail).decode("utf-8", errors="replace")
    return text + "\n" if text else ""


def process_heartbeats(*, now: datetime | None = None) -> list[dict]:
    """Every process that wrote a heartbeat (web, listener, worker), with `alive` (seen within the stale limit)."""
    now = now or timezone.now()
    live_after = now - timedelta(seconds=heartbeat_stale_seconds())
    beats = list(
        ProcessHeartbeat.objects.order_by("kind", "name").values(
            "name", "kind", "hostname", "pid", "started_at", "last_seen", "details"
        )
    )
    for beat in beats:
        beat["alive"] = beat["last_seen"] >= live_after
        beat["seconds_ago"] = max(0, int((now - beat["last_seen"]).total_seconds()))
    return beats


def version_info() -> dict:
    """What the info page shows about this installation: versions, commit, database kind."""
    commit = None
    git_dir = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = git_dir / head[5:]
            commit = ref.read_text().strip() if ref.exists() else None
        else:
            commit = head
    except OSError:
        commit = None
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        "version": settings.SPECTACULAR_SETTINGS.get("VERSION", "?"),
        "commit": commit[:12] if commit else None,
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgres": postgres,
        "database": "embedded" if getattr(settings, "USING_EMBEDDED_DATABASE", False) else "DATABASE_URL",
    }
