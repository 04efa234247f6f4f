"""Writes of live model quality: hourly aggregates of judged predictions, each model's quality settings, and the
degradation check (flag, gauge, a signed `model_degraded` webhook through the outbox, optional auto-pause)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from audit.services import tracking
from modelregistry.models import ActiveModel
from modelregistry.services import deactivate_model
from predictions.webhook_services import enqueue_event
from predictions.webhooks import PAYLOAD_VERSION, SERVICE_NAME
from pumpserver import metrics
from pumpserver.config import global_n8n_webhook_url
from quality import selectors
from quality.models import QualityHour, QualitySettings
from quality.stats import AUC_BINS, CALIBRATION_BINS

CHECK_WINDOW = timedelta(days=7)  # the alert success rate is held against its reference over this window
DRIFT_WINDOW = timedelta(hours=24)  # feature drift is measured over this window

# Judged predictions (success or failed) of the (model, hour) groups that got a verdict since `since` (all groups when
# NULL), counted per AUC bin, outcome, 0/1 prediction and alert tag; Python adds the groups up into hour rows.
HOUR_COUNTS_SQL = f"""
WITH touched AS (
    SELECT DISTINCT active_model_id, date_trunc('hour', prediction_timestamp) AS hour
      FROM model_predictions
     WHERE evaluation_result IN ('success', 'failed')
       AND (%(since)s::timestamptz IS NULL OR evaluated_at >= %(since)s::timestamptz)
), judged AS (
    SELECT p.active_model_id, t.hour, p.probability, p.prediction, p.tag = 'alert' AS alert,
           (p.evaluation_result = 'success') = (p.prediction = 1) AS happened,
           p.actual_price_change_pct, p.ath_highest_pct
      FROM touched t
      JOIN model_predictions p
        ON p.active_model_id = t.active_model_id
       AND p.prediction_timestamp >= t.hour AND p.prediction_timestamp < t.hour + interval '1 hour'
     WHERE p.evaluation_result IN ('success', 'failed')
)
SELECT active_model_id, hour, least(floor(probability * {AUC_BINS}), {AUC_BINS - 1})::int AS bin, happened,
       prediction, alert, count(*), sum(probability), sum((probability - happened::int) ^ 2),
       coalesce(sum(actual_price_change_pct), 0), count(actual_price_change_pct),
       coalesce(sum(ath_highest_pct), 0), count(ath_highest_pct)
  FROM judged
 GROUP BY 1, 2, 3, 4, 5, 6
