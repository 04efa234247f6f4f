"""Writes the kernel makes for a caller (runtime configuration, the admin password, API tokens), announced as a
signal: the audit trail sits in a layer above the kernel and records them from its receiver (audit.apps)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with: action ("create", "update", "delete", …), object_type, object_id, before and after (dicts or None).
changed = Signal()


def announce(*, action: str, object_type: str, object_id, before: dict | None = None,
             after: dict | None = None) -> None:
    changed.send(sender=None, action=action, object_type=object_type, object_id=object_id, before=before,
                 after=after)
