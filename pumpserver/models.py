"""The kernel's own tables: settings operators change at run time, and the liveness of every process."""

from django.db import models
from django.db.models import Q


class RuntimeSetting(models.Model):
    """One persisted UI setting (the existing server's `ui_config.json`, one row per key).

    Read at use time by every process (see pumpserver.config), so a change needs no restart. Operators write only
    the keys pumpserver.config.EDITABLE_KEYS; besides them, `simulated_market` is a status record written by
    `simulate_market` (predictions.demo_services) and shown by the pages.
    """

    key = models.CharField(max_length=100, primary_key=True)
    value = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "runtime_settings"
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class ProcessKind(models.TextChoices):
    WEB = "web", "web"
    LISTENER = "listener", "listener"
    WORKER = "worker", "worker"


class ProcessHeartbeat(models.Model):
    """Each long-running process writes its heartbeat here; health checks read liveness from it."""

    name = models.CharField(max_length=200, unique=True, help_text="kind@host:pid")
    kind = models.CharField(max_length=10, choices=ProcessKind.choices)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "process_heartbeats"
        ordering = ["kind", "name"]
        constraints = [models.CheckConstraint(condition=Q(kind__in=ProcessKind.values), name="heartbeats_kind")]

    def __str__(self) -> str:
        return self.name
