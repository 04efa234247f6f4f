"""The kernel's own tables: settings operators change at run time, the liveness of every process, API tokens."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone


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


class ApiToken(models.Model):
    """An API key of a user, kept only as its SHA-256 hash (pumpserver.tokens issues and checks them).

    `scopes` (pumpserver.scopes) say what the key may do; `model_ids`, when set, the only models it may touch.
    """

    name = models.CharField(max_length=100, blank=True, default="")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex of the key; the key is not kept")
    prefix = models.CharField(max_length=12, help_text="the key's first characters, to recognise it")
    scopes = ArrayField(models.CharField(max_length=10), help_text="read, operate, admin")
    model_ids = ArrayField(models.BigIntegerField(), null=True, blank=True,
                           help_text="the only models the token may touch; empty: every model")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty: never expires")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(scopes__contained_by=["read", "operate", "admin"]) & Q(scopes__len__gt=0),
                                   name="api_tokens_known_scopes"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'}, {self.user_id})"

    def state(self, *, now=None) -> str:
        """active, expired or revoked."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
