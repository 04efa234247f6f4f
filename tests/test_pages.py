"""The HTMX pages with Django's test client: login, every page, forms with inline errors, inline actions, partials."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from modelregistry.models import ActiveModel
from predictions.models import DeliveryStatus, ModelPrediction, WebhookDelivery
from pumpserver.models import RuntimeSetting
from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN
from tests import parity
from tests.test_listener import register_xgb
from web import charts

pytestmark = pytest.mark.django_db

COIN = "TxSi64Fp4VXNhZtWjQvC8FoLqu3BGK6PxrPSmVhipump"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def user(django_user_model):
    """A user of the admin group: every page action is allowed (tests/test_token_scopes.py covers the groups)."""
    user = django_user_model.objects.create_user(username="operator", password="a-long-test-password-1")
    set_role(user=user, scope=ADMIN)
    return user


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_model(name: str = "demo", **fields) -> ActiveModel:
    return ActiveModel.objects.create(
        model_id=fields.pop("model_id", None), model_name=name, model_type="xgboost", features=["price_close"],
        future_minutes=5, price_change_percent=Decimal("10"), target_direction="up", **fields,
    )


def add_prediction(model: ActiveModel, *, probability: float, tag: str, coin: str = COIN, minutes_ago: int = 1,
                   **fields) -> ModelPrediction:
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    return ModelPrediction.objects.create(
        coin_id=coin, model_id=model.model_id, active_model=model, prediction=int(probability >= 0.5),
        probability=probability, tag=tag, prediction_timestamp=moment,
        evaluation_timestamp=moment + timedelta(minutes=5), **fields,
    )


@pytest.fixture
def model() -> ActiveModel:
    model = make_model()
    add_prediction(model, probability=0.9, tag="alert")
    add_prediction(model, probability=0.2, tag="negativ", minutes_ago=3)
    add_prediction(model, probability=0.8, tag="alert", minutes_ago=30, status="inaktiv", evaluation_result="success",
                   actual_price_change_pct=Decimal("12.5"), evaluated_at=timezone.now())
    return model


def page_urls(model: ActiveModel) -> list[str]:
    return [
        "/", "/models/", "/models/import/", "/models/import/available/", f"/models/{model.pk}/",
        f"/models/{model.pk}/config/", f"/models/{model.pk}/coins/{COIN}/", "/alerts/", "/webhooks/", "/settings/",
        "/info/",
    ]


# --- access ----------------------------------------------------------------------------------------------------------


def test_every_page_answers_200_for_a_logged_in_user(client, model):
    for url in page_urls(model):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert b"<html" in response.content or url == "/models/import/available/", url


def test_every_page_sends_anonymous_users_to_the_login(model):
    anonymous = Client()
    for url in page_urls(model):
        response = anonymous.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_an_htmx_request_of_an_expired_session_redirects_the_whole_page(model):
    response = Client().get("/", **HX, HTTP_HX_CURRENT_URL="http://testserver/models/")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/models/"


def test_login_page_logs_in_and_logout_needs_a_post(user):
    browser = Client()
    assert browser.get("/accounts/login/").status_code == 200
    response = browser.post("/accounts/login/", {"username": "operator", "password": "a-long-test-password-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert browser.get("/").status_code == 200
    assert browser.get("/accounts/logout/").status_code == 405  # GET does not log out
    assert browser.post("/accounts/logout/").status_code == 302
    assert browser.get("/").status_code == 302


def test_the_admin_stays_at_admin(client):
    assert Client().get("/admin/").status_code == 302
    assert "/admin/login/" in Client().get("/admin/")["Location"]


def test_every_post_needs_the_csrf_token(user, model):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    page = strict.get(f"/models/{model.pk}/config/")
    assert b'hx-headers=\'{"X-CSRFToken": "' in page.content
    assert strict.post(f"/models/{model.pk}/deactivate/").status_code == 403
    token = page.cookies["csrftoken"].value
    assert strict.post(f"/models/{model.pk}/deactivate/", HTTP_X_CSRFTOKEN=token).status_code == 200
    assert not ActiveModel.objects.get(pk=model.pk).is_active


# --- dashboard -------------------------------------------------------------------------------------------------------


def test_dashboard_shows_live_figures_and_polls_only_while_visible(client, model):
    response = client.get("/")
    text = response.content.decode()
    assert 'hx-trigger="every 5s [document.visibilityState === \'visible\']"' in text
    assert 'id="kpi-predictions-hour">3<' in text  # three predictions stored within the hour
    assert "<svg" in text and COIN in text  # the per-minute chart and the newest alerts


def test_dashboard_partial_renders_alone_for_an_htmx_request(client, model):
    response = client.get("/?partial=live", **HX)
    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith('<div id="dashboard-live"') and "<html" not in text and "<nav" not in text
    stats = client.get("/?partial=stats", **HX).content.decode()
    assert stats.lstrip().startswith('<div id="dashboard-stats"') and "<html" not in stats
    # a history restore needs the whole page
    restore = client.get("/", **HX, HTTP_HX_HISTORY_RESTORE_REQUEST="true").content.decode()
    assert "<html" in restore


def test_dashboard_explains_what_to_do_when_empty(client):
    text = client.get("/").content.decode()
    assert "No alerts yet" in text and "No models yet" in text and "never seen" in text


# --- models ----------------------------------------------------------------------------------------------------------


def test_model_list_shows_status_type_target_and_counters(client, model):
    make_model("paused", is_active=False)
    text = client.get("/models/").content.decode()
    assert "demo" in text and "paused" in text and "XGBoost" in text
    assert "rises ≥ 10 % within 5 min" in text
    assert "hx-confirm=" in text  # delete asks first
    only_inactive = client.get("/models/?status=inactive", **HX).content.decode()
    assert "paused" in only_inactive and "demo" not in only_inactive and "<html" not in only_inactive


def test_delete_requires_post_and_answers_an_empty_fragment(client, model):
    assert client.get(f"/models/{model.pk}/delete/").status_code == 405
    assert ActiveModel.objects.filter(pk=model.pk).exists()
    response = client.post(f"/models/{model.pk}/delete/", **HX)
    assert response.status_code == 200 and response.content == b""
    assert not ActiveModel.objects.filter(pk=model.pk).exists()
    assert not ModelPrediction.objects.filter(active_model_id=model.pk).exists()
    assert client.post(f"/models/{model.pk}/delete/").status_code == 404


def test_delete_from_the_details_page_returns_to_the_list(client, model):
    response = client.post(f"/models/{model.pk}/delete/", {"from": "detail"}, **HX)
    assert response["HX-Redirect"] == "/models/"
    plain = make_model("other")
    response = client.post(f"/models/{plain.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/models/"


def test_activate_deactivate_and_rename_answer_the_card(client):
    model = register_xgb()
    response = client.post(f"/models/{model.pk}/deactivate/", **HX)
    assert response.status_code == 200 and f'id="model-{model.pk}"' in response.content.decode()
    assert not ActiveModel.objects.get(pk=model.pk).is_active
    response = client.post(f"/models/{model.pk}/activate/", **HX)
    assert "Activated" in response.content.decode() and ActiveModel.objects.get(pk=model.pk).is_active
    response = client.post(f"/models/{model.pk}/rename/", {"custom_name": "  Moon finder "}, **HX)
    assert "Moon finder" in response.content.decode()
    assert ActiveModel.objects.get(pk=model.pk).custom_name == "Moon finder"

    refused = client.post(f"/models/{model.pk}/rename/", {"custom_name": "   "}, **HX)
    assert refused.status_code == 200 and 'role="alert"' in refused.content.decode()  # htmx swaps 2xx only
    assert "the name must not be empty" in refused.content.decode()
    assert client.post(f"/models/{model.pk}/rename/", {"custom_name": ""}).status_code == 400
    assert ActiveModel.objects.get(pk=model.pk).custom_name == "Moon finder"


def test_activating_a_model_without_a_file_shows_why(client):
    model = make_model("no file", is_active=False)
    text = client.post(f"/models/{model.pk}/activate/", **HX).content.decode()
    assert 'role="alert"' in text and "no stored model file" in text
    assert not ActiveModel.objects.get(pk=model.pk).is_active


def test_model_details_show_charts_versions_and_filtered_predictions(client):
    model = register_xgb()
    add_prediction(model, probability=0.95, tag="alert", coin="coinAAA")
    add_prediction(model, probability=0.1, tag="negativ", coin="coinBBB")
    text = client.get(f"/models/{model.pk}/").content.decode()
    assert "Probability histogram" in text and "Versions" in text and "xgboost_json" in text
    assert text.count("<svg") >= 3 and "coinAAA" in text and "coinBBB" in text
    partial = client.get(f"/models/{model.pk}/?partial=predictions&tag=alert", **HX).content.decode()
    assert partial.lstrip().startswith('<section class="card" id="predictions">')
    assert "coinAAA" in partial and "coinBBB" not in partial
    assert "coinBBB" in client.get(f"/models/{model.pk}/?partial=predictions&coin=coinBBB", **HX).content.decode()
    charts_7d = client.get(f"/models/{model.pk}/?partial=charts&range=7d", **HX).content.decode()
    assert "last 7 days" in charts_7d and "<html" not in charts_7d


def test_model_details_page_through_predictions(client, model):
    for minute in range(30):
        add_prediction(model, probability=0.3, tag="negativ", coin=f"page-coin-{minute:02d}", minutes_ago=100 + minute)
    first = client.get(f"/models/{model.pk}/?partial=predictions", **HX).content.decode()
    assert "Page 1 of 2" in first and "page-coin-00" in first and "page-coin-29" not in first
    assert 'href="?page=2#predictions"' in first  # without htmx: the whole page, scrolled to the table
    assert f'hx-get="/models/{model.pk}/?partial=predictions&amp;page=2" hx-target="#predictions"' in first
    second = client.get(f"/models/{model.pk}/?partial=predictions&page=2", **HX).content.decode()
    assert "Page 2 of 2" in second and "page-coin-29" in second


def test_unknown_model_is_404(client):
    assert client.get("/models/999999/").status_code == 404
    assert client.get("/models/999999/config/").status_code == 404


# --- per-model settings ----------------------------------------------------------------------------------------------


def config_data(**overrides) -> dict:
    data = {
        "alert_threshold": "0.8", "n8n_enabled": "on", "n8n_webhook_url": "", "n8n_send_mode": ["alerts_only"],
        "coin_filter_mode": "all", "coin_whitelist": "", "ignore_bad_seconds": "0", "ignore_positive_seconds": "0",
        "ignore_alert_seconds": "60", "min_scan_interval_seconds": "20", "max_log_entries_per_coin_negative": "0",
        "max_log_entries_per_coin_positive": "0", "max_log_entries_per_coin_alert": "3",
    }
    data.update(overrides)
    return data


def test_config_with_a_bad_threshold_shows_the_inline_error_and_stores_nothing(client, model):
    before = ActiveModel.objects.values().get(pk=model.pk)
    response = client.post(f"/models/{model.pk}/config/", config_data(alert_threshold="1.5", ignore_alert_seconds="99"),
                           **HX)
    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith('<form id="config-form"') and "<html" not in text
    assert 'class="field has-error" id="field-alert_threshold"' in text
    assert "less than or equal to 1" in text and "Nothing was saved" in text
    after = ActiveModel.objects.values().get(pk=model.pk)
    assert after == before


def test_config_refused_by_the_service_shows_its_message_inline(client, model):
    response = client.post(f"/models/{model.pk}/config/", config_data(n8n_webhook_url="ftp://example.com/hook"), **HX)
    text = response.content.decode()
    assert 'id="field-n8n_webhook_url"' in text and "http or https" in text
    assert ActiveModel.objects.get(pk=model.pk).alert_threshold == Decimal("0.7")
    whitelist = client.post(f"/models/{model.pk}/config/", config_data(coin_filter_mode="whitelist"), **HX)
    assert "needs at least one mint" in whitelist.content.decode()


def test_a_valid_config_is_stored_and_the_form_answers_in_place(client, model):
    response = client.post(
        f"/models/{model.pk}/config/",
        config_data(n8n_webhook_url="http://localhost:5678/webhook/abc", coin_filter_mode="whitelist",
                    coin_whitelist="mintA\nmintB, mintA", n8n_send_mode=["alerts_only", "positive_only"]),
        **HX,
    )
    text = response.content.decode()
    assert response.status_code == 200 and "Saved at" in text and "<html" not in text
    stored = ActiveModel.objects.get(pk=model.pk)
    assert stored.alert_threshold == Decimal("0.8")
    assert stored.n8n_webhook_url == "http://localhost:5678/webhook/abc"
    assert stored.n8n_send_mode == ["alerts_only", "positive_only"]
    assert stored.coin_filter_mode == "whitelist" and stored.coin_whitelist == ["mintA", "mintB"]
    assert (stored.ignore_alert_seconds, stored.min_scan_interval_seconds) == (60, 20)
    assert stored.max_log_entries_per_coin_alert == 3 and stored.n8n_enabled
    # unticking the checkbox turns n8n off; a full-page POST answers the whole page
    data = config_data()
    del data["n8n_enabled"]
    full = client.post(f"/models/{model.pk}/config/", data)
    assert full.status_code == 200 and b"<html" in full.content
    assert not ActiveModel.objects.get(pk=model.pk).n8n_enabled


# --- import, upload, training ----------------------------------------------------------------------------------------


def test_import_page_without_a_training_service_says_so(client, settings):
    settings.TRAINING_SERVICE_API_URL = None
    assert "TRAINING_SERVICE_API_URL is not configured" in client.get("/models/import/").content.decode()
    assert "TRAINING_SERVICE_API_URL is not configured" in client.get("/models/import/available/", **HX).content.decode()


def test_import_lists_the_training_service_models_and_imports_one(client, httpserver, settings):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    record = dict(parity.meta("xgb"), training_accuracy=0.812)
    httpserver.expect_request("/api/models", query_string="status=READY&is_deleted=false").respond_with_json([record])
    httpserver.expect_request("/api/models/101").respond_with_json(record)
    httpserver.expect_request("/api/models/101/download").respond_with_data(parity.artifact("model_xgb.json"))

    listing = client.get("/models/import/available/", **HX).content.decode()
    assert "parity_public_xgb" in listing and "0.812" in listing and ">Import</button>" in listing

    response = client.post("/models/import/run/", {"model_id": "101"}, **HX)
    assert "Imported as" in response.content.decode()
    model = ActiveModel.objects.get(model_id=101)
    assert model.is_active and model.training_accuracy == Decimal("0.812")
    assert "New version" in client.get("/models/import/available/", **HX).content.decode()


def test_import_reports_a_training_service_failure_instead_of_an_error_page(client, httpserver, settings):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    httpserver.expect_request("/api/models").respond_with_data("boom", status=500)
    response = client.get("/models/import/available/", **HX)
    assert response.status_code == 200 and "did not answer" in response.content.decode()


def test_upload_stores_a_model_and_refuses_pickles_inline(client):
    meta = json.dumps({**parity.meta("xgb"), "id": None, "name": "uploaded xgb"})
    response = client.post("/models/import/", {
        "file": SimpleUploadedFile("model.json", parity.artifact("model_xgb.json")),
        "meta_text": meta, "activate": "on",
    })
    model = ActiveModel.objects.get(model_name="uploaded xgb")
    assert response.status_code == 302 and response["Location"] == f"/models/{model.pk}/"
    assert model.is_active and model.source == "upload"

    refused = client.post("/models/import/", {
        "file": SimpleUploadedFile("model.pkl", parity.artifact("model_xgb.pkl")), "meta_text": meta,
    })
    assert refused.status_code == 400 and "pickle/joblib files are not accepted" in refused.content.decode()
    missing_meta = client.post("/models/import/", {"file": SimpleUploadedFile("m.json", b"{}")})
    assert "The metadata is required" in missing_meta.content.decode()


def test_training_form_shows_the_command(client):
    response = client.get("/models/import/", {"model_type": "random_forest", "future_minutes": "10",
                                              "min_percent_change": "7.5", "direction": "up", "phases": "1, 2",
                                              "name": "my model", "activate": "on"}, **HX)
    text = response.content.decode()
    assert "python manage.py train_model --model-type random_forest --future-minutes 10 --min-percent-change 7.5 " \
           "--direction up --phases 1,2 --name &#x27;my model&#x27; --activate" in text
    assert "<html" not in text


# --- alerts, coins, webhooks -----------------------------------------------------------------------------------------


def test_alerts_filter_by_model_status_coin_and_time(client, model):
    other = make_model("other")
    add_prediction(other, probability=0.99, tag="alert", coin="otherCoin", minutes_ago=60 * 24 * 3)
    text = client.get("/alerts/").content.decode()
    assert text.count('<span class="badge pending">') == 2 and "otherCoin" in text and "success" in text
    assert "otherCoin" not in client.get(f"/alerts/?model={model.pk}", **HX).content.decode()
    only_success = client.get("/alerts/?status=success", **HX).content.decode()
    assert only_success.count('<span class="badge success">success</span>') == 1
    assert "otherCoin" not in only_success
    assert "otherCoin" in client.get("/alerts/?coin=otherCoin", **HX).content.decode()
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "otherCoin" not in client.get(f"/alerts/?date_from={since}", **HX).content.decode()
    negatives = client.get("/alerts/").content.decode()
    assert "negativ" not in negatives.split("<tbody>", 2)[-1]  # only rows tagged alert are listed


def test_the_dashboard_and_the_alerts_page_show_an_alert_with_the_same_cells(client, model):
    judged = model.predictions.get(evaluation_result="success")
    coin_link = f'href="/models/{model.pk}/coins/{COIN}/?prediction={judged.pk}"'
    for text in (client.get("/").content.decode(), client.get("/alerts/").content.decode()):
        row = text.split(coin_link, 1)[1].split("</tr>", 1)[0]
        assert f'href="/models/{model.pk}/"' in text.split(coin_link, 1)[0].rsplit("<tr>", 1)[1]  # its model
        assert '<td data-label="Probability" class="num">0.800</td>' in row
        assert '<span class="badge success">success</span>' in row


def test_alerts_page_through_with_the_filters_kept(client, model):
    for minute in range(30):
        add_prediction(model, probability=0.97, tag="alert", coin=f"alert-coin-{minute:02d}", minutes_ago=100 + minute)
    first = client.get(f"/alerts/?model={model.pk}", **HX).content.decode()
    assert "Page 1 of 2" in first and "alert-coin-00" in first and "alert-coin-29" not in first
    assert f"?model={model.pk}&amp;page=2" in first and "← Newer" not in first
    assert f'hx-get="?model={model.pk}&amp;page=2" hx-target="#results" hx-swap="outerHTML" hx-push-url="true"' in first
    second = client.get(f"/alerts/?model={model.pk}&page=2", **HX).content.decode()
    assert "Page 2 of 2" in second and "alert-coin-29" in second and "Older →" not in second
    assert f"?model={model.pk}&amp;page=1" in second


def test_coin_details_show_price_and_predictions(client, model, market):
    now = timezone.now().replace(microsecond=0)
    with market.cursor() as cursor:
        for minute in range(-20, 10):
            cursor.execute(
                "INSERT INTO coin_metrics (mint, timestamp, price_close, volume_sol) VALUES (%s, %s, %s, %s)",
                [COIN, now + timedelta(minutes=minute), 1 + minute / 100, 5 + minute % 3],
            )
    alert = model.predictions.filter(tag="alert").order_by("-prediction_timestamp").first()
    text = client.get(f"/models/{model.pk}/coins/{COIN}/?prediction={alert.pk}").content.decode()
    assert "Price change with predictions" in text and "<polyline" in text and "<polygon" in text
    assert "% vs. price at the prediction" in text
    window = client.get(f"/models/{model.pk}/coins/{COIN}/?window=1440").content.decode()
    assert "1 day" in window and "<polyline" in window
    missing = client.get(f"/models/{model.pk}/coins/unknownCoin/")
    assert missing.status_code == 404 and "No predictions" in missing.content.decode()


def test_webhooks_list_and_redeliver(client):
    delivery = WebhookDelivery.objects.create(
        webhook_url="http://localhost:5678/webhook/x", coin_id=COIN, data_timestamp=timezone.now(),
        payload={"coin_id": COIN}, status=DeliveryStatus.FAILED, attempts=7, last_response_status=500,
        last_error="HTTP 500",
    )
    text = client.get("/webhooks/").content.decode()
    assert "Redeliver" in text and "HTTP 500" in text
    assert client.get(f"/webhooks/{delivery.delivery_id}/redeliver/").status_code == 405
    response = client.post(f"/webhooks/{delivery.delivery_id}/redeliver/", **HX)
    assert response.status_code == 200 and "Queued again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at <= timezone.now()
    assert client.post(f"/webhooks/{uuid.uuid4()}/redeliver/", **HX).status_code == 404
    assert "pending" in client.get("/webhooks/?status=pending", **HX).content.decode()


def test_webhooks_page_through(client):
    now = timezone.now()
    for minute in range(51):
        WebhookDelivery.objects.create(
            webhook_url="http://localhost:5678/webhook/x", coin_id=f"hook-coin-{minute:02d}",
            data_timestamp=now - timedelta(minutes=minute), payload={}, status=DeliveryStatus.FAILED,
        )
    first = client.get("/webhooks/?status=failed").content.decode()
    assert "Page 1 of 2" in first and "?status=failed&amp;page=2" in first and "← Newer" not in first
    second = client.get("/webhooks/?status=failed&page=2").content.decode()
    assert "Page 2 of 2" in second and "?status=failed&amp;page=1" in second and "Older →" not in second


# --- settings and info -----------------------------------------------------------------------------------------------


def test_settings_save_in_place_with_inline_errors(client):
    response = client.post("/settings/", {"training_service_url": "not a url", "n8n_webhook_url": ""}, **HX)
    text = response.content.decode()
    assert 'id="field-training_service_url"' in text and "http:// or https://" in text and "<html" not in text
    assert not RuntimeSetting.objects.exists()
    response = client.post("/settings/", {"training_service_url": "http://training:8000/api", "n8n_webhook_url": ""},
                           **HX)
    assert "Saved." in response.content.decode()
    assert RuntimeSetting.objects.get(key="training_service_url").value == "http://training:8000/api"


def test_settings_show_where_the_server_really_serves_not_the_old_ports(client):
    RuntimeSetting.objects.create(key="api_port", value=8000)  # an old client's informational value, kept for it
    text = client.get("/settings/", HTTP_HOST="localhost:8123").content.decode()
    assert '<dt>Serving at</dt><dd class="mono">http://localhost:8123/</dd>' in text
    assert "API port" not in text and "Streamlit" not in text and "api_port" not in text
    client.post("/settings/", {"training_service_url": "", "n8n_webhook_url": ""})
    assert RuntimeSetting.objects.get(key="api_port").value == 8000  # saving the page leaves the old keys alone


def test_info_shows_processes_mcp_snippet_and_points_to_the_tokens_page(client):
    text = client.get("/info/").content.decode()
    assert '"url": "http://testserver/mcp/"' in text and "No process has reported yet" in text
    assert 'href="/tokens/"' in text


# --- charts ----------------------------------------------------------------------------------------------------------


def test_nice_ticks_are_round_and_cover_the_range():
    low, high, ticks = charts.nice_ticks(0.13, 9.7, 5)
    assert (low, high) == (0, 10) and ticks == [0, 2, 4, 6, 8, 10]
    low, high, ticks = charts.nice_ticks(5, 5, 4)
    assert low < 5 < high


def test_line_chart_has_axes_ticks_units_and_escapes_text():
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.get_current_timezone())
    svg = str(charts.line_chart(
        [charts.Series("<price>", [(start + timedelta(minutes=i), i * 1.5) for i in range(30)])],
        y_unit="SOL", title="t",
    ))
    assert svg.startswith("<svg") and "<polyline" in svg and "SOL" in svg and "UTC" in svg
    assert "12:10" in svg and "&lt;price&gt;" in svg and "<price>" not in svg
    assert "No data yet" in str(charts.line_chart([charts.Series("x", [])]))


def test_bar_chart_stacks_and_thins_labels():
    svg = str(charts.bar_chart([f"{i:02d}" for i in range(60)],
                               [charts.BarSeries("a", [1] * 60), charts.BarSeries("b", [2] * 60)], y_unit="n"))
    assert svg.count("<rect") >= 120 and ">00<" in svg and ">01<" not in svg
    assert "No data" in str(charts.bar_chart([], []))
