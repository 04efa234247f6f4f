"""Monitoring over REST: /api/health and /health (always 200, `status` healthy or degraded, as the existing server),
/api/health/ready (503 while the database, the listener or the worker is down), /api/stats and /api/logs."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from pumpserver.models import ProcessHeartbeat
from tests.test_api_model_predictions import make_model, make_prediction

pytestmark = pytest.mark.django_db


def beat(kind: str, *, age: float = 1.0, pid: int = 1, **details) -> ProcessHeartbeat:
    now = timezone.now()
    return ProcessHeartbeat.objects.create(
        name=f"{kind}@test:{pid}", kind=kind, hostname="test", pid=pid, started_at=now - timedelta(hours=1),
        last_seen=now - timedelta(seconds=age), details=details,
    )


def test_healthy_with_live_heartbeats(client):
    model = make_model()
    make_model(is_active=False)
    broken = make_model(load_error="feature mismatch")
    make_prediction(model)
    beat("listener", models_loaded=2)
    beat("listener", pid=2, age=3600, models_loaded=9)  # a dead listener neither counts nor reports models
    beat("worker")

    response = client.get("/api/health")  # public by default: no token

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "healthy" and body["db_connected"] is True and body["last_error"] is None
    assert body["active_models"] == 2 and body["predictions_last_hour"] == 1
    assert body["uptime_seconds"] >= 0 and body["start_time"] > 1_600_000_000
    checks = body["checks"]
    assert checks["database"]["connected"] is True and checks["database"]["latency_ms"] >= 0
    assert checks["listener"]["alive"] is True and checks["listener"]["count"] == 1
    assert checks["worker"] == {"alive": True, "last_seen": checks["worker"]["last_seen"], "count": 1}
    assert checks["models"] == {"active": 2, "loaded": 2, "errored": [broken.pk]}
    assert checks["queue_depth"] == 0
    assert client.get("/health").json()["checks"]["models"] == checks["models"]
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "healthy"


@pytest.mark.parametrize("path, degraded_status", [("/api/health", 200), ("/health", 200), ("/api/health/ready", 503)])
def test_stale_or_missing_listener_is_degraded(client, path, degraded_status):
    beat("worker")
    missing = client.get(path)
    assert missing.status_code == degraded_status
    body = missing.json()
    assert body["status"] == "degraded" and body["db_connected"] is True
    assert body["checks"]["listener"] == {"alive": False, "last_seen": None, "count": 0}
    assert "no listener heartbeat" in body["last_error"]

    beat("listener", age=31)
    stale = client.get(path).json()
    assert client.get(path).status_code == degraded_status and stale["status"] == "degraded"
    assert stale["checks"]["listener"]["alive"] is False and stale["checks"]["listener"]["last_seen"] is not None


def test_staleness_is_a_setting(client, settings):
    beat("listener", age=45)
    beat("worker", age=45)
    assert client.get("/api/health/ready").status_code == 503
    assert client.get("/api/health").json()["status"] == "degraded"
    settings.HEARTBEAT_STALE_SECONDS = 60
    assert client.get("/api/health/ready").status_code == 200
    assert client.get("/api/health").json()["status"] == "healthy"


def test_missing_worker_is_degraded_and_not_ready(client):
    beat("listener")
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    assert "no worker heartbeat" in response.json()["last_error"]
    ready = client.get("/api/health/ready")
    assert ready.status_code == 503 and ready.json()["last_error"] == response.json()["last_error"]


def test_health_can_be_made_private(settings, api_client):
    settings.HEALTH_PUBLIC = False
    beat("listener")
    beat("worker")
    assert APIClient().get("/api/health").status_code == 401
    assert APIClient().get("/health").status_code == 401
    assert APIClient().get("/api/health/ready").status_code == 401
    assert api_client.get("/api/health").status_code == 200
    assert api_client.get("/api/health/ready").status_code == 200


def test_health_is_a_handful_of_queries(client, django_assert_max_num_queries):
    beat("listener")
    beat("worker")
    with django_assert_max_num_queries(8):
        assert client.get("/api/health").status_code == 200


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path, status", [("/api/health", 200), ("/health", 200), ("/api/health/ready", 503)])
def test_database_down_is_reported_not_a_500(client, path, status):
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        response = client.get(path, HTTP_AUTHORIZATION="Token not-looked-up")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "degraded"
    assert body["db_connected"] is False and body["checks"]["database"] == {"connected": False, "latency_ms": None}
    assert body["last_error"].startswith("database:")
    assert body["checks"]["queue_depth"] is None


# --- /api/stats -----------------------------------------------------------------------------------------------------


def test_stats_count_model_predictions(api_client):
    model = make_model()
    make_prediction(model, coin="A", prediction_duration_ms=10.0)
    make_prediction(model, coin="B", minute=1, prediction_duration_ms=20.0)

    response = api_client.get("/api/stats")

    assert response.status_code == 200
    body = response.json()
    assert body["total_predictions"] == 2 and body["predictions_last_hour"] == 2 and body["coins_tracked"] == 2
    assert body["avg_prediction_time_ms"] == 15.0 and body["active_models"] == 1
    assert (body["webhook_total"], body["webhook_success"], body["webhook_failed"]) == (0, 0, 0)
    assert APIClient().get("/api/stats").status_code == 401


# --- /api/logs ------------------------------------------------------------------------------------------------------


def test_logs_tail_the_configured_file(api_client, settings, tmp_path):
    log = tmp_path / "pump.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 30001)))
    settings.LOG_FILE = str(log)

    response = api_client.get("/api/logs", {"tail": 3})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "line 29998\nline 29999\nline 30000\n"
    assert len(api_client.get("/api/logs").content.decode().splitlines()) == 100
    assert len(api_client.get("/api/logs", {"tail": 10000}).content.decode().splitlines()) == 10000


def test_logs_without_a_log_file(api_client, settings, tmp_path):
    settings.LOG_FILE = None
    hint = api_client.get("/api/logs", HTTP_ACCEPT="text/plain")
    assert hint.status_code == 200 and "No LOG_FILE is configured" in hint.content.decode()
    settings.LOG_FILE = str(tmp_path / "missing.log")
    assert "cannot be read" in api_client.get("/api/logs").content.decode()


@pytest.mark.parametrize("tail", ["0", "10001", "-5", "many"])
def test_logs_tail_is_validated(api_client, tail):
    response = api_client.get("/api/logs", {"tail": tail})
    assert response.status_code == 400 and "tail" in response.json()


def test_logs_need_authentication():
    assert APIClient().get("/api/logs").status_code == 401


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path, status", [("/api/health", 200), ("/api/health/ready", 503)])
def test_private_health_with_the_database_down_is_reported_not_a_500(client, settings, path, status):
    settings.HEALTH_PUBLIC = False
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        response = client.get(path, HTTP_AUTHORIZATION="Token some-token")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == status and response.json()["db_connected"] is False
