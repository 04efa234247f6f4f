"""MCP over HTTP, mounted in the ASGI application beside Django: guards, the SSE transport on Channels, Streamable HTTP.

Routes (see `mcp_routes`, used by pumpserver.asgi):

* `GET /mcp/sse`: the HTTP+SSE transport (protocol 2024-11-05). A Channels consumer holds the event stream; its first
  event (`endpoint`) carries the RELATIVE message URL `/mcp/messages/?session_id=<id>`. The MCP session itself is the
  SDK's server loop (`Server.run`) fed through memory streams.
* `POST /mcp/messages/?session_id=…`: one JSON-RPC message for an SSE session, answered 202. The message travels
  over the Channels layer to the consumer that holds the stream (group `mcp-sse.<id>`), which acknowledges it on a
  reply channel. With the in-memory layer (the default) that is the same process; with a shared layer (Redis,
  `REDIS_URL`) the POST may reach any web process. Without a shared layer, several web processes need sticky
  sessions (the same client always on the same process).
* `POST|GET|DELETE /mcp` and `/mcp/`: Streamable HTTP via the SDK's `StreamableHTTPSessionManager`, stateless with
  JSON answers (as the existing server), so any web process can answer any request.
* `GET /mcp/info`, `GET /mcp/health`: helper routes (open like /api/health when HEALTH_PUBLIC, else token).

Every MCP route first checks the Host and Origin headers (DNS-rebinding protection: no Origin, or one whose host is
in ALLOWED_HOSTS, else 403) and then the API token (`Authorization: Bearer <key>`, or `Token <key>`; else 401),
before the SDK sees the request. Between the two, every route but the helper routes counts the request against the
token's rate (pumpserver.limits: 429 with Retry-After beyond API_RATE_LIMIT per minute, shared with the REST API);
after them a POST body is read up to API_MAX_BODY_BYTES (413 beyond) before the transport sees it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import mcp_types as types
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.urls import path, re_path
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from pydantic import ValidationError
from starlette.requests import Request

from audit.models import Door
from audit.services import record_refusal
from pumpserver import limits
from pumpserver.scopes import Access, access_of_token
from pumpserver.tokens import TokenRefused, key_hash, presented_key, token_for_key
from web.mcp import server as mcp_server

logger = logging.getLogger("web.mcp")

SSE_PATH = "/mcp/sse"
MESSAGES_PATH = "/mcp/messages/"
STREAMABLE_PATH = "/mcp/"
SSE_KEEPALIVE_SECONDS = 15  # comment lines keep proxies from closing an idle stream
ACK_TIMEOUT_SECONDS = 5.0  # how long a POST waits for the stream's process to take its message
SESSION_READ_BUFFER = 32  # client messages queued for one session before the relay waits

# SSE sessions whose stream this process holds: session id → owner's user id (the relay still goes over Channels;
# this only lets a single-process setup answer 404 at once for a session that does not exist).
LOCAL_SSE_SESSIONS: dict[str, int] = {}


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    token_hash: str = ""  # SHA-256 hex of the presented key: how the audit trail names the token
    token_id: int | None = None  # an SSE session belongs to the token that opened it
    access: Access | None = None  # the token's scopes and models (web.mcp.scopes)


# --- small ASGI helpers -------------------------------------------------------------------------------------------


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _drain_body(receive) -> None:
    """Read and discard a request body we refuse, so the server can reuse the connection."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def send_json(send, status: int, data, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(data, default=str).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


async def send_text(send, status: int, text: str, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


# --- guards: Host/Origin, token ------------------------------------------------------------------------------------


def _allowed_hosts() -> list[str]:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # Django's own DEBUG default
    return allowed


def host_allowed(scope) -> bool:
    host = _header(scope, b"host")
    if not host:
        return False
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, _allowed_hosts())


