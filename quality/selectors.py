"""Reads of live model quality: the figures of any window from the hourly aggregates (never the raw predictions),
the references a model is held against, the reasons it counts as degraded, and paired comparisons."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import numpy as np
from django.db import connection
from django.db.models import Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from backtests.models import BacktestRun, RunState
from modelregistry.models import ActiveModel
from quality import stats
from quality.models import DriftHour, FeatureReference, QualityHour, QualitySettings

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "all": None}
IMPORTANT_FEATURES = 5  # drift of these (by the model's own importance) counts towards degradation

# Two models judged on the same coin events (coin and data time): how often each alone was right.
PAIRED_SQL = """
SELECT count(*) FILTER (WHERE a.evaluation_result = 'success' AND b.evaluation_result = 'failed'),
       count(*) FILTER (WHERE a.evaluation_result = 'failed' AND b.evaluation_result = 'success'),
       count(*)
  FROM model_predictions a
  JOIN model_predictions b
    ON b.coin_key = a.coin_key AND b.coin_id = a.coin_id AND b.prediction_timestamp = a.prediction_timestamp AND b.active_model_id = %(second)s
 WHERE a.active_model_id = %(first)s
   AND a.evaluation_result IN ('success', 'failed') AND b.evaluation_result IN ('success', 'failed')
   AND (%(start)s::timestamptz IS NULL OR a.prediction_timestamp >= %(start)s::timestamptz)
   AND a.prediction_timestamp < %(end)s::timestamptz
"""


def window_bounds(window: str, *, now: datetime | None = None) -> tuple[datetime | None, datetime]:
    """(start, end) of a named window ending now; start None for `all`. Raises KeyError for an unknown name."""
    now = now or timezone.now()
    length = WINDOWS[window]
    return (None if length is None else now - length), now


def model_quality(*, active_model_id: int, start: datetime | None, end: datetime) -> dict:
    """The live figures of the model's predictions with data time in [start, end), from whole hours (an hour
    counts when it begins inside the window, or is the hour the window starts in); rates are fractions."""
    hours = QualityHour.objects.filter(active_model_id=active_model_id, hour__lt=end)
    if start is not None:
        hours = hours.filter(hour__gte=start.replace(minute=0, second=0, microsecond=0))
    total = _sum_hours(hours)
    success, failed = total["alerts_success"], total["alerts_failed"]
    low, high = stats.wilson_interval(success, success + failed)
    judged = total["judged"]
    return {
        "active_model_id": active_model_id,
        "start": start.isoformat() if start else None,
        "end": end.isoformat(),
        "judged_predictions": judged,
        "judged_alerts": success + failed,
        "success": success,
        "failed": failed,
        "success_rate": stats.ratio(success, success + failed),
        "success_rate_low": low,
        "success_rate_high": high,
        **stats.binary_figures(tp=total["tp"], fp=total["fp"], tn=total["tn"], fn=total["fn"]),
        "roc_auc": stats.roc_auc_from_histograms(total["auc_positives"], total["auc_negatives"]),
        "brier": stats.ratio(total["brier_sum"], judged),
        "base_rate": stats.ratio(total["happened"], judged),
        "calibration": stats.calibration(total["calibration_counts"], total["calibration_probability_sums"],
                                         total["calibration_hits"]),
        "avg_price_change_pct": stats.ratio(total["alert_change_sum"], total["alert_change_n"]),
        "sum_price_change_pct": total["alert_change_sum"] if total["alert_change_n"] else None,
        "avg_ath_gain_pct": stats.ratio(total["ath_gain_sum"], total["ath_gain_n"]),
        "reference": reference(active_model_id=active_model_id),
        **drift(active_model_id=active_model_id, start=start, end=end),
        "degraded": bool(settings_of(active_model_id=active_model_id).degraded),
    }


def drift(*, active_model_id: int, start: datetime | None, end: datetime) -> dict:
    """PSI of each feature over the window's counted hours against the model's reference, the rows they rest on, and
    the important features whose PSI lies above the model's threshold (raised for small windows)."""
    reference_row = FeatureReference.objects.filter(active_model_id=active_model_id).first()
    if reference_row is None:
        return {"psi": {}, "psi_rows": 0, "drifted_features": [], "drift_reference": None}
    hours = DriftHour.objects.filter(active_model_id=active_model_id, hour__lt=end)
    if start is not None:
        hours = hours.filter(hour__gte=start.replace(minute=0, second=0, microsecond=0))
    hours = list(hours)
    rows = sum(hour.rows for hour in hours)
    threshold = settings_of(active_model_id=active_model_id).psi_threshold
    psi, drifted = {}, []
    important = sorted(reference_row.importance, key=reference_row.importance.get, reverse=True)[:IMPORTANT_FEATURES]
    for name, bins in reference_row.features.items():
        counts = np.zeros(len(bins["shares"]))
        for hour in hours:
            if name in hour.counts:
                counts += np.asarray(hour.counts[name], dtype=np.float64)
        value = stats.psi(bins["shares"], counts)
        psi[name] = value
        limit = stats.psi_threshold(threshold, n=int(counts.sum()), bins=len(bins["shares"]))
        if value is not None and value > limit and (name in important or not important):
            drifted.append(name)
    return {
        "psi": psi,
        "psi_rows": rows,
        "drifted_features": sorted(drifted, key=lambda name: -psi[name]),
        "drift_reference": {"source": reference_row.source, "start": reference_row.start.isoformat(),
                            "end": reference_row.end.isoformat(), "rows": reference_row.rows},
    }


