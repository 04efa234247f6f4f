"""The database refuses rows that break an invariant, whoever writes them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.db import IntegrityError, transaction

from modelregistry.models import ActiveModel, ModelArtifact
from predictions.models import CoinScanCache, ModelPrediction, WebhookDelivery

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 11, 20, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def model():
    return ActiveModel.objects.create(model_id=7, model_name="m", model_type="xgboost", features=["price_close"])


def refused(factory):
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            factory()


def prediction(model, **overrides):
    values = dict(coin_id="c", active_model=model, prediction=1, probability=0.8, tag="alert",
                  prediction_timestamp=NOW)
    values.update(overrides)
    return ModelPrediction.objects.create(**values)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_type": "svm"},
        {"alert_threshold": 1.5},
        {"alert_threshold": -0.1},
        {"n8n_send_mode": ["all", "everything"]},
        {"n8n_send_mode": "all"},
        {"coin_filter_mode": "blacklist"},
        {"coin_whitelist": "abc"},
        {"features": {"a": 1}},
        {"phases": 3},
        {"ignore_bad_seconds": 86_401},
        {"ignore_alert_seconds": -1},
        {"min_scan_interval_seconds": 100_000},
        {"max_log_entries_per_coin_alert": 1001},
        {"target_operator": "!="},
        {"target_direction": "both"},
        {"future_minutes": 0},
        {"price_change_percent": -5},
    ],
)
def test_model_settings_out_of_range_are_refused(overrides):
    values = dict(model_name="m", model_type="xgboost", features=["price_close"])
    values.update(overrides)
    refused(lambda: ActiveModel.objects.create(**values))


def test_training_service_id_is_unique(model):
    refused(lambda: ActiveModel.objects.create(model_id=7, model_name="again", model_type="xgboost"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"probability": 1.01},
        {"probability": -0.01},
        {"prediction": 2},
        {"tag": "maybe"},
        {"status": "inaktiv"},  # evaluated without a verdict
        {"evaluation_result": "success"},  # a verdict while still pending
        {"status": "inaktiv", "evaluation_result": "expired"},
        {"ath_highest_pct": -3},
        {"ath_lowest_pct": 2},
    ],
)
def test_invalid_predictions_are_refused(model, overrides):
    refused(lambda: prediction(model, **overrides))


def test_one_prediction_per_model_coin_and_row(model):
    """The key holds the tag too, as PostgreSQL demands of a key on a table partitioned by it (predictions/
    partitions.py); a model gives one row one tag, so a second listener or a replay still cannot duplicate it."""
    prediction(model)
    refused(lambda: prediction(model, probability=0.9))
    other = ActiveModel.objects.create(model_id=8, model_name="n", model_type="random_forest")
    prediction(other)  # another model may predict the same row
    assert ModelPrediction.objects.count() == 2


def test_scan_cache_is_one_row_per_coin_and_model(model):
    CoinScanCache.objects.create(coin_id="c", active_model=model, last_scan_at=NOW)
    refused(lambda: CoinScanCache.objects.create(coin_id="c", active_model=model, last_scan_at=NOW))
    refused(lambda: CoinScanCache.objects.create(coin_id="d", active_model=model, last_scan_at=NOW,
                                                 ignore_reason="boredom"))


def test_artifacts_have_one_current_version_and_a_real_checksum(model):
    digest = "a" * 64
    ModelArtifact.objects.create(model=model, version=1, format="xgboost_json", content=b"{}", sha256=digest,
                                 size_bytes=2)
    refused(lambda: ModelArtifact.objects.create(model=model, version=2, format="xgboost_json", content=b"{}",
                                                 sha256=digest, size_bytes=2))
    refused(lambda: ModelArtifact.objects.create(model=model, version=1, format="xgboost_json", content=b"{}",
                                                 sha256=digest, size_bytes=2, is_current=False))
    refused(lambda: ModelArtifact.objects.create(model=model, version=3, format="exe", content=b"{}",
                                                 sha256=digest, size_bytes=2, is_current=False))
    refused(lambda: ModelArtifact.objects.create(model=model, version=4, format="skops", content=b"{}",
                                                 sha256="not-a-digest", size_bytes=2, is_current=False))


def test_delivered_webhooks_record_when(model):
    refused(lambda: WebhookDelivery.objects.create(webhook_url="http://x", coin_id="c", data_timestamp=NOW,
                                                   payload={}, status="delivered"))
    refused(lambda: WebhookDelivery.objects.create(webhook_url="http://x", coin_id="c", data_timestamp=NOW,
                                                   payload={}, status="lost"))


def test_deleting_a_model_removes_its_predictions(model):
    prediction(model)
    model.delete()
    assert ModelPrediction.objects.count() == 0
