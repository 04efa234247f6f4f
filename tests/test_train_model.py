"""`manage.py train_model` on a simulated market: labels, split, metrics, registration, and train/serve parity (the
served probability of a test row equals the one computed at training time)."""

from __future__ import annotations

from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from modelregistry.models import ActiveModel, ModelArtifact, ModelSource
from modelregistry.training import TrainingConfig, default_features, label_rows
from predictions.models import ModelPrediction
from predictions.services import predict_coin
from pumpserver.database import open_connection
from tests.conftest import empty_market

pytestmark = pytest.mark.django_db(transaction=True)

START = "2025-01-01T00:00:00Z"
ROWS = 5000


@pytest.fixture(scope="module")
def simulated_market(django_db_setup, django_db_blocker):
    """One simulated market for the module (coin_metrics is not flushed between tests; it is emptied at the end)."""
    with django_db_blocker.unblock():
        empty_market()
        call_command("simulate_market", coins=40, rate=1_000_000, rows=ROWS, seed=3, start=START, stdout=StringIO())
        try:
            yield
        finally:
            empty_market()


def train(**options) -> str:
    out = StringIO()
    options = {"future_minutes": 2, "min_percent_change": 5, "seed": 1, "max_rows": 1500, "n_estimators": 30, **options}
    call_command("train_model", stdout=out, **options)
    return out.getvalue()