_SCALARS = ["judged", "happened", "tp", "fp", "tn", "fn", "brier_sum", "alerts_success", "alerts_failed",
            "alert_change_sum", "alert_change_n", "ath_gain_sum", "ath_gain_n"]
_ARRAYS = {"calibration_counts": stats.CALIBRATION_BINS, "calibration_probability_sums": stats.CALIBRATION_BINS,
           "calibration_hits": stats.CALIBRATION_BINS, "auc_positives": stats.AUC_BINS,
           "auc_negatives": stats.AUC_BINS}


def _sum_hours(hours) -> dict:
    """The sums of the hours' counts (scalars and per-bin arrays), added up column by column."""
    rows = list(hours.values_list(*_SCALARS, *_ARRAYS))
    total: dict = {}
    for k, name in enumerate(_SCALARS):
        total[name] = sum(row[k] for row in rows)
    for k, (name, size) in enumerate(_ARRAYS.items(), start=len(_SCALARS)):
        stacked = np.array([row[k] for row in rows if len(row[k]) == size], dtype=np.float64).reshape(-1, size)
        total[name] = stacked.sum(axis=0).tolist()
    return total


def reference(*, active_model_id: int) -> dict:
    """What the model is held against: its training metrics and its latest finished backtest."""
    model = ActiveModel.objects.filter(pk=active_model_id).values(
        "training_accuracy", "training_precision", "training_recall", "training_f1").first() or {}
    training = {key.removeprefix("training_"): None if value is None else float(value) for key, value in model.items()}
    run = (BacktestRun.objects.filter(active_model_id=active_model_id, state=RunState.DONE)
           .order_by("-finished_at", "-pk").first())
    backtest = None
    if run is not None and run.summary:
        backtest = {"run_id": run.pk, "start": run.start.isoformat(), "end": run.end.isoformat(),
                    **{key: run.summary.get(key) for key in ("success_rate", "roc_auc", "base_rate", "alerts",
                                                             "threshold")}}
    success_rate = backtest["success_rate"] if backtest and backtest["success_rate"] is not None else \
        training.get("precision")
    return {"training": training, "backtest": backtest, "success_rate": success_rate,
            "success_rate_source": "backtest" if backtest and backtest["success_rate"] is not None
            else "training precision" if success_rate is not None else None}


