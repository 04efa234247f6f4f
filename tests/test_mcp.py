"""MCP end to end: a real daphne process over the test database, driven by the official SDK clients.

One daphne serves the module (it starts in a few seconds); each test creates its own token and data.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta

import anyio
import httpx2
import pytest
import requests
from django.contrib.auth.models import User
from django.utils import timezone
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict

from backtests import services
from backtests.models import BacktestRun, RunState
from inference import loading
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.services import register_model
from predictions.models import ModelPrediction, WebhookDelivery
from pumpserver.models import RuntimeSetting
from pumpserver.tokens import issue_api_token
from quality import services as quality_services
from tests import parity
from tests.conftest import PROJECT_DIR, test_database_url, wait_until_serving
from tests.test_quality import predict as quality_predict

pytestmark = pytest.mark.django_db(transaction=True)

HEADER, ROWS = parity.coin_metrics_rows()
INSERT_SQL = f"INSERT INTO coin_metrics ({', '.join(HEADER)}) VALUES ({', '.join(['%s'] * len(HEADER))})"
MINT = HEADER.index("mint")
COIN = ROWS[0][MINT]
SECRET_PASSWORD = "mcp-test-db-secret"

SPEC_TOOLS = {
    "list_active_models", "list_available_models", "import_model", "get_model_details", "activate_model",
    "deactivate_model", "rename_model", "delete_model", "update_model_metrics", "predict_coin", "get_predictions",
    "get_latest_prediction", "get_model_predictions", "delete_model_predictions", "reset_model_statistics",
    "get_coin_details", "update_alert_config", "get_model_statistics", "get_n8n_status", "get_ignore_settings",
    "update_ignore_settings", "get_max_log_entries", "update_max_log_entries", "get_alerts", "get_alert_details",
    "get_alert_statistics", "get_all_models_alert_statistics", "delete_model_alerts", "health_check", "get_stats",
    "get_system_config", "update_configuration", "get_logs", "restart_system", "delete_old_logs",
    "migrate_performance_metrics", "debug_active_models", "debug_coin_metrics",
}
BACKTEST_TOOLS = ["run_backtest", "get_backtest", "list_backtests"]  # after the existing server's, in this order
QUALITY_TOOLS = ["get_model_quality", "compare_models"]  # after the backtest tools, in this order
ALL_TOOLS = SPEC_TOOLS | set(BACKTEST_TOOLS) | set(QUALITY_TOOLS)


# --- the server ------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url_with_password() -> tuple[str, str | None]:
    """The test database URL; a password is added when it has none (the embedded server trusts local users), so
    that get_system_config has a password to hide."""
    url = test_database_url()
    password = conninfo_to_dict(url).get("password")
    if password:
        return url, password
    return url + ("&" if "?" in url else "?") + f"password={SECRET_PASSWORD}", SECRET_PASSWORD


class Daphne:
    """A daphne process serving pumpserver.asgi over the test database."""

    def __init__(self, log_path, **env_overrides):
        self.url, self.password = _database_url_with_password()
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log_path
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "HEALTH_PUBLIC": "true",
            "METRICS_PUBLIC": "true",
        }
        env.pop("TRAINING_SERVICE_API_URL", None)
        env.pop("REDIS_URL", None)
        env.update(env_overrides)
        with open(log_path, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "pumpserver.asgi:application"],
                cwd=PROJECT_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        wait_until_serving(f"{self.base}/mcp/info", process=self.process, log=self.log)

    def stop(self) -> str:
        """Stop it; its log, which must hold no traceback."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        text = self.log.read_text()
        assert "Traceback" not in text, text[-5000:]
        return text


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    daphne = Daphne(tmp_path_factory.mktemp("daphne") / "daphne.log")
    try:
        daphne.wait_ready()
        yield {"base": daphne.base, "password": daphne.password, "log": daphne.log}
    finally:
        daphne.stop()


@pytest.fixture
def token(django_user_model) -> str:
    user = django_user_model.objects.create_user(username=f"agent-{uuid.uuid4().hex[:6]}", password="unused-pw-1")
    return issue_api_token(user=user).key


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# --- clients ---------------------------------------------------------------------------------------------------------


class Agent:
    """One initialized SDK session; `call` returns (is_error, structured result) and checks the text copy."""

    def __init__(self, session: ClientSession):
        self.session = session

    async def call(self, name: str, arguments: dict | None = None) -> tuple[bool, dict]:
        result = await self.session.call_tool(name, arguments or {})
        data = result.structured_content
        assert isinstance(data, dict), (name, result)
        assert json.loads(result.content[0].text) == data
        assert data["success"] is (not result.is_error), (name, data)
        return result.is_error, data

    async def ok(self, name: str, arguments: dict | None = None) -> dict:
        is_error, data = await self.call(name, arguments)
        assert not is_error, (name, arguments, data)
        return data

    async def error(self, name: str, arguments: dict | None = None) -> str:
        is_error, data = await self.call(name, arguments)
        assert is_error, (name, arguments, data)
        assert data["error"]
        return data["error"]


