"""Import from the training service (T1-T3, versions): a real HTTP server plays the training service and serves the
parity fixture's records and joblib files; imported models are served by the listener on the real database."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime

import pytest
from werkzeug import Response

from modelregistry.models import ActiveModel, ModelArtifact, ModelSource
from modelregistry.services import import_from_training_service
from modelregistry.serving import model_cache
from modelregistry.training_service import TrainingServiceClient, TrainingServiceError
from predictions.models import ModelPrediction
from predictions.services import process_pending_batch
from tests import parity

pytestmark = pytest.mark.django_db(transaction=True)

XGB, RF = parity.meta("xgb"), parity.meta("rf")  # ids 101 and 102
HEADER, ROWS = parity.coin_metrics_rows()
INSERT_SQL = f"INSERT INTO coin_metrics ({', '.join(HEADER)}) VALUES ({', '.join(['%s'] * len(HEADER))})"
READY_QUERY = {"status": "READY", "is_deleted": "false"}


@pytest.fixture
def service(httpserver, settings):
    """The training service at {url}/api with both parity models."""
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    httpserver.expect_request("/api/models", query_string=READY_QUERY).respond_with_json([XGB, RF])
    for meta, filename in ((XGB, "model_xgb.pkl"), (RF, "model_rf.pkl")):
        httpserver.expect_request(f"/api/models/{meta['id']}").respond_with_json(meta)
        httpserver.expect_request(f"/api/models/{meta['id']}/download").respond_with_data(
            parity.artifact(filename), content_type="application/octet-stream"
        )
    return httpserver


def nothing_stored():
    return ActiveModel.objects.count() == 0 and ModelArtifact.objects.count() == 0


def test_list_import_activate_and_serve_the_parity_probabilities(api_client, market, service):
    listed = api_client.get("/api/models/available")
    assert listed.status_code == 200, listed.content
    assert listed.json()["total"] == 2
    xgb = next(m for m in listed.json()["models"] if m["id"] == 101)
    assert xgb["name"] == "parity_public_xgb" and xgb["model_type"] == "xgboost"
    # the time-based target comes from params._time_based
    assert (xgb["future_minutes"], xgb["price_change_percent"], xgb["target_direction"]) == (5, 10.0, "up")
    assert xgb["features"] == XGB["features"] and xgb["phases"] == [1, 2, 3]
    assert xgb["training_accuracy"] == XGB["training_accuracy"] and xgb["created_at"] == XGB["created_at"]

    one = api_client.get("/api/models/available/102")
    assert one.status_code == 200 and one.json()["name"] == "parity_public_rf" and one.json()["phases"] is None

    for model_id in (101, 102):
        response = api_client.post("/api/models/import", {"model_id": model_id}, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        model = ActiveModel.objects.get(pk=body["active_model_id"])
        assert body["model_id"] == model_id and body["model_name"] == model.model_name
        assert body["local_model_path"] == f"db:model_artifacts/{model.pk}/v1" and body["version"] == 1
        assert model.is_active and model.source == ModelSource.TRAINING_SERVICE and model.activated_at
        assert model.future_minutes == 5 and model.training_accuracy is not None
        assert model.model_file_url == service.url_for(f"/api/models/{model_id}/download")
    # the pickles are stored converted: nothing unpickles them again
    formats = dict(ModelArtifact.objects.values_list("model__model_id", "format"))
    assert formats == {101: "xgboost_json", 102: "skops"}

    # imported models leave the list
    assert api_client.get("/api/models/available").json() == {"models": [], "total": 0}

    # the listener serves them with the original server's probabilities
    xgb_model, rf_model = ActiveModel.objects.get(model_id=101), ActiveModel.objects.get(model_id=102)
    ActiveModel.objects.update(min_scan_interval_seconds=0)
    mint = sorted({row.mint for row in parity.expected_rows()})[0]
    coin_rows = [row for row in ROWS if row[HEADER.index("mint")] == mint]
    expected = [row for row in parity.expected_rows() if row.mint == mint]
    first = min(row.as_of_row for row in expected)
    cache = model_cache(size=10)
    with market.cursor() as cursor:
        cursor.executemany(INSERT_SQL, coin_rows[:first])
    process_pending_batch(limit=10_000, cache=cache, history_limit=1000)
    for as_of in range(first, len(coin_rows)):
        with market.cursor() as cursor:
            cursor.execute(INSERT_SQL, coin_rows[as_of])
        process_pending_batch(limit=10_000, cache=cache, history_limit=1000)
    checked = 0
    for row in expected:
        stored = ModelPrediction.objects.filter(
            active_model=xgb_model if row.model == "xgb" else rf_model,
            coin_id=mint,
            prediction_timestamp=datetime.fromisoformat(row.as_of_timestamp),
        ).first()
        if not row.served:
            assert stored is None
            continue
        assert stored is not None, row
        assert stored.probability == pytest.approx(row.probability, abs=1e-9), row
        checked += 1
    assert checked >= 30


@pytest.mark.parametrize("body", [{}, {"model_id": "abc"}, {"model_id": None}])
def test_a_missing_or_bad_model_id_is_a_400_whose_detail_names_it(api_client, service, body):
    response = api_client.post("/api/models/import", body, format="json")
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["detail"].startswith("model_id: ") and answer["model_id"]  # the documented detail, and the field
    assert nothing_stored()


def test_reimport_is_refused_unless_a_new_version_is_asked_for(api_client, service):
    first = api_client.post("/api/models/import", {"model_id": 101}, format="json")
    assert first.status_code == 201
    active_model_id = first.json()["active_model_id"]
    ActiveModel.objects.filter(pk=active_model_id).update(alert_threshold=0.9, is_active=False)

    again = api_client.post("/api/models/import", {"model_id": 101}, format="json")
    assert again.status_code == 400
    assert "is already imported" in again.json()["detail"] and f"active_model_id: {active_model_id}" in again.json()["detail"]
    assert ModelArtifact.objects.count() == 1

    second = api_client.post(
        "/api/models/import", {"model_id": 101, "new_version": True, "activate": False}, format="json"
    )
    assert second.status_code == 201, second.content
    assert second.json()["active_model_id"] == active_model_id and second.json()["version"] == 2
    model = ActiveModel.objects.get(pk=active_model_id)
    assert float(model.alert_threshold) == 0.9 and not model.is_active  # settings and state are kept

    # the service function itself adds a version whenever the id exists (and activates by default)
    model = import_from_training_service(model_id=101)
    assert model.pk == active_model_id and model.is_active

    versions = api_client.get(f"/api/models/{active_model_id}/versions")
    assert versions.status_code == 200
    body = versions.json()
    assert body["total"] == 3 and [v["version"] for v in body["versions"]] == [3, 2, 1]
    assert [v["is_current"] for v in body["versions"]] == [True, False, False]
    for version in body["versions"]:
        assert len(version["sha256"]) == 64 and version["size_bytes"] > 0 and version["format"] == "xgboost_json"
        assert version["created_at"]
    assert ActiveModel.objects.count() == 1
    assert api_client.get("/api/models/999999/versions").status_code == 404


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_service_not_configured_or_down(api_client, settings):
    settings.TRAINING_SERVICE_API_URL = None
    for response in (api_client.get("/api/models/available"),
                     api_client.post("/api/models/import", {"model_id": 101}, format="json")):
        assert response.status_code == 503 and "not configured" in response.json()["detail"]

    settings.TRAINING_SERVICE_API_URL = f"http://127.0.0.1:{_closed_port()}/api"
    listed = api_client.get("/api/models/available")
    assert listed.status_code == 502 and "unreachable" in listed.json()["detail"]  # not "200, empty list"
    assert api_client.get("/api/models/available/101").status_code == 502
    imported = api_client.post("/api/models/import", {"model_id": 101}, format="json")
    assert imported.status_code == 502 and "unreachable" in imported.json()["detail"]
    assert nothing_stored()


def test_unknown_model_and_bad_answers(api_client, httpserver, settings):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    httpserver.expect_request("/api/models/7").respond_with_json({"detail": "Model not found"}, status=404)
    httpserver.expect_request("/api/models/8").respond_with_data("<html>oops</html>", content_type="text/html")
    httpserver.expect_request("/api/models/9").respond_with_data("boom", status=500)
    httpserver.expect_request("/api/models/10").respond_with_json([XGB])
    httpserver.expect_request("/api/models/11").respond_with_json({**XGB, "id": 11, "status": "TRAINING"})

    assert api_client.get("/api/models/available/7").status_code == 404
    cases = {
        7: (404, "not found"),
        8: (502, "invalid JSON"),
        9: (502, "HTTP 500"),
        10: (502, "not an object"),
        11: (400, "not READY"),
    }
    for model_id, (status, text) in cases.items():
        response = api_client.post("/api/models/import", {"model_id": model_id}, format="json")
        assert response.status_code == status, (model_id, response.content)
        assert text in response.json()["detail"], (model_id, response.json())
    assert nothing_stored()

    httpserver.expect_request("/api/models", query_string=READY_QUERY).respond_with_data("{not json")
    listed = api_client.get("/api/models/available")
    assert listed.status_code == 502 and "invalid JSON" in listed.json()["detail"]


def test_list_that_is_not_an_array(api_client, httpserver, settings):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    httpserver.expect_request("/api/models", query_string=READY_QUERY).respond_with_json({"models": [XGB]})
    listed = api_client.get("/api/models/available")
    assert listed.status_code == 502 and "not an array" in listed.json()["detail"]


@pytest.mark.parametrize(
    "content",
    [
        parity.artifact("model_xgb.pkl")[:2000],  # truncated joblib file
        b"\x80\x04not really a pickle",
        b"this is not a model file at all",
        parity.artifact("model_rf.pkl"),  # a valid file, but not the model the record describes
    ],
    ids=["truncated", "garbage-pickle", "text", "wrong-model"],
)
def test_corrupt_or_wrong_file_is_refused_and_nothing_stored(api_client, httpserver, settings, content):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    httpserver.expect_request("/api/models/101").respond_with_json(XGB)
    httpserver.expect_request("/api/models/101/download").respond_with_data(content)
    response = api_client.post("/api/models/import", {"model_id": 101}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("Model file is invalid: ")
    assert nothing_stored()


def test_timeouts_and_size_cap(httpserver, settings):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")

    def slow(_request):
        time.sleep(1.5)
        return Response(json.dumps(XGB), content_type="application/json")

    httpserver.expect_request("/api/models/101").respond_with_handler(slow)
    with pytest.raises(TrainingServiceError) as caught:
        TrainingServiceClient(timeout=0.5).get_model(101)
    assert caught.value.status == 502 and "within 0.5 s" in caught.value.message

    httpserver.expect_request("/api/models/102/download").respond_with_data(b"\x80" * 5000)
    with pytest.raises(TrainingServiceError) as caught:
        TrainingServiceClient(max_download_bytes=1000).download(102)
    assert caught.value.status == 502 and "larger than" in caught.value.message


def test_endpoints_need_authentication(client):
    assert client.get("/api/models/available").status_code in (401, 403)
    assert client.post("/api/models/import", {"model_id": 1}).status_code in (401, 403)


def test_odd_records_are_listed_not_fatal(api_client, httpserver, settings):
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    odd = {"id": 77, "name": "odd", "target_value": "n/a", "features": None, "phases": "1,2", "params": "x",
           "training_accuracy": "0.5", "created_at": None}
    httpserver.expect_request("/api/models", query_string=READY_QUERY).respond_with_json([odd, "junk", {"no": "id"}])
    listed = api_client.get("/api/models/available")
    assert listed.status_code == 200, listed.content
    [model] = listed.json()["models"]
    assert model["id"] == 77 and model["target_value"] is None and model["features"] == []
    assert model["phases"] is None and model["training_accuracy"] == 0.5


def test_pickles_are_refused_from_a_url_saved_through_the_api(api_client, service, settings):
    """Any token holder may save a training-service URL; only the environment's URL is trusted with pickles."""
    from pumpserver.config import update_config

    url = settings.TRAINING_SERVICE_API_URL
    settings.TRAINING_SERVICE_API_URL = None
    update_config(changes={"training_service_url": url})

    response = api_client.post("/api/models/import", {"model_id": 101}, format="json")

    assert response.status_code == 400
    assert "pickle" in response.json()["detail"]
    assert not ActiveModel.objects.exists()
