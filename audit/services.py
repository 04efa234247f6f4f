"""Writes of the audit trail: changes made through a door, MCP tool calls, refused calls, retention.

Services of the other apps call `record_change` (or `record_object_change`) right where they write, inside their
transaction, so a page, the REST endpoint and the MCP tool of one action are recorded in one place. Nothing is
recorded without an actor (audit.context): the listener's and the worker's own writes are not door writes.
"""

from __future__ import annotations

import math
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import models
from django.utils import timezone

from audit.context import Actor, current_actor
from audit.models import AuditEntry

# Field names whose values never enter the trail; a change shows as "(changed)".
SECRET_MARKERS = ("password", "secret", "api_key", "token_key")
MASK = "***"
DELETE_BATCH = 5_000


def plain(value):
    """A JSON value for before/after: ISO-8601 times, Decimals as numbers, everything unknown as text."""
    if isinstance(value, dict):
        return {plain(str(key)): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")  # jsonb cannot hold U+0000 (a call's arguments may)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return plain(float(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, models.Model):
        return value.pk
    return str(value)


def _is_secret(name: str) -> bool:
    return any(marker in name.lower() for marker in SECRET_MARKERS)


def snapshot(obj: models.Model, *, fields: tuple[str, ...] | None = None) -> dict:
    """The stored field values of a model instance (foreign keys as ids, secrets masked)."""
    values = {}
    for field in obj._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        name = field.name if not field.is_relation else field.attname
        value = field.value_from_object(obj)
        if isinstance(field, models.FileField):
            value = value.name if value else None
        values[name] = MASK if _is_secret(name) and value not in (None, "") else plain(value)
    return values


def changed(before: dict | None, after: dict | None) -> tuple[dict, dict]:
    """Only the keys whose values differ, from both sides (a masked secret that changed shows "(changed)")."""
    before, after = before or {}, after or {}
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    old = {key: before.get(key) for key in keys}
    new = {key: after.get(key) for key in keys}
    for key in keys:
        if _is_secret(key):
            old[key], new[key] = MASK, "(changed)"
    return old, new


def _entry_fields(actor: Actor) -> dict:
    """Who: the door, the user (as a row and as text), the token's hash."""
    user = actor.resolved_user()
    if user is not None:
        return {"door": actor.door, "user": user, "username": user.get_username(), "token_hash": actor.token_hash}
    return {"door": actor.door, "user_id": actor.user_id, "username": actor.username, "token_hash": actor.token_hash}


def _entry(actor: Actor, **fields) -> AuditEntry:
    return AuditEntry.objects.create(**_entry_fields(actor), **fields)


def record_change(*, action: str, object_type: str, object_id, before: dict | None = None,
                  after: dict | None = None, target: str = "") -> AuditEntry | None:
    """Record one write by the current actor; None (nothing recorded) when no door is acting.

    For an update pass full snapshots: only the fields that differ are kept.
    """
    actor = current_actor()
    if actor is None:
        return None
    before, after = plain(before), plain(after)
    if action == "update" and isinstance(before, dict) and isinstance(after, dict):
        before, after = changed(before, after)
    object_id = "" if object_id is None else str(object_id)
    return _entry(actor, action=action, object_type=object_type, object_id=object_id[:255], before=before,
                  after=after, target=(target or actor.target)[:500])


def object_type_of(obj_or_model) -> str:
    return obj_or_model._meta.label_lower


def record_object_change(*, action: str, obj: models.Model, before: dict | None = None, after: dict | None = None,
                         target: str = "") -> AuditEntry | None:
    """`record_change` for a model instance: its type label (e.g. `modelregistry.activemodel`) and primary key."""
    return record_change(action=action, object_type=object_type_of(obj), object_id=obj.pk, before=before,
                         after=after, target=target)


def record_created(obj: models.Model, *, target: str = "") -> AuditEntry | None:
    return record_object_change(action="create", obj=obj, after=snapshot(obj), target=target)


def record_deleted(obj: models.Model, *, object_id=None, before: dict | None = None,
                   target: str = "") -> AuditEntry | None:
    """Call with the snapshot taken before the delete (`before`), or before deleting (the pk is gone after)."""
    return record_change(action="delete", object_type=object_type_of(obj),
                         object_id=object_id if object_id is not None else obj.pk,
                         before=before if before is not None else snapshot(obj), target=target)


@contextmanager
def tracking(obj: models.Model, *, fields: tuple[str, ...] | None = None, target: str = ""):
    """Record the update the block makes to `obj` (snapshots before and after; only changed fields are kept)."""
    before = snapshot(obj, fields=fields) if current_actor() is not None else None
    yield
    if before is not None:
        record_object_change(action="update", obj=obj, before=before, after=snapshot(obj, fields=fields),
                             target=target)


def record_deleted_many(queryset) -> int:
    """One delete entry per object of `queryset` (call before deleting it), written in batches; the count."""
    actor = current_actor()
    if actor is None:
        return 0
    template = _entry_fields(actor)
    object_type = object_type_of(queryset.model)
    count, batch = 0, []
    for obj in queryset.iterator(chunk_size=DELETE_BATCH):
        batch.append(AuditEntry(**template, action="delete", object_type=object_type, object_id=str(obj.pk)[:255],
                                before=snapshot(obj), target=actor.target[:500]))
        if len(batch) >= DELETE_BATCH:
            count += len(AuditEntry.objects.bulk_create(batch))
            batch = []
    return count + len(AuditEntry.objects.bulk_create(batch))


def record_call(*, tool: str, arguments: dict, error: str = "") -> AuditEntry | None:
    """An MCP tool call that may change something: the tool, its arguments, the caller's token, and the error text
    when it failed (then nothing changed)."""
    actor = current_actor()
    if actor is None:
        return None
    after = {"arguments": plain(arguments), "outcome": "error" if error else "ok"}
    if error:
        after["error"] = error[:1000]
    return _entry(actor, action="call", target=tool, after=after)


def record_refusal(*, door: str, user=None, token_hash: str = "", target: str, missing_scope: str = "",
                   username: str = "", user_id: int | None = None) -> AuditEntry:
    """A refused call through any door (no or a bad token, a missing scope); recorded with or without an actor.
    `user` may be a user, None or an anonymous user; `user_id`/`username` serve when only those are at hand."""
    entry = _entry(Actor(door=door, user=user, token_hash=token_hash or "", username=username, user_id=user_id),
                   action="refused",
                   target=(target or "")[:500], allowed=False, missing_scope=missing_scope or "")
    acting_now = current_actor()
    if acting_now is not None:
        acting_now.refusals.append(entry)
    return entry


def delete_older_than(*, days: int, now: datetime | None = None, batch_size: int = DELETE_BATCH) -> int:
    """Retention: delete entries older than `days` in batches (short statements, no long lock); the count deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(AuditEntry.objects.filter(at__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += AuditEntry.objects.filter(id__in=ids).delete()[0]
