"""The prediction log over REST: GET /api/model-predictions (L1), deletes (L2, L4), coin details (L3), and the
legacy GET /api/predictions* (P2, P3) served from model_predictions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=timezone.utc)
_model_ids = iter(range(9000, 100_000))


def make_model(**fields) -> ActiveModel:
    fields.setdefault("model_id", next(_model_ids))
    fields.setdefault("model_name", f"model-{fields['model_id']}")
    fields.setdefault("model_type", "xgboost")
    fields.setdefault("features", ["price_close"])
    fields.setdefault("future_minutes", 10)
    fields.setdefault("price_change_percent", Decimal("5"))
    fields.setdefault("target_direction", "up")
    return ActiveModel.objects.create(**fields)


def make_prediction(model: ActiveModel, *, coin: str = "CoinA", minute: int = 0, probability: float = 0.8,
                    result: str | None = None, **fields) -> ModelPrediction:
    """A stored prediction `minute` minutes after T0; `result` set → evaluated with that verdict."""
    tag = "negativ" if probability < 0.5 else ("alert" if probability >= float(model.alert_threshold) else "positiv")
    at = T0 + timedelta(minutes=minute)
    fields.setdefault("prediction", 1 if probability >= 0.5 else 0)
    fields.setdefault("price_close_at_prediction", Decimal("1.0"))
    row = ModelPrediction.objects.create(
        active_model=model, model_id=model.model_id, coin_id=coin, probability=probability, tag=tag,
        status="inaktiv" if result else "aktiv", evaluation_result=result, prediction_timestamp=at,
        evaluation_timestamp=at + timedelta(minutes=model.future_minutes or 10),
        evaluated_at=at + timedelta(minutes=11) if result else None, **fields,
    )
    return row


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["predictions"]]


# --- L1 -------------------------------------------------------------------------------------------------------------


def test_log_lists_newest_first_with_every_column_and_the_filtered_total(api_client):
    model = make_model()
    rows = [make_prediction(model, minute=m, probability=0.9) for m in range(5)]
    make_prediction(make_model(), minute=7)

    response = api_client.get("/api/model-predictions", {"active_model_id": model.pk, "limit": 2, "offset": 1})

    body = response.json()
    assert ids(response) == [rows[3].pk, rows[2].pk]
    assert body["total"] == 5 and body["limit"] == 2 and body["offset"] == 1
    assert body["model_target"] == "Price rise of at least 5.0%"
    row = body["predictions"][0]
    assert row["active_model_id"] == model.pk and row["model_id"] == model.model_id
    assert row["price_close_at_prediction"] == 1.0  # NUMERIC as a JSON number
    assert row["prediction_timestamp"] == "2026-01-14T10:03:00Z"
    for column in ("tag", "status", "evaluation_result", "ath_highest_pct", "evaluation_note", "created_at"):
        assert column in row


@pytest.mark.parametrize(
    "direction, percent, text",
    [("down", Decimal("12.34"), "Price drop of at least 12.3%"), (None, Decimal("3"), "3.0% (None)"),
     ("up", None, "No target defined")],
)
def test_model_target_text(api_client, direction, percent, text):
    model = make_model(target_direction=direction, price_change_percent=percent)
    assert api_client.get("/api/model-predictions", {"active_model_id": model.pk}).json()["model_target"] == text
    assert api_client.get("/api/model-predictions").json()["model_target"] is None


def test_time_filters_parse_iso_8601(api_client):
    model = make_model()
    rows = [make_prediction(model, minute=m) for m in range(0, 50, 10)]
    rows[1].evaluation_timestamp = T0 + timedelta(hours=5)
    rows[1].save()

    between = api_client.get("/api/model-predictions", {
        "alert_time_from": "2026-01-14T10:10:00+00:00", "alert_time_to": "2026-01-14T11:30:00+01:00",
    })
    assert sorted(ids(between)) == [rows[1].pk, rows[2].pk, rows[3].pk]
    assert between.json()["total"] == 3
    naive = api_client.get("/api/model-predictions", {"alert_time_from": "2026-01-14T10:40"})  # UTC
    assert ids(naive) == [rows[4].pk]
    evaluation = api_client.get("/api/model-predictions", {"evaluation_time_from": "2026-01-14T14:00:00Z"})
    assert ids(evaluation) == [rows[1].pk]
    by_day = api_client.get("/api/model-predictions", {"evaluation_time_to": "2026-01-14"})
    assert ids(by_day) == []


def test_wait_is_unioned_with_the_other_evaluation_statuses(api_client):
    model = make_model()
    pending = make_prediction(model, minute=0)
    success = make_prediction(model, minute=1, result="success")
    failed = make_prediction(model, minute=2, result="failed")
    not_applicable = make_prediction(model, minute=3, result="not_applicable")

    def query(*statuses):
        return sorted(ids(api_client.get("/api/model-predictions", {"evaluation_statuses": list(statuses)})))

    assert query("wait") == [pending.pk]
    assert query("wait", "success") == sorted([pending.pk, success.pk])
    assert query("success", "failed") == sorted([success.pk, failed.pk])
    assert query("not_applicable") == [not_applicable.pk]


def test_every_other_filter(api_client):
    model, other = make_model(), make_model()
    low = make_prediction(model, coin="Low", minute=0, probability=0.2)
    mid = make_prediction(model, coin="Mid", minute=1, probability=0.6, result="success",
                          actual_price_change_pct=Decimal("7.5"), ath_highest_pct=Decimal("9"))
    high = make_prediction(model, coin="High", minute=2, probability=0.95, result="failed",
                           actual_price_change_pct=Decimal("-3"), ath_lowest_pct=Decimal("-4"))
    foreign = make_prediction(other, coin="High", minute=3, probability=0.99)

    def query(**params):
        return sorted(ids(api_client.get("/api/model-predictions", params)))

    assert query(model_id=other.model_id) == [foreign.pk]
    assert query(active_model_id=model.pk, coin_id="High") == [high.pk]
    assert query(tag="positiv") == [mid.pk]
    assert query(status="aktiv") == sorted([low.pk, foreign.pk])
    assert query(probability_operator=">", probability_value=0.9) == sorted([high.pk, foreign.pk])
    assert query(probability_operator="<", probability_value=0.5) == [low.pk]
    assert query(probability_operator="=", probability_value=0.6) == [mid.pk]
    assert query(prediction_statuses=["negativ", "alert"]) == sorted([low.pk, high.pk, foreign.pk])
    assert query(ath_highest_operator=">=", ath_highest_value=9) == [mid.pk]
    assert query(ath_lowest_operator="<", ath_lowest_value=-1) == [high.pk]
    assert query(actual_change_operator=">", actual_change_value=0) == [mid.pk]
    assert query(actual_change_operator="<=", actual_change_value=0) == [high.pk]
    assert query(coin_id="", tag="") == sorted([low.pk, mid.pk, high.pk, foreign.pk])  # empty = no filter


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset"),
        ({"offset": 2**70}, "offset"), ({"tag": "maybe"}, "tag"), ({"status": "open"}, "status"),
        ({"probability_operator": "!="}, "probability_operator"), ({"probability_value": "high"}, "probability_value"),
        ({"evaluation_statuses": ["success", "won"]}, "evaluation_statuses"),
        ({"prediction_statuses": "x"}, "prediction_statuses"), ({"alert_time_from": "yesterday"}, "alert_time_from"),
        ({"evaluation_time_to": "2026-13-01"}, "evaluation_time_to"), ({"active_model_id": "one"}, "active_model_id"),
        ({"model_id": 2**64}, "model_id"), ({"coin_id": "a\x00b"}, "coin_id"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(api_client, params, field):
    response = api_client.get("/api/model-predictions", params)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_the_log_needs_authentication():
    assert APIClient().get("/api/model-predictions").status_code == 401


# --- L2, L4 ---------------------------------------------------------------------------------------------------------


def test_delete_model_predictions_deletes_only_that_models_rows(api_client):
    model, other = make_model(), make_model()
    for minute in range(3):
        make_prediction(model, minute=minute)
    kept = make_prediction(other, minute=0)

    response = api_client.delete(f"/api/model-predictions/{model.pk}")

    assert response.status_code == 200
    assert response.json() == {"success": True, "deleted_predictions": 3}
    assert list(ModelPrediction.objects.values_list("pk", flat=True)) == [kept.pk]
    assert api_client.delete("/api/model-predictions/999999").status_code == 404


def test_delete_old_logs_keeps_other_models_test_coins(api_client):
    model, other = make_model(), make_model()
    make_prediction(model, coin="TestCoin1")
    make_prediction(model, coin="RealCoin", minute=1)
    foreign_test_row = make_prediction(other, coin="TestCoin2")

    response = api_client.delete(f"/api/admin/delete-old-logs/{model.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "success": True, "deleted_alert_evaluations": 0, "deleted_predictions": 0, "deleted_model_predictions": 2,
        "deleted_test_entries": 0, "total_deleted": 2,
    }
    assert list(ModelPrediction.objects.values_list("pk", flat=True)) == [foreign_test_row.pk]
    response = api_client.delete("/api/admin/delete-old-logs/424242")
    assert response.status_code == 404 and "424242" in response.json()["detail"]


# --- L3 -------------------------------------------------------------------------------------------------------------

COLUMNS = "mint, timestamp, price_open, price_high, price_low, price_close, volume_sol, market_cap_close, phase_id_at_time"


def insert_prices(market, coin: str, minutes: range) -> None:
    with market.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO coin_metrics ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(coin, T0 + timedelta(minutes=m), 1 + m / 100, 1.1 + m / 100, 0.9, 1 + m / 100, 2.5, 1000 + m, 1)
             for m in minutes],
        )


@pytest.mark.django_db(transaction=True)
def test_coin_details_around_a_prediction(market, api_client):
    model = make_model(alert_threshold=Decimal("0.7"))
    insert_prices(market, "CoinA", range(-30, 60))
    anchor = make_prediction(model, minute=0, probability=0.9, result="success", actual_price_change_pct=Decimal("6"))
    later = make_prediction(model, minute=5, probability=0.6)
    make_prediction(model, minute=40, probability=0.3)  # outside the window (10 min horizon + 10 min)
    make_prediction(make_model(), minute=1)  # another model

    response = api_client.get(f"/api/models/{model.pk}/coins/CoinA/details", {"prediction_id": anchor.pk})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["coin_id"] == "CoinA" and body["model_id"] == model.pk
    assert body["prediction_timestamp"] == "2026-01-14T10:00:00Z"
    minutes = [p["timestamp"] for p in body["price_history"]]
    assert minutes[0] == "2026-01-14T09:50:00Z" and minutes[-1] == "2026-01-14T10:20:00Z" and len(minutes) == 31
    assert body["price_history"][10]["price_close"] == 1.0 and body["price_history"][10]["market_cap_close"] == 1000
    assert [(p["id"], p["prediction"], p["is_alert"]) for p in body["predictions"]] == [
        (anchor.pk, None, True), (later.pk, 1, False)
    ]
    assert body["predictions"][0]["alert_threshold"] == 0.7 and body["predictions"][0]["probability"] == 0.9
    [evaluation] = body["evaluations"]
    assert evaluation["id"] == anchor.pk and evaluation["status"] == "success"
    assert evaluation["actual_price_change"] == pytest.approx(0.06) and evaluation["expected_price_change"] == 5.0


@pytest.mark.django_db(transaction=True)
def test_coin_details_without_a_prediction_id_starts_at_the_first_prediction(market, api_client):
    model = make_model()
    insert_prices(market, "CoinA", range(0, 120))
    make_prediction(model, minute=30)
    make_prediction(model, minute=20)

    response = api_client.get(
        f"/api/models/{model.pk}/coins/CoinA/details", {"time_window_minutes": 15, "time_offset_minutes": 10}
    )

    body = response.json()
    assert body["prediction_timestamp"] == "2026-01-14T10:20:00Z"
    stamps = [p["timestamp"] for p in body["price_history"]]
    assert stamps[0] == "2026-01-14T10:25:00Z" and stamps[-1] == "2026-01-14T10:40:00Z"
    assert [p["timestamp"] for p in body["predictions"]] == ["2026-01-14T10:30:00Z"]


def test_coin_details_errors(api_client):
    model, other = make_model(), make_model()
    foreign = make_prediction(other, coin="CoinA")
    base = f"/api/models/{model.pk}/coins/CoinA/details"
    assert api_client.get(base).status_code == 404  # no predictions of this coin and model
    assert "No predictions" in api_client.get(base).json()["detail"]
    assert api_client.get(base, {"prediction_id": foreign.pk}).status_code == 404  # another model's row
    assert api_client.get("/api/models/999999/coins/CoinA/details").status_code == 404
    for params, field in (({"time_window_minutes": 0}, "time_window_minutes"),
                          ({"time_offset_minutes": "x"}, "time_offset_minutes"),
                          ({"prediction_id": -1}, "prediction_id")):
        response = api_client.get(base, params)
        assert response.status_code == 400 and field in response.json()
    response = api_client.get(f"/api/models/{model.pk}/coins/a%00b/details")
    assert response.status_code == 400 and "coin_id" in response.json()


# --- P2, P3 ---------------------------------------------------------------------------------------------------------


def test_legacy_predictions_are_served_from_model_predictions(api_client):
    model = make_model()
    first = make_prediction(model, coin="CoinA", minute=0, probability=0.3, phase_id_at_prediction=2,
                            prediction_duration_ms=12.6)
    second = make_prediction(model, coin="CoinB", minute=1, probability=0.8, phase_id_at_prediction=1)

    response = api_client.get("/api/predictions", {"limit": 1})

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2 and body["limit"] == 1 and body["offset"] == 0
    [row] = body["predictions"]
    assert row["id"] == second.pk  # newest created first
    assert set(row) == {"id", "coin_id", "data_timestamp", "model_id", "active_model_id", "prediction", "probability",
                        "phase_id_at_time", "features", "prediction_duration_ms", "created_at"}
    assert row["data_timestamp"] == "2026-01-14T10:01:00Z" and row["features"] is None

    def query(**params):
        return [p["id"] for p in api_client.get("/api/predictions", params).json()["predictions"]]

    assert query(prediction=0) == [first.pk]
    assert query(min_probability=0.5) == [second.pk]
    assert query(max_probability=0.5, phase_id=2) == [first.pk]
    assert query(coin_id="CoinB", model_id=model.model_id, active_model_id=model.pk) == [second.pk]
    assert query(date_from="2000-01-01T00:00:00Z", date_to="2000-01-02") == []
    assert api_client.get("/api/predictions", {"prediction": 2}).status_code == 400
    assert api_client.get("/api/predictions", {"date_from": "now"}).status_code == 400

    latest = api_client.get("/api/predictions/latest/CoinA")
    assert latest.status_code == 200 and latest.json()["id"] == first.pk
    assert latest.json()["prediction_duration_ms"] == 13
    assert api_client.get("/api/predictions/latest/CoinA", {"model_id": 1}).status_code == 404
    assert api_client.get("/api/predictions/latest/Nope").status_code == 404