async def run_sse(base: str, key: str, work) -> dict:
    async with sse_client(f"{base}/mcp/sse", headers=auth(key)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(Agent(session))


async def run_streamable(base: str, key: str, work, *, path: str = "/mcp", modern: bool = False) -> dict:
    async with httpx2.AsyncClient(headers=auth(key), timeout=httpx2.Timeout(30, read=120)) as http:
        async with streamable_http_client(base + path, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                if modern:
                    await session.discover()
                else:
                    await session.initialize()
                return await work(Agent(session))


# --- data ------------------------------------------------------------------------------------------------------------


def register(name: str, *, filename: str, meta_overrides: dict | None = None, **settings) -> ActiveModel:
    meta = {**parity.meta(name), **(meta_overrides or {})}
    model = register_model(
        artifact=parity.artifact(filename), meta=meta, source=ModelSource.COMMAND_LINE, filename=filename,
        activate=True,
    )
    ActiveModel.objects.filter(pk=model.pk).update(**settings)
    model.refresh_from_db()
    return model


def insert_market(market, rows) -> None:
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)
    market.execute("DELETE FROM coin_metrics_queue")  # nobody listens here; keep the queue empty


def add_predictions(model: ActiveModel, rows) -> dict[str, ModelPrediction]:
    """Three prediction rows of COIN: an evaluated alert, a pending positiv and a pending negativ row."""
    times = [datetime.fromisoformat(rows[i][1]) for i in (40, 60, 80)]
    common = {"coin_id": COIN, "model_id": model.model_id, "active_model": model}
    alert = ModelPrediction.objects.create(
        **common, prediction=1, probability=0.91, tag="alert", status="inaktiv", prediction_timestamp=times[0],
        evaluation_timestamp=times[0] + timedelta(minutes=10), evaluated_at=times[0] + timedelta(minutes=11),
        evaluation_result="success", actual_price_change_pct=7.5, price_close_at_prediction=0.00000003,
    )
    positive = ModelPrediction.objects.create(
        **common, prediction=1, probability=0.6, tag="positiv", prediction_timestamp=times[1],
        evaluation_timestamp=times[1] + timedelta(minutes=10),
    )
    negative = ModelPrediction.objects.create(
        **common, prediction=0, probability=0.2, tag="negativ", prediction_timestamp=times[2],
        evaluation_timestamp=times[2] + timedelta(minutes=10),
    )
    return {"alert": alert, "positiv": positive, "negativ": negative}


# --- tests -----------------------------------------------------------------------------------------------------------


def test_refuses_anonymous_and_foreign_origins(server, token):
    base = server["base"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    for path in ("/mcp", "/mcp/"):
        assert requests.post(base + path, json=body, headers=headers, timeout=5).status_code == 401
        assert requests.post(base + path, json=body, headers={**headers, **auth("not-a-token")},
                             timeout=5).status_code == 401
    anonymous = requests.get(f"{base}/mcp/sse", timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    session = uuid.uuid4().hex
    assert requests.post(f"{base}/mcp/messages/?session_id={session}", json=body, timeout=5).status_code == 401

    # A browser page on another site (DNS rebinding) is refused even with a token; the server's own origin is not.
    evil = {**headers, **auth(token), "Origin": "http://evil.example"}
    assert requests.post(f"{base}/mcp", json=body, headers=evil, timeout=5).status_code == 403
    assert requests.get(f"{base}/mcp/sse", headers=evil, timeout=5).status_code == 403
    assert requests.post(f"{base}/mcp", json=body, headers={**evil, "Origin": "null"}, timeout=5).status_code == 403
    own = requests.post(f"{base}/mcp", json=body, headers={**evil, "Origin": base}, timeout=5)
    assert own.status_code == 200 and len(own.json()["result"]["tools"]) == len(ALL_TOOLS) == 43

    # Unknown SSE sessions are 404, the transports reject other methods.
    assert requests.post(f"{base}/mcp/messages/?session_id={session}", json=body, headers=auth(token),
                         timeout=5).status_code == 404
    assert requests.post(f"{base}/mcp/sse", headers=auth(token), timeout=5).status_code == 405

    info = requests.get(f"{base}/mcp/info", timeout=5).json()
    assert info["name"] == "pump-server-mcp" and info["tools_count"] == 43
    assert set(info["transports"]) == {"sse", "streamable-http"}
    assert info["sse_endpoint"] == "/mcp/sse" and info["messages_endpoint"] == "/mcp/messages/"
    health = requests.get(f"{base}/mcp/health", timeout=5).json()
    assert health["checks"]["database"]["connected"] is True


def test_sse_endpoint_event_is_a_relative_url(server, token):
    with requests.get(f"{server['base']}/mcp/sse", headers=auth(token), stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = response.iter_lines(decode_unicode=True)
        lines = []
        for line in stream:
            lines.append(line)
            if line.startswith("data:"):
                break
        assert lines[0] == "event: endpoint"
        endpoint = lines[1].removeprefix("data:").strip()
        assert endpoint.startswith("/mcp/messages/?session_id=") and "://" not in endpoint

        # The session belongs to the token's user: another user's token is answered as if it did not exist.
        stranger = issue_api_token(user=User.objects.create_user("stranger", password="unused-pw-2")).key
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        url = server["base"] + endpoint
        assert requests.post(url, json=ping, headers=auth(stranger), timeout=10).status_code == 404
        assert requests.post(url, data="{not json", headers=auth(token), timeout=10).status_code == 400
        assert requests.post(url, json=ping, headers=auth(token), timeout=10).status_code == 202
        answer = next(line for line in stream if line.startswith("data:"))  # the reply comes on the stream
        assert json.loads(answer.removeprefix("data:"))["id"] == 1


def test_every_tool_over_both_transports(server, token, market, httpserver):
    xgb = register("xgb", filename="model_xgb.json", min_scan_interval_seconds=0,
                   n8n_webhook_url="http://127.0.0.1:9/hook")
    paused = register("xgb", filename="model_xgb.json", meta_overrides={"id": 901, "name": "paused copy"},
                      is_active=False)
    rows = [row for row in ROWS if row[MINT] == COIN][:120]
    insert_market(market, rows)
    predictions = add_predictions(xgb, rows)
    stored_before = ModelPrediction.objects.count()

    # The training service: model 101 (already imported as xgb) and 102 (not yet).
    rf_record = parity.meta("rf")
    httpserver.expect_request("/api/models", query_string="status=READY&is_deleted=false").respond_with_json(
        [parity.meta("xgb"), rf_record]
    )
    httpserver.expect_request("/api/models/102").respond_with_json(rf_record)
    # The URL is saved through MCP (not the environment), so its files must be in a safe format: serve the forest
    # as skops, converted from the trusted fixture pickle.
    safe_forest, _fmt = loading.export_portable(
        loading.load_model(parity.artifact("model_rf.pkl"), fmt="pickle", trust_pickle=True)
    )
    httpserver.expect_request("/api/models/102/download").respond_with_data(safe_forest)
    training_url = httpserver.url_for("/api")
    window_start = datetime.fromisoformat(rows[0][1]) - timedelta(seconds=1)
    window_end = datetime.fromisoformat(rows[-1][1]) + timedelta(seconds=1)

    async def reader(agent: Agent) -> dict:
        """Read-only calls, run by several sessions at once."""
        tools = (await agent.session.list_tools()).tools
        out = {"tools": {tool.name: tool for tool in tools}}
        out["details"] = await agent.ok("get_model_details", {"active_model_id": xgb.pk})
        out["health"] = await agent.ok("health_check")
        out["missing"] = await agent.error("get_model_details", {})
        out["after_error"] = await agent.ok("list_active_models")
        return out

    async def main(agent: Agent) -> dict:
        out: dict = {}
        out["list"] = await agent.ok("list_active_models")
        out["list_all"] = await agent.ok("list_active_models", {"include_inactive": True})
        out["details"] = await agent.ok("get_model_details", {"active_model_id": xgb.pk})
        out["log"] = await agent.ok("get_model_predictions", {"active_model_id": xgb.pk, "limit": 2})
        out["log_alert"] = await agent.ok("get_model_predictions", {"active_model_id": xgb.pk, "tag": "alert"})
        out["predictions"] = await agent.ok("get_predictions", {"active_model_id": xgb.pk, "prediction": 1})
        out["latest"] = await agent.ok("get_latest_prediction", {"coin_id": COIN, "model_id": xgb.model_id})
        out["latest_none"] = await agent.ok("get_latest_prediction", {"coin_id": "no-such-coin"})
        out["coin"] = await agent.ok("get_coin_details", {
            "active_model_id": xgb.pk, "coin_id": COIN,
            "start_timestamp": window_start.isoformat(), "end_timestamp": window_end.isoformat(),
        })
        out["alert_stats"] = await agent.ok("get_alert_statistics", {"model_id": xgb.pk})
        out["models_stats"] = await agent.ok("get_all_models_alert_statistics", {"active_model_ids": [xgb.pk, paused.pk]})
        out["model_stats"] = await agent.ok("get_model_statistics", {"active_model_id": xgb.pk})
        out["alerts"] = await agent.ok("get_alerts", {"active_model_id": xgb.pk, "unique_coins": False})
        out["alert"] = await agent.ok("get_alert_details", {"alert_id": predictions["alert"].pk})
        out["n8n"] = await agent.ok("get_n8n_status", {"active_model_id": xgb.pk})
        out["ignore"] = await agent.ok("get_ignore_settings", {"active_model_id": xgb.pk})
        out["ignore_set"] = await agent.ok("update_ignore_settings", {
            "active_model_id": xgb.pk, "ignore_bad_seconds": 30, "ignore_positive_seconds": 60,
            "ignore_alert_seconds": 90})
        out["caps"] = await agent.ok("get_max_log_entries", {"active_model_id": xgb.pk})
        out["caps_set"] = await agent.ok("update_max_log_entries", {
            "active_model_id": xgb.pk, "max_log_entries_per_coin_negative": 1,
            "max_log_entries_per_coin_positive": 2, "max_log_entries_per_coin_alert": 3})
        out["alert_config"] = await agent.ok("update_alert_config", {
            "active_model_id": xgb.pk, "alert_threshold": 0.8, "n8n_send_mode": ["alerts_only", "positive_only"],
            "coin_whitelist": [COIN], "n8n_webhook_url": ""})
        out["rename"] = await agent.ok("rename_model", {"active_model_id": xgb.pk, "new_name": "  Agent Name  "})
        out["predict"] = await agent.ok("predict_coin", {"coin_id": COIN, "model_ids": [xgb.pk]})
        out["stats"] = await agent.ok("get_stats")
        out["config"] = await agent.ok("get_system_config")
        out["config_set"] = await agent.ok("update_configuration", {"config": {"training_service_url": training_url}})
        out["available"] = await agent.ok("list_available_models")
        out["imported"] = await agent.ok("import_model", {"model_id": 102})
        out["import_again"] = await agent.error("import_model", {"model_id": 102})
        imported_id = out["imported"]["active_model_id"]
        out["metrics"] = await agent.ok("update_model_metrics", {"active_model_id": imported_id, "model_id": 102})
        out["metrics_wrong_id"] = await agent.error("update_model_metrics",
                                                    {"active_model_id": imported_id, "model_id": 101})
        out["activate"] = await agent.ok("activate_model", {"active_model_id": paused.pk})
        out["deactivate"] = await agent.ok("deactivate_model", {"active_model_id": paused.pk})
        out["logs"] = await agent.ok("get_logs", {"tail": 5})
        out["restart"] = await agent.error("restart_system")
        out["migrate"] = await agent.ok("migrate_performance_metrics")
        out["debug_models"] = await agent.ok("debug_active_models")
        out["debug_metrics"] = await agent.ok("debug_coin_metrics")
        out["delete_alerts"] = await agent.ok("delete_model_alerts", {"active_model_id": xgb.pk})
        out["reset"] = await agent.ok("reset_model_statistics", {"active_model_id": xgb.pk})
        out["delete_predictions"] = await agent.ok("delete_model_predictions", {"active_model_id": xgb.pk})
        out["delete_logs"] = await agent.ok("delete_old_logs", {"active_model_id": xgb.pk})
        out["delete_model"] = await agent.ok("delete_model", {"active_model_id": imported_id})

        # Bad arguments and unknown ids are error results; the session goes on.
        out["bad"] = {
            "type": await agent.error("get_model_details", {"active_model_id": "seven"}),
            "unknown_id": await agent.error("get_model_details", {"active_model_id": 987654}),
            "unknown_id_settings": await agent.error("get_ignore_settings", {"active_model_id": 987654}),
            "unknown_id_writes": [await agent.error(tool, {"active_model_id": 987654}) for tool in (
                "delete_model_alerts", "reset_model_statistics", "delete_model_predictions", "delete_old_logs")],
            "range": await agent.error("update_ignore_settings", {
                "active_model_id": xgb.pk, "ignore_bad_seconds": 999999, "ignore_positive_seconds": 0,
                "ignore_alert_seconds": 0}),
            "enum": await agent.error("get_model_predictions", {"tag": "maybe"}),
            "date": await agent.error("get_alerts", {"date_from": "yesterday-ish"}),
            "empty_name": await agent.error("rename_model", {"active_model_id": xgb.pk, "new_name": "   "}),
            "nothing": await agent.error("update_alert_config", {"active_model_id": xgb.pk}),
            "unknown_alert": await agent.error("get_alert_details", {"alert_id": 987654}),
            "unknown_tool": await agent.error("no_such_tool"),
            "no_models": await agent.error("predict_coin", {"coin_id": COIN, "model_ids": [987654]}),
            "config_key": await agent.error("update_configuration", {"config": {"database_url": "postgresql://x"}}),
        }
        out["still_alive"] = await agent.ok("list_active_models")
        return out

    async def everything():
        results = {}

        async def keep(key, coroutine):
            results[key] = await coroutine

        async with anyio.create_task_group() as tg:  # two SSE sessions and a Streamable HTTP one at the same time
            tg.start_soon(keep, "sse_a", run_sse(server["base"], token, reader))
            tg.start_soon(keep, "sse_b", run_sse(server["base"], token, reader))
            tg.start_soon(keep, "http", run_streamable(server["base"], token, reader, path="/mcp/"))
            tg.start_soon(keep, "modern", run_streamable(server["base"], token, reader, modern=True))
        results["main_sse"] = await run_sse(server["base"], token, main)
        return results

    results = anyio.run(everything)

    # --- every session lists every spec tool with an input schema an agent can act on
    for key in ("sse_a", "sse_b", "http", "modern"):
        seen = results[key]
        assert set(seen["tools"]) == ALL_TOOLS, key
        assert list(seen["tools"])[-5:] == BACKTEST_TOOLS + QUALITY_TOOLS, key
        for tool in seen["tools"].values():
            assert tool.input_schema["type"] == "object" and tool.description, tool.name
            for prop in tool.input_schema["properties"].values():
                assert prop.get("description") or prop.get("properties"), tool.name
        assert seen["details"]["model"]["id"] == xgb.pk
        assert seen["health"]["checks"]["database"]["connected"] is True
        assert "missing required argument 'active_model_id'" in seen["missing"]
        assert [m["id"] for m in seen["after_error"]["models"]] == [xgb.pk]
    required = results["http"]["tools"]["update_ignore_settings"].input_schema["required"]
    assert set(required) == {"active_model_id", "ignore_bad_seconds", "ignore_positive_seconds", "ignore_alert_seconds"}

    out = results["main_sse"]
    # models
    assert [m["id"] for m in out["list"]["models"]] == [xgb.pk] and out["list"]["inactive_count"] == 0
    assert {m["id"] for m in out["list_all"]["models"]} == {xgb.pk, paused.pk}
    assert out["list_all"]["inactive_count"] == 1
    model = out["details"]["model"]
    assert model["model_id"] == 101 and model["features_count"] == len(xgb.features)
    assert model["stats"]["total_predictions"] == 3 and model["stats"]["alerts_count"] == 1
    # prediction log, predictions, coin details
    assert out["log"]["total"] == 3 and out["log"]["count"] == 2
    assert out["log"]["predictions"][0]["id"] == predictions["negativ"].pk  # newest first
    assert [row["id"] for row in out["log_alert"]["predictions"]] == [predictions["alert"].pk]
    assert {row["id"] for row in out["predictions"]["predictions"]} == {predictions["alert"].pk, predictions["positiv"].pk}
    assert out["predictions"]["predictions"][0]["prediction_label"] == "POSITIVE (UP)"
    assert out["latest"]["found"] is True and out["latest"]["prediction"]["id"] == predictions["negativ"].pk
    assert out["latest_none"] == {"success": True, "found": False, "prediction": None,
                                  "message": "No prediction for coin no-such-coin"}
    assert out["coin"]["counts"] == {"price_points": len(rows), "predictions": 3, "evaluations": 1}
    assert out["coin"]["evaluations"][0]["status"] == "success"
    # statistics and alerts
    assert out["alert_stats"]["statistics"]["total_alerts"] == 1  # the one alert of three predictions
    assert out["alert_stats"]["statistics"]["total_predictions"] == 3
    assert out["alert_stats"]["statistics"]["alerts_success"] == 1
    assert out["models_stats"]["model_statistics"][str(xgb.pk)]["alerts_total"] == 1
    assert out["models_stats"]["model_statistics"][str(paused.pk)]["total_predictions"] == 0
    statistics = out["model_stats"]["statistics"]
    assert statistics["total_predictions"] == 3 and statistics["positive_predictions"] == 2
    assert statistics["webhook_stats"]["total"] == 0
    assert out["alerts"]["total"] == 1 and out["alerts"]["status_counts"]["success"] == 1
    assert out["alerts"]["alerts"][0]["id"] == predictions["alert"].pk
    assert out["alert"]["alert"]["alert"]["status"] == "success"
    assert out["n8n"]["n8n_status"] == {"status": "unknown", "message": "No webhook attempt yet",
                                        "n8n_url": "http://127.0.0.1:9/hook"}
    # settings
    assert out["ignore"]["settings"] == {"ignore_bad_seconds": 0, "ignore_positive_seconds": 0,
                                         "ignore_alert_seconds": 0}
    assert out["ignore_set"]["settings"]["ignore_alert_seconds"] == 90
    assert out["caps_set"]["settings"]["max_log_entries_per_coin_alert"] == 3
    assert out["alert_config"]["changes"] == {"alert_threshold": 0.8, "n8n_send_mode": ["alerts_only", "positive_only"],
                                              "coin_whitelist": "1 coins", "n8n_webhook_url": "(cleared)"}
    xgb.refresh_from_db()
    assert (xgb.ignore_bad_seconds, xgb.ignore_positive_seconds, xgb.ignore_alert_seconds) == (30, 60, 90)
    assert (xgb.max_log_entries_per_coin_negative, xgb.max_log_entries_per_coin_positive,
            xgb.max_log_entries_per_coin_alert) == (1, 2, 3)
    assert float(xgb.alert_threshold) == 0.8 and xgb.n8n_send_mode == ["alerts_only", "positive_only"]
    assert xgb.coin_whitelist == [COIN] and xgb.n8n_webhook_url is None
    assert xgb.coin_filter_mode == "all" and xgb.n8n_enabled is True  # a partial update: the rest unchanged
    assert xgb.custom_name == "Agent Name" and out["rename"]["new_name"] == "Agent Name"
    # predict_coin: a dry run
    predicted = out["predict"]
    assert predicted["total_models"] == 1 and predicted["successful_predictions"] == 1
    assert predicted["predictions"][0]["active_model_id"] == xgb.pk
    assert 0 <= predicted["predictions"][0]["probability"] <= 1
    assert not WebhookDelivery.objects.exists()
    # system
    assert out["stats"]["predictions"]["total"] == stored_before == 3
    assert out["stats"]["models"] == {"total": 2, "active": 1, "inactive": 1}
    assert out["stats"]["alerts"]["total"] == 1
    config_text = json.dumps(out["config"])
    assert server["password"] not in config_text and "****" in out["config"]["config"]["database_url"]
    assert out["config_set"]["config"]["training_service_url"] == training_url
    assert RuntimeSetting.objects.get(key="training_service_url").value == training_url
    assert [m["id"] for m in out["available"]["models"]] == [102]
    assert out["available"]["models"][0]["features_count"] == len(rf_record["features"])
    assert "is already imported" in out["import_again"]
    assert "training-service id 102, not 101" in out["metrics_wrong_id"]
    assert out["activate"]["active_model_id"] == out["deactivate"]["active_model_id"] == paused.pk
    assert out["logs"]["source"] == "none" and out["logs"]["message"]
    assert "not supported" in out["restart"]
    assert "migrations" in out["migrate"]["message"]
    assert out["debug_models"]["count"] == 2  # xgb and the imported model (active until deleted)
    assert out["debug_metrics"]["total"] == len(rows) and out["debug_metrics"]["unique_coins"] == 1
    # destructive tools
    assert out["delete_alerts"]["deleted_alerts"] == 1
    assert out["reset"]["deleted_predictions"] == 0
    assert out["delete_predictions"]["deleted_predictions"] == 2
    assert out["delete_logs"]["deleted_model_predictions"] == 0
    assert out["delete_model"]["model_id"] == 102
    assert not ActiveModel.objects.filter(model_id=102).exists()
    xgb.refresh_from_db()
    assert xgb.total_predictions == 0 and not ModelPrediction.objects.exists()
    paused.refresh_from_db()
    assert paused.is_active is False
    # bad arguments
    bad = out["bad"]
    assert "argument 'active_model_id'" in bad["type"]
    assert "model 987654 not found" in bad["unknown_id"] and "model 987654 not found" in bad["unknown_id_settings"]
    assert all("model 987654 not found" in text for text in bad["unknown_id_writes"])
    assert "argument 'ignore_bad_seconds'" in bad["range"]
    assert "argument 'tag'" in bad["enum"]
    assert "argument 'date_from'" in bad["date"]
    assert "must not be empty" in bad["empty_name"]
    assert "nothing to change" in bad["nothing"]
    assert "Alert 987654 not found" in bad["unknown_alert"]
    assert "Unknown tool: no_such_tool" in bad["unknown_tool"]
    assert "None of the given models is active" in bad["no_models"]
    assert "read-only" in bad["config_key"]
    assert out["still_alive"]["total"] == 1

    # every call was counted
    scrape = requests.get(f"{server['base']}/metrics", timeout=10).text
    calls = {
        (sample.labels["tool"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(scrape)
        if family.name == "ml_mcp_tool_calls"
        for sample in family.samples
        if sample.name == "ml_mcp_tool_calls_total"
    }
    assert calls[("list_active_models", "ok")] >= 6
    assert calls[("unknown", "error")] >= 1 and calls[("import_model", "error")] >= 1


def test_backtest_tools_queue_follow_and_list_a_run(server, token, market):
    model = register("xgb", filename="model_xgb.json", min_scan_interval_seconds=0)
    insert_market(market, ROWS)
    first = datetime.fromisoformat(ROWS[0][1])
    last = max(datetime.fromisoformat(row[1]) for row in ROWS)
    window = {"active_model_id": model.pk, "start": first.isoformat(), "end": last.isoformat()}

    async def queue(agent: Agent) -> dict:
        out = {"run": await agent.ok("run_backtest", {**window, "threshold": 0.6})}
        out["listed"] = await agent.ok("list_backtests", {"active_model_id": model.pk})
        out["bad"] = {
            "order": await agent.error("run_backtest", {**window, "end": (first - timedelta(hours=1)).isoformat()}),
            "empty": await agent.error("run_backtest", {**window, "start": (first - timedelta(days=3)).isoformat(),
                                                        "end": (first - timedelta(days=2)).isoformat()}),
            "threshold": await agent.error("run_backtest", {**window, "threshold": 2}),
            "date": await agent.error("run_backtest", {**window, "start": "yesterday"}),
            "model": await agent.error("run_backtest", {**window, "active_model_id": 987654}),
            "list_model": await agent.error("list_backtests", {"active_model_id": 987654}),
            "run": await agent.error("get_backtest", {"run_id": 987654}),
        }
        return out

    async def follow(agent: Agent) -> dict:
        return {"run": await agent.ok("get_backtest", {"run_id": run_id}),
                "listed": await agent.ok("list_backtests", {"active_model_id": model.pk})}

    queued = anyio.run(run_streamable, server["base"], token, queue)
    run = queued["run"]["backtest"]
    run_id = run["id"]
    assert run["state"] == "queued" and run["threshold"] == 0.6 and run["summary"] is None
    assert f"backtest {run_id} queued" in queued["run"]["message"]
    assert queued["listed"]["total"] == 1 and queued["listed"]["backtests"][0]["id"] == run_id
    bad = queued["bad"]
    assert "argument 'end'" in bad["order"] and "before start" in bad["order"]
    assert "argument 'start'" in bad["empty"] and "no rows" in bad["empty"]
    assert "argument 'threshold'" in bad["threshold"]
    assert "argument 'start'" in bad["date"]
    assert "model 987654 not found" in bad["model"] and "model 987654 not found" in bad["list_model"]
    assert "backtest 987654 not found" in bad["run"]
    assert BacktestRun.objects.count() == 1  # refused calls stored nothing

    assert services.execute_run(run_id=run_id).state == RunState.DONE  # what the worker's task does
    followed = anyio.run(run_sse, server["base"], token, follow)
    done = followed["run"]["backtest"]
    assert done["state"] == "done" and done["progress"] == 1
    summary = done["summary"]
    assert summary["rows_replayed"] == len(ROWS) and len(summary["thresholds"]) == 10
    assert summary["alerts"] > 0 and 0 <= summary["success_rate"] <= 1
    assert summary["live"]["live_predictions"] == 0
    brief = followed["listed"]["backtests"][0]
    assert brief["alerts"] == summary["alerts"] and brief["success_rate"] == summary["success_rate"]


def test_quality_tools_answer_a_models_figures_and_a_comparison(server, token):
    first = ActiveModel.objects.create(model_type="xgboost", features=["price_close"], model_name="first",
                                       training_precision=0.8)
    second = ActiveModel.objects.create(model_type="xgboost", features=["price_close"], model_name="second")
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for k in range(12):  # the same coin events: the first model is right on all of them, the second on two
        at = base + timedelta(minutes=k)
        quality_predict(first, f"c{k}", 0.9, True, at=at)
        quality_predict(second, f"c{k}", 0.9, k < 2, at=at)
    quality_services.refresh_hours(since=None)
    ids = [first.pk, second.pk]

    async def work(agent: Agent) -> dict:
        return {
            "quality": await agent.ok("get_model_quality", {"active_model_id": first.pk, "window": "24h"}),
            "default": await agent.ok("get_model_quality", {"active_model_id": second.pk}),
            "ranged": await agent.ok("get_model_quality", {"active_model_id": first.pk,
                                                           "start": (base - timedelta(days=1)).isoformat(),
                                                           "end": base.isoformat()}),
            "compared": await agent.ok("compare_models", {"ids": ids, "window": "7d"}),
            "bad": {
                "window": await agent.error("get_model_quality", {"active_model_id": first.pk, "window": "2d"}),
                "both": await agent.error("get_model_quality", {"active_model_id": first.pk, "window": "1h",
                                                                "start": base.isoformat(), "end": base.isoformat()}),
                "end": await agent.error("get_model_quality", {"active_model_id": first.pk,
                                                               "start": base.isoformat()}),
                "model": await agent.error("get_model_quality", {"active_model_id": 987654}),
                "one": await agent.error("compare_models", {"ids": [first.pk]}),
                "same": await agent.error("compare_models", {"ids": [first.pk, first.pk]}),
                "unknown": await agent.error("compare_models", {"ids": [first.pk, 987654]}),
            },
        }

    out = anyio.run(run_streamable, server["base"], token, work)
    quality = out["quality"]["quality"]
    assert quality["active_model_id"] == first.pk and quality["window"] == "24h"
    assert (quality["judged_alerts"], quality["success"], quality["success_rate"]) == (12, 12, 1.0)
    assert quality["success_rate_low"] < 1 and quality["success_rate_high"] == 1.0
    assert len(quality["calibration"]) == 10 and quality["psi"] == {} and quality["degraded"] is False
    assert quality["reference"]["success_rate"] == 0.8
    assert out["default"]["quality"]["window"] == "24h" and out["default"]["quality"]["success"] == 2
    assert out["ranged"]["quality"]["window"] == "custom" and out["ranged"]["quality"]["judged_alerts"] == 0
    compared = out["compared"]
    assert [entry["active_model_id"] for entry in compared["models"]] == ids and compared["window"] == "7d"
    pair = compared["pairs"][0]
    assert (pair["first"], pair["second"], pair["only_first_right"], pair["only_second_right"]) == (*ids, 10, 0)
    assert pair["better"] == "first" and pair["p_value"] < 0.05
    bad = out["bad"]
    assert "argument 'window'" in bad["window"] and "argument 'window'" in bad["both"]
    assert "argument 'end'" in bad["end"] and "model 987654 not found" in bad["model"]
    assert "argument 'ids'" in bad["one"] and "argument 'ids'" in bad["same"]
    assert "model not found: 987654" in bad["unknown"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")
def test_sse_session_across_two_web_processes_with_redis(token, tmp_path):
    """With the Redis channel layer, a message POSTed to one web process reaches the stream held by another."""
    redis_port = _free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    first = Daphne(tmp_path / "first.log", REDIS_URL=redis_url)
    second = Daphne(tmp_path / "second.log", REDIS_URL=redis_url)
    try:
        first.wait_ready()
        second.wait_ready()
        events: queue.Queue = queue.Queue()

        def read_stream():
            try:
                with requests.get(f"{first.base}/mcp/sse", headers=auth(token), stream=True, timeout=60) as response:
                    for line in response.iter_lines(decode_unicode=True):
                        if line.startswith("data:"):
                            events.put(line.removeprefix("data:").strip())
            except requests.RequestException:
                pass  # the server stops at the end of the test

        threading.Thread(target=read_stream, daemon=True).start()
        endpoint = events.get(timeout=15)
        assert endpoint.startswith("/mcp/messages/?session_id=")

        def post(message: dict) -> int:
            return requests.post(second.base + endpoint, json=message, headers=auth(token), timeout=15).status_code

        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
        assert post(initialize) == 202
        assert json.loads(events.get(timeout=15))["result"]["serverInfo"]["name"] == "pump-server-mcp"
        assert post({"jsonrpc": "2.0", "method": "notifications/initialized"}) == 202
        assert post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "list_active_models", "arguments": {}}}) == 202
        answer = json.loads(events.get(timeout=15))
        assert answer["id"] == 2 and answer["result"]["structuredContent"]["success"] is True
        # another user's token cannot use the session, on either process
        stranger = issue_api_token(user=User.objects.create_user("stranger", password="unused-pw-2")).key
        for base in (first.base, second.base):
            assert requests.post(base + endpoint, json=initialize, headers=auth(stranger), timeout=15).status_code == 404
    finally:
        for daphne in (first, second):
            daphne.stop()
        redis.terminate()
        redis.wait(timeout=10)
