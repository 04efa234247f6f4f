"""Request limits of the REST API and MCP: a rate per token and per minute, and bounded request bodies.

Rate: every request to /api/… (ApiLimitsMiddleware) and to the MCP transports (web.mcp.transport) counts against a
key: the SHA-256 of the presented token (valid or not: guessing keys costs requests too), else the session's user,
else the client address. At most API_RATE_LIMIT requests per key per fixed minute (0: no limit); beyond, 429 with
`Retry-After` (seconds to the next window). The counter is shared by every web process: one row per key in the
UNLOGGED table request_rate_counters, counted with one INSERT … ON CONFLICT DO UPDATE … RETURNING per request.
Health and metrics endpoints are never counted (views say so with `rate_limited = False`; MCP's helper routes).

Bodies: a body over API_MAX_BODY_BYTES answers 413 (Content-Length is checked before anything reads the body;
Django's DATA_UPLOAD_MAX_MEMORY_SIZE is the same number, so form data read later is bounded alike). A view that
takes larger bodies (model uploads: MODEL_UPLOAD_MAX_BYTES) says so with a `body_limit()` static method.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse

from pumpserver.tokens import key_hash, presented_key

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60  # API_RATE_LIMIT is per minute

# The window starts on the database's clock, so web processes on several hosts share windows whatever their clocks.
COUNT_SQL = """
INSERT INTO request_rate_counters AS counter (key, window_start, hits)
VALUES (%(key)s, floor(extract(epoch FROM clock_timestamp()) / %(window)s)::bigint * %(window)s, 1)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN counter.window_start = excluded.window_start THEN counter.hits + 1 ELSE 1 END,
    window_start = excluded.window_start
RETURNING hits, ceil(window_start + %(window)s - extract(epoch FROM clock_timestamp()))::int
"""

# Keys not seen for a whole window (clients that went away) are deleted once per window per process.
CLEANUP_SQL = """
DELETE FROM request_rate_counters
WHERE window_start < floor(extract(epoch FROM clock_timestamp()) / %(window)s)::bigint * %(window)s - %(window)s
"""

_last_cleanup_window: int | None = None


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    hits: int = 0
    retry_after: int = 0  # seconds until the key's next window


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    setting: str  # the environment variable that sets it, named in the 413 answer


def rate_key(*, token: str | None, user_id: int | None = None, client_address: str | None = None) -> str:
    """Whom a request counts against: the token's SHA-256 hash, else the user, else the client address."""
    if token:
        return "token:" + key_hash(token)  # as tokens are stored: the key itself is never written
    if user_id is not None:
        return f"user:{user_id}"
    return f"address:{client_address or 'unknown'}"


def count_request(*, key: str) -> RateDecision:
    """Count one request of `key` in its current window; allowed while the count stays within API_RATE_LIMIT.

    Fails open: if the counter cannot be written (database down), the request goes on and the endpoint reports
    the database problem itself.
    """
    limit = settings.API_RATE_LIMIT
    if limit <= 0:
        return RateDecision(allowed=True, limit=0)
    try:
        with connection.cursor() as cursor:
            cursor.execute(COUNT_SQL, {"key": key, "window": WINDOW_SECONDS})
            hits, seconds_left = cursor.fetchone()
            _cleanup_once_per_window(cursor)
    except DatabaseError as exc:
        logger.warning("request rate not counted (the request goes on): %s", exc)
        return RateDecision(allowed=True, limit=limit)
    return RateDecision(allowed=hits <= limit, limit=limit, hits=hits, retry_after=max(1, seconds_left))


def _cleanup_once_per_window(cursor) -> None:
    """Delete expired keys at most once per window in this process (the windows themselves follow the database's
    clock; this only paces the cleanup)."""
    global _last_cleanup_window
    window = int(time.monotonic() // WINDOW_SECONDS)
    if window != _last_cleanup_window:
        _last_cleanup_window = window
        cursor.execute(CLEANUP_SQL, {"window": WINDOW_SECONDS})


def too_many_requests(decision: RateDecision) -> tuple[dict, dict[str, str]]:
    """The 429 answer's JSON body and headers (one wording for REST and MCP)."""
    body = {
        "detail": f"Rate limit exceeded: at most {decision.limit} requests per minute per token (API_RATE_LIMIT). "
        f"Try again in {decision.retry_after} s.",
        "limit": decision.limit,
        "window_seconds": WINDOW_SECONDS,
        "retry_after": decision.retry_after,
    }
    return body, {"Retry-After": str(decision.retry_after)}


def default_body_limit() -> BodyLimit:
    return BodyLimit(max_bytes=settings.API_MAX_BODY_BYTES, setting="API_MAX_BODY_BYTES")


def model_upload_limit() -> BodyLimit:
    """A model upload request (the file with its metadata), on the REST API and the upload page."""
    return BodyLimit(max_bytes=settings.MODEL_UPLOAD_MAX_BYTES, setting="MODEL_UPLOAD_MAX_BYTES")


def too_large(limit: BodyLimit, size: int | None = None, *, what: str = "Request body") -> str:
    sent = f"{size} bytes; " if size is not None else ""
    return f"{what} too large: {sent}the limit is {limit.max_bytes} bytes ({limit.setting})."


def body_too_large(limit: BodyLimit, size: int | None = None) -> dict:
    """The 413 answer's JSON body (one wording for REST and MCP)."""
    return {"detail": too_large(limit, size), "limit_bytes": limit.max_bytes, "setting": limit.setting}


def declared_length(value: str | None) -> int | None:
    """A Content-Length header's value; None when missing or not a number."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ApiLimitsMiddleware:
    """Rate and body limits for /api/…: after authentication (the session's user is known), before the view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.path_info.startswith("/api/"):
            return None
        view_class = getattr(view_func, "view_class", None) or getattr(view_func, "cls", None) or view_func
        if getattr(view_class, "rate_limited", True):
            decision = count_request(key=self.key(request))
            if not decision.allowed:
                body, headers = too_many_requests(decision)
                return JsonResponse(body, status=429, headers=headers)
        limit = view_class.body_limit() if hasattr(view_class, "body_limit") else default_body_limit()
        size = declared_length(request.META.get("CONTENT_LENGTH"))
        if size is not None and size > limit.max_bytes:
            return JsonResponse(body_too_large(limit, size), status=413)
        return None

    @staticmethod
    def key(request) -> str:
        token = presented_key(request.META.get("HTTP_AUTHORIZATION"))
        user = getattr(request, "user", None)
        user_id = user.pk if token is None and user is not None and user.is_authenticated else None
        return rate_key(token=token, user_id=user_id, client_address=request.META.get("REMOTE_ADDR"))
