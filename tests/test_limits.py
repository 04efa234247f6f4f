"""Request limits: a rate per token (429 with Retry-After) on REST and MCP, bounded bodies (413), uploads with their
own limit, health never limited. REST in process; MCP against a real daphne (tests.test_mcp.Daphne)."""

from __future__ import annotations

import json
import time
import uuid

import anyio
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from pumpserver import limits
from pumpserver.tokens import issue_api_token
from tests import parity
from tests.test_mcp import Daphne, run_sse, run_streamable

pytestmark = pytest.mark.django_db(transaction=True)


def new_key(django_user_model) -> str:
    user = django_user_model.objects.create_user(username=f"limits-{uuid.uuid4().hex[:8]}", password="unused-pw-1")
    return issue_api_token(user=user).key


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def fresh_window(needed_seconds: float = 20) -> None:
    """Wait for the next fixed window when the current one (on the database clock) ends too soon for a test's
    requests to land in one window."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s - extract(epoch FROM clock_timestamp())::numeric %% %s", [60, 60])
        left = float(cursor.fetchone()[0])
    if left < needed_seconds:
        time.sleep(left + 0.2)


# --- rate ------------------------------------------------------------------------------------------------------------


def test_a_token_over_its_rate_gets_429_while_another_token_passes(settings, django_user_model):
    settings.API_RATE_LIMIT = 3
    fresh_window()
    busy, other = client_for(new_key(django_user_model)), client_for(new_key(django_user_model))
    assert [busy.get("/api/models").status_code for _ in range(3)] == [200, 200, 200]

    refused = busy.get("/api/models")
    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= limits.WINDOW_SECONDS
    body = refused.json()
    assert body["limit"] == 3 and body["retry_after"] == retry_after and body["window_seconds"] == 60
    assert "API_RATE_LIMIT" in body["detail"] and "3 requests per minute" in body["detail"]
    assert busy.post("/api/models/1/activate").status_code == 429  # writes count against the same budget

    assert other.get("/api/models").status_code == 200


def test_the_counter_is_one_row_per_token_hash_and_counts_every_request(settings, django_user_model):
    settings.API_RATE_LIMIT = 100
    fresh_window()
    key = new_key(django_user_model)
    client = client_for(key)
    for _ in range(4):
        client.get("/api/models")
    client_for("not-a-real-token").get("/api/models")  # refused (401), but counted under its own hash
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, hits FROM request_rate_counters WHERE key LIKE 'token:%%'")
        counts = dict(cursor.fetchall())
    assert counts[limits.rate_key(token=key)] == 4
    assert counts[limits.rate_key(token="not-a-real-token")] == 1
    assert not any(key in counter for counter in counts)  # only hashes are stored


def test_without_a_token_the_session_user_and_then_the_client_address_are_counted(settings, django_user_model):
    settings.API_RATE_LIMIT = 2
    fresh_window()
    user = django_user_model.objects.create_user(username="limits-session", password="unused-pw-1")
    session = APIClient()
    session.force_login(user)
    assert [session.get("/api/models").status_code for _ in range(3)] == [200, 200, 429]

    anonymous = APIClient(REMOTE_ADDR="192.0.2.7")
    assert [anonymous.get("/api/models").status_code for _ in range(3)] == [401, 401, 429]
    assert APIClient(REMOTE_ADDR="192.0.2.8").get("/api/models").status_code == 401  # another address passes


def test_health_and_metrics_are_never_limited(settings, django_user_model):
    settings.API_RATE_LIMIT = 1
    fresh_window()
    client = client_for(new_key(django_user_model))
    for _ in range(3):
        assert client.get("/api/health").status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/api/health/ready").status_code in (200, 503)  # no listener runs here: not 429
        assert client.get("/api/metrics").status_code == 200
        assert client.get("/metrics").status_code == 200
    assert client.get("/api/models").status_code == 200  # the budget of one was still unused


def test_zero_turns_the_limit_off(settings, django_user_model):
    settings.API_RATE_LIMIT = 0
    client = client_for(new_key(django_user_model))
    assert {client.get("/api/models").status_code for _ in range(5)} == {200}


def test_expired_windows_are_deleted(settings, django_user_model, monkeypatch):
    settings.API_RATE_LIMIT = 100
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO request_rate_counters VALUES ('address:gone', 0, 5)")
    monkeypatch.setattr(limits, "_last_cleanup_window", None)  # the next count cleans up, as in a new window
    client_for(new_key(django_user_model)).get("/api/models")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM request_rate_counters WHERE key = 'address:gone'")
        assert cursor.fetchone()[0] == 0


# --- bodies ----------------------------------------------------------------------------------------------------------


def test_a_json_body_over_the_limit_gets_413_naming_it(settings, django_user_model):
    settings.API_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    client = client_for(new_key(django_user_model))
    big = {"alert_threshold": 0.5, "padding": "x" * 4000}
    response = client.patch("/api/models/1/alert-threshold", big, format="json")
    assert response.status_code == 413
    body = response.json()
    assert body["limit_bytes"] == 2048 and body["setting"] == "API_MAX_BODY_BYTES"
    assert "API_MAX_BODY_BYTES" in body["detail"] and "2048 bytes" in body["detail"]
    small = client.patch("/api/models/1/alert-threshold", {"alert_threshold": 0.5}, format="json")
    assert small.status_code == 404  # under the limit the endpoint answers (no model 1 here)


def test_form_data_over_the_limit_gets_413_not_400(settings, django_user_model):
    """Form fields are bounded by Django (DATA_UPLOAD_MAX_MEMORY_SIZE) when they are read; the answer is the same
    413 even when Content-Length does not give it away (multipart with a file, limited to uploads)."""
    settings.API_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    client = client_for(new_key(django_user_model))
    response = client.post(
        "/api/models/upload",
        {"file": SimpleUploadedFile("model.json", b"{}"), "meta": "x" * 4000},
        format="multipart",
    )
    assert response.status_code == 413
    assert response.json()["setting"] == "API_MAX_BODY_BYTES"


def test_model_uploads_have_their_own_limit(settings, django_user_model):
    artifact = parity.artifact("model_xgb.json")
    meta = json.dumps({**parity.meta("xgb"), "id": None, "name": "limits upload"})
    settings.API_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    assert len(artifact) > 2048
    client = client_for(new_key(django_user_model))

    def upload():
        return client.post(
            "/api/models/upload",
            {"file": SimpleUploadedFile("model.json", artifact), "meta": SimpleUploadedFile("meta.json", meta.encode())},
            format="multipart",
        )

    settings.MODEL_UPLOAD_MAX_BYTES = len(artifact) + len(meta) + 4096
    assert upload().status_code == 201  # far over API_MAX_BODY_BYTES, within MODEL_UPLOAD_MAX_BYTES

    settings.MODEL_UPLOAD_MAX_BYTES = len(artifact) // 2
    refused = upload()
    assert refused.status_code == 413
    assert "MODEL_UPLOAD_MAX_BYTES" in refused.json()["detail"]
    assert f"{len(artifact) // 2} bytes" in refused.json()["detail"]


# --- MCP (a real daphne) ---------------------------------------------------------------------------------------------

MCP_RATE = 5
MCP_BODY_BYTES = 4096
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
STREAMABLE_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def limited_server(django_db_setup, tmp_path_factory):
    daphne = Daphne(
        tmp_path_factory.mktemp("daphne-limits") / "daphne.log",
        API_RATE_LIMIT=str(MCP_RATE), API_MAX_BODY_BYTES=str(MCP_BODY_BYTES),
    )
    try:
        daphne.wait_ready()
        yield daphne.base
    finally:
        daphne.stop()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def tool_names(agent) -> set[str]:
    return {tool.name for tool in (await agent.session.list_tools()).tools}


def test_mcp_is_rate_limited_per_token_on_both_transports(limited_server, django_user_model):
    base = limited_server
    fresh_window(needed_seconds=30)
    busy, streamable, sse = (new_key(django_user_model) for _ in range(3))
    statuses = [
        requests.post(f"{base}/mcp", json=LIST_TOOLS, headers={**STREAMABLE_HEADERS, **auth(busy)}, timeout=10)
        .status_code for _ in range(MCP_RATE + 1)
    ]
    assert statuses == [200] * MCP_RATE + [429]
    refused = requests.post(f"{base}/mcp", json=LIST_TOOLS, headers={**STREAMABLE_HEADERS, **auth(busy)}, timeout=10)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["limit"] == MCP_RATE and "API_RATE_LIMIT" in refused.json()["detail"]

    # The same token's budget is spent on the SSE transport too: the stream and its message endpoint.
    assert requests.get(f"{base}/mcp/sse", headers=auth(busy), timeout=10).status_code == 429
    messages = f"{base}/mcp/messages/?session_id={uuid.uuid4().hex}"
    assert requests.post(messages, json=LIST_TOOLS, headers=auth(busy), timeout=10).status_code == 429

    # The helper routes are never limited.
    for _ in range(MCP_RATE + 1):
        assert requests.get(f"{base}/mcp/health", headers=auth(busy), timeout=10).status_code == 200
        assert requests.get(f"{base}/mcp/info", headers=auth(busy), timeout=10).status_code == 200

    # Other tokens still work with the official clients (each well within its own five requests).
    assert "list_active_models" in anyio.run(run_streamable, base, streamable, tool_names)
    assert "list_active_models" in anyio.run(run_sse, base, sse, tool_names)


def test_mcp_bodies_over_the_limit_get_413(limited_server, django_user_model):
    base = limited_server
    fresh_window()
    key = new_key(django_user_model)
    padded = {**LIST_TOOLS, "params": {"padding": "x" * (2 * MCP_BODY_BYTES)}}
    streamable = requests.post(f"{base}/mcp", json=padded, headers={**STREAMABLE_HEADERS, **auth(key)}, timeout=10)
    assert streamable.status_code == 413
    assert streamable.json()["setting"] == "API_MAX_BODY_BYTES" and streamable.json()["limit_bytes"] == MCP_BODY_BYTES
    messages = f"{base}/mcp/messages/?session_id={uuid.uuid4().hex}"
    assert requests.post(messages, json=padded, headers=auth(key), timeout=10).status_code == 413

    # Sent in chunks without a Content-Length, the body is cut off at the limit as it arrives.
    chunks = (b"x" * 1024 for _ in range(2 * MCP_BODY_BYTES // 1024))
    chunked = requests.post(
        f"{base}/mcp", data=chunks, headers={**STREAMABLE_HEADERS, **auth(key), "Content-Type": "application/json"},
        timeout=10,
    )
    assert chunked.status_code == 413 and "API_MAX_BODY_BYTES" in chunked.json()["detail"]

    small = requests.post(f"{base}/mcp", json=LIST_TOOLS, headers={**STREAMABLE_HEADERS, **auth(key)}, timeout=10)
    assert small.status_code == 200 and small.json()["result"]["tools"]


def test_the_schema_documents_the_limits_answers():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert "429" not in paths["/api/health"]["get"]["responses"]  # never rate-limited
    assert "Retry-After" in paths["/api/stats"]["get"]["responses"]["429"]["headers"]
    assert "413" in paths["/api/config"]["post"]["responses"] and "413" not in paths["/api/config"]["get"]["responses"]
    unlimited = {(path, method) for path, item in paths.items() for method, operation in item.items()
                 if "429" not in operation["responses"]}
    assert unlimited == {("/api/health", "get"), ("/api/health/ready", "get"), ("/api/metrics", "get"),
                         ("/health", "get"), ("/metrics", "get")}
