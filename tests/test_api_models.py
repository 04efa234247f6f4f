"""Model management API (spec §1.2 M1–M8, ModelInfo §1.1) against the real database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from modelregistry.models import ActiveModel, ModelArtifact
from predictions.models import CoinScanCache, ModelPrediction, WebhookLog
from predictions.selectors import list_models
from tests import parity
from tests.test_listener import register_rf, register_xgb

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=timezone.utc)

# Every ModelInfo field of the spec (§1.1), plus the keys we add.
MODEL_INFO_KEYS = {
    "id", "model_id", "name", "custom_name", "model_type", "target_variable", "target_operator", "target_value",
    "future_minutes", "price_change_percent", "target_direction", "features", "phases", "params", "is_active",
    "total_predictions", "average_probability", "last_prediction_at", "alert_threshold", "n8n_webhook_url",
    "n8n_send_mode", "n8n_enabled", "coin_filter_mode", "coin_whitelist", "ignore_bad_seconds",
    "ignore_positive_seconds", "ignore_alert_seconds", "max_log_entries_per_coin_negative",
    "max_log_entries_per_coin_positive", "max_log_entries_per_coin_alert", "send_ignored_to_n8n", "accuracy",
    "f1_score", "precision", "recall", "roc_auc", "mcc", "simulated_profit_pct", "positive_predictions", "stats",
    "model_file_exists", "created_at",
    "load_error", "versions", "artifact_version",
    "degraded", "degraded_reasons",  # live quality (quality.services.check_models)
}


def make_model(name: str, *, model_id: int | None = None, is_active: bool = True, created: datetime = T0,
               **fields) -> ActiveModel:
    """A registry row without an artifact (enough where nothing loads the model)."""
    model = ActiveModel.objects.create(
        model_id=model_id, model_name=name, model_type="xgboost", features=["price_close"], future_minutes=10,
        is_active=is_active, **fields,
    )
    ActiveModel.objects.filter(pk=model.pk).update(created_at=created)
    return model


def add_prediction(model: ActiveModel, *, probability: float, tag: str, coin: str = "coinA", minute: int = 0):
    return ModelPrediction.objects.create(
        coin_id=coin, model_id=model.model_id, active_model=model, prediction=int(probability > 0.5),
        probability=probability, tag=tag, prediction_timestamp=T0 + timedelta(minutes=minute),
    )


def ids(response) -> list[int]:
    return [m["id"] for m in response.json()["models"]]


# --- M1 / M2 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/models", "/api/models/active"])
def test_list_is_active_first_then_newest_and_include_inactive_needs_the_text_true(api_client, path):
    old_active = make_model("old", created=T0)
    newest_inactive = make_model("paused", is_active=False, created=T0 + timedelta(days=2))
    new_active = make_model("new", created=T0 + timedelta(days=1))

    default = api_client.get(path)
    assert default.status_code == 200
    assert ids(default) == [new_active.pk, old_active.pk] and default.json()["total"] == 2

    everything = api_client.get(path, {"include_inactive": "TRUE"})
    assert ids(everything) == [new_active.pk, old_active.pk, newest_inactive.pk]
    assert everything.json()["total"] == 3

    for not_true in ("1", "yes", "", "false"):
        assert ids(api_client.get(path, {"include_inactive": not_true})) == [new_active.pk, old_active.pk]


def test_a_nul_in_include_inactive_is_the_documented_400(api_client):
    response = api_client.get("/api/models", {"include_inactive": "tr\x00ue"})
    assert response.status_code == 400 and "include_inactive" in response.json()
    documented = api_client.get("/api/schema/?format=json").json()["paths"]["/api/models"]["get"]["responses"]
    assert "400" in documented


def test_schema_links_created_models_and_backtests_to_the_operations_taking_their_id(api_client):
    paths = api_client.get("/api/schema/?format=json").json()["paths"]
    imported = paths["/api/models/import"]["post"]["responses"]["201"]["links"]
    assert imported["api_models_detail"] == {
        "operationId": "api_models_detail", "parameters": {"active_model_id": "$response.body#/active_model_id"},
    }
    assert {"api_models_destroy", "model_backtests_create", "api_models_rename_partial_update"} <= set(imported)
    queued = paths["/api/models/{active_model_id}/backtests"]["post"]["responses"]["202"]["links"]
    assert set(queued) == {"backtest_retrieve", "backtest_cancel", "backtest_rows"}
    assert queued["backtest_cancel"]["parameters"] == {"run_id": "$response.body#/id"}


def test_model_info_has_every_field_and_counts_its_own_predictions(api_client):
    model = register_xgb()
    ActiveModel.objects.filter(pk=model.pk).update(
        custom_name="Mein Modell", training_accuracy="0.8123", training_f1="0.5", training_precision=None, roc_auc="0",
        mcc="-0.1",
        simulated_profit_pct="12.5", coin_whitelist=["m1"], n8n_send_mode=["alerts_only", "negative_only"],
    )
    add_prediction(model, probability=0.9, tag="alert", minute=1)
    add_prediction(model, probability=0.6, tag="positiv", minute=2)
    add_prediction(model, probability=0.3, tag="negativ", minute=3)
    other = make_model("other", model_id=999)
    add_prediction(other, probability=0.95, tag="alert")

    response = api_client.get(f"/api/models/{model.pk}")

    assert response.status_code == 200
    info = response.json()
    assert set(info) == MODEL_INFO_KEYS
    meta = parity.meta("xgb")
    assert info["id"] == model.pk and info["model_id"] == meta["id"]
    assert info["name"] == meta["name"] and info["custom_name"] == "Mein Modell"
    assert info["model_type"] == "xgboost" and info["features"] == meta["features"]
    assert info["future_minutes"] == meta["params"]["_time_based"]["future_minutes"]
    assert info["total_predictions"] == 3 and info["positive_predictions"] == 1
    assert info["average_probability"] == pytest.approx((0.9 + 0.6 + 0.3) / 3)
    assert info["stats"] == {"total_predictions": 3, "positive_predictions": 1, "negative_predictions": 2,
                             "alerts_count": 1}
    assert info["accuracy"] == 0.8123 and info["f1_score"] == 0.5 and info["precision"] is None
    assert info["roc_auc"] == 0.0 and info["mcc"] == -0.1 and info["simulated_profit_pct"] == 12.5
    assert info["alert_threshold"] == 0.7 and info["n8n_enabled"] is True
    assert info["n8n_send_mode"] == ["alerts_only", "negative_only"] and info["coin_whitelist"] == ["m1"]
    assert info["ignore_bad_seconds"] == 0 and info["max_log_entries_per_coin_alert"] == 0
    assert info["model_file_exists"] is True and info["versions"] == 1 and info["artifact_version"] == 1
    assert info["load_error"] is None and info["is_active"] is True
    assert info["created_at"].startswith(str(model.created_at.year))

    listed = {m["id"]: m for m in api_client.get("/api/models").json()["models"]}
    assert listed[model.pk] == info
    assert listed[other.pk]["total_predictions"] == 1 and listed[other.pk]["model_file_exists"] is False
    assert listed[other.pk]["versions"] == 0 and listed[other.pk]["artifact_version"] is None
    assert listed[other.pk]["average_probability"] == pytest.approx(0.95)


def test_a_model_without_predictions_reports_zero_counts(api_client):
    model = make_model("fresh")
    info = api_client.get(f"/api/models/{model.pk}").json()
    assert info["total_predictions"] == 0 and info["average_probability"] is None
    assert info["stats"] == {"total_predictions": 0, "positive_predictions": 0, "negative_predictions": 0,
                             "alerts_count": 0}


def test_the_list_is_one_query_however_many_models():
    for n in range(5):
        model = make_model(f"m{n}", model_id=n + 1)
        add_prediction(model, probability=0.8, tag="alert")
    with CaptureQueriesContext(connection) as queries:
        models = list(list_models(include_inactive=True))
        [(m.prediction_count, m.alert_count, m.average_probability, m.artifact_versions) for m in models]
    assert len(models) == 5 and len(queries) == 1


# --- M3 ----------------------------------------------------------------------------------------------------------


def test_detail_includes_inactive_models_and_unknown_ids_are_404(api_client):
    paused = make_model("paused", is_active=False)
    assert api_client.get(f"/api/models/{paused.pk}").json()["is_active"] is False
    for unknown in (paused.pk + 1000, 10**30):
        response = api_client.get(f"/api/models/{unknown}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Model not found"}
    assert api_client.get("/api/models/abc").status_code == 404


# --- M4 / M5 -----------------------------------------------------------------------------------------------------


def test_activate_and_deactivate(api_client):
    model = register_xgb()
    first_activation = ActiveModel.objects.get(pk=model.pk).activated_at

    response = api_client.post(f"/api/models/{model.pk}/deactivate")
    assert response.status_code == 200
    assert response.json() == {"message": f"Model {model.pk} deactivated", "active_model_id": model.pk}
    assert ActiveModel.objects.get(pk=model.pk).is_active is False

    response = api_client.post(f"/api/models/{model.pk}/activate")
    assert response.status_code == 200
    assert response.json() == {"message": f"Model {model.pk} activated", "active_model_id": model.pk}
    reloaded = ActiveModel.objects.get(pk=model.pk)
    assert reloaded.is_active is True and reloaded.activated_at == first_activation


def test_activating_a_model_whose_file_does_not_load_is_a_400_and_it_stays_inactive(api_client):
    broken = register_rf()
    ActiveModel.objects.filter(pk=broken.pk).update(is_active=False)
    ModelArtifact.objects.filter(model=broken).update(content=b"\x80garbage", format="skops")

    response = api_client.post(f"/api/models/{broken.pk}/activate")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Model file is invalid: ")
    reloaded = ActiveModel.objects.get(pk=broken.pk)
    assert reloaded.is_active is False and reloaded.load_error
    assert api_client.get(f"/api/models/{broken.pk}").json()["load_error"] == reloaded.load_error


def test_activating_a_model_that_does_not_fit_its_record_or_has_no_file_is_a_400(api_client):
    model = register_xgb()
    ActiveModel.objects.filter(pk=model.pk).update(is_active=False, features=["price_close"])
    response = api_client.post(f"/api/models/{model.pk}/activate")
    assert response.status_code == 400 and "features" in response.json()["detail"]

    without_file = make_model("no file", is_active=False)
    response = api_client.post(f"/api/models/{without_file.pk}/activate")
    assert response.status_code == 400 and "no stored model file" in response.json()["detail"]
    assert ActiveModel.objects.get(pk=without_file.pk).is_active is False


@pytest.mark.parametrize("action", ["activate", "deactivate", "update-metrics"])
def test_lifecycle_actions_on_unknown_ids_are_404(api_client, action):
    response = api_client.post(f"/api/models/4242/{action}")
    assert response.status_code == 404 and response.json() == {"detail": "Model not found"}


# --- M6 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "custom_name"])
def test_rename_accepts_name_or_custom_name_verbatim(api_client, field):
    model = make_model("training name")
    response = api_client.patch(f"/api/models/{model.pk}/rename", {field: "  Spaced  ", "description": "x"},
                                format="json")
    assert response.status_code == 200
    assert response.json() == {"message": f"Model {model.pk} renamed to '  Spaced  '", "active_model_id": model.pk}
    assert ActiveModel.objects.get(pk=model.pk).custom_name == "  Spaced  "
    assert api_client.get(f"/api/models/{model.pk}").json()["custom_name"] == "  Spaced  "


def test_rename_with_both_fields_takes_name(api_client):
    model = make_model("training name")
    api_client.patch(f"/api/models/{model.pk}/rename", {"name": "a", "custom_name": "b"}, format="json")
    assert ActiveModel.objects.get(pk=model.pk).custom_name == "a"


@pytest.mark.parametrize("field", ["name", "custom_name"])
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_an_empty_or_blank_name_is_refused_naming_the_field(api_client, field, blank):
    model = make_model("training name")
    ActiveModel.objects.filter(pk=model.pk).update(custom_name="kept")
    response = api_client.patch(f"/api/models/{model.pk}/rename", {field: blank}, format="json")
    assert response.status_code == 400
    assert response.json() == {field: ["the name must not be empty"]}
    assert ActiveModel.objects.get(pk=model.pk).custom_name == "kept"


@pytest.mark.parametrize("body", [{}, {"description": "only"}, {"name": "x" * 256}, {"name": None}, {"name": ["x"]}])
def test_rename_validation_names_the_field(api_client, body):
    model = make_model("m")
    response = api_client.patch(f"/api/models/{model.pk}/rename", body, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert ActiveModel.objects.get(pk=model.pk).custom_name is None


def test_rename_unknown_id_is_404(api_client):
    assert api_client.patch("/api/models/4242/rename", {"name": "x"}, format="json").status_code == 404


# --- M7 ----------------------------------------------------------------------------------------------------------


def test_delete_removes_the_model_with_its_predictions_cache_and_artifacts(api_client):
    model, kept = register_xgb(), make_model("kept", model_id=7)
    add_prediction(model, probability=0.9, tag="alert")
    add_prediction(kept, probability=0.9, tag="alert")
    CoinScanCache.objects.create(coin_id="coinA", active_model=model, last_scan_at=T0)
    WebhookLog.objects.create(coin_id="coinA", webhook_url="http://127.0.0.1/hook", response_status=200)

    response = api_client.delete(f"/api/models/{model.pk}")

    assert response.status_code == 200
    assert response.json() == {"message": f"Model {model.pk} deleted", "active_model_id": model.pk,
                               "model_id": model.model_id, "model_name": parity.meta("xgb")["name"]}
    assert not ActiveModel.objects.filter(pk=model.pk).exists()
    assert not ModelPrediction.objects.filter(active_model_id=model.pk).exists()
    assert not CoinScanCache.objects.filter(active_model_id=model.pk).exists()
    assert not ModelArtifact.objects.filter(model_id=model.pk).exists()
    assert WebhookLog.objects.count() == 1
    assert ModelPrediction.objects.filter(active_model=kept).count() == 1
    assert api_client.delete(f"/api/models/{model.pk}").status_code == 404


# --- M8 ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def training_service(httpserver, settings):
    """A real local HTTP server standing in for the training service (base URL ends in /api)."""
    settings.TRAINING_SERVICE_API_URL = httpserver.url_for("/api")
    return httpserver


def test_update_metrics_overwrites_the_training_metrics(api_client, training_service):
    model = register_xgb()
    record = dict(parity.meta("xgb"), training_accuracy=0.91, training_f1=0.55, training_precision=0.6,
                  training_recall=0.5, roc_auc=0.77, mcc=0.33, simulated_profit_pct=-4.25,
                  confusion_matrix={"tp": 1, "tn": 2, "fp": 3, "fn": 4})
    training_service.expect_request(f"/api/models/{model.model_id}", method="GET").respond_with_json(record)

    response = api_client.post(f"/api/models/{model.pk}/update-metrics")

    assert response.status_code == 200, response.content
    assert response.json() == {"message": f"Training metrics of model {model.pk} updated"}
    info = api_client.get(f"/api/models/{model.pk}").json()
    assert (info["accuracy"], info["f1_score"], info["precision"], info["recall"]) == (0.91, 0.55, 0.6, 0.5)
    assert (info["roc_auc"], info["mcc"], info["simulated_profit_pct"]) == (0.77, 0.33, -4.25)
    assert ActiveModel.objects.get(pk=model.pk).confusion_matrix == {"tp": 1, "tn": 2, "fp": 3, "fn": 4}


@pytest.mark.parametrize("answer, status", [(404, 404), (500, 502)])
def test_update_metrics_reports_training_service_failures(api_client, training_service, answer, status):
    model = make_model("m", model_id=55)
    training_service.expect_request("/api/models/55").respond_with_data("nope", status=answer)
    response = api_client.post(f"/api/models/{model.pk}/update-metrics")
    assert response.status_code == status and "training service" in response.json()["detail"]


def test_update_metrics_without_a_training_service_or_training_id(api_client, settings):
    settings.TRAINING_SERVICE_API_URL = None
    model = make_model("m", model_id=55)
    response = api_client.post(f"/api/models/{model.pk}/update-metrics")
    assert response.status_code == 503 and "TRAINING_SERVICE_API_URL" in response.json()["detail"]

    upload = make_model("uploaded")
    response = api_client.post(f"/api/models/{upload.pk}/update-metrics")
    assert response.status_code == 400 and "training service" in response.json()["detail"]


# --- auth --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [("get", "/api/models"), ("get", "/api/models/active"), ("get", "/api/models/1"), ("delete", "/api/models/1"),
     ("post", "/api/models/1/activate"), ("post", "/api/models/1/deactivate"), ("patch", "/api/models/1/rename"),
     ("post", "/api/models/1/update-metrics")],
)
def test_model_endpoints_refuse_anonymous_requests(method, path):
    model = make_model("m")
    response = getattr(APIClient(), method)(path.replace("/1", f"/{model.pk}"), {}, format="json")
    assert response.status_code == 401
    assert ActiveModel.objects.filter(pk=model.pk, is_active=True, custom_name__isnull=True).exists()


# --- OpenAPI -----------------------------------------------------------------------------------------------------


def test_the_schema_documents_every_model_endpoint_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    schema = SchemaGenerator(urlconf="web.api.models.urls").get_schema(request=None, public=True)
    assert not GENERATOR_STATS, dict(GENERATOR_STATS._warn_cache) | dict(GENERATOR_STATS._error_cache)

    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert len(operations) == 16  # M1–M8 (M1 and M2 are two paths) and C1–C8 (C4/C5, C6/C7 share a path)
    components = schema["components"]["schemas"]
    threshold = components["AlertThresholdRequest"]["properties"]["alert_threshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)
    assert components["AlertThresholdRequest"]["required"] == ["alert_threshold"]
    assert components["IgnoreSettingsRequest"]["properties"]["ignore_bad_seconds"]["maximum"] == 86_400
    assert components["MaxLogEntriesRequest"]["properties"]["max_log_entries_per_coin_alert"]["maximum"] == 1000
    config = components["AlertConfigRequest"]["properties"]
    assert config["n8n_enabled"]["default"] is True and config["alert_threshold"]["default"] == 0.7
    assert set(components[config["n8n_send_mode"]["items"]["$ref"].split("/")[-1]]["enum"]) == {
        "all", "alerts_only", "positive_only", "negative_only"}