def degradation_reasons(*, figures: dict, settings: QualitySettings) -> list[str]:
    """Why the figures count as degraded under the model's settings (empty: they do not)."""
    reasons = []
    expected = figures["reference"]["success_rate"]
    if expected is not None and figures["judged_alerts"] >= settings.min_judged_alerts:
        high = figures["success_rate_high"]
        if high is not None and high < expected - settings.margin:
            reasons.append(
                f"alert success rate {figures['success_rate']:.1%} (95 % interval up to {high:.1%}) over "
                f"{figures['judged_alerts']} judged alerts is below the reference {expected:.1%} "
                f"({figures['reference']['success_rate_source']}) minus the margin {settings.margin:.1%}")
    drifted = figures.get("drifted_features") or []
    if drifted:
        listed = ", ".join(f"{name} (PSI {figures['psi'][name]:.2f})" for name in drifted)
        reasons.append(f"important features drifted past PSI {settings.psi_threshold:g}: {listed}")
    return reasons


def settings_of(*, active_model_id: int) -> QualitySettings:
    """The model's quality settings (the defaults when none are stored yet; not saved)."""
    return QualitySettings.objects.filter(active_model_id=active_model_id).first() or QualitySettings(
        active_model_id=active_model_id)


def paired_comparison(*, first: int, second: int, start: datetime | None, end: datetime) -> dict:
    """McNemar's test of two models on the coin events both were judged on."""
    with connection.cursor() as cursor:
        cursor.execute(PAIRED_SQL, {"first": first, "second": second, "start": start, "end": end})
        only_first, only_second, shared = cursor.fetchone()
    return {"first": first, "second": second, "shared_events": shared, "only_first_right": only_first,
            "only_second_right": only_second, **stats.mcnemar(only_first_right=only_first,
                                                              only_second_right=only_second)}


SERIES_BUCKETS = ("hour", "day")


def success_rate_series(*, active_model_id: int, start: datetime | None, end: datetime, bucket: str) -> list[dict]:
    """The alert success rate with its Wilson interval per hour or per day (UTC) of the window, from the hourly
    aggregates (the hours counted as model_quality counts them); only buckets with aggregates, oldest first."""
    if bucket not in SERIES_BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(SERIES_BUCKETS)}")
    hours = QualityHour.objects.filter(active_model_id=active_model_id, hour__lt=end)
    if start is not None:
        hours = hours.filter(hour__gte=start.replace(minute=0, second=0, microsecond=0))
    rows = (hours.annotate(bucket=Trunc("hour", bucket, tzinfo=dt_timezone.utc)).values("bucket")
            .annotate(success=Sum("alerts_success"), failed=Sum("alerts_failed")).order_by("bucket"))
    series = []
    for row in rows:
        success, failed = row["success"], row["failed"]
        low, high = stats.wilson_interval(success, success + failed)
        series.append({"bucket": row["bucket"], "judged_alerts": success + failed, "success": success,
                       "failed": failed, "success_rate": stats.ratio(success, success + failed),
                       "success_rate_low": low, "success_rate_high": high})
    return series


def degradation_states(*, active_model_ids: list[int]) -> dict[int, dict]:
    """Each model's stored degradation state (not degraded when nothing is stored), in one query."""
    stored = {row["active_model_id"]: row for row in QualitySettings.objects.filter(
        active_model_id__in=active_model_ids).values("active_model_id", "degraded", "degraded_reasons",
                                                     "degraded_since")}
    empty = {"degraded": False, "degraded_reasons": [], "degraded_since": None}
    return {pk: {key: stored[pk][key] for key in empty} if pk in stored else dict(empty) for pk in active_model_ids}


def comparison(*, active_model_ids: list[int], start: datetime | None, end: datetime) -> dict:
    """Several models over the same window: each one's figures, and McNemar's test for every pair (in the order
    given: the first of a pair is the one listed first)."""
    figures = [model_quality(active_model_id=pk, start=start, end=end) for pk in active_model_ids]
    pairs = [paired_comparison(first=first, second=second, start=start, end=end)
             for index, first in enumerate(active_model_ids) for second in active_model_ids[index + 1:]]
    return {"models": figures, "pairs": pairs}
