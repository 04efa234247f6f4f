"""The MCP server `pump-server-mcp`: dispatch of the 38 tools of the existing server, the 3 backtest tools and the 2
live-quality tools (web/mcp/tools/, one module per app, each tool a thin call into a service/selector), the SDK server
object and the helper routes' answers.

Every tool has a JSON-schema input definition. Arguments are checked against it before anything runs; a bad
argument, an unknown id or a refused change comes back as a tool error result (`isError: true`, with
`{"success": false, "error": "<readable text>"}`), never as a protocol error or a broken session. Successful
results carry `success: true` and come back twice: as `structuredContent` and as one TextContent with the same JSON.

Timestamps are ISO-8601 with offset and NUMERIC values are JSON numbers, as in the REST API. Every call is logged
and counted in `ml_mcp_tool_calls_total{tool,outcome}`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import close_old_connections
from mcp.server.lowlevel import Server

from audit.context import acting
from audit.models import Door
from audit.services import record_call
from modelregistry import services as registry_services
from modelregistry import training_service
from predictions import log_selectors
from predictions import services as prediction_services
from pumpserver import config, metrics
from web.mcp import scopes as mcp_scopes
from web.mcp import tools  # noqa: F401  (importing the tool modules registers every tool)
from web.mcp.registry import TOOLS, ToolError, validation_errors, with_defaults
from web.mcp.tools.system import health_report

logger = logging.getLogger("web.mcp")

SERVER_NAME = "pump-server-mcp"
SERVER_VERSION = "1.0.0"
SERVER_DESCRIPTION = (
    "Pump Server: ML models that predict pump.fun-style coin price moves from live market metrics, their "
    "predictions, alerts and evaluation statistics, n8n webhooks and system status."
)
INSTRUCTIONS = (
    "Models have two ids: `active_model_id` (the local id; almost every tool takes it, see list_active_models) and "
    "`model_id` (the id in the external training service; import_model and get_latest_prediction take it). "
    "`coin_id` is a coin's mint address. Predictions are tagged negativ (p < 0.5), positiv (0.5 <= p < threshold) "
    "or alert (p >= the model's alert_threshold) and judged after the model's horizon (success/failed/"
    "not_applicable; status aktiv = waiting, inaktiv = evaluated). Errors come back as results with isError true."
)


def jsonable(value):
    """Plain JSON values: ISO-8601 times, Decimals as numbers, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


# === dispatch ========================================================================================================

TOOL_COUNT = 43


def _readable_text(exc: BaseException, args: dict) -> str | None:
    """The message of an exception meant for the caller (unknown ids, refused values, training-service failures);
    None for anything else (a bug: logged with its traceback)."""
    if isinstance(exc, ObjectDoesNotExist):
        if "active_model_id" in args:
            return f"model {args['active_model_id']} not found (see list_active_models with include_inactive=true)"
        return f"not found: {exc}"
    if isinstance(exc, DjangoValidationError):
        return "; ".join(exc.messages)
    if isinstance(exc, READABLE_ERRORS):
        message = getattr(exc, "message", None)
        return message if isinstance(message, str) and message else str(exc) or type(exc).__name__
    return None


READABLE_ERRORS = (
    ToolError, registry_services.InvalidSetting, registry_services.ModelImportError, registry_services.OperationRefused,
    registry_services.RegistrationError, training_service.TrainingServiceError, log_selectors.NotFound,
    prediction_services.NoActiveModels, config.ConfigError,
)


def _with_connection(function, *args):
    """Run database work in a worker thread as Django runs a request: stale connections closed before and after."""
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


# Tool calls run in a small pool of their own: calls of several agents run in parallel, and each thread keeps at
# most one database connection (reused for CONN_MAX_AGE), so MCP holds at most this many per web process.
TOOL_THREADS = int(getattr(settings, "MCP_TOOL_THREADS", 8))
_executor = ThreadPoolExecutor(max_workers=TOOL_THREADS, thread_name_prefix="mcp-tool")


async def in_thread(function, *args):
    return await sync_to_async(_with_connection, thread_sensitive=False, executor=_executor)(function, *args)


def _result(data: dict, *, error: bool) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(data, indent=2, ensure_ascii=False))],
        structured_content=data,
        is_error=error,
    )


