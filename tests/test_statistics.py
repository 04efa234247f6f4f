"""Statistics (spec §2.7) against figures computed by hand from a small data set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from alerts.selectors import alert_statistics, model_statistics, models_alert_statistics, system_stats
from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction, WebhookLog
from tests.test_evaluation import T0

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


@dataclass
class Models:
    alpha: ActiveModel  # training id 101, renamed
    beta: ActiveModel  # an upload: no training id
    gamma: ActiveModel  # inactive, no name at all
    delta: ActiveModel  # active, never predicted


def row(model, coin, prediction, probability, tag, result=None, change=None, *, at, created=None, duration=None):
    stored = ModelPrediction.objects.create(
        coin_id=coin, active_model=model, prediction=prediction, probability=probability, tag=tag,
        status="aktiv" if result is None else "inaktiv", evaluation_result=result,
        actual_price_change_pct=None if change is None else Decimal(str(change)),
        prediction_timestamp=at, evaluation_timestamp=at + timedelta(minutes=10), prediction_duration_ms=duration,
    )
    # created_at is set on insert; the windows of system_stats need chosen values.
    ModelPrediction.objects.filter(pk=stored.pk).update(created_at=created or at + timedelta(seconds=1))


@pytest.fixture
def models() -> Models:
    def model(**fields):
        return ActiveModel.objects.create(model_type="xgboost", features=["price_close"], **fields)

    found = Models(
        alpha=model(model_id=101, model_name="alpha", custom_name="Alpha custom"),
        beta=model(model_name="beta"),
        gamma=model(model_id=303, model_name="", is_active=False),
        delta=model(model_id=404, model_name="delta", alert_threshold=Decimal("0.65")),
    )
    a, b, c = found.alpha, found.beta, found.gamma
    row(a, "c1", 1, 0.90, "alert", "success", 25.0, at=T0, duration=10.0)
    row(a, "c2", 1, 0.80, "alert", "failed", -5.5, at=T0 + H, duration=20.0)
    row(a, "c1", 1, 0.75, "alert", at=T0 + 2 * H)
    row(a, "c3", 0, 0.30, "negativ", "success", 1.0, at=T0 + 3 * H)
    row(a, "c3", 1, 0.60, "positiv", "failed", 2.0, at=T0 + 4 * H)
    row(a, "c2", 1, 0.95, "alert", "not_applicable", at=T0 + 5 * H)
    row(a, "c4", 0, 0.10, "negativ", at=T0 + 6 * H)
    row(b, "c1", 1, 0.85, "alert", "success", 40.0, at=T0)
    row(b, "c5", 0, 0.45, "negativ", "not_applicable", at=T0 + H)
    row(b, "c5", 0, 0.05, "negativ", "failed", 12.0, at=T0 + 2 * H, created=T0 - timedelta(days=3))
    row(c, "c6", 1, 1.00, "alert", "success", at=T0, created=T0 - timedelta(days=10))  # success without a change

    def attempt(coin, data_time, status):
        WebhookLog.objects.create(coin_id=coin, data_timestamp=data_time, webhook_url="http://n8n/hook",
                                  response_status=status)

    attempt("c1", T0, 200)
    attempt("c2", T0 + H, 500)
    attempt("c3", T0 + 3 * H, None)  # the request raised
    attempt("c1", T0 - H, 200)  # before alpha's first prediction
    attempt("c5", T0 + 2 * H, 204)  # a coin only beta predicted
    return found


def test_alert_statistics_over_everything(models):
    stats = alert_statistics()

    by_model = stats.pop("by_model")
    assert stats == {
        "total_predictions": 11,
        "total_alerts": 6,
        "pending": 1,
        "success": 3,
        "failed": 1,
        "expired": 1,
        "alerts_above_threshold": 6,
        "non_alerts_count": 4,
        "alerts_success": 3,
        "alerts_failed": 1,
        "alerts_pending": 1,
        "non_alerts_success": 1,
        "non_alerts_failed": 2,
        "non_alerts_pending": 1,
        "alerts_success_rate": 75.0,
        "non_alerts_success_rate": pytest.approx(100 / 3),
        "success_rate": 75.0,
        "total_performance_pct": 59.5,
        "alerts_profit_pct": 65.0,
        "alerts_loss_pct": -5.5,
    }
    assert by_model == [  # alerts only, so the figures add up to the totals above
        {"model_id": 101, "model_name": "Alpha custom", "total": 4, "success": 1, "failed": 1, "pending": 1,
         "expired": 1, "success_rate": 50.0},
        {"model_id": models.beta.pk, "model_name": "beta", "total": 1, "success": 1, "failed": 0, "pending": 0,
         "expired": 0, "success_rate": 100.0},
        {"model_id": 303, "model_name": "ID: 303", "total": 1, "success": 1, "failed": 0, "pending": 0,
         "expired": 0, "success_rate": 100.0},
    ]
    assert stats["total_alerts"] == stats["pending"] + stats["success"] + stats["failed"] + stats["expired"]
    assert stats["total_alerts"] == sum(entry["total"] for entry in by_model)


def test_alert_statistics_for_one_model_and_a_date_range(models):
    stats = alert_statistics(active_model_id=models.alpha.pk, date_from=T0 + H, date_to=T0 + 5 * H)

    assert {key: stats[key] for key in ("total_predictions", "total_alerts", "pending", "success", "failed",
                                        "expired", "alerts_above_threshold", "alerts_success", "alerts_failed",
                                        "alerts_pending", "non_alerts_count")} == {
        "total_predictions": 5, "total_alerts": 3, "pending": 1, "success": 0, "failed": 1, "expired": 1,
        "alerts_above_threshold": 3, "alerts_success": 0, "alerts_failed": 1, "alerts_pending": 1,
        "non_alerts_count": 2,
    }
    assert stats["alerts_success_rate"] == 0.0 and stats["success_rate"] == 0.0
    assert (stats["total_performance_pct"], stats["alerts_profit_pct"], stats["alerts_loss_pct"]) == (-5.5, 0.0, -5.5)
    assert stats["by_model"] == [{"model_id": 101, "model_name": "Alpha custom", "total": 3, "success": 0,
                                  "failed": 1, "pending": 1, "expired": 1, "success_rate": 0.0}]


def test_alert_statistics_without_rows_are_zeros():
    stats = alert_statistics()

    assert stats["by_model"] == []
    assert all(value == 0 for key, value in stats.items() if key != "by_model")


def test_models_alert_statistics_defaults_to_active_models(models):
    stats = models_alert_statistics()

    assert stats == {
        str(models.alpha.pk): {"total_predictions": 7, "positive_predictions": 5, "negative_predictions": 2,
                               "alerts_total": 4, "alerts_success": 1, "alerts_failed": 1, "alerts_pending": 1,
                               "alerts_expired": 1},
        str(models.beta.pk): {"total_predictions": 3, "positive_predictions": 1, "negative_predictions": 2,
                              "alerts_total": 1, "alerts_success": 1, "alerts_failed": 0, "alerts_pending": 0,
                              "alerts_expired": 0},
        str(models.delta.pk): dict.fromkeys(
            ("total_predictions", "positive_predictions", "negative_predictions", "alerts_total", "alerts_success",
             "alerts_failed", "alerts_pending", "alerts_expired"), 0),
    }


def test_models_alert_statistics_for_given_ids(models):
    stats = models_alert_statistics(active_model_ids=[models.gamma.pk, 9999])

    assert list(stats) == [str(models.gamma.pk), "9999"]
    assert stats[str(models.gamma.pk)]["alerts_success"] == 1
    assert set(stats["9999"].values()) == {0}


def test_model_statistics(models):
    stats = model_statistics(active_model_id=models.alpha.pk)

    assert stats == {
        "total_predictions": 7,
        "positive_predictions": 5,
        "negative_predictions": 2,
        "positive_rate_percent": pytest.approx(500 / 7),
        "negative_rate_percent": pytest.approx(200 / 7),
        "avg_probability": pytest.approx(4.4 / 7),
        "avg_probability_positive": pytest.approx(0.8),
        "avg_probability_negative": pytest.approx(0.2),
        "min_probability": 0.1,
        "max_probability": 0.95,
        "avg_duration_ms": 15.0,
        "first_prediction": T0 + timedelta(seconds=1),
        "last_prediction": T0 + 6 * H + timedelta(seconds=1),
        "unique_coins": 4,
        "alerts_count": 4,
        "alert_threshold": 0.7,
        "webhook_total": 3,
        "webhook_success": 1,
        "webhook_failed": 2,
        "webhook_success_rate": pytest.approx(100 / 3),
        "probability_distribution": {"0.1-0.2": 1, "0.3-0.4": 1, "0.6-0.7": 1, "0.7-0.8": 1, "0.8-0.9": 1,
                                     "0.9-1.0": 2},
    }


def test_model_statistics_put_probability_one_in_the_top_bucket(models):
    assert model_statistics(active_model_id=models.gamma.pk)["probability_distribution"] == {"0.9-1.0": 1}


def test_model_statistics_without_rows_has_every_field(models):
    stats = model_statistics(active_model_id=models.delta.pk)

    assert stats == {
        "total_predictions": 0, "positive_predictions": 0, "negative_predictions": 0,
        "positive_rate_percent": 0.0, "negative_rate_percent": 0.0,
        "avg_probability": None, "avg_probability_positive": None, "avg_probability_negative": None,
        "min_probability": None, "max_probability": None, "avg_duration_ms": None,
        "first_prediction": None, "last_prediction": None, "unique_coins": 0, "alerts_count": 0,
        "alert_threshold": 0.65, "webhook_total": 0, "webhook_success": 0, "webhook_failed": 0,
        "webhook_success_rate": None, "probability_distribution": {},
    }


def test_system_stats(models):
    assert system_stats(now=T0 + 6.5 * H) == {
        "total_predictions": 11,
        "predictions_last_hour": 1,
        "predictions_last_24h": 9,
        "predictions_last_7d": 10,
        "active_models": 3,
        "coins_tracked": 6,
        "avg_prediction_time_ms": 15.0,
        "webhook_total": 5,
        "webhook_success": 3,
        "webhook_failed": 2,
    }


def test_statistics_take_a_fixed_number_of_queries(models, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        alert_statistics()
    with django_assert_max_num_queries(2):
        models_alert_statistics()
    with django_assert_max_num_queries(4):
        model_statistics(active_model_id=models.alpha.pk)
    with django_assert_max_num_queries(3):
        system_stats()
