"""The audit trail: one row per write through a door (page, REST, MCP, admin, command) and per refused call."""

from django.conf import settings
from django.db import models

from audit.context import Door


class AuditEntry(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The user is kept as text too, so an entry still names its author after the account is deleted.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    username = models.CharField(max_length=150, blank=True, default="")
    token_hash = models.CharField(max_length=64, blank=True, default="", help_text="SHA-256 hex of the API key used")
    door = models.CharField(max_length=10, choices=Door.choices)
    action = models.CharField(max_length=40, help_text="create, update, delete, call, refused, …")
    object_type = models.CharField(max_length=100, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    target = models.CharField(max_length=500, blank=True, default="", help_text="endpoint path or MCP tool name")
    allowed = models.BooleanField(default=True)
    missing_scope = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ("-at", "-id")
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=("object_type", "object_id", "-at"), name="audit_object_at"),
            models.Index(fields=("door", "-at"), name="audit_door_at"),
            models.Index(fields=("user", "-at"), name="audit_user_at"),
            models.Index(fields=("username", "-at"), name="audit_username_at"),
        ]

    def __str__(self) -> str:
        subject = f"{self.object_type} {self.object_id}".strip() or self.target
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} via {self.door}: {self.action} {subject}"