def _run_as_caller(spec, args: dict, caller) -> dict:
    """The tool's handler with the caller as the audit actor (door mcp); a call of a tool that may change something
    is recorded with its arguments, and with the error when it failed."""
    with acting(door=Door.MCP, user_id=getattr(caller, "user_id", None), username=getattr(caller, "username", ""),
                token_hash=getattr(caller, "token_hash", ""), target=spec.name):
        if spec.read_only:
            return spec.handler(args)
        try:
            answer = spec.handler(args)
        except Exception as exc:
            record_call(tool=spec.name, arguments=args, error=_readable_text(exc, args) or type(exc).__name__)
            raise
        record_call(tool=spec.name, arguments=args)
        return answer


async def run_tool(name: str, arguments: dict | None, *, caller=None) -> types.CallToolResult:
    """Validate, run the tool in a worker thread, shape the result; every failure becomes an error result."""
    started = time.perf_counter()
    arguments = arguments or {}
    spec = TOOLS.get(name)
    label = name if spec is not None else "unknown"
    try:
        if spec is None:
            raise ToolError(f"Unknown tool: {name}. Call tools/list for the available tools.")
        # The scope first: a tool the token may not call is refused whatever its arguments.
        arguments = await in_thread(mcp_scopes.check_call, spec, arguments, caller)
        problems = validation_errors(name, arguments)
        if problems:
            raise ToolError("invalid arguments: " + "; ".join(problems))
        args = with_defaults(name, arguments)
        answer = await in_thread(_run_as_caller, spec, args, caller)
        answer = await in_thread(mcp_scopes.check_answer, spec, answer, caller)
        assert "success" not in answer, f"{name} must not answer its own 'success' key"
        data = jsonable({"success": True, **answer})
        error = False
    except Exception as exc:  # every failure is a result the agent can read, never a broken session
        error = True
        text = _readable_text(exc, arguments)
        if text is None:
            logger.exception("MCP tool %s failed", name)
            text = f"internal error in {name}: {type(exc).__name__}: {exc}"
        data = {"success": False, "error": text}
    outcome = "error" if error else "ok"
    metrics.MCP_TOOL_CALLS.labels(tool=label, outcome=outcome).inc()
    logger.info("MCP tool %s by %s: %s in %.1f ms%s", name, getattr(caller, "username", "-"), outcome, 1000 * (time.perf_counter() - started),
                f" ({data['error']})" if error else "")
    return _result(data, error=error)


def _caller(ctx):
    """The transport's Caller (user id, username, token hash) of this request; None when there is none."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None) or {}
    return scope.get("mcp_caller")


async def _list_tools(ctx, params) -> types.ListToolsResult:
    """Only the tools the caller's token may call."""
    caller = _caller(ctx)
    return types.ListToolsResult(tools=[spec.as_tool() for spec in TOOLS.values() if mcp_scopes.visible(spec, caller)])


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await run_tool(params.name, params.arguments, caller=_caller(ctx))


def _input_schema(name: str):
    spec = TOOLS.get(name)
    return spec.input_schema if spec is not None else None


server: Server = Server(
    SERVER_NAME,
    version=SERVER_VERSION,
    description=SERVER_DESCRIPTION,
    instructions=INSTRUCTIONS,
    get_tool_input_schema=_input_schema,
    on_list_tools=_list_tools,
    on_call_tool=_call_tool,
)


def server_info() -> dict:
    """GET /mcp/info: identity, both transports and the tool list."""
    return {
        "name": SERVER_NAME,
        "version": SERVER_VERSION,
        "description": SERVER_DESCRIPTION,
        "transport": "streamable-http",
        "transports": {
            "streamable-http": {"endpoint": "/mcp/", "protocol_versions": "2025-03-26 and later"},
            "sse": {"endpoint": "/mcp/sse", "messages_endpoint": "/mcp/messages/", "protocol_version": "2024-11-05"},
        },
        "endpoint": "/mcp/",
        "sse_endpoint": "/mcp/sse",
        "messages_endpoint": "/mcp/messages/",
        "authentication": "Authorization: Bearer <API token>",
        "tools": [{"name": spec.name, "description": spec.description} for spec in TOOLS.values()],
        "tools_count": len(TOOLS),
    }


async def health_payload() -> dict:
    """GET /mcp/health: what the health_check tool answers."""
    data = await in_thread(health_report)
    return jsonable({"success": True, **data})


assert len(TOOLS) == TOOL_COUNT, sorted(TOOLS)
