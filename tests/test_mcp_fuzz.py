"""Generated calls of every MCP tool through the official SDK client: arguments drawn from each tool's announced
inputSchema (hypothesis-jsonschema), valid ones and broken ones (a wrong type, a required key missing, any JSON
object), with a fixed seed. Every answer must be a result or a tool error with a readable message: never a
JSON-RPC error, an "internal error" text or a traceback in the server's log.

The server runs as in tests/test_api_schemathesis.py: the training service is local, other outgoing HTTP goes to a
closed port, webhook hosts are checked without DNS. Read-only and non-destructive tools are called first, the
destructive ones (deleting models, predictions, alerts) last, so the seeded rows are there for most calls.
"""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime, timedelta

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from pumpserver.scopes import ADMIN
from pumpserver.tokens import issue_api_token
from tests.test_api_schemathesis import offline_environment, seed_data, training_service  # noqa: F401 (fixture)
from tests.test_mcp import Daphne, auth
from web.mcp import tools as _registered  # noqa: F401 (importing the tool modules registers every tool)
from web.mcp.registry import ToolError, parse_time, validation_errors

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20260114
VALID_PER_TOOL = 40
BROKEN_PER_TOOL = 30
MIN_CALLS = 2000
# Arguments that name seeded rows half of the time (the other half stays generated: unknown ids, odd values).
SEEDED_ARGUMENTS = {"active_model_id": "model_ids", "active_model_ids": "model_ids", "ids": "model_ids", "run_id": "run_ids",
                    "alert_id": "row_ids", "prediction_id": "row_ids", "coin_id": "coins", "model_id": "training_ids"}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
INTERNAL_SIGNS = ("internal error", "traceback", "exception")


@pytest.fixture
def fuzz_server(tmp_path, training_service):  # noqa: F811 (the fixture imported above)
    daphne = Daphne(tmp_path / "daphne.log", **offline_environment(training_service))
    try:
        daphne.wait_ready()
        yield daphne
    finally:
        daphne.stop()  # fails on any traceback in the server's log


def generated_calls(tools, seeded: dict[str, list], training_service_url: str) -> list[tuple[str, dict, str]]:
    """(tool, arguments, kind) for every tool: up to VALID_PER_TOOL drawn from its schema and BROKEN_PER_TOOL
    broken ones; the same list for the same tools and seed."""
    calls = []
    for tool in tools:
        # Only the declared arguments (unknown keys are the broken calls' part); built once per tool: slow to build
        fitting = seeded_arguments(from_schema({"additionalProperties": False, **tool.input_schema}), seeded,
                                   training_service_url)
        broken = fitting.flatmap(lambda arguments, schema=tool.input_schema: broken_arguments(schema, arguments))
        calls += [(tool.name, arguments, "valid") for arguments in examples(fitting, VALID_PER_TOOL)]
        calls += [(tool.name, arguments, "broken") for arguments in examples(broken, BROKEN_PER_TOOL)]
    return calls


def examples(strategy, count: int) -> list:
    """Up to `count` values of `strategy`, drawn with the fixed seed (fewer when it has fewer)."""
    found = []

    @seed(SEED)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        found.append(value)

    collect()
    return found[:count]


@st.composite
def seeded_arguments(draw, fitting, seeded: dict[str, list], training_service_url: str) -> dict:
    """Arguments from `fitting` whose ids name seeded rows half of the time; a training-service URL is ours."""
    arguments = draw(fitting)
    for name, pool in SEEDED_ARGUMENTS.items():
        if name in arguments and draw(st.booleans()):
            if isinstance(arguments[name], list):
                arguments[name] = draw(st.lists(st.sampled_from(seeded[pool]), min_size=1, unique=True))
            else:
                arguments[name] = draw(st.sampled_from(seeded[pool]))
    if isinstance(arguments.get("config"), dict) and "training_service_url" in arguments["config"]:
        arguments["config"]["training_service_url"] = training_service_url  # never elsewhere
    return arguments


