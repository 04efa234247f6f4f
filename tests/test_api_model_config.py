"""Per-model settings API (spec §1.4 C1–C8, §4.6 n8n-status) against the real database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from modelregistry.models import ActiveModel
from predictions.models import WebhookLog

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=timezone.utc)
HOOK = "http://127.0.0.1:5678/webhook/pump"  # the test settings allow 127.0.0.1 and localhost
PRIVATE_HOOK = "http://10.1.2.3/hook"


@pytest.fixture
def model() -> ActiveModel:
    return ActiveModel.objects.create(model_id=1, model_name="m", model_type="xgboost", features=["price_close"],
                                      future_minutes=10)


def patch(client, model, endpoint: str, body):
    return client.patch(f"/api/models/{model.pk}/{endpoint}", body, format="json")


def reload(model) -> ActiveModel:
    return ActiveModel.objects.get(pk=model.pk)


# --- C1 alert-threshold ------------------------------------------------------------------------------------------


def test_alert_threshold_is_stored_and_echoed(api_client, model):
    response = patch(api_client, model, "alert-threshold", {"alert_threshold": 0.55})
    assert response.status_code == 200
    assert response.json() == {"message": f"Alert threshold of model {model.pk} set to 55%",
                               "active_model_id": model.pk, "alert_threshold": 0.55}
    assert reload(model).alert_threshold == Decimal("0.55")
    for edge in (0, 1):
        assert patch(api_client, model, "alert-threshold", {"alert_threshold": edge}).status_code == 200


@pytest.mark.parametrize("body", [{}, {"alert_threshold": -0.01}, {"alert_threshold": 1.01},
                                  {"alert_threshold": "high"}, {"alert_threshold": None}])
def test_alert_threshold_outside_0_to_1_is_a_400_naming_the_field(api_client, model, body):
    response = patch(api_client, model, "alert-threshold", body)
    assert response.status_code == 400 and "alert_threshold" in response.json()
    assert reload(model).alert_threshold == Decimal("0.7")


# --- C2 n8n-settings (legacy) ------------------------------------------------------------------------------------


def test_n8n_settings_is_a_partial_update_with_a_single_send_mode(api_client, model):
    ActiveModel.objects.filter(pk=model.pk).update(n8n_webhook_url=HOOK, n8n_send_mode=["all", "negative_only"])

    response = patch(api_client, model, "n8n-settings", {"n8n_enabled": False})
    assert response.status_code == 200
    assert response.json() == {"message": f"n8n settings of model {model.pk} updated",
                               "active_model_id": model.pk, "n8n_webhook_url": None, "n8n_send_mode": None,
                               "n8n_enabled": False}
    stored = reload(model)
    assert (stored.n8n_enabled, stored.n8n_webhook_url, stored.n8n_send_mode) == (False, HOOK, ["all", "negative_only"])

    response = patch(api_client, model, "n8n-settings", {"n8n_send_mode": "alerts_only"})
    assert response.json()["n8n_send_mode"] == "alerts_only"
    assert reload(model).n8n_send_mode == ["alerts_only"]  # a list, never a bare string (weakness 12)


def test_n8n_settings_sets_and_clears_the_url(api_client, model):
    assert patch(api_client, model, "n8n-settings", {"n8n_webhook_url": f" {HOOK} "}).status_code == 200
    assert reload(model).n8n_webhook_url == HOOK
    response = patch(api_client, model, "n8n-settings", {"n8n_webhook_url": ""})
    assert response.status_code == 200 and reload(model).n8n_webhook_url is None


@pytest.mark.parametrize("body, field", [
    ({"n8n_send_mode": "sometimes"}, "n8n_send_mode"),
    ({"n8n_send_mode": ["all"]}, "n8n_send_mode"),
    ({"n8n_enabled": "perhaps"}, "n8n_enabled"),
    ({"n8n_webhook_url": PRIVATE_HOOK}, "n8n_webhook_url"),
    ({"n8n_webhook_url": "ftp://127.0.0.1/x"}, "n8n_webhook_url"),
])
def test_n8n_settings_validation_names_the_field(api_client, model, body, field):
    response = patch(api_client, model, "n8n-settings", body)
    assert response.status_code == 400 and field in response.json()


# --- C3 alert-config ---------------------------------------------------------------------------------------------


FULL_CONFIG = {
    "n8n_webhook_url": HOOK, "n8n_enabled": False, "n8n_send_mode": ["positive_only", "alerts_only"],
    "alert_threshold": 0.85, "coin_filter_mode": "whitelist", "coin_whitelist": ["mintA", "mintB"],
    "min_scan_interval_seconds": 30, "send_ignored_to_n8n": True,
}


def test_alert_config_stores_the_full_set_and_echoes_it(api_client, model):
    response = patch(api_client, model, "alert-config", FULL_CONFIG)

    assert response.status_code == 200, response.content
    expected_echo = {key: value for key, value in FULL_CONFIG.items() if key != "send_ignored_to_n8n"}
    assert response.json() == {"message": f"Alert configuration of model {model.pk} updated",
                               "active_model_id": model.pk, "config": expected_echo}
    stored = reload(model)
    assert stored.n8n_webhook_url == HOOK and stored.n8n_enabled is False
    assert stored.n8n_send_mode == ["positive_only", "alerts_only"] and stored.alert_threshold == Decimal("0.85")
    assert stored.coin_filter_mode == "whitelist" and stored.coin_whitelist == ["mintA", "mintB"]
    assert stored.min_scan_interval_seconds == 30 and stored.send_ignored_to_n8n is True


def test_alert_config_keeps_the_documented_defaulting(api_client, model):
    patch(api_client, model, "alert-config", FULL_CONFIG)

    response = patch(api_client, model, "alert-config", {})

    assert response.status_code == 200
    assert response.json()["config"] == {
        "n8n_webhook_url": None, "n8n_enabled": True, "n8n_send_mode": ["all"], "alert_threshold": 0.7,
        "coin_filter_mode": "all", "coin_whitelist": None, "min_scan_interval_seconds": None,
    }
    stored = reload(model)
    # the five defaulted fields are overwritten …
    assert stored.n8n_enabled is True and stored.n8n_send_mode == ["all"]
    assert stored.alert_threshold == Decimal("0.7") and stored.coin_filter_mode == "all"
    assert stored.send_ignored_to_n8n is False
    # … the three optional ones stay as they were (also when sent as null)
    assert stored.n8n_webhook_url == HOOK and stored.coin_whitelist == ["mintA", "mintB"]
    assert stored.min_scan_interval_seconds == 30
    nulls = {"n8n_webhook_url": None, "coin_whitelist": None, "min_scan_interval_seconds": None}
    assert patch(api_client, model, "alert-config", nulls).status_code == 200
    assert reload(model).n8n_webhook_url == HOOK and reload(model).coin_whitelist == ["mintA", "mintB"]


def test_alert_config_clears_the_url_with_an_empty_string(api_client, model):
    patch(api_client, model, "alert-config", FULL_CONFIG)
    response = patch(api_client, model, "alert-config", {**FULL_CONFIG, "n8n_webhook_url": "  "})
    assert response.status_code == 200
    assert reload(model).n8n_webhook_url is None


def test_alert_config_refuses_a_private_webhook_address_and_changes_nothing(api_client, model):
    response = patch(api_client, model, "alert-config", {**FULL_CONFIG, "n8n_webhook_url": PRIVATE_HOOK})
    assert response.status_code == 400
    assert "private" in response.json()["n8n_webhook_url"][0]
    stored = reload(model)
    assert stored.n8n_webhook_url is None and stored.alert_threshold == Decimal("0.7") and stored.n8n_enabled


@pytest.mark.parametrize("field, value", [
    ("alert_threshold", 1.5), ("alert_threshold", -1),
    ("min_scan_interval_seconds", -1), ("min_scan_interval_seconds", 86_401), ("min_scan_interval_seconds", 2.5),
    ("coin_filter_mode", "some"), ("n8n_send_mode", []), ("n8n_send_mode", ["all", "bogus"]),
    ("n8n_send_mode", "all"), ("coin_whitelist", "mintA"), ("n8n_enabled", "perhaps"),
    ("send_ignored_to_n8n", "perhaps"), ("n8n_webhook_url", "not a url"),
])
def test_alert_config_validation_names_the_field(api_client, model, field, value):
    response = patch(api_client, model, "alert-config", {**FULL_CONFIG, field: value})
    assert response.status_code == 400 and field in response.json(), response.content
    assert reload(model).coin_filter_mode == "all"


# --- C4/C5 ignore-settings, C6/C7 max-log-entries ----------------------------------------------------------------


IGNORE = ("ignore_bad_seconds", "ignore_positive_seconds", "ignore_alert_seconds")
CAPS = ("max_log_entries_per_coin_negative", "max_log_entries_per_coin_positive", "max_log_entries_per_coin_alert")
LIMITED = [("ignore-settings", IGNORE, 86_400, "Coin ignore settings"),
           ("max-log-entries", CAPS, 1000, "Max log entries")]


@pytest.mark.parametrize("endpoint, fields, maximum, title", LIMITED)
def test_limits_are_read_and_fully_replaced(api_client, model, endpoint, fields, maximum, title):
    assert api_client.get(f"/api/models/{model.pk}/{endpoint}").json() == dict.fromkeys(fields, 0)

    values = dict(zip(fields, (maximum, 1, 0)))
    response = patch(api_client, model, endpoint, values)
    assert response.status_code == 200
    assert response.json() == {"message": f"{title} of model {model.pk} updated",
                               "active_model_id": model.pk, **values}
    assert api_client.get(f"/api/models/{model.pk}/{endpoint}").json() == values

    response = patch(api_client, model, endpoint, {fields[1]: 7})  # a full replace: the others become 0
    assert response.status_code == 200
    assert api_client.get(f"/api/models/{model.pk}/{endpoint}").json() == {fields[0]: 0, fields[1]: 7, fields[2]: 0}


@pytest.mark.parametrize("endpoint, fields, maximum, title", LIMITED)
def test_limits_outside_their_range_are_a_400_naming_the_field(api_client, model, endpoint, fields, maximum, title):
    for field in fields:
        for bad in (-1, maximum + 1, 1.5, "many", None):
            response = patch(api_client, model, endpoint, {field: bad})
            assert response.status_code == 400 and field in response.json(), (field, bad)
    assert api_client.get(f"/api/models/{model.pk}/{endpoint}").json() == dict.fromkeys(fields, 0)


# --- unknown ids and anonymous requests --------------------------------------------------------------------------


@pytest.mark.parametrize("method, endpoint, body", [
    ("patch", "alert-threshold", {"alert_threshold": 0.5}), ("patch", "n8n-settings", {"n8n_enabled": True}),
    ("patch", "alert-config", {}), ("get", "ignore-settings", None), ("patch", "ignore-settings", {}),
    ("get", "max-log-entries", None), ("patch", "max-log-entries", {}),
])
def test_settings_of_unknown_models_are_404(api_client, method, endpoint, body):
    response = getattr(api_client, method)(f"/api/models/4242/{endpoint}", body, format="json")
    assert response.status_code == 404 and response.json() == {"detail": "Model not found"}


@pytest.mark.parametrize("method, endpoint", [
    ("patch", "alert-threshold"), ("patch", "n8n-settings"), ("patch", "alert-config"), ("get", "ignore-settings"),
    ("patch", "ignore-settings"), ("get", "max-log-entries"), ("patch", "max-log-entries"), ("get", "n8n-status"),
])
def test_settings_endpoints_refuse_anonymous_requests(model, method, endpoint):
    response = getattr(APIClient(), method)(f"/api/models/{model.pk}/{endpoint}", {}, format="json")
    assert response.status_code == 401
    assert reload(model).n8n_send_mode == ["all"] and reload(model).alert_threshold == Decimal("0.7")


# --- C8 n8n-status -----------------------------------------------------------------------------------------------


def log_attempt(url: str, *, status: int | None, error: str | None = None, minute: int = 0) -> WebhookLog:
    row = WebhookLog.objects.create(coin_id="mintA", data_timestamp=T0, webhook_url=url, payload={},
                                    response_status=status, error_message=error)
    WebhookLog.objects.filter(pk=row.pk).update(created_at=T0 + timedelta(minutes=minute))
    return row


@pytest.fixture
def no_global_url(settings):
    settings.N8N_WEBHOOK_URL = None


def status_of(client, model_pk: int) -> dict:
    response = client.get(f"/api/models/{model_pk}/n8n-status")
    assert response.status_code == 200
    return response.json()


def test_n8n_status_without_model_url_or_attempts(api_client, model, no_global_url):
    assert status_of(api_client, 4242) == {"status": "unknown", "message": "Model not found"}
    assert status_of(api_client, model.pk) == {"status": "no_url", "message": "No n8n URL configured"}
    ActiveModel.objects.filter(pk=model.pk).update(n8n_webhook_url=HOOK)
    assert status_of(api_client, model.pk) == {"status": "unknown", "message": "No webhook attempt yet",
                                               "n8n_url": HOOK}


@pytest.mark.parametrize("status, error, expected", [
    (200, None, "ok"), (204, None, "ok"), (302, None, "error"), (500, None, "error"), (None, "refused", "error"),
    (None, "", "unknown"), (None, None, "unknown"),
])
def test_n8n_status_follows_the_newest_attempt_for_the_url(api_client, model, no_global_url, status, error, expected):
    ActiveModel.objects.filter(pk=model.pk).update(n8n_webhook_url=HOOK)
    log_attempt(HOOK, status=500 if expected == "ok" else 200, minute=0)  # older: ignored
    log_attempt(HOOK + "/other", status=200, minute=5)  # another URL: ignored
    log_attempt(HOOK, status=status, error=error, minute=1)

    body = status_of(api_client, model.pk)

    assert body == {"status": expected, "last_attempt": body["last_attempt"], "last_status": status,
                    "last_error": error, "n8n_url": HOOK}
    assert datetime.fromisoformat(body["last_attempt"].replace("Z", "+00:00")) == T0 + timedelta(minutes=1)


def test_n8n_status_falls_back_to_the_global_url_and_shortens_long_urls(api_client, model, settings):
    long_url = "http://127.0.0.1:5678/webhook/" + "x" * 60
    settings.N8N_WEBHOOK_URL = long_url
    log_attempt(long_url, status=200)
    body = status_of(api_client, model.pk)
    assert body["status"] == "ok" and body["n8n_url"] == long_url[:50] + "..."
