"""Live model quality over REST: a model's figures over named windows and ranges, several models compared with
McNemar's test, quality settings, the degraded flag in the model record and in health, and bad input answered
4xx JSON naming the field."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from modelregistry.models import ActiveModel
from pumpserver.models import ProcessHeartbeat
from quality import services, stats
from quality.models import DriftHour, FeatureReference, QualitySettings
from tests.test_quality import predict

pytestmark = pytest.mark.django_db

FIGURES = {"active_model_id", "name", "window", "start", "end", "judged_predictions", "judged_alerts", "success",
           "failed", "success_rate", "success_rate_low", "success_rate_high", "precision", "recall", "f1", "roc_auc",
           "brier", "base_rate", "calibration", "avg_price_change_pct", "sum_price_change_pct", "avg_ath_gain_pct",
           "psi", "psi_rows", "drifted_features", "drift_reference", "degraded", "degraded_reasons", "reference"}


def make_model(name: str = "watched", **fields) -> ActiveModel:
    return ActiveModel.objects.create(model_type="xgboost", features=["price_close"], model_name=name,
                                      training_precision=Decimal("0.8000"), **fields)


def hour_start(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def judged():
    """A model with alerts judged 2 of 3 right an hour ago and one more (right) three days ago, aggregated."""
    model = make_model()
    base = hour_start(timezone.now()) - timedelta(hours=1)
    predict(model, "c1", 0.9, True, at=base, change=12.0, ath=30.0)
    predict(model, "c2", 0.8, False, at=base + timedelta(minutes=5), change=-4.0, ath=2.0)
    predict(model, "c3", 0.75, True, at=base + timedelta(minutes=10), change=8.0, ath=9.0)
    predict(model, "c4", 0.3, False, at=base + timedelta(minutes=15))
    predict(model, "old", 0.95, True, at=base - timedelta(days=3), change=20.0)
    services.refresh_hours(since=None)
    return model


def test_a_models_figures_over_named_windows(api_client, judged):
    day = api_client.get(f"/api/models/{judged.pk}/quality?window=24h")
    assert day.status_code == 200
    body = day.json()
    assert set(body) >= FIGURES
    assert body["window"] == "24h" and body["active_model_id"] == judged.pk and body["name"] == "watched"
    assert (body["judged_alerts"], body["success"], body["failed"]) == (3, 2, 1)
    assert body["success_rate"] == pytest.approx(2 / 3)
    low, high = stats.wilson_interval(2, 3)
    assert (body["success_rate_low"], body["success_rate_high"]) == (pytest.approx(low), pytest.approx(high))
    assert body["judged_predictions"] == 4 and body["precision"] == pytest.approx(2 / 3) and body["recall"] == 1.0
    assert len(body["calibration"]) == 10 and sum(entry["n"] for entry in body["calibration"]) == 4
    assert set(body["calibration"][0]) == {"bin_low", "bin_high", "predicted", "observed", "n"}
    assert body["avg_price_change_pct"] == pytest.approx(16 / 3) and body["avg_ath_gain_pct"] == pytest.approx(41 / 3)
    assert body["psi"] == {} and body["drifted_features"] == [] and body["degraded"] is False
    assert body["reference"]["success_rate"] == 0.8
    assert body["reference"]["success_rate_source"] == "training precision"
    assert body["reference"]["training"]["precision"] == 0.8 and body["reference"]["backtest"] is None

    default = api_client.get(f"/api/models/{judged.pk}/quality").json()
    assert default["window"] == "24h" and default["judged_alerts"] == 3
    week = api_client.get(f"/api/models/{judged.pk}/quality", {"window": "7d"}).json()
    assert week["judged_alerts"] == 4 and week["success"] == 3
    everything = api_client.get(f"/api/models/{judged.pk}/quality", {"window": "all"}).json()
    assert everything["start"] is None and everything["judged_alerts"] == 4


def test_a_range_and_a_model_with_nothing_judged(api_client, judged):
    base = hour_start(timezone.now()) - timedelta(hours=1)
    ranged = api_client.get(f"/api/models/{judged.pk}/quality", {
        "start": (base - timedelta(days=3, minutes=30)).isoformat(), "end": (base - timedelta(days=2)).isoformat()})
    assert ranged.status_code == 200
    assert ranged.json()["window"] == "custom" and ranged.json()["judged_alerts"] == 1

    idle = make_model("idle")
    body = api_client.get(f"/api/models/{idle.pk}/quality?window=all").json()
    assert body["judged_alerts"] == 0 and body["judged_predictions"] == 0
    for key in ("success_rate", "success_rate_low", "success_rate_high", "precision", "recall", "f1", "roc_auc",
                "brier", "avg_price_change_pct", "sum_price_change_pct", "avg_ath_gain_pct"):
        assert body[key] is None, key
    assert all(entry["predicted"] is None and entry["n"] == 0 for entry in body["calibration"])


def test_drift_appears_when_the_model_has_a_reference(api_client, judged):
    now = timezone.now()
    FeatureReference.objects.create(
        active_model=judged, source="training", start=now - timedelta(days=30), end=now - timedelta(days=20),
        rows=1000, features={"price_close": {"edges": [1.0, 2.0, 3.0], "shares": [0.25, 0.25, 0.25, 0.25]}},
        importance={"price_close": 1.0})
    DriftHour.objects.create(active_model=judged, hour=hour_start(now) - timedelta(hours=1), rows=200,
                             counts={"price_close": [170, 10, 10, 10]})
    body = api_client.get(f"/api/models/{judged.pk}/quality?window=24h").json()
    assert body["psi"]["price_close"] == pytest.approx(stats.psi([0.25] * 4, [170, 10, 10, 10]))
    assert body["psi_rows"] == 200 and body["drifted_features"] == ["price_close"]
    assert body["drift_reference"]["source"] == "training" and body["drift_reference"]["rows"] == 1000


def test_a_degraded_model_is_flagged_in_quality_record_list_and_health(api_client, client):
    model = make_model()
    healthy = make_model("healthy")
    QualitySettings.objects.create(active_model=model, min_judged_alerts=20)
    now = timezone.now()
    for k in range(30):  # 3 of 30 alerts right: far below the training precision of 80 %
        predict(model, f"c{k}", 0.9, k % 10 == 0, at=now - timedelta(hours=5, minutes=k))
    services.refresh_hours(since=None)
    assert services.check_models(now=now) == [model.pk]

    quality = api_client.get(f"/api/models/{model.pk}/quality?window=7d").json()
    assert quality["degraded"] is True and "below the reference 80.0%" in quality["degraded_reasons"][0]
    record = api_client.get(f"/api/models/{model.pk}").json()
    assert record["degraded"] is True and record["degraded_reasons"] == quality["degraded_reasons"]
    assert record["name"] == "watched" and "load_error" in record  # the existing fields stay
    other = api_client.get(f"/api/models/{healthy.pk}").json()
    assert other["degraded"] is False and other["degraded_reasons"] == []
    listed = {entry["id"]: entry for entry in api_client.get("/api/models").json()["models"]}
    assert listed[model.pk]["degraded"] is True and listed[healthy.pk]["degraded"] is False

    for kind in ("listener", "worker"):
        ProcessHeartbeat.objects.create(name=f"{kind}@t:1", kind=kind, hostname="t", pid=1, started_at=now,
                                        last_seen=timezone.now(), details={"models_loaded": 2})
    health = client.get("/api/health").json()
    assert health["degraded_models"] == [model.pk] and health["status"] == "healthy"


def test_compare_two_models_with_mcnemar(api_client):
    first, second, third = make_model("first"), make_model("second"), make_model("third")
    base = hour_start(timezone.now()) - timedelta(hours=2)
    for k in range(12):  # the same coin events: the first is right on all of them, the second on two
        at = base + timedelta(minutes=k)
        predict(first, f"c{k}", 0.9, True, at=at)
        predict(second, f"c{k}", 0.9, k < 2, at=at)
    services.refresh_hours(since=None)
    response = api_client.get("/api/models/compare", {"ids": f"{first.pk},{second.pk},{third.pk}", "window": "24h"})
    assert response.status_code == 200
    body = response.json()
    assert body["window"] == "24h"
    assert [entry["active_model_id"] for entry in body["models"]] == [first.pk, second.pk, third.pk]
    assert set(body["models"][0]) >= FIGURES
    assert [entry["success_rate"] for entry in body["models"]] == [1.0, pytest.approx(2 / 12), None]
    assert [(pair["first"], pair["second"]) for pair in body["pairs"]] == [
        (first.pk, second.pk), (first.pk, third.pk), (second.pk, third.pk)]
    pair = body["pairs"][0]
    assert (pair["shared_events"], pair["only_first_right"], pair["only_second_right"]) == (12, 10, 0)
    assert pair["p_value"] == pytest.approx(2 / 1024) and pair["better"] == "first"
    assert body["pairs"][1]["shared_events"] == 0 and body["pairs"][1]["p_value"] is None


def test_quality_settings_read_and_change(api_client):
    model = make_model()
    url = f"/api/models/{model.pk}/quality-settings"
    defaults = api_client.get(url).json()
    assert defaults == {"active_model_id": model.pk, "margin": 0.05, "min_judged_alerts": 30, "psi_threshold": 0.25,
                        "auto_pause": False, "degraded": False, "degraded_reasons": [], "degraded_since": None,
                        "checked_at": None}
    changed = api_client.patch(url, {"margin": 0.1, "auto_pause": True}, format="json")
    assert changed.status_code == 200 and changed.json()["margin"] == 0.1 and changed.json()["auto_pause"] is True
    assert changed.json()["psi_threshold"] == 0.25  # not sent: unchanged
    stored = QualitySettings.objects.get(active_model=model)
    assert (stored.margin, stored.auto_pause, stored.min_judged_alerts) == (0.1, True, 30)
    assert api_client.patch(url, {"min_judged_alerts": 50, "psi_threshold": 0.4}, format="json").status_code == 200
    assert api_client.get(url).json()["min_judged_alerts"] == 50

    for body, field in [({"margin": 1.5}, "margin"), ({"margin": -0.1}, "margin"), ({"psi_threshold": 0}, "psi_threshold"),
                        ({"min_judged_alerts": 0}, "min_judged_alerts"), ({"auto_pause": "perhaps"}, "auto_pause"),
                        ({"margine": 0.1}, "margine")]:
        refused = api_client.patch(url, body, format="json")
        assert refused.status_code == 400 and field in refused.json(), (body, refused.json())
    assert QualitySettings.objects.get(active_model=model).margin == 0.1  # nothing stored on bad input
    missing = api_client.patch("/api/models/987654/quality-settings", {"margin": 0.1}, format="json")
    assert missing.status_code == 404 and missing.json() == {"detail": "model 987654 not found"}
    assert api_client.get("/api/models/987654/quality-settings").status_code == 404
    assert not QualitySettings.objects.filter(active_model_id=987654).exists()


@pytest.mark.parametrize("query, field", [
    ({"window": "2d"}, "window"),
    ({"window": "24h", "start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "window"),
    ({"start": "2026-03-01T00:00:00Z"}, "end"),
    ({"end": "2026-03-01T00:00:00Z"}, "start"),
    ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "end"),
    ({"start": "yesterday", "end": "2026-03-01T00:00:00Z"}, "start"),
])
def test_bad_windows_are_400_naming_the_field(api_client, query, field):
    model = make_model()
    response = api_client.get(f"/api/models/{model.pk}/quality", query)
    assert response.status_code == 400 and field in response.json(), response.json()
    compared = api_client.get("/api/models/compare", {"ids": f"{model.pk},{make_model('b').pk}", **query})
    assert compared.status_code == 400 and field in compared.json(), compared.json()


def test_bad_ids_are_400_and_unknown_ids_404(api_client):
    one, two = make_model("one"), make_model("two")
    for ids in ["", str(one.pk), f"{one.pk},{one.pk}", "1,2,3,4,5,6,7", f"{one.pk},x", f"{one.pk},-2",
                f"{one.pk},{2**63}"]:
        response = api_client.get("/api/models/compare", {"ids": ids} if ids else {})
        assert response.status_code == 400 and "ids" in response.json(), (ids, response.json())
    unknown = api_client.get("/api/models/compare", {"ids": f"{one.pk},987654,987655"})
    assert unknown.status_code == 404 and unknown.json() == {"detail": "models not found: 987654, 987655"}
    assert api_client.get("/api/models/compare", {"ids": f"{one.pk},{two.pk}"}).status_code == 200
    missing = api_client.get("/api/models/987654/quality")
    assert missing.status_code == 404 and missing.json() == {"detail": "model 987654 not found"}
    not_a_number = api_client.get("/api/models/abc/quality")
    assert not_a_number.status_code == 404 and "active_model_id" in not_a_number.json()


def test_the_endpoints_are_in_the_schema_and_need_a_login(api_client, client):
    paths = api_client.get("/api/schema/?format=json").json()["paths"]
    assert {"/api/models/{active_model_id}/quality", "/api/models/compare",
            "/api/models/{active_model_id}/quality-settings"} <= set(paths)
    assert set(paths["/api/models/{active_model_id}/quality-settings"]) >= {"get", "patch"}
    model = make_model()
    assert client.get(f"/api/models/{model.pk}/quality").status_code in (401, 403)
