"""n8n webhooks end to end: listener → outbox → a real local HTTP server playing n8n, on the real database.

Only 127.0.0.1/localhost receive requests (the test settings allow exactly those two).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ
from prometheus_client import REGISTRY
from pytest_httpserver import HTTPServer
from werkzeug import Response

from inference.engine import CoinEvent, Prediction
from modelregistry.models import ActiveModel
from modelregistry.serving import active_served_models, served_model
from predictions import webhooks
from predictions.models import DeliveryStatus, ModelPrediction, WebhookDelivery, WebhookLog
from predictions.tasks import deliver_due_webhooks
from predictions.webhook_services import deliver_due, enqueue_deliveries, redeliver
from predictions.webhooks import passes_send_mode, retry_delay
from pumpserver.webhook_urls import InvalidWebhookUrl, UnresolvableWebhookHost, validate_webhook_url
from tests import parity
from tests.test_listener import insert, register_rf, register_xgb, rows_of, run_batch

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = {(r.model, r.mint, r.as_of_row): r for r in parity.expected_rows() if r.served}


def _event_served_by_both(pick):
    """The (mint, row) both fixture models predict whose xgb probability `pick` (max or min) chooses."""
    both = [key[1:] for key in EXPECTED if key[0] == "xgb" and ("rf", *key[1:]) in EXPECTED]
    return pick(both, key=lambda event: EXPECTED[("xgb", *event)].probability)


HIGH = _event_served_by_both(max)  # xgb p ≈ 0.89: an alert at threshold 0.7, positiv at 0.95
LOW = _event_served_by_both(min)  # xgb p ≈ 0.13: negativ at any threshold above it


def probability(model: str, event) -> float:
    return EXPECTED[(model, *event)].probability


def event_time(event) -> str:
    return EXPECTED[("xgb", *event)].as_of_timestamp


def insert_events(market, *events) -> None:
    """The coin's rows up to the event's row: one listener batch then predicts exactly that row."""
    insert(market, [row for mint, as_of in events for row in rows_of(mint)[: as_of + 1]])


def posted(server: HTTPServer) -> list[dict]:
    return [json.loads(request.get_data()) for request, _response in server.log]


def deliveries_to(url: str):
    return WebhookDelivery.objects.filter(webhook_url=url)


def outbox_row(url: str, **fields) -> WebhookDelivery:
    fields.setdefault("payload", {"coin_id": "COIN", "predictions": []})
    return WebhookDelivery.objects.create(
        webhook_url=url, coin_id="COIN", data_timestamp=timezone.now(), next_attempt_at=timezone.now(), **fields
    )


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- payload, filters, grouping (through the listener) ------------------------------------------------------------


def test_payload_has_every_field_of_the_contract(market, httpserver):
    url = httpserver.url_for("/webhook/pump")
    httpserver.expect_request("/webhook/pump", method="POST").respond_with_data("ok")
    model = register_xgb(n8n_webhook_url=url, alert_threshold=0.7, custom_name="Pump hunter")
    model.refresh_from_db()
    alerts_before = counter("ml_alerts_triggered_total", model_id="101")

    insert_events(market, HIGH)
    run_batch()
    assert deliver_due().delivered == 1

    (request, _response), = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.get_data())
    assert set(body) == {"coin_id", "timestamp", "predictions", "metadata"}
    assert body["coin_id"] == HIGH[0]
    assert body["timestamp"] == event_time(HIGH)  # ISO-8601 with offset, the event's data time
    assert body["metadata"] == {"total_predictions": 1, "alerts_count": 1, "service": "pump-server",
                                "version": "1.0.0"}
    (entry,) = body["predictions"]
    assert set(entry) == {"prediction", "probability", "is_alert", "alert_threshold", "model"}
    assert entry["prediction"] == 1
    assert entry["probability"] == pytest.approx(probability("xgb", HIGH), abs=1e-9)
    assert entry["is_alert"] is True
    assert entry["alert_threshold"] == 0.7
    assert entry["model"] == {
        "id": 101,  # the training-service id
        "active_model_id": model.pk,
        "name": "Pump hunter",
        "model_type": "xgboost",
        "target_variable": "price_close",
        "target_operator": None,
        "target_value": None,
        "future_minutes": 5,
        "price_change_percent": 10.0,
        "target_direction": "up",
        "features": parity.meta("xgb")["features"],
        "phases": [1, 2, 3],
        "total_predictions": 0,  # the model list's values as the batch read them
        "last_prediction_at": None,
    }
    assert ModelPrediction.objects.get(active_model=model).tag == "alert"
    assert counter("ml_alerts_triggered_total", model_id="101") == alerts_before + 1


def test_numbers_are_json_numbers_and_zero_targets_are_null(market, httpserver):
    url = httpserver.url_for("/hook")
    model = register_xgb(n8n_webhook_url=url, target_value=0, price_change_percent=None)
    ActiveModel.objects.filter(pk=model.pk).update(total_predictions=7, last_prediction_at=timezone.now())
    insert_events(market, LOW)
    run_batch()
    payload = deliveries_to(url).get().payload
    described = payload["predictions"][0]["model"]
    assert described["target_value"] is None and described["price_change_percent"] is None
    assert described["total_predictions"] == 7
    assert datetime.fromisoformat(described["last_prediction_at"]).utcoffset() == timedelta(0)
    assert isinstance(payload["predictions"][0]["probability"], float)
    assert payload["predictions"][0]["prediction"] == 0 and payload["metadata"]["alerts_count"] == 0


SEND_MODES = [
    (["all"], 0.7, {"HIGH", "LOW"}),
    (["alerts_only"], 0.7, {"HIGH"}),
    (["alerts_only"], 0.95, set()),
    (["positive_only"], 0.7, set()),  # an alert is not "positive"
    (["positive_only"], 0.95, {"HIGH"}),
    (["negative_only"], 0.7, {"LOW"}),
    (["positive_only", "alerts_only"], 0.7, {"HIGH"}),
    (["positive_only", "alerts_only"], 0.95, {"HIGH"}),
    (["negative_only", "alerts_only"], 0.7, {"HIGH", "LOW"}),
    (["negative_only", "positive_only"], 0.7, {"LOW"}),
    (["negative_only", "positive_only"], 0.95, {"HIGH", "LOW"}),
    ([], 0.7, set()),
]


@pytest.mark.parametrize("modes, threshold, sent", SEND_MODES)
def test_send_mode_filter(market, modes, threshold, sent):
    url = "http://localhost:9/unused"
    register_xgb(n8n_webhook_url=url, n8n_send_mode=modes, alert_threshold=threshold)
    insert_events(market, HIGH, LOW)
    run_batch()
    names = {HIGH[0]: "HIGH", LOW[0]: "LOW"}
    assert {names[coin] for coin in deliveries_to(url).values_list("coin_id", flat=True)} == sent
    assert ModelPrediction.objects.count() == 2  # filters decide what is sent, never what is stored


def test_legacy_scalar_send_mode_is_a_one_element_list():
    row = ActiveModel(model_name="legacy", model_type="xgboost", features=["price_close"],
                      n8n_send_mode="alerts_only")
    modes = served_model(row, None).n8n_send_mode
    assert modes == ("alerts_only",)
    assert passes_send_mode(modes, probability=0.9, threshold=0.7)
    assert not passes_send_mode(modes, probability=0.6, threshold=0.7)


def test_models_sharing_a_url_share_one_post(market, httpserver):
    url = httpserver.url_for("/shared")
    httpserver.expect_request("/shared").respond_with_data("ok")
    xgb, rf = register_xgb(n8n_webhook_url=url), register_rf(n8n_webhook_url=url)
    insert_events(market, HIGH)
    run_batch()
    assert deliver_due().delivered == 1
    (body,) = posted(httpserver)
    assert sorted(p["model"]["active_model_id"] for p in body["predictions"]) == sorted([xgb.pk, rf.pk])
    by_model = {p["model"]["active_model_id"]: p["probability"] for p in body["predictions"]}
    assert by_model[rf.pk] == pytest.approx(probability("rf", HIGH), abs=1e-9)
    assert body["metadata"]["total_predictions"] == 2


def test_different_urls_get_separate_posts_per_coin(market, httpserver):
    register_xgb(n8n_webhook_url=httpserver.url_for("/a"))
    register_rf(n8n_webhook_url=httpserver.url_for("/b"))
    httpserver.expect_request("/a").respond_with_data("ok")
    httpserver.expect_request("/b").respond_with_data("ok")
    insert_events(market, HIGH, LOW)
    run_batch()
    assert deliver_due().delivered == 4
    assert Counter((request.path, json.loads(request.get_data())["coin_id"]) for request, _ in httpserver.log) == {
        ("/a", HIGH[0]): 1, ("/a", LOW[0]): 1, ("/b", HIGH[0]): 1, ("/b", LOW[0]): 1,
    }


def test_disabled_model_sends_nothing(market, httpserver):
    register_xgb(n8n_webhook_url=httpserver.url_for("/hook"), n8n_enabled=False)
    insert_events(market, HIGH)
    run_batch()
    assert ModelPrediction.objects.count() == 1
    assert not WebhookDelivery.objects.exists()
    assert deliver_due().claimed == 0 and not httpserver.log


def test_global_url_is_the_fallback(market, httpserver, settings):
    settings.N8N_WEBHOOK_URL = httpserver.url_for("/global")
    httpserver.expect_request("/global").respond_with_data("ok")
    register_xgb()
    insert_events(market, HIGH)
    run_batch()
    assert deliver_due().delivered == 1
    assert posted(httpserver)[0]["coin_id"] == HIGH[0]


def test_no_url_anywhere_sends_nothing(market, settings):
    settings.N8N_WEBHOOK_URL = None
    register_xgb()
    insert_events(market, HIGH)
    run_batch()
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("send_ignored, enabled, sent", [(False, True, 0), (True, True, 1), (True, False, 0)])
def test_capped_results_are_sent_only_when_asked(market, send_ignored, enabled, sent):
    url = "http://localhost:9/unused"
    coin, row = HIGH
    next_row = row + 1
    assert ("xgb", coin, next_row) in EXPECTED and probability("xgb", (coin, next_row)) >= 0.5
    model = register_xgb(n8n_webhook_url=url, alert_threshold=0.5, max_log_entries_per_coin_alert=1)
    insert_events(market, HIGH)
    run_batch()  # first alert: stored
    ActiveModel.objects.filter(pk=model.pk).update(send_ignored_to_n8n=send_ignored, n8n_enabled=enabled)
    WebhookDelivery.objects.all().delete()

    insert(market, [rows_of(coin)[next_row]])
    report = run_batch()  # second alert: over the cap, not stored
    assert len(report.capped) == 1 and not report.stored
    assert ModelPrediction.objects.filter(active_model=model).count() == 1
    assert deliveries_to(url).count() == sent


def test_one_delivery_task_per_transaction(market):
    register_xgb(n8n_webhook_url="http://localhost:9/unused")
    insert_events(market, HIGH, LOW)
    run_batch()
    assert WebhookDelivery.objects.count() == 2
    (queued,) = OrmQ.objects.all()
    assert queued.task["func"] == "predictions.tasks.deliver_due_webhooks"


def test_task_is_queued_once_per_commit_and_not_on_rollback():
    register_xgb(n8n_webhook_url="http://localhost:9/unused")
    (model,) = active_served_models()
    batch = [Prediction(model, CoinEvent(f"COIN{i}", timezone.now(), 1), 0.9, 1, "alert") for i in range(2)]

    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_deliveries(stored=batch, capped=[], now=timezone.now())
        raise RuntimeError("the listener's batch failed")
    assert not WebhookDelivery.objects.exists() and not OrmQ.objects.exists()

    with transaction.atomic():
        for item in batch:  # two batches in one transaction
            assert enqueue_deliveries(stored=[item], capped=[], now=timezone.now()) == 1
        assert not OrmQ.objects.exists()  # nothing is queued before the commit
    assert WebhookDelivery.objects.count() == 2 and OrmQ.objects.count() == 1


# --- delivery ------------------------------------------------------------------------------------------------------


def test_retries_after_server_errors_until_success(httpserver):
    url = httpserver.url_for("/flaky")
    for _ in range(2):
        httpserver.expect_ordered_request("/flaky").respond_with_data("workflow broke", status=500)
    httpserver.expect_ordered_request("/flaky").respond_with_data("thanks", status=200)
    delivery = outbox_row(url)
    retries_before = counter("ml_webhook_deliveries_total", outcome="retry")

    start = timezone.now()
    assert deliver_due(now=start).retry == 1
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_response_status == 500
    assert start + timedelta(seconds=3) <= delivery.next_attempt_at <= start + timedelta(seconds=7)
    assert deliver_due(now=start).claimed == 0  # not due before its backoff
    assert deliver_due(now=start + timedelta(minutes=1)).retry == 1
    assert deliver_due(now=start + timedelta(minutes=2)).delivered == 1

    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.delivered_at is not None
    assert {request.headers["X-Pump-Delivery"] for request, _ in httpserver.log} == {str(delivery.delivery_id)}
    log = list(WebhookLog.objects.filter(delivery=delivery).order_by("attempt"))
    assert [(row.attempt, row.response_status, row.error_message) for row in log] == [
        (1, 500, None), (2, 500, None), (3, 200, None)
    ]
    assert [row.response_body for row in log] == ["workflow broke", "workflow broke", "thanks"]
    assert all(row.webhook_url == url and row.coin_id == "COIN" and row.payload == delivery.payload for row in log)
    assert all(row.duration_ms is not None and row.duration_ms >= 0 for row in log)
    assert counter("ml_webhook_deliveries_total", outcome="retry") == retries_before + 2
    assert deliver_due(now=start + timedelta(hours=5)).claimed == 0


def test_receiver_down_then_up_delivers_each_delivery_once(market):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    register_xgb(n8n_webhook_url=url)
    insert_events(market, HIGH, LOW)
    run_batch()
    start = timezone.now()

    assert deliver_due(now=start).retry == 2  # nothing listens on the port
    down = WebhookLog.objects.filter(webhook_url=url)
    assert down.count() == 2 and all(row.response_status is None and row.error_message for row in down)

    receiver = HTTPServer(host="127.0.0.1", port=port)
    receiver.expect_request("/hook").respond_with_data("ok")
    receiver.start()
    try:
        assert deliver_due(now=start + timedelta(minutes=1)).delivered == 2
        assert deliver_due(now=start + timedelta(hours=3)).claimed == 0
        sent_ids = Counter(request.headers["X-Pump-Delivery"] for request, _ in receiver.log)
    finally:
        receiver.stop()
    assert sent_ids == {str(d): 1 for d in deliveries_to(url).values_list("delivery_id", flat=True)}
    assert set(deliveries_to(url).values_list("status", "attempts")) == {("delivered", 2)}


def test_gives_up_24_hours_after_creation(httpserver):
    httpserver.expect_request("/down").respond_with_data("nope", status=503)
    delivery = outbox_row(httpserver.url_for("/down"))
    give_up_at = delivery.created_at + timedelta(hours=24)

    deliver_due(now=delivery.created_at + timedelta(hours=23, minutes=59, seconds=58))
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at == give_up_at  # the last try is at the mark

    report = deliver_due(now=give_up_at + timedelta(hours=1))
    delivery.refresh_from_db()
    assert report.failed == 1 and delivery.status == "failed" and delivery.attempts == 2
    assert delivery.last_error.startswith("HTTP 503")
    assert deliver_due(now=give_up_at + timedelta(days=2)).claimed == 0
    assert WebhookLog.objects.filter(delivery=delivery).count() == 2


def test_client_errors_are_retried_too(httpserver):
    # n8n answers 404 while its workflow is inactive; once it is switched on the delivery should still land.
    httpserver.expect_request("/inactive").respond_with_data("webhook not registered", status=404)
    delivery = outbox_row(httpserver.url_for("/inactive"))
    assert deliver_due().retry == 1
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.last_response_status == 404


def test_retry_delays_double_with_jitter_up_to_an_hour():
    for attempt in range(1, 30):
        expected = min(3600, 5 * 2 ** (attempt - 1))
        assert 0.8 * expected <= retry_delay(attempt).total_seconds() <= min(3600, 1.2 * expected)
    assert retry_delay(40).total_seconds() <= 3600


@pytest.mark.parametrize("secret", ["s3cret-key", None])
def test_signature_is_hmac_sha256_of_the_exact_body(httpserver, settings, secret):
    settings.WEBHOOK_SECRET = secret
    httpserver.expect_request("/signed").respond_with_data("ok")
    outbox_row(httpserver.url_for("/signed"), payload={"coin_id": "COIN", "note": "ünïcode", "n": [1, 2.5]})
    assert deliver_due().delivered == 1
    (request, _), = httpserver.log
    body = request.get_data()
    assert json.loads(body) == {"coin_id": "COIN", "note": "ünïcode", "n": [1, 2.5]}
    if secret is None:
        assert "X-Pump-Signature" not in request.headers
        return
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Pump-Signature"], expected)


@pytest.mark.parametrize("url, reason", [
    ("http://10.0.0.1/hook", "private"),
    ("http://192.168.1.20:5678/webhook/x", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[::1]:5678/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://100.64.0.1/", "non-public"),
    ("file:///etc/passwd", "http or https"),
    ("ftp://example.com/x", "http or https"),
    ("http:///no-host", "no host"),
    ("http://localhost:99999/", "invalid port"),
    ("", "http or https"),
])
def test_refused_urls_say_why(url, reason):
    with pytest.raises(InvalidWebhookUrl, match=reason):
        validate_webhook_url(url)


def test_allowed_urls(settings):
    assert validate_webhook_url(" http://localhost:5678/webhook/x ") == "http://localhost:5678/webhook/x"
    assert validate_webhook_url("https://127.0.0.1/") == "https://127.0.0.1/"
    assert validate_webhook_url("https://93.184.215.14/hook")  # a public address (no DNS lookup for literals)
    settings.WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/8", "n8n.internal"]
    assert validate_webhook_url("http://10.1.2.3:5678/webhook/x")
    assert validate_webhook_url("http://N8N.internal/webhook/x")  # admitted by name, whatever it resolves to
    with pytest.raises(InvalidWebhookUrl, match="loopback"):
        validate_webhook_url("http://127.0.0.1/")  # no longer allowed with this list


def test_allowed_hosts_only_admits_the_list_and_looks_nothing_up(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["n8n.internal", "10.0.0.0/8"]
    settings.WEBHOOK_ALLOWED_HOSTS_ONLY = True
    assert validate_webhook_url("http://n8n.internal:5678/webhook/x")
    assert validate_webhook_url("http://10.2.3.4/hook")
    # refused by the list itself: a lookup would have said "loopback" or "does not resolve" instead
    for url in ("http://localhost/hook", "http://no-such-host.invalid/hook"):
        with pytest.raises(InvalidWebhookUrl, match="is not in WEBHOOK_ALLOWED_HOSTS"):
            validate_webhook_url(url)
    with pytest.raises(InvalidWebhookUrl, match="address 93.184.215.14 is not in WEBHOOK_ALLOWED_HOSTS"):
        validate_webhook_url("https://93.184.215.14/hook")


def test_unresolvable_host_is_its_own_error():
    with pytest.raises(UnresolvableWebhookHost, match="does not resolve"):
        validate_webhook_url("http://no-such-host.invalid/hook")


def test_refused_url_fails_at_send_time_without_a_request(httpserver):
    delivery = outbox_row("http://10.0.0.1/hook")  # saved before the policy (or DNS) changed
    report = deliver_due()
    delivery.refresh_from_db()
    assert report.refused == 1 and delivery.status == "failed" and delivery.attempts == 1
    assert "private" in delivery.last_error
    (row,) = WebhookLog.objects.filter(delivery=delivery)
    assert row.response_status is None and row.error_message.startswith("refused:")
    assert not httpserver.log


def test_unresolvable_host_at_send_time_is_retried():
    delivery = outbox_row("http://no-such-host.invalid/hook")
    assert deliver_due().retry == 1
    delivery.refresh_from_db()
    assert delivery.status == "pending" and "does not resolve" in delivery.last_error


def test_slow_receiver_times_out_and_is_retried(httpserver, settings):
    settings.N8N_WEBHOOK_TIMEOUT = 0.5

    def answer_late(_request):
        time.sleep(1.5)
        return Response("too late")

    httpserver.expect_request("/slow").respond_with_handler(answer_late)
    delivery = outbox_row(httpserver.url_for("/slow"))
    started = time.monotonic()
    assert deliver_due().retry == 1
    assert time.monotonic() - started < 1.4
    delivery.refresh_from_db()
    (row,) = WebhookLog.objects.filter(delivery=delivery)
    assert row.response_status is None and row.response_body is None
    assert row.error_message.startswith("timeout after 0.5 s")
    assert delivery.status == "pending" and delivery.next_attempt_at > timezone.now()
    time.sleep(1.2)  # let the single-threaded server finish the late answer before the next test uses it


def test_large_answers_are_cut(httpserver):
    httpserver.expect_request("/big").respond_with_data("x" * 50_000)
    outbox_row(httpserver.url_for("/big"))
    assert deliver_due().delivered == 1
    assert len(WebhookLog.objects.get().response_body) == webhooks.RESPONSE_BODY_LIMIT


def test_redeliver_sends_again_with_the_same_delivery_id(httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivered, failed, pending = (outbox_row(httpserver.url_for("/hook")) for _ in range(3))
    deliver_due()
    WebhookDelivery.objects.filter(pk=failed.pk).update(status="failed")
    later = timezone.now() + timedelta(hours=1)
    WebhookDelivery.objects.filter(pk=pending.pk).update(status="pending", next_attempt_at=later)  # a retry waiting
    httpserver.clear_log()

    assert redeliver(delivery_ids=[delivered.delivery_id, failed.delivery_id, pending.delivery_id]) == 2
    assert deliver_due().delivered == 2
    assert sorted(request.headers["X-Pump-Delivery"] for request, _ in httpserver.log) == sorted(
        [str(delivered.delivery_id), str(failed.delivery_id)]
    )
    delivered.refresh_from_db()
    assert delivered.status == "delivered" and delivered.attempts == 2


def test_admin_redeliver_action(admin_client, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = outbox_row(httpserver.url_for("/hook"), status=DeliveryStatus.FAILED)
    response = admin_client.post(
        reverse("admin:predictions_webhookdelivery_changelist"),
        {"action": "redeliver_selected", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert b"1 webhook(s) queued" in response.content
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert deliver_due().delivered == 1


def test_concurrent_workers_never_send_a_delivery_twice(httpserver):
    def answer_slowly(_request):
        time.sleep(0.02)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(answer_slowly)
    rows = [outbox_row(httpserver.url_for("/hook")) for _ in range(30)]
    reports = []

    def worker():
        try:
            reports.append(deliver_due(limit=10))
            reports.append(deliver_due(limit=10))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = Counter(request.headers["X-Pump-Delivery"] for request, _ in httpserver.log)
    assert sent == {str(row.delivery_id): 1 for row in rows}
    assert sum(r.delivered for r in reports) == 30


def test_the_task_works_off_everything_due(httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    for _ in range(5):
        outbox_row(httpserver.url_for("/hook"))
    assert deliver_due_webhooks()["delivered"] == 5
    assert not WebhookDelivery.objects.filter(status="pending").exists()
    assert REGISTRY.get_sample_value("ml_webhook_outbox_depth") == 0