def assert_served_like_trained(model: ActiveModel, rows: int = 12, only=None) -> None:
    """predict_coin as of a test row (features from the rows up to it) gives the training-time probability."""
    ActiveModel.objects.exclude(pk=model.pk).update(is_active=False)
    sample = model.training_details["test_predictions"]
    picks = list(zip(sample["mints"], sample["timestamps"], sample["probabilities"]))
    if only is not None:
        picks = [pick for pick, keep in zip(picks, only) if keep]
    step = max(1, len(picks) // rows)
    for mint, timestamp, probability in picks[::step]:
        answer = predict_coin(coin_id=mint, timestamp=datetime.fromisoformat(timestamp))
        [served] = answer["predictions"]
        assert served["active_model_id"] == model.pk
        assert served["probability"] == probability, (mint, timestamp)
    assert ModelPrediction.objects.filter(active_model=model).count() == len(picks[::step])


def test_xgboost_is_trained_registered_and_served_like_trained(simulated_market):
    output = train(model_type="xgboost", activate=True, name="sim xgb")
    assert "accuracy" in output and "Registered as model #" in output and "active" in output

    model = ActiveModel.objects.get(model_name="sim xgb")
    assert model.source == ModelSource.BUILTIN_TRAINING and model.is_active and model.model_id is None
    assert (model.future_minutes, float(model.price_change_percent), model.target_direction) == (2, 5.0, "up")
    assert model.target_operator is None and model.target_variable == "price_close"
    assert model.features == default_features() and len(model.features) == 20 + 7 + 3 + 19 * 3
    assert model.params["_time_based"] == {"enabled": True, "future_minutes": 2, "min_percent_change": 5.0,
                                           "direction": "up"}
    assert model.params["use_engineered_features"] is True and model.params["feature_engineering_windows"] == [5, 10, 15]
    for field in ("training_accuracy", "training_precision", "training_recall", "training_f1", "roc_auc", "mcc"):
        assert getattr(model, field) is not None, field
    details = model.training_details
    counts = details["builtin_training"]
    matrix = model.confusion_matrix
    assert sum(matrix.values()) == counts["test_rows"] == details["test_predictions"]["total"]
    assert counts["train_positive"] > 0 and counts["test_positive"] > 0
    assert counts["sampled_rows"] == 1500 and counts["labelled_rows"] > 1500
    assert counts["train_rows"] + counts["test_rows"] + counts["dropped_for_horizon"] == counts["sampled_rows"]
    # the split is by time: every training row (and its label's horizon) lies before the test part
    split_at = datetime.fromisoformat(counts["split_at"])
    assert datetime.fromisoformat(details["train_end"]) < split_at
    assert all(datetime.fromisoformat(t) >= split_at for t in details["test_predictions"]["timestamps"])
    assert set(details["feature_importance"]) == set(model.features)
    assert ModelArtifact.objects.get(model=model).format == "xgboost_json"

    assert_served_like_trained(model)


def test_random_forest_with_own_features_and_phases(simulated_market):
    features = "price_roc_5,volume_ratio_10,buy_pressure_ma_5,dev_sold_cumsum,rolling_ath,ath_distance_pct,num_buys"
    train(model_type="random_forest", features=features, windows="5,10", phases="1,2", direction="down",
          n_estimators=20, max_depth=5, name="sim rf")
    model = ActiveModel.objects.get(model_name="sim rf")
    assert not model.is_active  # no --activate
    assert model.features == features.split(",") and model.phases == [1, 2] and model.target_direction == "down"
    assert model.params["feature_engineering_windows"] == [5, 10]
    assert ModelArtifact.objects.get(model=model).format == "skops"
    assert "class_weight=balanced" in model.training_details["builtin_training"]["class_weighting"]
    ActiveModel.objects.filter(pk=model.pk).update(is_active=True)
    assert_served_like_trained(model, rows=8)


def test_labels_look_ahead_per_coin_and_drop_rows_without_a_future(simulated_market):
    labelled = label_rows(TrainingConfig(future_minutes=2).validated())
    with open_connection() as conn:
        [(total,)] = conn.execute("SELECT count(*) FROM coin_metrics").fetchall()
    assert labelled.loaded_rows == total == ROWS
    assert 0 < len(labelled.coin) < total  # each coin's last rows have no future value: dropped, not labelled 0
    assert (labelled.future_ts_us > labelled.ts_us).all()
    assert 0 < labelled.label.sum() < len(labelled.label)


def test_bad_options_and_too_little_data(simulated_market):
    with pytest.raises(CommandError, match="--model-type must be one of"):
        train(model_type="lightgbm")
    with pytest.raises(CommandError, match="unknown feature"):
        train(features="price_roc_5,not_a_feature")
    with pytest.raises(CommandError, match="window from --windows"):
        train(features="price_roc_7")
    with pytest.raises(CommandError, match="--direction must be up or down"):
        train(direction="sideways")
    with pytest.raises(CommandError, match="--since must be an ISO 8601 time"):
        train(since="yesterday")
    with pytest.raises(CommandError, match="coin_metrics has no rows"):
        train(since="2030-01-01T00:00:00Z")
    too_little = r"^only \d+ labelled rows between 2025-01-01T00:00:0[\d.]+Z and 2025-01-01T00:02:30Z \(of \d+ rows; .*\); need at least 200$"
    with pytest.raises(CommandError, match=too_little):
        train(until="2025-01-01T00:02:30Z")
    with pytest.raises(CommandError, match="are labelled 1 .* at least 5 of each class"):
        train(min_percent_change=100000)
    assert ActiveModel.objects.count() == 0


def test_demo_model_replaces_the_bundled_model_once(simulated_market):
    call_command("ensure_demo_model", stdout=StringIO())
    bundled = ActiveModel.objects.get()
    out = StringIO()
    call_command("train_demo_model", min_rows=200, min_roc_auc=0, stdout=out)
    assert "Registered as model" in out.getvalue()
    trained = ActiveModel.objects.get(source=ModelSource.BUILTIN_TRAINING)
    assert trained.is_active and trained.future_minutes == 2
    bundled.refresh_from_db()
    assert not bundled.is_active

    out = StringIO()
    call_command("train_demo_model", stdout=out)
    assert "trained on this market already" in out.getvalue()
    assert ActiveModel.objects.count() == 2


def test_history_limit_cuts_training_histories_like_serving(simulated_market, settings):
    """With a short FEATURE_HISTORY_SIZE many as-of histories are cut; training and serving cut them alike."""
    settings.FEATURE_HISTORY_SIZE = 30
    train(model_type="random_forest", n_estimators=15, max_depth=6, name="short history", activate=True)
    model = ActiveModel.objects.get(model_name="short history")
    assert model.training_details["builtin_training"]["history_limit"] == 30
    sample = model.training_details["test_predictions"]
    with open_connection() as conn:
        lengths = [count for (count,) in conn.execute(
            "SELECT (SELECT count(*) FROM coin_metrics m WHERE m.mint = s.mint AND m.timestamp <= s.ts) "
            "FROM unnest(%s::text[], %s::timestamptz[]) WITH ORDINALITY AS s(mint, ts, i) ORDER BY s.i",
            [sample["mints"], sample["timestamps"]],
        ).fetchall()]
    cut = [length > 30 for length in lengths]
    assert sum(cut) >= 10  # rows whose history the limit cut
    assert_served_like_trained(model, rows=10, only=cut)