def origin_allowed(scope) -> bool:
    """No Origin (a non-browser client) is fine; a browser's Origin must name one of ALLOWED_HOSTS."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not hostname:
        return False  # includes the opaque origin "null"
    if ":" in hostname:
        hostname = f"[{hostname}]"  # ALLOWED_HOSTS spells IPv6 addresses in brackets
    return validate_host(hostname.lower(), _allowed_hosts())


def _token_key(scope) -> str | None:
    return presented_key(_header(scope, b"authorization"))


def _caller_for_key(key: str) -> Caller | str:
    """The caller a key stands for, or why the key is refused (unknown, expired, revoked, inactive user)."""
    try:
        token = token_for_key(key=key)
    except TokenRefused as exc:
        return str(exc)
    return Caller(user_id=token.user_id, username=token.user.get_username(), token_hash=token.key_hash,
                  token_id=token.pk, access=access_of_token(token))


async def authenticate(scope) -> Caller | str:
    key = _token_key(scope)
    if not key:
        return "Authentication required: send an API token as 'Authorization: Bearer <key>'."
    return await mcp_server.in_thread(_caller_for_key, key)


async def _record_refusal(scope) -> None:
    """A refused MCP request in the audit trail: the path and the hash of the key presented, if any."""
    target = f"{scope['method']} {scope.get('path', '')}"
    await mcp_server.in_thread(
        lambda: record_refusal(door=Door.MCP, token_hash=key_hash(_token_key(scope)), target=target)
    )


async def _refused_for_rate(scope, receive, send) -> bool:
    """Count the request against its token (without one, the client address); True when it was answered 429."""
    client = scope.get("client")
    key = limits.rate_key(token=_token_key(scope), client_address=client[0] if client else None)
    decision = await mcp_server.in_thread(lambda: limits.count_request(key=key))
    if decision.allowed:
        return False
    await _drain_body(receive)
    body, headers = limits.too_many_requests(decision)
    await send_json(send, 429, body, headers=[(name.lower().encode(), value.encode()) for name, value in headers.items()])
    return True


async def _bounded_body(scope, receive, send):
    """Read a POST body up to API_MAX_BODY_BYTES (the SDK would read any size into memory): a receive that hands
    it over, or None when the request was answered 413 or the client left."""
    limit = limits.default_body_limit()
    declared = limits.declared_length(_header(scope, b"content-length"))
    if declared is not None and declared > limit.max_bytes:
        await send_json(send, 413, limits.body_too_large(limit, declared))
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit.max_bytes:
            await send_json(send, 413, limits.body_too_large(limit))
            return None
        if not message.get("more_body"):
            break
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay


def guarded(app, *, methods: tuple[str, ...], public_setting: str | None = None, rate_limited: bool = True):
    """Wrap an ASGI app: method, Host and Origin checks, the rate (if `rate_limited`), then the token (unless
    `public_setting` is true), then a POST's body size."""

    async def guard(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"MCP routes speak HTTP only, not {scope['type']}")
        if scope["method"] not in methods:
            await _drain_body(receive)
            return await send_text(send, 405, "Method Not Allowed", headers=[(b"allow", ", ".join(methods).encode())])
        if not host_allowed(scope):
            await _drain_body(receive)
            return await send_text(send, 400, "Invalid Host header")
        if not origin_allowed(scope):
            await _drain_body(receive)
            logger.warning("MCP request refused: Origin %r is not allowed", _header(scope, b"origin"))
            await _record_refusal(scope)
            return await send_text(send, 403, "Origin not allowed")
        if rate_limited and await _refused_for_rate(scope, receive, send):
            return None
        caller = None
        if not (public_setting and getattr(settings, public_setting, False)):
            caller = await authenticate(scope)
            if isinstance(caller, str):
                await _drain_body(receive)
                await _record_refusal(scope)
                return await send_json(
                    send, 401, {"detail": caller}, headers=[(b"www-authenticate", b'Bearer realm="pump-server-mcp"')],
                )
        if scope["method"] == "POST":
            receive = await _bounded_body(scope, receive, send)
            if receive is None:
                return None
        scope = dict(scope, mcp_caller=caller)
        return await app(scope, receive, send)

    return guard


# --- HTTP+SSE transport on Channels ---------------------------------------------------------------------------------


def _group(session_id: str) -> str:
    return f"mcp-sse.{session_id}"


