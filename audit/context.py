"""Who is acting: the door a write came through, the user and the hash of the API key they presented.

The doors set it (audit.middleware for HTTP, the MCP server around a tool call, manage.py for management
commands); audit.services reads it when a service records a change. Work that no door started (the listener, the
worker's schedules) has no actor, and its writes are not recorded.
"""

from __future__ import annotations

import getpass
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import models


class Door(models.TextChoices):
    PAGE = "page", "page"
    REST = "rest", "REST API"
    MCP = "mcp", "MCP"
    ADMIN = "admin", "Django admin"
    COMMAND = "command", "management command"


@dataclass(frozen=True)
class Actor:
    door: str
    # A user, or a callable giving one: over HTTP, DRF authenticates a token only inside the view, after the
    # middleware has set the actor, so the user is looked up when an entry is written.
    user: Any = None
    token_hash: str = ""
    username: str = ""
    user_id: int | None = None  # when only the id is at hand (the MCP caller); `user` wins when both are given
    target: str = ""  # what was called: "POST /api/config", an MCP tool's name, a command's name
    # Refusals already recorded while this actor acted (a scope check records its own, naming the missing scope;
    # the HTTP middleware then does not record the 403 a second time).
    refusals: list = field(default_factory=list, compare=False)

    def resolved_user(self):
        user = self.user() if callable(self.user) else self.user
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        return user


_current: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def current_actor() -> Actor | None:
    return _current.get()


@contextmanager
def acting(*, door: str, user: Any = None, token_hash: str = "", username: str = "", user_id: int | None = None,
           target: str = ""):
    """Everything recorded inside the block is attributed to this door, user and token (and call target)."""
    actor = Actor(door=door, user=user, token_hash=token_hash or "", username=username or "", user_id=user_id,
                  target=target)
    marker = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(marker)


def operator_name() -> str:
    """Who runs a management command: the operating-system account (a command has no Django user)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (e.g. some containers)
        return ""
