"""POST /api/predict: manual predictions with the listener's engine, stored like stream predictions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from modelregistry.models import ActiveModel
from predictions.models import CoinScanCache, ModelPrediction
from pumpserver.database import open_connection
from pumpserver.tokens import issue_api_token
from tests import parity
from tests.test_listener import (
    MINT,
    ROWS,
    delete_in_thread,
    deletion_waiting,
    insert,
    listeners_waiting_to_store,
    register_rf,
    register_xgb,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = parity.expected_rows()


def newest_expected(model: str, mint: str):
    rows = [r for r in EXPECTED if r.model == model and r.mint == mint]
    return max(rows, key=lambda r: r.as_of_row)


def test_predict_uses_every_active_model_and_stores_the_results(market, api_client):
    xgb, rf = register_xgb(), register_rf()
    mint = sorted({row[MINT] for row in ROWS})[0]
    insert(market, [row for row in ROWS if row[MINT] == mint])

    response = api_client.post("/api/predict", {"coin_id": mint}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["coin_id"] == mint and body["total_models"] == 2
    by_model = {p["active_model_id"]: p for p in body["predictions"]}
    assert set(by_model) == {xgb.pk, rf.pk}
    for model, name in ((xgb, "xgb"), (rf, "rf")):
        expected = newest_expected(name, mint)
        assert by_model[model.pk]["probability"] == pytest.approx(expected.probability, abs=1e-9)
        assert by_model[model.pk]["prediction"] == expected.prediction
        assert by_model[model.pk]["model_id"] == model.model_id
    assert ModelPrediction.objects.filter(coin_id=mint).count() == 2
    assert CoinScanCache.objects.filter(coin_id=mint).count() == 2


def test_a_model_deleted_while_predicting_is_a_409_and_nothing_is_stored(market, api_client):
    deleted, _kept = register_xgb(), register_rf()
    mint = sorted({row[MINT] for row in ROWS})[0]
    insert(market, [row for row in ROWS if row[MINT] == mint])
    holder = open_connection(autocommit=False)  # the deletion, then the request, queue behind it for the model's row
    holder.execute("SELECT id FROM prediction_active_models WHERE id = %s FOR UPDATE", [deleted.pk])
    deletion = delete_in_thread(deleted.pk)
    wait_until(lambda: deletion_waiting(market))
    responses = []

    def predict():
        try:
            responses.append(api_client.post("/api/predict", {"coin_id": mint}, format="json"))
        finally:
            connection.close()

    request = threading.Thread(target=predict)
    request.start()
    try:
        wait_until(lambda: listeners_waiting_to_store(market) == 1)
    finally:
        holder.rollback()
        holder.close()
        deletion.join(timeout=30)
        request.join(timeout=30)
    [response] = responses
    assert response.status_code == 409, response.content
    assert f"Model(s) {deleted.pk} deleted while predicting; nothing was stored" in response.content.decode()
    assert not ModelPrediction.objects.exists() and not CoinScanCache.objects.exists()


def test_predict_as_of_a_timestamp_uses_the_rows_up_to_it(market, api_client):
    register_xgb()
    mint = sorted({row[MINT] for row in ROWS})[0]
    insert(market, [row for row in ROWS if row[MINT] == mint])
    earlier = [r for r in EXPECTED if r.model == "xgb" and r.mint == mint and r.served][0]

    response = api_client.post(
        "/api/predict", {"coin_id": mint, "timestamp": earlier.as_of_timestamp}, format="json"
    )

    assert response.status_code == 200, response.content
    [prediction] = response.json()["predictions"]
    assert prediction["probability"] == pytest.approx(earlier.probability, abs=1e-9)


def test_predict_filters_by_training_model_ids(market, api_client):
    _xgb, rf = register_xgb(), register_rf()
    mint = sorted({row[MINT] for row in ROWS})[0]
    insert(market, [row for row in ROWS if row[MINT] == mint][:40])
    response = api_client.post("/api/predict", {"coin_id": mint, "model_ids": [rf.model_id]}, format="json")
    assert response.status_code == 200
    assert [p["active_model_id"] for p in response.json()["predictions"]] == [rf.pk]

    response = api_client.post("/api/predict", {"coin_id": mint, "model_ids": [999999]}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == "None of the given models is active"


def test_predict_without_active_models_is_a_400(api_client):
    response = api_client.post("/api/predict", {"coin_id": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "No active models found"


@pytest.mark.parametrize(
    "body, field",
    [({}, "coin_id"), ({"coin_id": "x", "model_ids": "1"}, "model_ids"), ({"coin_id": "x", "timestamp": "soon"}, "timestamp"),
     ({"coin_id": "x", "model_ids": ["a"]}, "model_ids")],
)
def test_predict_validation_names_the_field(api_client, body, field):
    ActiveModel.objects.create(model_id=1, model_name="m", model_type="xgboost", features=["a"])
    response = api_client.post("/api/predict", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_predict_needs_a_token_and_accepts_bearer(django_user_model):
    anonymous = APIClient().post("/api/predict", {"coin_id": "x"}, format="json")
    assert anonymous.status_code == 401
    user = django_user_model.objects.create_user(username="bearer-user")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_api_token(user=user).key}")
    assert client.post("/api/predict", {"coin_id": "x"}, format="json").status_code == 400  # authenticated: no models
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.post("/api/predict", {"coin_id": "x"}, format="json").status_code == 401
