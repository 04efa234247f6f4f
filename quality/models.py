"""Live model quality: hourly aggregates of judged predictions (they outlive the raw rows), each model's quality
settings and degradation state."""

from django.contrib.postgres.fields import ArrayField
from django.db import models

from modelregistry.models import ActiveModel


class QualityHour(models.Model):
    """Counts of one model's judged predictions whose data time falls in one hour. Every figure of a window is
    computed from the sums of its hours, so a window never scans raw predictions."""

    active_model = models.ForeignKey(ActiveModel, on_delete=models.CASCADE, related_name="quality_hours")
    hour = models.DateTimeField()
    judged = models.IntegerField(default=0, help_text="predictions judged success or failed")
    happened = models.IntegerField(default=0, help_text="of them, where the target event happened")
    tp = models.IntegerField(default=0)
    fp = models.IntegerField(default=0)
    tn = models.IntegerField(default=0)
    fn = models.IntegerField(default=0)
    brier_sum = models.FloatField(default=0.0)
    alerts_success = models.IntegerField(default=0)
    alerts_failed = models.IntegerField(default=0)
    alert_change_sum = models.FloatField(default=0.0, help_text="sum of actual_price_change_pct of judged alerts")
    alert_change_n = models.IntegerField(default=0)
    ath_gain_sum = models.FloatField(default=0.0, help_text="sum of ath_highest_pct of judged alerts")
    ath_gain_n = models.IntegerField(default=0)
    calibration_counts = ArrayField(models.IntegerField(), default=list)
    calibration_probability_sums = ArrayField(models.FloatField(), default=list)
    calibration_hits = ArrayField(models.IntegerField(), default=list)
    auc_positives = ArrayField(models.IntegerField(), default=list)
    auc_negatives = ArrayField(models.IntegerField(), default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "model_quality_hours"
        ordering = ["active_model", "hour"]
        constraints = [models.UniqueConstraint(fields=["active_model", "hour"], name="quality_hours_model_hour")]


class QualitySettings(models.Model):
    """How strictly a model is watched, and what was last found."""

    active_model = models.OneToOneField(ActiveModel, on_delete=models.CASCADE, related_name="quality_settings")
    margin = models.FloatField(default=0.05, help_text="how far below its reference success rate a model may fall")
    min_judged_alerts = models.IntegerField(default=30, help_text="judged alerts needed before a verdict on the rate")
    psi_threshold = models.FloatField(default=0.25, help_text="feature PSI above which a feature counts as drifted")
    auto_pause = models.BooleanField(default=False, help_text="deactivate the model when it is found degraded")
    degraded = models.BooleanField(default=False)
    degraded_reasons = models.JSONField(default=list, blank=True)
    degraded_since = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "model_quality_settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(margin__gte=0, margin__lte=1), name="quality_margin"),
            models.CheckConstraint(condition=models.Q(min_judged_alerts__gte=1), name="quality_min_alerts"),
            models.CheckConstraint(condition=models.Q(psi_threshold__gt=0), name="quality_psi_threshold"),
        ]


class FeatureReference(models.Model):
    """A model's reference distribution per input feature: frozen quantile bin edges and the share of rows in each
    bin, from its training window where the data is there, else from its latest backtest's range or its first live
    day. Live windows are counted into the same bins."""

    active_model = models.OneToOneField(ActiveModel, on_delete=models.CASCADE, related_name="feature_reference")
    source = models.CharField(max_length=20, help_text="training, backtest or live")
    start = models.DateTimeField()
    end = models.DateTimeField()
    rows = models.IntegerField()
    features = models.JSONField(help_text='feature → {"edges": [...], "shares": [...]}')
    importance = models.JSONField(default=dict, blank=True, help_text="feature → the model's importance")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "model_feature_references"


class DriftHour(models.Model):
    """Bin counts, in the reference's bins, of the features of a sample of one model's predictions in one hour."""

    active_model = models.ForeignKey(ActiveModel, on_delete=models.CASCADE, related_name="drift_hours")
    hour = models.DateTimeField()
    rows = models.IntegerField()
    counts = models.JSONField(help_text="feature → counts per reference bin")

    class Meta:
        db_table = "model_drift_hours"
        ordering = ["active_model", "hour"]
        constraints = [models.UniqueConstraint(fields=["active_model", "hour"], name="drift_hours_model_hour")]
