"""The HTTP doors: every request runs as an actor (`/api/` → rest, `/admin/` → admin, other pages → page), and a
refused API call (401/403) is recorded."""

from __future__ import annotations

from audit.context import acting
from audit.models import Door
from audit.services import record_refusal
from pumpserver.tokens import key_hash, presented_key

REFUSED = (401, 403)


def door_of(path: str) -> str:
    if path.startswith("/api/"):
        return Door.REST
    if path.startswith("/admin/"):
        return Door.ADMIN
    return Door.PAGE


class AuditActorMiddleware:
    """Sets the actor for the request. The user is read when an entry is written: DRF authenticates a token inside
    the view and then sets `request.user` on the Django request this middleware holds."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        door = door_of(request.path_info)
        token_hash = key_hash(presented_key(request.headers.get("Authorization")))
        target = f"{request.method} {request.path_info}"
        with acting(door=door, user=lambda: getattr(request, "user", None), token_hash=token_hash,
                    target=target) as actor:
            response = self.get_response(request)
        if door == Door.REST and response.status_code in REFUSED and not actor.refusals:
            user = getattr(request, "user", None)
            record_refusal(door=door, user=user if getattr(user, "is_authenticated", False) else None,
                           token_hash=token_hash, target=target)
        return response