def _sse_event(event: str | None, data: str) -> bytes:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SseConsumer(AsyncHttpConsumer):
    """One MCP session over Server-Sent Events: the SDK's server loop, fed by messages relayed over Channels."""

    async def http_request(self, message):
        # A GET has no body to gather; unlike AsyncHttpConsumer, the response outlives this handler (it streams).
        if message.get("more_body"):
            return
        await self.open_stream()

    async def open_stream(self) -> None:
        caller: Caller = self.scope["mcp_caller"]
        self.session_id = uuid.uuid4().hex
        self.caller = caller
        self.read_writer, read_stream = create_context_streams[SessionMessage | Exception](SESSION_READ_BUFFER)
        write_stream, self.write_reader = create_context_streams[SessionMessage](0)
        await self.channel_layer.group_add(_group(self.session_id), self.channel_name)
        LOCAL_SSE_SESSIONS[self.session_id] = caller.user_id
        root_path = self.scope.get("root_path", "").rstrip("/")
        endpoint = f"{quote(root_path + MESSAGES_PATH)}?session_id={self.session_id}"
        await self.send_headers(status=200, headers=[
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
        ])
        await self.send_body(_sse_event("endpoint", endpoint), more_body=True)
        logger.info("MCP SSE session %s opened by %s", self.session_id, caller.username)
        self.stream_task = asyncio.ensure_future(self._serve(read_stream, write_stream))

    async def _serve(self, read_stream, write_stream) -> None:
        """Run the SDK's server loop and stream its messages until the client goes or the loop ends."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._forward)
                tg.start_soon(self._keepalive)
                async with read_stream, write_stream:
                    await mcp_server.server.run(
                        read_stream, write_stream, mcp_server.server.create_initialization_options()
                    )
                tg.cancel_scope.cancel()
        except Exception:
            logger.exception("MCP SSE session %s failed", self.session_id)
        finally:
            if self.session_id is not None:  # the loop ended on its own, not because the client left
                try:
                    await self.send_body(b"", more_body=False)
                except Exception:  # the client is already gone
                    pass
                # Let the consumer finish (a handler cannot end it from this task directly).
                await self.channel_layer.send(self.channel_name, {"type": "mcp.closed"})

    async def _forward(self) -> None:
        async for session_message in self.write_reader:
            data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
            await self.send_body(_sse_event("message", data), more_body=True)

    async def _keepalive(self) -> None:
        while True:
            await anyio.sleep(SSE_KEEPALIVE_SECONDS)
            await self.send_body(f": ping {int(time.time())}\r\n\r\n".encode(), more_body=True)

    async def mcp_message(self, event) -> None:
        """A client message relayed by a POST (possibly from another process); acknowledged on its reply channel."""
        reply = event.get("reply")
        if self.session_id is None or event.get("token_id") != self.caller.token_id:
            # Closed, or not the token that opened it (whose scopes the session has): as if it did not exist.
            status = 404
        else:
            try:
                message = types.jsonrpc_message_adapter.validate_json(event["body"], by_name=False)
            except ValidationError:
                status = 400
            else:
                request = Request({
                    "type": "http", "method": "POST", "path": MESSAGES_PATH, "headers": [],
                    "query_string": b"", "mcp_caller": self.caller,
                })
                try:
                    await self.read_writer.send(
                        SessionMessage(message, metadata=ServerMessageMetadata(request_context=request))
                    )
                    status = 202
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    status = 404  # the session's server loop has ended
        if reply:
            await self.channel_layer.send(reply, {"type": "mcp.ack", "status": status})

    async def mcp_closed(self, _event) -> None:
        await self._cleanup()
        raise StopConsumer()

    async def disconnect(self) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        session_id = getattr(self, "session_id", None)
        if session_id is None:
            return
        LOCAL_SSE_SESSIONS.pop(session_id, None)
        self.session_id = None
        task = getattr(self, "stream_task", None)
        if task is not None and not task.done():
            task.cancel()
        await self.channel_layer.group_discard(_group(session_id), self.channel_name)
        await self.read_writer.aclose()
        logger.info("MCP SSE session %s closed", session_id)


async def post_message(scope, receive, send) -> None:
    """POST /mcp/messages/?session_id=<id>: relay one JSON-RPC message to the session's stream over Channels."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    session_id = (query.get("session_id") or [None])[0]
    if not session_id:
        await _drain_body(receive)
        return await send_text(send, 400, "session_id is required")
    try:
        session_id = uuid.UUID(hex=session_id).hex
    except ValueError:
        await _drain_body(receive)
        return await send_text(send, 400, "Invalid session ID")

    message = await receive()  # the whole body in one message: `guarded` read it (up to API_MAX_BODY_BYTES)
    if message["type"] == "http.disconnect":
        return
    body = message.get("body", b"").decode("utf-8", errors="replace")
    try:
        types.jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError:
        return await send_text(send, 400, "Could not parse message")

    caller: Caller = scope["mcp_caller"]
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer) and session_id not in LOCAL_SSE_SESSIONS:
        return await send_text(send, 404, "Could not find session")  # one process: nowhere else to look
    reply = await layer.new_channel(prefix="mcp-ack")
    await layer.group_send(
        _group(session_id), {"type": "mcp.message", "body": body, "token_id": caller.token_id, "reply": reply}
    )
    try:
        ack = await asyncio.wait_for(layer.receive(reply), ACK_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        return await send_text(send, 404, "Could not find session")
    status = ack.get("status", 404)
    text = {202: "Accepted", 400: "Could not parse message"}.get(status, "Could not find session")
    return await send_text(send, status, text)


# --- Streamable HTTP -----------------------------------------------------------------------------------------------


class StreamableHttpApp:
    """The SDK's StreamableHTTPSessionManager, whose task group is started once per process.

    Daphne does not speak the ASGI lifespan protocol, so the manager starts on the first request (or at lifespan
    startup under servers that do) and lives in a background task for the life of the process.
    """

    def __init__(self):
        self.manager: StreamableHTTPSessionManager | None = None
        self._started: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._started is None:
            self._started, self._stop = asyncio.Event(), asyncio.Event()
            self.manager = StreamableHTTPSessionManager(
                app=mcp_server.server,
                stateless=True,  # no per-process session state: any web process can answer any request
                json_response=True,
                security_settings=None,  # Host/Origin are checked by `guarded` before the SDK sees the request
            )
            self._task = asyncio.ensure_future(self._run())
        await self._started.wait()

    async def _run(self) -> None:
        try:
            async with self.manager.run():
                self._started.set()
                await self._stop.wait()
        except Exception:
            logger.exception("MCP Streamable HTTP session manager stopped")
            raise

    async def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)

    async def __call__(self, scope, receive, send) -> None:
        await self.start()
        await self.manager.handle_request(scope, receive, send)