def broken_arguments(schema: dict, arguments: dict):
    """Arguments the schema refuses, mostly: one property of the wrong kind, a required one left out, or any
    JSON object at all."""
    properties = list(schema.get("properties", {}))
    required = list(schema.get("required", []))
    options = [st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4)]
    if properties:
        options.append(st.builds(lambda name, value: {**arguments, name: value}, st.sampled_from(properties), JSON_VALUES))
    if required:
        options.append(st.sampled_from(required).map(lambda name: {k: v for k, v in arguments.items() if k != name}))
    return st.one_of(options)


async def call_everything(base: str, key: str, seeded: dict, training_service_url: str):
    """Lists the tools, generates the calls and sends them over one Streamable HTTP session; (calls, answers)."""
    async with httpx2.AsyncClient(headers=auth(key), timeout=httpx2.Timeout(30, read=120)) as http:
        async with streamable_http_client(base + "/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = (await session.list_tools()).tools
                # destructive tools last, and delete_model last of all: the seeded models serve every other call
                ordered = sorted(tools, key=lambda tool: (bool(tool.annotations and tool.annotations.destructive_hint),
                                                          tool.name == "delete_model"))
                calls = generated_calls(ordered, seeded, training_service_url)
                answers = []
                for name, arguments, _kind in calls:
                    try:
                        answers.append(await session.call_tool(name, arguments))
                    except MCPError as exc:  # a JSON-RPC error instead of a result
                        answers.append(exc)
                return tools, calls, answers


def test_generated_tool_calls_answer_results_or_readable_tool_errors(fuzz_server, training_service, market,  # noqa: F811
                                                                      django_user_model):
    seeded = seed_data(market)
    admin = django_user_model.objects.create_superuser(username="mcp-fuzz", password="unused-password-1")
    key = issue_api_token(user=admin, scopes=(ADMIN,)).key

    tools, calls, answers = anyio.run(call_everything, fuzz_server.base, key, seeded, training_service)

    problems = []
    outcomes = collections.Counter()
    for (name, arguments, kind), answer in zip(calls, answers, strict=True):
        if isinstance(answer, MCPError):
            problems.append((name, arguments, f"JSON-RPC error {answer.error.code}: {answer.error.message}"))
            continue
        data = answer.structured_content
        if not isinstance(data, dict) or data.get("success") is answer.is_error:
            problems.append((name, arguments, f"not a tool result: {answer}"))
            continue
        if answer.is_error:
            message = data.get("error")
            if not isinstance(message, str) or not message.strip():
                problems.append((name, arguments, f"tool error without a message: {data}"))
            elif any(sign in message.lower() for sign in INTERNAL_SIGNS):
                problems.append((name, arguments, message))
        assert json.loads(answer.content[0].text) == data
        outcomes[(kind, "error" if answer.is_error else "ok")] += 1
    assert not problems, "\n".join(f"{name} {arguments!r}: {why}" for name, arguments, why in problems[:30])
    assert len(tools) == 43 and len(calls) >= MIN_CALLS, (len(tools), len(calls))
    # The valid calls reached the tools' work, not only their argument checks.
    valid = sum(count for (kind, _outcome), count in outcomes.items() if kind == "valid")
    assert outcomes[("valid", "ok")] >= valid // 3, outcomes
    assert outcomes[("broken", "error")] >= len(tools) * BROKEN_PER_TOOL // 2, outcomes


# --- what the fuzzing found --------------------------------------------------------------------------------------


def test_timestamps_with_offsets_postgresql_refuses_are_taken_in_utc_or_refused_readably():
    # Python accepts offsets up to ±23:59, PostgreSQL only ±15:59: the value is converted, as REST's fields do
    parsed = parse_time({"start": "2026-01-14T10:00:00-18:38"}, "start")
    assert parsed == datetime(2026, 1, 15, 4, 38, tzinfo=UTC) and parsed.utcoffset() == timedelta(0)
    with pytest.raises(ToolError, match="argument 'start': .* out of range once converted to UTC"):
        parse_time({"start": "0001-01-01T00:00:00+05:00"}, "start")


def test_each_missing_argument_is_named_once():
    assert validation_errors("update_model_metrics", {}) == [
        "missing required argument 'active_model_id'", "missing required argument 'model_id'",
    ]