"""

_HOUR_FIELDS = ["judged", "happened", "tp", "fp", "tn", "fn", "brier_sum", "alerts_success", "alerts_failed",
                "alert_change_sum", "alert_change_n", "ath_gain_sum", "ath_gain_n", "calibration_counts",
                "calibration_probability_sums", "calibration_hits", "auc_positives", "auc_negatives"]


def _empty_hour(model_id: int, hour: datetime) -> QualityHour:
    return QualityHour(
        active_model_id=model_id, hour=hour, calibration_counts=[0] * CALIBRATION_BINS,
        calibration_probability_sums=[0.0] * CALIBRATION_BINS, calibration_hits=[0] * CALIBRATION_BINS,
        auc_positives=[0] * AUC_BINS, auc_negatives=[0] * AUC_BINS,
    )


def refresh_hours(*, since: datetime | None) -> int:
    """Recompute the hourly aggregates of every (model, hour) with a verdict since `since` (None: all); returns how
    many hour rows were written. Recomputing whole hours keeps the aggregates exact whatever was judged when."""
    with connection.cursor() as cursor:
        cursor.execute(HOUR_COUNTS_SQL, {"since": since})
        groups = cursor.fetchall()
    hours: dict[tuple[int, datetime], QualityHour] = {}
    for (model_id, hour, bin_, happened, prediction, alert, n, probability_sum, brier_sum, change_sum, change_n,
         ath_sum, ath_n) in groups:
        row = hours.get((model_id, hour)) or hours.setdefault((model_id, hour), _empty_hour(model_id, hour))
        row.judged += n
        row.happened += n if happened else 0
        if prediction == 1:
            row.tp, row.fp = row.tp + (n if happened else 0), row.fp + (0 if happened else n)
        else:
            row.fn, row.tn = row.fn + (n if happened else 0), row.tn + (0 if happened else n)
        row.brier_sum += brier_sum
        if alert:
            success = happened == (prediction == 1)
            row.alerts_success += n if success else 0
            row.alerts_failed += 0 if success else n
            row.alert_change_sum += float(change_sum)
            row.alert_change_n += change_n
            row.ath_gain_sum += float(ath_sum)
            row.ath_gain_n += ath_n
        calibration = bin_ * CALIBRATION_BINS // AUC_BINS
        row.calibration_counts[calibration] += n
        row.calibration_probability_sums[calibration] += probability_sum
        row.calibration_hits[calibration] += n if happened else 0
        (row.auc_positives if happened else row.auc_negatives)[bin_] += n
    if hours:
        QualityHour.objects.bulk_create(list(hours.values()), update_conflicts=True,
                                        unique_fields=["active_model", "hour"], update_fields=_HOUR_FIELDS)
    return len(hours)


def update_settings(*, active_model_id: int, changes: dict) -> QualitySettings:
    """Change a model's quality settings (margin, min_judged_alerts, psi_threshold, auto_pause)."""
    allowed = {"margin", "min_judged_alerts", "psi_threshold", "auto_pause"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"unknown quality settings: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        quality_settings, _ = QualitySettings.objects.select_for_update().get_or_create(active_model_id=active_model_id)
        with tracking(quality_settings, fields=tuple(allowed)):
            for name, value in changes.items():
                setattr(quality_settings, name, value)
            quality_settings.full_clean()
            quality_settings.save()
    return quality_settings


def check_models(*, now: datetime | None = None) -> list[int]:
    """Hold every active model against its reference; returns the ids newly flagged degraded.

    Degraded: over the last 7 days at least `min_judged_alerts` alerts were judged and the upper bound of the alert
    success rate's 95 % interval lies below the reference success rate minus the model's margin. The reference is
    the latest finished backtest's success rate, else the training precision.
    """
    now = now or timezone.now()
    newly = []
    for model in ActiveModel.objects.filter(is_active=True):
        with transaction.atomic():
            quality_settings, _ = QualitySettings.objects.select_for_update().get_or_create(active_model=model)
            figures = selectors.model_quality(active_model_id=model.pk, start=now - CHECK_WINDOW, end=now)
            figures.update(selectors.drift(active_model_id=model.pk, start=now - DRIFT_WINDOW, end=now))
            reasons = selectors.degradation_reasons(figures=figures, settings=quality_settings)
            was = quality_settings.degraded
            quality_settings.degraded = bool(reasons)
            quality_settings.degraded_reasons = reasons
            quality_settings.checked_at = now
            if reasons and not was:
                quality_settings.degraded_since = now
                newly.append(model.pk)
                _announce(model, reasons=reasons, figures=figures, now=now)
                if quality_settings.auto_pause:
                    deactivate_model(active_model_id=model.pk)
            elif not reasons:
                quality_settings.degraded_since = None
            quality_settings.save()
        label = str(model.model_id or model.pk)
        if figures["success_rate"] is not None:
            metrics.MODEL_LIVE_SUCCESS_RATE.labels(model_id=label).set(figures["success_rate"])
        metrics.MODEL_DEGRADED.labels(model_id=label).set(1 if quality_settings.degraded else 0)
        for feature, value in figures["psi"].items():
            if value is not None:
                metrics.MODEL_FEATURE_PSI.labels(model_id=label, feature=feature).set(value)
    return newly


def _announce(model: ActiveModel, *, reasons: list[str], figures: dict, now: datetime) -> None:
    url = model.n8n_webhook_url or global_n8n_webhook_url()
    if not url or model.n8n_enabled is False:
        return
    payload = {
        "event": "model_degraded",
        "service": SERVICE_NAME,
        "version": PAYLOAD_VERSION,
        "timestamp": now.isoformat(),
        "model": {"active_model_id": model.pk, "model_id": model.model_id, "name": model.display_name},
        "reasons": reasons,
        "live": {key: figures[key] for key in ("judged_alerts", "success_rate", "success_rate_low",
                                                "success_rate_high")},
        "reference": figures["reference"],
    }
    enqueue_event(url=url, subject=f"model:{model.pk}", payload=payload, now=now)