streamable_http = StreamableHttpApp()


async def lifespan(scope, receive, send) -> None:
    """ASGI lifespan (servers such as uvicorn send it; daphne does not, then the manager starts lazily)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await streamable_http.start()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await streamable_http.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- helper routes ---------------------------------------------------------------------------------------------------


async def info(scope, receive, send) -> None:
    await send_json(send, 200, mcp_server.server_info())


async def health(scope, receive, send) -> None:
    await send_json(send, 200, await mcp_server.health_payload())


def mcp_routes() -> list:
    """Channels URLRouter entries for every MCP path (before Django's catch-all)."""
    return [
        path("mcp/sse", guarded(SseConsumer.as_asgi(), methods=("GET",))),
        path("mcp/messages/", guarded(post_message, methods=("POST",))),
        path("mcp/messages", guarded(post_message, methods=("POST",))),
        # Helper routes: like /api/health, never limited.
        path("mcp/info", guarded(info, methods=("GET",), public_setting="HEALTH_PUBLIC", rate_limited=False)),
        path("mcp/health", guarded(health, methods=("GET",), public_setting="HEALTH_PUBLIC", rate_limited=False)),
        re_path(r"^mcp/?$", guarded(streamable_http, methods=("GET", "POST", "DELETE"))),
    ]
