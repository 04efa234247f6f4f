"""POST /api/models/upload: XGBoost JSON/UBJ and skops files with their record; pickles and misfits are refused
before anything is stored. Uploaded models serve the parity fixture's probabilities."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inference import loading
from modelregistry.models import ActiveModel, ModelArtifact, ModelSource
from modelregistry.serving import model_cache
from predictions.models import ModelPrediction
from predictions.services import process_pending_batch
from tests import parity

pytestmark = pytest.mark.django_db(transaction=True)


def record(fixture: str, **changes) -> dict:
    meta = {**parity.meta(fixture), "id": None}  # an upload, not a training-service model
    meta.update(changes)
    return meta


def forest_skops() -> bytes:
    """The fixture forest as a skops file (what a user exports with skops.io.dump)."""
    loaded = loading.load_model(parity.artifact("model_rf.pkl"), fmt="pickle", trust_pickle=True)
    content, fmt = loading.export_portable(loaded)
    assert fmt == "skops"
    return content


def upload(api_client, content: bytes, filename: str, meta, *, meta_as_file: bool = False, **fields):
    meta_text = meta if isinstance(meta, str) else json.dumps(meta)
    data = {"file": SimpleUploadedFile(filename, content), **fields}
    data["meta"] = SimpleUploadedFile("meta.json", meta_text.encode()) if meta_as_file else meta_text
    return api_client.post("/api/models/upload", data, format="multipart")


def nothing_stored():
    return ActiveModel.objects.count() == 0 and ModelArtifact.objects.count() == 0


def test_upload_xgboost_json_and_skops_and_serve_them(api_client, market):
    xgb = upload(api_client, parity.artifact("model_xgb.json"), "model_xgb.json", record("xgb", name="my xgb"))
    assert xgb.status_code == 201, xgb.content
    body = xgb.json()
    assert body["model_name"] == "my xgb" and body["model_type"] == "xgboost" and body["source"] == "upload"
    assert body["format"] == "xgboost_json" and body["version"] == 1 and body["is_active"] is True
    assert body["model_id"] is None and len(body["sha256"]) == 64 and body["features"] == parity.meta("xgb")["features"]

    rf = upload(api_client, forest_skops(), "forest.skops", record("rf"), meta_as_file=True)
    assert rf.status_code == 201, rf.content
    assert rf.json()["format"] == "skops" and rf.json()["model_type"] == "random_forest"
    assert ActiveModel.objects.filter(source=ModelSource.UPLOAD, is_active=True).count() == 2
    ActiveModel.objects.update(min_scan_interval_seconds=0)

    # served with the original server's probabilities (one as-of row per model)
    header, rows = parity.coin_metrics_rows()
    expected = [row for row in parity.expected_rows() if row.served][:2]
    mint = expected[0].mint
    as_of = expected[0].as_of_row
    coin_rows = [row for row in rows if row[header.index("mint")] == mint][: as_of + 1]
    with market.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO coin_metrics ({', '.join(header)}) VALUES ({', '.join(['%s'] * len(header))})", coin_rows
        )
    process_pending_batch(limit=10_000, cache=model_cache(size=10), history_limit=1000)
    for row in expected:
        assert row.mint == mint and row.as_of_row == as_of
        model_pk = body["active_model_id"] if row.model == "xgb" else rf.json()["active_model_id"]
        stored = ModelPrediction.objects.get(
            active_model_id=model_pk, coin_id=mint, prediction_timestamp=datetime.fromisoformat(row.as_of_timestamp)
        )
        assert stored.probability == pytest.approx(row.probability, abs=1e-9)


def test_upload_ubj_inactive_and_new_version_by_training_id(api_client):
    import xgboost

    booster = xgboost.Booster(model_file=bytearray(parity.artifact("model_xgb.json")))
    ubj = bytes(booster.save_raw("ubj"))
    first = upload(api_client, ubj, "model.ubj", record("xgb", id=555), activate="false")
    assert first.status_code == 201, first.content
    assert first.json()["format"] == "xgboost_ubj" and first.json()["is_active"] is False
    assert first.json()["model_id"] == 555

    # the same training id again: a new version of the same model
    second = upload(api_client, parity.artifact("model_xgb.json"), "model.json", record("xgb", id=555))
    assert second.status_code == 201
    assert second.json()["active_model_id"] == first.json()["active_model_id"] and second.json()["version"] == 2
    versions = api_client.get(f"/api/models/{first.json()['active_model_id']}/versions").json()
    assert [(v["version"], v["format"], v["is_current"]) for v in versions["versions"]] == [
        (2, "xgboost_json", True), (1, "xgboost_ubj", False)
    ]


def _broken_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", "{broken")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "filename", "meta", "message"),
    [
        (parity.artifact("model_xgb.pkl"), "model_xgb.pkl", record("xgb"), "pickle/joblib files are not accepted"),
        (parity.artifact("model_rf.pkl"), "model.json", record("rf"), "pickle/joblib files are not accepted"),
        (
            parity.artifact("model_xgb.json"), "model_xgb.json", record("xgb", features=parity.meta("xgb")["features"][:10]),
            "expects 87 features but its record lists only 10",
        ),
        (parity.artifact("model_xgb.json"), "model_xgb.json", record("rf"), "metadata says random_forest"),
        (parity.artifact("model_xgb.json")[:5000], "model_xgb.json", record("xgb"), "cannot read the xgboost_json"),
        (b"\x00\x01\x02 definitely not a model", "model.bin", record("xgb"), "unrecognised model file"),
        (_broken_zip(), "model.skops", record("rf"), "cannot read the skops"),
        (parity.artifact("model_xgb.json"), "model_xgb.json", record("xgb", model_type="lightgbm"), "model_type"),
    ],
    ids=["pickle", "pickle-renamed", "short-feature-list", "wrong-type", "truncated-json", "garbage", "bad-skops",
         "bad-meta"],
)
def test_refused_uploads_store_nothing(api_client, content, filename, meta, message):
    response = upload(api_client, content, filename, meta)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"], response.json()
    assert nothing_stored()


def test_request_problems(api_client):
    assert api_client.post("/api/models/upload", {"meta": "{}"}, format="multipart").status_code == 400
    invalid = upload(api_client, parity.artifact("model_xgb.json"), "m.json", "{not json")
    assert invalid.status_code == 400 and "meta is not valid JSON" in invalid.json()["detail"]
    not_object = upload(api_client, parity.artifact("model_xgb.json"), "m.json", "[1, 2]")
    assert not_object.status_code == 400 and "JSON object" in not_object.json()["detail"]
    missing = api_client.post(
        "/api/models/upload", {"file": SimpleUploadedFile("m.json", b"{}")}, format="multipart"
    )
    assert missing.status_code == 400 and "meta is required" in missing.json()["detail"]
    assert nothing_stored()


def test_upload_needs_authentication(client):
    response = client.post("/api/models/upload", {"file": SimpleUploadedFile("m.json", b"{}"), "meta": "{}"})
    assert response.status_code in (401, 403)
    assert nothing_stored()
