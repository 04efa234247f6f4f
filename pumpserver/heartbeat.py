"""Liveness of long-running processes, written to process_heartbeats and read by the health checks."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from pumpserver.models import ProcessHeartbeat


class Heartbeat:
    """Upserts this process's row at most every `interval` seconds; removed on a clean exit."""

    def __init__(self, kind: str, *, interval: float = 5.0):
        self.kind = kind
        self.interval = interval
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.name = f"{kind}@{self.hostname}:{self.pid}"
        self.started_at = timezone.now()
        self._last_beat = 0.0

    def beat(self, *, force: bool = False, **details) -> None:
        if not force and time.monotonic() - self._last_beat < self.interval:
            return
        ProcessHeartbeat.objects.update_or_create(
            name=self.name,
            defaults={
                "kind": self.kind,
                "hostname": self.hostname,
                "pid": self.pid,
                "started_at": self.started_at,
                "last_seen": timezone.now(),
                "details": details,
            },
        )
        self._last_beat = time.monotonic()

    def stop(self) -> None:
        ProcessHeartbeat.objects.filter(name=self.name).delete()


def alive(kind: str) -> bool:
    """Whether a process of `kind` (a ProcessKind) has beaten within HEARTBEAT_STALE_SECONDS."""
    since = timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)
    return ProcessHeartbeat.objects.filter(kind=kind, last_seen__gte=since).exists()
