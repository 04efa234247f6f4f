"""A failed save reports every problem at once: the per-model settings service names every refused value, and the
pages show the form's own errors together with the service's (the browser part is in test_pages_forms_browser.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelregistry import services
from modelregistry.models import ActiveModel
from pumpserver import config
from tests.test_pages import HX, make_model
from tests.test_pages import client as client  # noqa: F401  (the logged-in client fixture)
from tests.test_pages import user as user  # noqa: F401

pytestmark = pytest.mark.django_db

PRIVATE_HOOK = "http://10.1.2.3/webhook/pump"  # a private address: refused by the webhook URL policy


def test_the_settings_service_names_every_refused_value():
    model = make_model("m")
    bad = {"n8n_webhook_url": PRIVATE_HOOK, "alert_threshold": 2, "n8n_send_mode": ["sometimes"],
           "ignore_bad_seconds": 5}
    with pytest.raises(services.InvalidSetting) as refused:
        services.update_model_settings(active_model_id=model.pk, **bad)
    assert set(refused.value.errors) == {"n8n_webhook_url", "alert_threshold", "n8n_send_mode"}
    assert refused.value.field == "n8n_webhook_url" and "private" in refused.value.errors["n8n_webhook_url"]
    assert all(message in refused.value.message for message in refused.value.errors.values())
    stored = ActiveModel.objects.get(pk=model.pk)
    assert stored.ignore_bad_seconds == 0 and stored.n8n_webhook_url is None  # nothing stored
    assert services.check_model_settings(**bad) == refused.value.errors
    assert services.check_model_settings(alert_threshold=Decimal("0.5"), ignore_bad_seconds=5) == {}


def test_the_api_names_every_refused_setting(api_client):
    model = make_model("m")
    response = api_client.patch(f"/api/models/{model.pk}/alert-config",
                                {"n8n_webhook_url": PRIVATE_HOOK, "alert_threshold": 1.5}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"alert_threshold"}  # the serializer's check
    response = api_client.patch(f"/api/models/{model.pk}/alert-config",
                                {"n8n_webhook_url": PRIVATE_HOOK, "alert_threshold": 0.5}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"n8n_webhook_url"}


@pytest.mark.parametrize("htmx", [True, False])
def test_the_config_page_shows_the_forms_and_the_services_errors_at_once(client, htmx):
    model = make_model("m")
    form = {
        "alert_threshold": "1.5",  # the form refuses it
        "n8n_enabled": "on", "n8n_webhook_url": PRIVATE_HOOK,  # the service refuses it
        "n8n_send_mode": ["all"], "coin_filter_mode": "all", "coin_whitelist": "",
        "ignore_bad_seconds": "0", "ignore_positive_seconds": "0", "ignore_alert_seconds": "-1",  # the form again
        "min_scan_interval_seconds": "20", "max_log_entries_per_coin_negative": "0",
        "max_log_entries_per_coin_positive": "0", "max_log_entries_per_coin_alert": "0",
    }
    response = client.post(f"/models/{model.pk}/config/", form, **(HX if htmx else {}))
    assert response.status_code == (200 if htmx else 400)
    text = response.content.decode()
    for field in ("alert_threshold", "n8n_webhook_url", "ignore_alert_seconds"):
        section = text.split(f'id="field-{field}"', 1)[1].split('<div class="field', 1)[0]
        assert 'class="field-error"' in section, field
    assert "private address" in text
    summary = text.split('class="msg msg-error"', 1)[1].split("</p>", 1)[0]
    assert "correct the marked fields" in summary
    for label in ("Alert threshold", "n8n webhook URL", "Ignore after alert (s)"):
        assert label in summary, label
    assert ActiveModel.objects.get(pk=model.pk).alert_threshold == Decimal("0.7")


def test_the_settings_page_shows_the_forms_and_the_configurations_errors_at_once(client):
    response = client.post("/settings/", {"training_service_url": "http://" + "a" * 2001,  # the form's max_length
                                          "n8n_webhook_url": PRIVATE_HOOK}, **HX)  # the configuration's check
    text = response.content.decode()
    for field in ("training_service_url", "n8n_webhook_url"):
        section = text.split(f'id="field-{field}"', 1)[1].split('<div class="field', 1)[0]
        assert 'class="field-error"' in section, field
    assert config.get_config()["n8n_webhook_url"] in ("", None)
    assert config.check_config(changes={"n8n_webhook_url": PRIVATE_HOOK, "training_service_url": "ftp://x"}).keys() \
        == {"n8n_webhook_url", "training_service_url"}
    assert config.check_config(changes={"training_service_url": "http://training:8000/api"}) == {}
