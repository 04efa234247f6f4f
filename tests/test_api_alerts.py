"""Alerts and statistics over REST: S1–S3, M9 and the legacy alert endpoints A1–A3 (backed by model_predictions)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction
from tests.test_api_model_predictions import insert_prices, make_model, make_prediction

pytestmark = pytest.mark.django_db


# --- S1 -------------------------------------------------------------------------------------------------------------


def test_alert_statistics_for_all_and_for_one_model(api_client):
    model, other = make_model(custom_name="Mine"), make_model()
    make_prediction(model, minute=0, probability=0.9, result="success", actual_price_change_pct=Decimal("8"))
    make_prediction(model, minute=1, probability=0.9, result="failed", actual_price_change_pct=Decimal("-2"))
    make_prediction(model, minute=2, probability=0.9)
    make_prediction(model, minute=3, probability=0.2, result="success")
    make_prediction(other, minute=4, probability=0.9, result="not_applicable")

    body = api_client.get("/api/alerts/statistics").json()
    assert body["total_predictions"] == 5 and body["total_alerts"] == 4 and body["alerts_above_threshold"] == 4
    assert body["pending"] == 1 and body["expired"] == 1 and body["success"] == 1 and body["failed"] == 1
    assert body["total_performance_pct"] == 6.0 and body["alerts_profit_pct"] == 8.0 and body["alerts_loss_pct"] == -2.0
    assert body["alerts_success_rate"] == 50.0 and body["non_alerts_success_rate"] == 100.0
    assert [entry["model_name"] for entry in body["by_model"]] == ["Mine", other.model_name]
    assert body["by_model"][0] == {"model_id": model.model_id, "model_name": "Mine", "total": 3, "success": 1,
                                   "failed": 1, "pending": 1, "expired": 0, "success_rate": 50.0}
    assert sum(entry["total"] for entry in body["by_model"]) == body["total_alerts"]

    one = api_client.get("/api/alerts/statistics", {"active_model_id": other.pk, "model_id": model.pk}).json()
    assert one["total_alerts"] == 1 and one["expired"] == 1  # active_model_id wins
    legacy_name = api_client.get("/api/alerts/statistics", {"model_id": other.pk}).json()
    assert legacy_name["total_alerts"] == 1  # model_id is an active model id here, as before
    window = api_client.get("/api/alerts/statistics", {"date_from": "2026-01-14T10:02:00Z", "date_to": "2026-01-14T10:03"})
    assert window.json()["total_alerts"] == 1 and window.json()["total_predictions"] == 2


@pytest.mark.parametrize("params, field", [({"date_from": "soon"}, "date_from"), ({"active_model_id": -1}, "active_model_id"),
                                           ({"model_id": "x"}, "model_id")])
def test_alert_statistics_validation(api_client, params, field):
    response = api_client.get("/api/alerts/statistics", params)
    assert response.status_code == 400 and field in response.json()


# --- M9 -------------------------------------------------------------------------------------------------------------


def test_models_alert_statistics_is_reachable_and_keyed_by_id(api_client):
    model, paused = make_model(), make_model(is_active=False)
    make_prediction(model, minute=0, probability=0.9, result="success")
    make_prediction(model, minute=1, probability=0.3)
    make_prediction(paused, minute=2, probability=0.9, result="not_applicable")

    body = api_client.get("/api/models/alert-statistics").json()
    assert set(body) == {str(model.pk)}
    assert body[str(model.pk)] == {
        "total_predictions": 2, "positive_predictions": 1, "negative_predictions": 1, "alerts_total": 1,
        "alerts_success": 1, "alerts_failed": 0, "alerts_pending": 0, "alerts_expired": 0,
    }
    chosen = api_client.get(f"/api/models/alert-statistics?active_model_ids={paused.pk}&active_model_ids=777").json()
    assert set(chosen) == {str(paused.pk), "777"}
    assert chosen[str(paused.pk)]["alerts_expired"] == 1 and chosen["777"]["total_predictions"] == 0
    bad = api_client.get("/api/models/alert-statistics", {"active_model_ids": ["1", "two"]})
    assert bad.status_code == 400 and "active_model_ids" in bad.json()


# --- S2, S3 ---------------------------------------------------------------------------------------------------------


def test_model_statistics_has_every_field_also_without_rows(api_client):
    model = make_model(alert_threshold=Decimal("0.75"))
    empty = api_client.get(f"/api/models/{model.pk}/statistics")
    assert empty.status_code == 200
    body = empty.json()
    assert body["total_predictions"] == 0 and body["alert_threshold"] == 0.75
    assert body["probability_distribution"] == {} and body["webhook_success_rate"] is None

    make_prediction(model, minute=0, probability=0.95)
    make_prediction(model, minute=1, probability=0.15)
    body = api_client.get(f"/api/models/{model.pk}/statistics").json()
    assert body["total_predictions"] == 2 and body["alerts_count"] == 1
    assert body["probability_distribution"] == {"0.1-0.2": 1, "0.9-1.0": 1}
    assert api_client.get("/api/models/999999/statistics").status_code == 404


def test_reset_statistics_resets_the_counters_and_keeps_the_log(api_client):
    model = make_model(total_predictions=12, last_prediction_at=timezone.now())
    make_prediction(model)

    response = api_client.delete(f"/api/models/{model.pk}/statistics")

    assert response.status_code == 200
    assert response.json() == {"success": True, "active_model_id": model.pk, "deleted_predictions": 0}
    model.refresh_from_db()
    assert model.total_predictions == 0 and model.last_prediction_at is None
    assert ModelPrediction.objects.count() == 1
    assert api_client.delete("/api/models/999999/statistics").status_code == 404


# --- A1 -------------------------------------------------------------------------------------------------------------


def test_alerts_list_one_per_coin_with_status_counts(api_client):
    model = make_model(custom_name="Alpha")
    other = make_model(model_name="Beta")
    old_a = make_prediction(model, coin="CoinA", minute=0, probability=0.9, result="success")
    new_a = make_prediction(model, coin="CoinA", minute=5, probability=0.8)
    b = make_prediction(other, coin="CoinB", minute=1, probability=0.95, result="not_applicable")
    make_prediction(other, coin="CoinA", minute=2, probability=0.9, result="failed")
    make_prediction(model, coin="CoinC", minute=3, probability=0.6)  # positiv: not an alert

    body = api_client.get("/api/alerts").json()

    assert body["total"] == 2 and (body["pending"], body["success"], body["failed"], body["expired"]) == (1, 1, 1, 1)
    assert [(row["coin_id"], row["id"]) for row in body["alerts"]] == [("CoinA", new_a.pk), ("CoinB", b.pk)]
    first = body["alerts"][0]
    assert first["status"] == "pending" and first["other_alerts_count"] == 2 and first["model_name"] == "Alpha"
    assert first["remaining_seconds"] == 0  # its horizon is in the past
    assert first["prediction_type"] == "time_based" and first["alert_threshold"] == 0.7
    assert first["alert_timestamp"] == "2026-01-14T10:05:00Z" and first["price_close_at_alert"] == 1.0
    assert body["alerts"][1]["status"] == "expired" and body["alerts"][1]["model_name"] == "Beta"

    rows = api_client.get("/api/alerts", {"unique_coins": "false", "limit": 2}).json()
    assert rows["total"] == 4 and len(rows["alerts"]) == 2
    assert rows["alerts"][0]["id"] == new_a.pk and rows["alerts"][0]["other_alerts_count"] == 0

    def query(**params):
        return sorted(row["id"] for row in api_client.get("/api/alerts", {"unique_coins": "false", **params}).json()["alerts"])

    assert query(status="success") == [old_a.pk]
    assert query(status="non_alert") == []
    assert query(active_model_id=other.pk, coin_id="CoinB") == [b.pk]
    assert query(model_id=model.model_id) == sorted([old_a.pk, new_a.pk])
    assert query(prediction_type="classic") == []
    assert query(date_from="2026-01-14T10:04:00Z") == [new_a.pk]
    assert query(include_non_alerts="true", date_to="2026-01-14T10:00:00Z") == [old_a.pk]


def test_alerts_remaining_seconds_and_classic_models(api_client):
    classic = make_model(price_change_percent=None, target_operator=">", target_value=Decimal("2"))
    row = make_prediction(classic, probability=0.9)
    row.evaluation_timestamp = timezone.now() + timedelta(minutes=3)
    row.save()

    [alert] = api_client.get("/api/alerts", {"prediction_type": "classic"}).json()["alerts"]

    assert alert["prediction_type"] == "classic" and alert["target_operator"] == ">" and alert["target_value"] == 2.0
    assert 170 <= alert["remaining_seconds"] <= 180


@pytest.mark.parametrize(
    "params, field",
    [({"status": "won"}, "status"), ({"prediction_type": "x"}, "prediction_type"), ({"unique_coins": "maybe"}, "unique_coins"),
     ({"limit": 5000}, "limit"), ({"date_to": "later"}, "date_to")],
)
def test_alerts_validation(api_client, params, field):
    response = api_client.get("/api/alerts", params)
    assert response.status_code == 400 and field in response.json()


# --- A2 -------------------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_alert_details(market, api_client):
    model = make_model()
    insert_prices(market, "CoinA", range(-20, 40))
    alert = make_prediction(model, minute=0, probability=0.9, result="success", actual_price_change_pct=Decimal("6"))
    other = make_prediction(make_model(), minute=3, probability=0.9)
    make_prediction(model, minute=7, probability=0.92, result="failed", actual_price_change_pct=Decimal("-1"))

    response = api_client.get(f"/api/alerts/{alert.pk}", {"chart_before_minutes": 5, "chart_after_minutes": 2})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["alert"]["id"] == alert.pk and body["alert"]["status"] == "success"
    assert body["coin_values_at_alert"]["price_close"] == 1.0 and body["coin_values_at_alert"]["phase_id"] == 1
    assert body["coin_values_at_evaluation"]["price_close"] == 1.1  # the row at the 10-minute horizon
    stamps = [point["timestamp"] for point in body["price_history"]]
    assert stamps[0] == "2026-01-14T09:55:00Z" and stamps[-1] == "2026-01-14T10:12:00Z"
    assert len(body["volume_history"]) == len(stamps) == len(body["market_cap_history"])
    assert [o["id"] for o in body["other_alerts"]][-1] == other.pk and len(body["other_alerts"]) == 2
    assert body["statistics"] == {
        "model_total_alerts": 2, "model_success_count": 1, "model_failed_count": 1, "model_success_rate": 50.0,
        "model_avg_actual_change": 6.0, "model_avg_expected_change": 5.0,
    }


def test_alert_details_pending_and_unknown(api_client):
    model = make_model()
    pending = make_prediction(model, probability=0.9)
    positive = make_prediction(model, minute=1, probability=0.6)

    body = api_client.get(f"/api/alerts/{pending.pk}").json()
    assert body["coin_values_at_evaluation"] is None
    assert body["coin_values_at_alert"]["price_close"] == 1.0  # no metrics: the stored snapshot
    missing = api_client.get(f"/api/alerts/{positive.pk}")  # not an alert
    assert missing.status_code == 404 and missing.json()["detail"] == f"Alert {positive.pk} not found"
    assert api_client.get(f"/api/alerts/{pending.pk}", {"chart_after_minutes": -1}).status_code == 400


# --- A3 -------------------------------------------------------------------------------------------------------------


def test_delete_model_alerts_deletes_only_its_alert_rows(api_client):
    model, other = make_model(), make_model()
    make_prediction(model, minute=0, probability=0.9)
    make_prediction(model, minute=1, probability=0.95, result="success")
    kept = {make_prediction(model, minute=2, probability=0.3).pk, make_prediction(other, minute=3, probability=0.9).pk}

    response = api_client.delete(f"/api/models/{model.pk}/alerts")

    assert response.status_code == 200
    assert response.json() == {"success": True, "active_model_id": model.pk, "deleted_alerts": 2}
    assert set(ModelPrediction.objects.values_list("pk", flat=True)) == kept
    assert api_client.delete("/api/models/999999/alerts").status_code == 404


def test_alert_endpoints_need_authentication(client):
    model = make_model()
    assert client.get("/api/alerts").status_code == 401
    assert client.get("/api/alerts/statistics").status_code == 401
    assert client.delete(f"/api/models/{model.pk}/alerts").status_code == 401
    assert ActiveModel.objects.filter(pk=model.pk).exists()
