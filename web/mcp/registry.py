"""The MCP tool registry: the `tool` decorator, the JSON-schema fragments the tools are declared with, and the
argument helpers every tool module shares.

A tool module (web/mcp/tools/) registers its tools by being imported; web/mcp/server.py validates the arguments
against the schema, runs the handler and shapes its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, Callable

import mcp_types as types
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from jsonschema import Draft202012Validator

from modelregistry import selectors as registry_selectors
from pumpserver.scopes import READ, SCOPES

MAX_PAGE = 1000
IGNORE_MAX = 86_400
LOG_CAP_MAX = 1000
ID_MAX = 2**63 - 1


class ToolError(Exception):
    """A refused call; the message is shown to the agent as is."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_schema: dict
    handler: Callable[[dict], dict]
    read_only: bool
    destructive: bool
    open_world: bool
    scope: str  # what a token needs to see and call it (pumpserver.scopes; web.mcp.scopes checks it)

    def as_tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=self.destructive if not self.read_only else None,
                open_world_hint=self.open_world,
            ),
        )


TOOLS: dict[str, ToolSpec] = {}
_VALIDATORS: dict[str, Draft202012Validator] = {}


def tool(name: str, title: str, description: str, properties: dict | None = None, required: tuple[str, ...] = (),
         *, read_only: bool = True, destructive: bool = False, open_world: bool = False, scope: str | None = None):
    """Register a tool: its JSON schema is `type: object` with these properties and required names.

    `scope` is what a token needs to call it: a read-only tool needs `read` unless it says otherwise (the debug
    tools say admin); a tool that changes something must name its scope."""
    schema = {"type": "object", "properties": properties or {}, "required": list(required)}
    if scope is None:
        if not read_only:
            raise ValueError(f"tool {name} changes something: declare its scope (operate or admin)")
        scope = READ
    if scope not in SCOPES:
        raise ValueError(f"tool {name}: unknown scope {scope!r}")

    def register(handler: Callable[[dict], dict]) -> Callable[[dict], dict]:
        Draft202012Validator.check_schema(schema)
        TOOLS[name] = ToolSpec(name, title, description, schema, handler, read_only, destructive, open_world, scope)
        _VALIDATORS[name] = Draft202012Validator(schema)
        return handler

    return register


# --- schema fragments -----------------------------------------------------------------------------------------------


def integer(description: str, *, minimum: int | None = 0, maximum: int | None = ID_MAX, default: int | None = None):
    schema: dict[str, Any] = {"type": "integer", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return schema


def number(description: str, *, minimum: float | None = None, maximum: float | None = None):
    schema: dict[str, Any] = {"type": "number", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def string(description: str, *, enum: list[str] | None = None, default: str | None = None, min_length: int = 0,
           max_length: int = 2000, fmt: str | None = None):
    schema: dict[str, Any] = {"type": "string", "description": description, "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    if enum is not None:
        schema["enum"] = enum
    if default is not None:
        schema["default"] = default
    if fmt:
        schema["format"] = fmt
    return schema


def boolean(description: str, *, default: bool | None = None):
    schema: dict[str, Any] = {"type": "boolean", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def active_model_id(description: str = "Local id of the model (`id` in list_active_models).") -> dict:
    return integer(description, minimum=1)


def timestamp(description: str) -> dict:
    return string(description + " ISO-8601, e.g. 2026-01-14T10:00:00Z; without an offset it is UTC.",
                  fmt="date-time", max_length=64)


LIMIT = integer(f"Page size, 1 to {MAX_PAGE}.", minimum=1, maximum=MAX_PAGE, default=100)
OFFSET = integer("Rows to skip (for paging).", minimum=0, default=0)
TAGS = ["negativ", "positiv", "alert"]
SEND_MODES = ["all", "alerts_only", "positive_only", "negative_only"]


# --- argument helpers -----------------------------------------------------------------------------------------------


def with_defaults(name: str, arguments: dict) -> dict:
    args = dict(arguments)
    for key, schema in TOOLS[name].input_schema["properties"].items():
        if key not in args and "default" in schema:
            args[key] = schema["default"]
    return args


def validation_errors(name: str, arguments: dict) -> list[str]:
    """Readable messages for every way `arguments` break the tool's schema (empty when they fit)."""
    messages = []
    for error in sorted(_VALIDATORS[name].iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        if error.validator == "required":
            missing = [key for key in error.validator_value if key not in error.instance]
            messages.extend(f"missing required argument '{key}'" for key in missing)
            continue
        where = ".".join(str(part) for part in error.absolute_path)
        messages.append(f"argument '{where}': {error.message}" if where else error.message)
    return list(dict.fromkeys(messages))  # every `required` error lists all missing keys: each once


def parse_time(args: dict, key: str) -> datetime | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ToolError(f"argument '{key}': {value!r} is not an ISO-8601 date-time (e.g. 2026-01-14T10:00:00Z)")
    if timezone.is_naive(parsed):
        return parsed.replace(tzinfo=dt_timezone.utc)
    try:  # in UTC, as REST's fields do: PostgreSQL refuses offsets beyond ±15:59, which Python allows
        return parsed.astimezone(dt_timezone.utc)
    except OverflowError:
        raise ToolError(f"argument '{key}': {value!r} is out of range once converted to UTC") from None


def model_or_error(model_id: int):
    try:
        return registry_selectors.get_model(active_model_id=model_id)
    except ObjectDoesNotExist:
        raise ToolError(f"model {model_id} not found (see list_active_models with include_inactive=true)") from None
