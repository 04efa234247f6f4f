"""Reads of the audit trail: entries newest first, filtered as the page, the admin and `GET /api/audit` offer."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from audit.models import AuditEntry


def entries(*, object_type: str | None = None, object_id: str | None = None, door: str | None = None,
            user: str | None = None, since: datetime | None = None) -> QuerySet[AuditEntry]:
    """Entries newest first; every filter given narrows them (`user` is the username, kept after a user is deleted)."""
    found = AuditEntry.objects.all()
    if object_type:
        found = found.filter(object_type=object_type)
    if object_id not in (None, ""):
        found = found.filter(object_id=str(object_id))
    if door:
        found = found.filter(door=door)
    if user:
        found = found.filter(username=user)
    if since is not None:
        found = found.filter(at__gte=since)
    return found.order_by("-at", "-id")


def object_types() -> list[str]:
    """The object types that have entries (the page's filter choices)."""
    return list(AuditEntry.objects.exclude(object_type="").order_by("object_type").values_list("object_type", flat=True)
                .distinct())
