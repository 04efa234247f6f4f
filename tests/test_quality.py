"""Live model quality: the statistics against answers computed by hand, the hourly aggregates against the raw rows,
and the degradation check (flag, webhook event, auto-pause)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction, WebhookDelivery
from quality import drift, selectors, services, stats
from quality.models import QualityHour, QualitySettings
from tests.test_listener import HEADER, ROWS, insert, register_xgb

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


# --- statistics, by hand ----------------------------------------------------------------------------------------


def test_wilson_interval_known_answers():
    # 8 of 10: centre (0.8 + z²/20) / (1 + z²/10), half-width z·√(0.8·0.2/10 + z²/400) / (1 + z²/10), z = 1.96
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(0.4901624, abs=1e-6) and high == pytest.approx(0.9433178, abs=1e-6)
    low, high = stats.wilson_interval(0, 5)
    assert low == 0.0 and high == pytest.approx(0.4344825, abs=1e-6)
    assert stats.wilson_interval(0, 0) == (None, None)


def test_precision_recall_f1_brier_and_calibration():
    assert stats.binary_figures(tp=6, fp=2, tn=10, fn=4) == {"precision": 0.75, "recall": 0.6, "f1": 12 / 18}
    assert stats.binary_figures(tp=0, fp=0, tn=3, fn=0) == {"precision": None, "recall": None, "f1": None}
    bins = stats.calibration([2, 0, 0, 0, 0, 0, 0, 0, 1, 1], [0.1, 0, 0, 0, 0, 0, 0, 0, 0.85, 0.95],
                             [0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    assert bins[0] == {"bin_low": 0.0, "bin_high": 0.1, "predicted": 0.05, "observed": 0.0, "n": 2}
    assert bins[1]["predicted"] is None and bins[9]["observed"] == 0.0 and bins[8]["observed"] == 1.0


def test_auc_from_histograms_equals_the_pairwise_definition():
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=400)
    labels = rng.uniform(size=400) < scores  # informative but noisy
    binned = stats.auc_bin(scores)
    positives = np.bincount(binned[labels], minlength=stats.AUC_BINS)
    negatives = np.bincount(binned[~labels], minlength=stats.AUC_BINS)
    # Scores replaced by their bins: sklearn counts ties as half, as the histogram formula does.
    assert stats.roc_auc_from_histograms(positives, negatives) == pytest.approx(roc_auc_score(labels, binned), 1e-12)
    # By hand: positives at 0.9 and 0.4, negatives at 0.2 and 0.4 → pairs (0.9>0.2, 0.9>0.4, 0.4>0.2, 0.4=0.4): 3.5/4
    hand_pos, hand_neg = np.zeros(stats.AUC_BINS), np.zeros(stats.AUC_BINS)
    hand_pos[stats.auc_bin(np.array([0.9, 0.4]))] += 1
    hand_neg[stats.auc_bin(np.array([0.2, 0.4]))] += 1
    assert stats.roc_auc_from_histograms(hand_pos, hand_neg) == 0.875
    assert stats.roc_auc_from_histograms(hand_pos, np.zeros(stats.AUC_BINS)) is None


def test_psi_known_answer_and_small_windows_do_not_cry_wolf():
    # (0.4−0.25)ln1.6 + (0.3−0.25)ln1.2 + (0.2−0.25)ln0.8 + (0.1−0.25)ln0.4
    assert stats.psi([0.25] * 4, [40, 30, 20, 10]) == pytest.approx(0.2282175, abs=1e-6)
    assert stats.psi([0.25] * 4, [25, 25, 25, 25]) == 0.0
    reference = np.random.default_rng(0).normal(size=20_000)
    edges = stats.quantile_edges(reference, bins=10)
    shares = np.asarray(stats.bin_counts(reference, edges)) / len(reference)
    flagged = 0
    for seed in range(200):  # unchanged data, n = 100
        window = np.random.default_rng(seed + 1).normal(size=100)
        value = stats.psi(shares, stats.bin_counts(window, edges))
        flagged += value > stats.psi_threshold(0.25, n=100, bins=len(shares))
    assert flagged <= 2
    shifted = np.random.default_rng(9).normal(loc=1.0, size=100)  # a real shift is still seen at n = 100
    assert stats.psi(shares, stats.bin_counts(shifted, edges)) > stats.psi_threshold(0.25, n=100, bins=len(shares))


def test_mcnemar_exact_known_answer():
    result = stats.mcnemar(only_first_right=10, only_second_right=2)
    assert result["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)  # two-sided binomial tail, n = 12, k = 2
    assert result["better"] == "first"
    assert stats.mcnemar(only_first_right=3, only_second_right=3)["better"] is None


# --- aggregates and degradation ------------------------------------------------------------------------------------


def predict(model, coin, probability, happened, *, at, tag=None, change=None, ath=None):
    prediction = int(probability > 0.5)
    result = "success" if happened == (prediction == 1) else "failed"
    return ModelPrediction.objects.create(
        coin_id=coin, active_model=model, prediction=prediction, probability=probability,
        tag=tag or ("alert" if probability >= 0.7 else "positiv" if probability >= 0.5 else "negativ"),
        status="inaktiv", evaluation_result=result, evaluated_at=at + timedelta(minutes=10),
        actual_price_change_pct=None if change is None else Decimal(str(change)),
        ath_highest_pct=None if ath is None else Decimal(str(ath)),
        prediction_timestamp=at, evaluation_timestamp=at + timedelta(minutes=10),
    )


@pytest.fixture
def model():
    return ActiveModel.objects.create(model_type="xgboost", features=["price_close"], model_name="watched",
                                      training_precision=Decimal("0.8000"), n8n_webhook_url="http://127.0.0.1:9/hook")


@pytest.mark.django_db
def test_window_figures_from_hourly_aggregates_equal_the_raw_rows(model):
    rows = [  # (probability, happened, hour, change, ath)
        (0.9, True, 0, 12.0, 30.0), (0.8, False, 0, -4.0, 2.0), (0.3, False, 0, None, None),
        (0.6, True, 1, None, None), (0.75, True, 1, 8.0, 9.0), (0.2, True, 2, None, None),
    ]
    for k, (p, happened, hour, change, ath) in enumerate(rows):
        predict(model, f"c{k}", p, happened, at=T0 + timedelta(hours=hour, minutes=k), change=change, ath=ath)
    assert services.refresh_hours(since=None) == 3
    figures = selectors.model_quality(active_model_id=model.pk, start=None, end=T0 + timedelta(days=1))
    assert (figures["judged_alerts"], figures["success"], figures["failed"]) == (3, 2, 1)
    assert figures["success_rate"] == pytest.approx(2 / 3)
    assert (figures["success_rate_low"], figures["success_rate_high"]) == pytest.approx(stats.wilson_interval(2, 3))
    # 0/1 prediction vs outcome: tp = 0.9, 0.6, 0.75; fp = 0.8; fn = 0.2; tn = 0.3
    assert figures["precision"] == 0.75 and figures["recall"] == 0.75 and figures["f1"] == 0.75
    happened = np.array([r[1] for r in rows])
    probabilities = np.array([r[0] for r in rows])
    assert figures["brier"] == pytest.approx(float(np.mean((probabilities - happened) ** 2)))
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(happened, probabilities))
    assert figures["avg_price_change_pct"] == pytest.approx((12 - 4 + 8) / 3)
    assert figures["avg_ath_gain_pct"] == pytest.approx((30 + 2 + 9) / 3)
    assert sum(entry["n"] for entry in figures["calibration"]) == 6
    assert figures["reference"]["success_rate"] == 0.8 and figures["reference"]["backtest"] is None

    one_hour = selectors.model_quality(active_model_id=model.pk, start=T0 + timedelta(hours=1),
                                       end=T0 + timedelta(hours=2))
    assert one_hour["judged_predictions"] == 2 and one_hour["judged_alerts"] == 1

    # A later verdict in an hour already aggregated is taken in by the next incremental refresh.
    predict(model, "late", 0.95, True, at=T0 + timedelta(minutes=30), change=50.0)
    services.refresh_hours(since=T0)
    assert QualityHour.objects.get(active_model=model, hour=T0).judged == 4


@pytest.mark.django_db(transaction=True)
def test_a_model_that_stops_hitting_is_flagged_once_announced_and_paused(model):
    QualitySettings.objects.create(active_model=model, min_judged_alerts=20, margin=0.05, auto_pause=True)
    now = T0 + timedelta(days=1)
    for k in range(30):  # 3 of 30 alerts succeed: the interval's top (~26 %) is far below 80 % − 5 %
        predict(model, f"c{k}", 0.9, k % 10 == 0, at=T0 + timedelta(minutes=5 * k))
    services.refresh_hours(since=None)
    assert services.check_models(now=now) == [model.pk]
    quality_settings = QualitySettings.objects.get(active_model=model)
    assert quality_settings.degraded and "below the reference 80.0%" in quality_settings.degraded_reasons[0]
    delivery = WebhookDelivery.objects.get(coin_id=f"model:{model.pk}")
    assert delivery.payload["event"] == "model_degraded" and delivery.webhook_url == "http://127.0.0.1:9/hook"
    model.refresh_from_db()
    assert model.is_active is False  # auto-pause

    ActiveModel.objects.filter(pk=model.pk).update(is_active=True)
    assert services.check_models(now=now) == []  # still degraded: no second event
    assert WebhookDelivery.objects.filter(coin_id=f"model:{model.pk}").count() == 1


@pytest.mark.django_db
def test_too_few_judged_alerts_raise_no_flag(model):
    for k in range(5):
        predict(model, f"c{k}", 0.9, False, at=T0 + timedelta(minutes=k))
    services.refresh_hours(since=None)
    assert services.check_models(now=T0 + timedelta(hours=2)) == []
    assert not math.isnan(selectors.model_quality(active_model_id=model.pk, start=None, end=T0 + timedelta(days=1))
                          ["success_rate_high"])


@pytest.mark.django_db
def test_paired_comparison_counts_only_shared_events(model):
    other = ActiveModel.objects.create(model_type="xgboost", features=["price_close"], model_name="other")
    for k in range(12):
        at = T0 + timedelta(minutes=k)
        predict(model, f"c{k}", 0.9, k < 10, at=at)  # right for k < 10
        predict(other, f"c{k}", 0.9 if k < 2 else 0.2, True, at=at)  # right for k < 2 (then it says 0; it happens)
    predict(model, "only-first", 0.9, True, at=T0)
    result = selectors.paired_comparison(first=model.pk, second=other.pk, start=None, end=T0 + timedelta(days=1))
    assert result["shared_events"] == 12
    assert (result["only_first_right"], result["only_second_right"]) == (8, 0)  # k = 2…9; k ≥ 10: both wrong
    assert result["p_value"] == pytest.approx(2 / 256) and result["better"] == "first"


# --- feature drift: a market whose regime changes --------------------------------------------------------------


def _regime(market, *, factor: float):
    """The parity market; a reference built from all of it; then, from one hour in, every price and volume multiplied
    by `factor` (a new regime); the model's live predictions over the whole range counted into drift hours.
    Returns (model, end)."""
    model = register_xgb()
    ActiveModel.objects.filter(pk=model.pk).update(n8n_webhook_url="http://127.0.0.1:9/hook")
    QualitySettings.objects.create(active_model=model, auto_pause=True)
    insert(market, ROWS)
    first = datetime.fromisoformat(ROWS[0][1])
    last = max(datetime.fromisoformat(row[1]) for row in ROWS)
    reference = drift.build_reference(active_model_id=model.pk, source="training", start=first, end=last)
    assert reference.rows > 100 and len(reference.features) == len(model.features)
    scaled = [c for c in HEADER if c.startswith(("price_", "volume_", "buy_volume", "sell_volume", "market_cap",
                                                 "net_volume", "whale_"))]
    with market.cursor() as cursor:
        cursor.execute("UPDATE coin_metrics SET " + ", ".join(f"{c} = {c} * %s" for c in scaled)
                       + ' WHERE "timestamp" >= %s', [factor] * len(scaled) + [first + timedelta(hours=1)])
    for row in ROWS:
        if row[2] in ("1", "2", "3"):
            predict(model, row[0], 0.3, False, at=datetime.fromisoformat(row[1]))
    end = last + timedelta(hours=1)
    assert drift.count_hours(active_model_id=model.pk, now=end) >= 2
    return model, end


@pytest.mark.django_db(transaction=True)
def test_a_regime_change_drifts_the_features_flags_the_model_once_and_pauses_it(market):
    model, end = _regime(market, factor=40)
    figures = selectors.drift(active_model_id=model.pk, start=None, end=end)
    assert figures["drifted_features"], figures["psi"]
    assert services.check_models(now=end) == [model.pk]
    reasons = QualitySettings.objects.get(active_model=model).degraded_reasons
    assert any("drifted past PSI 0.25" in reason for reason in reasons)
    assert WebhookDelivery.objects.filter(coin_id=f"model:{model.pk}").count() == 1
    model.refresh_from_db()
    assert not model.is_active


@pytest.mark.django_db(transaction=True)
def test_the_same_regime_raises_no_drift(market):
    model, end = _regime(market, factor=1)
    assert selectors.drift(active_model_id=model.pk, start=None, end=end)["drifted_features"] == []
    assert services.check_models(now=end) == []
