"""The persisted UI configuration: GET/POST /api/config, stored in the database and read at use time."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pumpserver import config
from pumpserver.models import RuntimeSetting

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    config._cache.clear()
    yield
    config._cache.clear()


def test_get_shows_every_key_with_defaults(api_client, settings):
    settings.TRAINING_SERVICE_API_URL = "http://training.example:8005/api"

    response = api_client.get("/api/config")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["timestamp"]
    assert body["config"] == {
        "database_url": config.redact_database_url(settings.DATABASE_TARGET.conninfo),
        "training_service_url": "http://training.example:8005/api",
        "n8n_webhook_url": "",
        "api_port": 8000,
        "streamlit_port": 8501,
    }


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://pump:s3cret@db.example:5432/pump", "postgresql://pump:****@db.example:5432/pump"),
        ("postgresql://pump@db/pump?password=s3cret&sslmode=require", "postgresql://pump@db/pump?password=****&sslmode=require"),
        ("host=db user=pump password='s e c' dbname=pump", "host=db user=pump password=**** dbname=pump"),
        ("postgresql://pump@/pump?host=/var/run/postgresql", "postgresql://pump@/pump?host=/var/run/postgresql"),
    ],
)
def test_database_url_is_redacted(url, shown):
    assert config.redact_database_url(url) == shown


def test_database_url_in_the_answer_never_has_the_password(api_client, settings):
    target = type(settings.DATABASE_TARGET)(conninfo="postgresql://pump:s3cret@db.example/pump", source="DATABASE_URL")
    settings.DATABASE_TARGET = target
    body = api_client.get("/api/config").json()
    assert body["config"]["database_url"] == "postgresql://pump:****@db.example/pump"
    assert "s3cret" not in api_client.post("/api/config", {"api_port": 8080}, format="json").content.decode()


def test_post_merges_validates_and_applies_without_restart(api_client, settings):
    settings.N8N_WEBHOOK_URL = None
    settings.TRAINING_SERVICE_API_URL = "http://env-training/api"
    shown = api_client.get("/api/config").json()["config"]

    response = api_client.post(
        "/api/config",
        {**shown, "training_service_url": "https://training.example/api", "n8n_webhook_url": "http://127.0.0.1:5678/webhook/pump"},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["requires_restart"] is False and body["auto_restart"] is False
    assert body["config"]["training_service_url"] == "https://training.example/api"
    assert body["config"]["n8n_webhook_url"] == "http://127.0.0.1:5678/webhook/pump"
    assert body["config"]["database_url"] == shown["database_url"]  # sent back unchanged: accepted
    # read at use time by every process
    assert config.global_n8n_webhook_url() == "http://127.0.0.1:5678/webhook/pump"
    assert config.training_service_url() == "https://training.example/api"  # the stored URL wins over the env

    # shallow merge: other keys stay
    api_client.post("/api/config", {"api_port": 9000}, format="json")
    merged = api_client.get("/api/config").json()["config"]
    assert merged["api_port"] == 9000 and merged["training_service_url"] == "https://training.example/api"

    # "" or null resets a key to its default
    api_client.post("/api/config", {"training_service_url": "", "api_port": None}, format="json")
    reset = api_client.get("/api/config").json()["config"]
    assert reset["training_service_url"] == "http://env-training/api" and reset["api_port"] == 8000
    assert set(RuntimeSetting.objects.values_list("key", flat=True)) == {"n8n_webhook_url", "streamlit_port"}


def test_the_environment_wins_for_the_global_webhook(api_client, settings):
    api_client.post("/api/config", {"n8n_webhook_url": "http://localhost:5678/webhook/stored"}, format="json")
    settings.N8N_WEBHOOK_URL = "http://localhost:5678/webhook/env"
    assert config.global_n8n_webhook_url() == "http://localhost:5678/webhook/env"
    settings.N8N_WEBHOOK_URL = None
    assert config.global_n8n_webhook_url() == "http://localhost:5678/webhook/stored"
    api_client.post("/api/config", {"n8n_webhook_url": ""}, format="json")
    assert config.global_n8n_webhook_url() is None


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"database_url": "postgresql://other:pw@elsewhere/db"}, "database_url", "DATABASE_URL"),
        ({"training_service_url": "ftp://training"}, "training_service_url", "http"),
        ({"training_service_url": 5}, "training_service_url", "string"),
        ({"n8n_webhook_url": "http://10.1.2.3/webhook"}, "n8n_webhook_url", "private"),
        ({"n8n_webhook_url": "javascript:alert(1)"}, "n8n_webhook_url", "http"),
        ({"api_port": 70000}, "api_port", "65535"),
        ({"streamlit_port": "8501"}, "streamlit_port", "integer"),
        ({"api_port": True}, "api_port", "integer"),
        ({"restart": True}, "restart", "unknown"),
        ({"database_url": {}}, "database_url", "DATABASE_URL"),
        ({"database_url": ["postgresql://x"]}, "database_url", "DATABASE_URL"),
    ],
)
def test_bad_changes_are_400_naming_the_key_and_store_nothing(api_client, body, field, message):
    response = api_client.post("/api/config", {**body, "api_port": body.get("api_port", 8081)}, format="json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field])
    assert not RuntimeSetting.objects.exists()


def test_body_must_be_an_object(api_client):
    response = api_client.post("/api/config", [1, 2], format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


def test_form_data_is_refused_as_unsupported_not_a_server_error(api_client):
    response = api_client.post("/api/config", {"api_port": "8081", "database_url": ""}, format="multipart")
    assert response.status_code == 415, response.content
    assert "Unsupported media type" in response.json()["detail"]
    assert not RuntimeSetting.objects.exists()


def test_config_needs_authentication():
    assert APIClient().get("/api/config").status_code == 401
    assert APIClient().post("/api/config", {"api_port": 1}, format="json").status_code == 401
