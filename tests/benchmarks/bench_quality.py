"""Live model quality: how long the figures of a window take, from the hourly aggregates, whatever the number of raw
predictions behind them.

A year of hourly aggregates for 10 models (87,600 hour rows) stands for 10 models × 500 judged predictions an hour
(~44 million predictions); the raw predictions are not created: the figures never read them. Timed: the 24 h, 7 d
and all-time windows of one model (median of 20 calls each, warm), and the refresh of the aggregates after a run of
the evaluation (one hour of 5,000 freshly judged predictions).

    .venv/bin/python -m tests.benchmarks.run quality
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS, DAYS, PER_HOUR, FRESH = 10, 365, 500, 5000
CALLS = 20


def _setup_and_time() -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")
    django.setup()
    import numpy as np

    from modelregistry.models import ActiveModel
    from predictions.models import ModelPrediction
    from quality import selectors, services
    from quality.models import QualityHour
    from quality.stats import AUC_BINS, CALIBRATION_BINS

    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(1)
    models = [ActiveModel.objects.create(model_type="xgboost", features=["price_close"], model_name=f"q{k}")
              for k in range(MODELS)]
    rows = []
    for model in models:
        for hour in range(DAYS * 24):
            positives = rng.multinomial(PER_HOUR // 4, np.ones(AUC_BINS) / AUC_BINS)
            negatives = rng.multinomial(PER_HOUR - PER_HOUR // 4, np.ones(AUC_BINS) / AUC_BINS)
            rows.append(QualityHour(
                active_model=model, hour=now - timedelta(hours=hour + 1), judged=PER_HOUR, happened=PER_HOUR // 4,
                tp=60, fp=40, tn=335, fn=65, brier_sum=40.0, alerts_success=30, alerts_failed=20,
                alert_change_sum=150.0, alert_change_n=50, ath_gain_sum=400.0, ath_gain_n=50,
                calibration_counts=[PER_HOUR // CALIBRATION_BINS] * CALIBRATION_BINS,
                calibration_probability_sums=[5.0 * (k + 0.5) for k in range(CALIBRATION_BINS)],
                calibration_hits=[12] * CALIBRATION_BINS, auc_positives=positives.tolist(),
                auc_negatives=negatives.tolist()))
    QualityHour.objects.bulk_create(rows, batch_size=5000)

    timings = {}
    for window in ("24h", "7d", "all"):
        start, end = selectors.window_bounds(window, now=now)
        selectors.model_quality(active_model_id=models[0].pk, start=start, end=end)  # warm
        calls = []
        for _ in range(CALLS):
            began = time.perf_counter()
            selectors.model_quality(active_model_id=models[0].pk, start=start, end=end)
            calls.append(time.perf_counter() - began)
        timings[window] = statistics.median(calls) * 1000

    fresh_hour = now + timedelta(minutes=5)
    ModelPrediction.objects.bulk_create([
        ModelPrediction(coin_id=f"c{k}", active_model=models[0], prediction=int(p > 0.5), probability=float(p),
                        tag="alert" if p >= 0.7 else "negativ", status="inaktiv",
                        evaluation_result="success" if k % 3 else "failed", evaluated_at=fresh_hour,
                        prediction_timestamp=fresh_hour - timedelta(seconds=k % 3000),
                        evaluation_timestamp=fresh_hour)
        for k, p in enumerate(rng.uniform(size=FRESH))
    ], batch_size=5000)
    began = time.perf_counter()
    services.refresh_hours(since=fresh_hour - timedelta(minutes=1))
    timings["refresh"] = (time.perf_counter() - began) * 1000
    return timings


def run(url: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "pumpserver.settings",
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key")}
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_quality", "measure"], cwd=PROJECT_DIR,
                         env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    timings = dict(item.split("=") for item in out.split())
    ms = {key: float(value) for key, value in timings.items()}
    verdict = "met" if ms["7d"] < 300 else "**missed**"
    return "\n".join([
        "### Live model quality: a window's figures from hourly aggregates",
        "",
        f"{MODELS} models × {DAYS} days of hourly aggregates ({MODELS * DAYS * 24:,} hour rows, standing for "
        f"{MODELS * DAYS * 24 * PER_HOUR:,} judged predictions); figures of one model (Wilson interval, precision, "
        f"recall, F1, AUC from {200}-bin histograms, Brier, calibration, reference), median of {CALLS} warm calls.",
        "",
        "| window | ms |",
        "|---|---:|",
        *(f"| {window} | {ms[window]:.1f} |" for window in ("24h", "7d", "all")),
        "",
        f"- Refreshing the aggregates after {FRESH:,} new verdicts in one hour: {ms['refresh']:.0f} ms.",
        f"- Target: a 7-day window in under 300 ms: {verdict} ({ms['7d']:.1f} ms).",
    ])


if __name__ == "__main__":
    if sys.argv[1:] == ["measure"]:
        sys.path.insert(0, PROJECT_DIR)
        result = _setup_and_time()
        print(" ".join(f"{key}={value:.3f}" for key, value in result.items()))
    else:
        sys.exit("usage: python -m tests.benchmarks.run quality")
