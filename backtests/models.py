"""Backtest runs and the predictions they replayed: a model run over `coin_metrics` already recorded, judged as the
worker judges live predictions."""

from django.db import models
from django.db.models import Q

from modelregistry.models import ActiveModel


class RunState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"  # crashed or cancelled (`error` says which): never looks complete


FINAL_STATES = (RunState.DONE, RunState.FAILED)


class BacktestRun(models.Model):
    active_model = models.ForeignKey(ActiveModel, on_delete=models.CASCADE, related_name="backtests")
    start = models.DateTimeField(help_text="first coin_metrics timestamp replayed (inclusive)")
    end = models.DateTimeField(help_text="last coin_metrics timestamp replayed (inclusive)")
    threshold = models.FloatField(help_text="alert threshold the rows are tagged by (the model's, unless given)")
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.QUEUED)
    progress = models.FloatField(default=0.0, help_text="share of the range's rows replayed, 0..1")
    rows_total = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    settings = models.JSONField(default=dict, blank=True, help_text="the model settings the replay used")
    summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    requested_by = models.CharField(max_length=150, blank=True, default="", help_text="user or 'command'")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the process running it")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "backtest_runs"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["active_model", "-created_at"], name="backtest_runs_model_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="backtest_runs_state"),
            models.CheckConstraint(condition=Q(end__gte=models.F("start")), name="backtest_runs_range"),
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1), name="backtest_runs_progress"),
        ]

    def __str__(self) -> str:
        return f"backtest {self.pk} of model {self.active_model_id}"


class BacktestRow(models.Model):
    """One replayed prediction. Prices are not copied: judging reads them from coin_metrics, as the worker does."""

    # No database-level foreign key and no index of its own: a replay stores about a million rows a minute, and the
    # deferred per-row check cost a fifth of that time. backtests.row_services locks the run (FOR KEY SHARE) once
    # per stored group instead; the ORM cascade deletes a run's rows; (run, prediction_timestamp) serves lookups.
    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="rows", db_constraint=False,
                            db_index=False)
    coin_id = models.CharField(max_length=255)
    prediction_timestamp = models.DateTimeField()
    evaluation_timestamp = models.DateTimeField()
    probability = models.FloatField()
    prediction = models.SmallIntegerField()
    tag = models.CharField(max_length=10)
    evaluation_result = models.CharField(max_length=20, null=True, blank=True, help_text="NULL: horizon not in the data")
    actual_price_change_pct = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)

    class Meta:
        db_table = "backtest_rows"
        ordering = ["prediction_timestamp", "coin_id"]
        indexes = [models.Index(fields=["run", "prediction_timestamp"], name="backtest_rows_run_time_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(prediction__in=[0, 1]), name="backtest_rows_prediction"),
            models.CheckConstraint(condition=Q(tag__in=["negativ", "positiv", "alert"]), name="backtest_rows_tag"),
            models.CheckConstraint(
                condition=Q(evaluation_result__isnull=True)
                | Q(evaluation_result__in=["success", "failed", "not_applicable"]),
                name="backtest_rows_result",
            ),
        ]
