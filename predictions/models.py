"""Market data (owned by the collector), the listener's work queue, predictions, and webhook delivery.

`coin_metrics` and `ref_coin_phases` belong to the collector: Django only reads them (managed = False) and the
migration creates or adopts them. Everything else is ours.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from modelregistry.models import ActiveModel
from predictions import notes


class CoinPhase(models.Model):
    id = models.IntegerField(primary_key=True)
    name = models.CharField(max_length=50)
    interval_seconds = models.IntegerField()
    min_age_minutes = models.IntegerField()
    max_age_minutes = models.IntegerField()

    class Meta:
        managed = False
        db_table = "ref_coin_phases"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"


PRICE = {"max_digits": 30, "decimal_places": 18, "null": True}
SOL = {"max_digits": 20, "decimal_places": 6, "null": True}
RATIO = {"max_digits": 10, "decimal_places": 6, "null": True}
PERCENT = {"max_digits": 10, "decimal_places": 4, "null": True}


class CoinMetric(models.Model):
    """One row per coin per collector flush interval (written by the collector, never by us)."""

    id = models.BigAutoField(primary_key=True)
    mint = models.CharField(max_length=64)
    timestamp = models.DateTimeField()
    phase_id_at_time = models.IntegerField(null=True)
    price_open = models.DecimalField(**PRICE)
    price_high = models.DecimalField(**PRICE)
    price_low = models.DecimalField(**PRICE)
    price_close = models.DecimalField(**PRICE)
    market_cap_close = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    bonding_curve_pct = models.DecimalField(**PERCENT)
    virtual_sol_reserves = models.DecimalField(**SOL)
    is_koth = models.BooleanField(null=True)
    volume_sol = models.DecimalField(**SOL)
    buy_volume_sol = models.DecimalField(**SOL)
    sell_volume_sol = models.DecimalField(**SOL)
    num_buys = models.IntegerField(null=True)
    num_sells = models.IntegerField(null=True)
    unique_wallets = models.IntegerField(null=True)
    num_micro_trades = models.IntegerField(null=True)
    dev_sold_amount = models.DecimalField(**SOL)
    max_single_buy_sol = models.DecimalField(**SOL)
    max_single_sell_sol = models.DecimalField(**SOL)
    net_volume_sol = models.DecimalField(**SOL)
    volatility_pct = models.DecimalField(**PERCENT)
    avg_trade_size_sol = models.DecimalField(**SOL)
    whale_buy_volume_sol = models.DecimalField(**SOL)
    whale_sell_volume_sol = models.DecimalField(**SOL)
    num_whale_buys = models.IntegerField(null=True)
    num_whale_sells = models.IntegerField(null=True)
    buy_pressure_ratio = models.DecimalField(**RATIO)
    unique_signer_ratio = models.DecimalField(**RATIO)

    class Meta:
        managed = False
        db_table = "coin_metrics"
        ordering = ["-timestamp"]
        verbose_name = "coin metrics row"

    def __str__(self) -> str:
        return f"{self.mint} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class PendingCoinMetric(models.Model):
    """A coin_metrics row not yet handled by a listener, queued by the insert trigger in the same transaction.

    Keyed on what every coin_metrics variant has (mint, timestamp); the row id only where the table has one.
    Listeners claim rows with FOR UPDATE SKIP LOCKED and delete them in the transaction that stores the
    predictions, so a crash before commit leaves them queued.
    """

    id = models.BigAutoField(primary_key=True)
    mint = models.CharField(max_length=64)
    data_timestamp = models.DateTimeField()
    phase_id = models.IntegerField(null=True)
    coin_metric_id = models.BigIntegerField(null=True)
    enqueued_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "coin_metrics_queue"
        ordering = ["id"]
        verbose_name = "queued coin_metrics row"
        # Claiming walks the primary key in order (oldest first); no further index is needed.

    def __str__(self) -> str:
        return f"{self.mint} @ {self.data_timestamp}"


class Tag(models.TextChoices):
    NEGATIV = "negativ", "negativ (p < 0.5)"
    POSITIV = "positiv", "positiv (0.5 ≤ p < threshold)"
    ALERT = "alert", "alert (p ≥ threshold)"


class PredictionStatus(models.TextChoices):
    PENDING = "aktiv", "aktiv (waiting for evaluation)"
    EVALUATED = "inaktiv", "inaktiv (evaluated)"


class EvaluationResult(models.TextChoices):
    SUCCESS = "success", "success"
    FAILED = "failed", "failed"
    NOT_APPLICABLE = "not_applicable", "not applicable"


SNAPSHOT_PRICE = {"max_digits": 30, "decimal_places": 18, "null": True, "blank": True}
SNAPSHOT_CAP = {"max_digits": 20, "decimal_places": 2, "null": True, "blank": True}
SNAPSHOT_VOLUME = {"max_digits": 20, "decimal_places": 6, "null": True, "blank": True}
CHANGE_PCT = {"max_digits": 16, "decimal_places": 4, "null": True, "blank": True}


def coin_key_of(coin_id) -> models.Func:
    """The 64-bit key PostgreSQL keeps for a coin's predictions (predictions/partitions.py), of a mint or a column."""
    source = models.Value(coin_id) if isinstance(coin_id, str) else coin_id
    return models.Func(source, models.Value(0), function="hashtextextended", output_field=models.BigIntegerField())


def coin_filter(coin_id: str) -> Q:
    """A coin's predictions, found through the unique key (which holds the coin's key, not its mint)."""
    return Q(coin_key=coin_key_of(coin_id), coin_id=coin_id)


def coins_filter(coin_ids) -> Q:
    """The predictions of any of the coins (none for no coins): one look-up of the unique key for all of them."""
    coin_ids = sorted(coin_ids)
    return Q(coin_key__in=[coin_key_of(coin_id) for coin_id in coin_ids], coin_id__in=coin_ids)


class PredictionQuerySet(models.QuerySet):
    def readable(self) -> "PredictionQuerySet":
        """Rows as users read them: with `evaluation_note`, stored or derived (predictions/notes.py)."""
        return self.annotate(evaluation_note=notes.note_expression())


class ModelPrediction(models.Model):
    """One prediction of one model for one coin event; later evaluated against the price at its horizon.

    The table is partitioned by kind (alert / other) and UTC day of `prediction_timestamp` (predictions/partitions.py,
    which holds its DDL); the database's primary key is (id, prediction_timestamp, tag), ids stay unique.
    """

    coin_id = models.CharField(max_length=255)
    # Computed by PostgreSQL from coin_id; never part of what the API shows.
    coin_key = models.GeneratedField(expression=coin_key_of(models.F("coin_id")), output_field=models.BigIntegerField(),
                                     db_persist=True)
    model_id = models.BigIntegerField(null=True, blank=True, help_text="Training-service id of the model.")
    # No index of its own: the model-time index starts with it. No database-level foreign key, as in the existing
    # server: the deferred per-row check was about a sixth of the database's work per listener batch; the listener
    # holds the models' rows until it commits instead (predictions.services.LOCK_MODEL_ROWS_SQL), and the ORM
    # cascade deletes a model's predictions.
    active_model = models.ForeignKey(
        ActiveModel, on_delete=models.CASCADE, db_column="active_model_id", related_name="predictions",
        db_index=False, db_constraint=False,
    )
    model_version = models.PositiveIntegerField(null=True, blank=True, help_text="Artifact version that predicted.")
    prediction = models.SmallIntegerField()
    probability = models.FloatField()
    tag = models.CharField(max_length=20, choices=Tag.choices)
    status = models.CharField(max_length=20, choices=PredictionStatus.choices, default=PredictionStatus.PENDING)
    prediction_timestamp = models.DateTimeField(help_text="Data time of the coin_metrics row predicted.")
    evaluation_timestamp = models.DateTimeField(null=True, blank=True, help_text="When the outcome is judged.")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    prediction_duration_ms = models.FloatField(null=True, blank=True)

    price_close_at_prediction = models.DecimalField(**SNAPSHOT_PRICE)
    price_open_at_prediction = models.DecimalField(**SNAPSHOT_PRICE)
    price_high_at_prediction = models.DecimalField(**SNAPSHOT_PRICE)
    price_low_at_prediction = models.DecimalField(**SNAPSHOT_PRICE)
    market_cap_at_prediction = models.DecimalField(**SNAPSHOT_CAP)
    volume_at_prediction = models.DecimalField(**SNAPSHOT_VOLUME)
    phase_id_at_prediction = models.IntegerField(null=True, blank=True)

    price_close_at_evaluation = models.DecimalField(**SNAPSHOT_PRICE)
    price_open_at_evaluation = models.DecimalField(**SNAPSHOT_PRICE)
    price_high_at_evaluation = models.DecimalField(**SNAPSHOT_PRICE)
    price_low_at_evaluation = models.DecimalField(**SNAPSHOT_PRICE)
    market_cap_at_evaluation = models.DecimalField(**SNAPSHOT_CAP)
    volume_at_evaluation = models.DecimalField(**SNAPSHOT_VOLUME)
    phase_id_at_evaluation = models.IntegerField(null=True, blank=True)

    actual_price_change_pct = models.DecimalField(**CHANGE_PCT)
    evaluation_result = models.CharField(max_length=20, choices=EvaluationResult.choices, null=True, blank=True)
    # NULL where the note can be derived: read `evaluation_note` through `ModelPrediction.objects.readable()`.
    stored_note = models.TextField(null=True, blank=True, db_column="evaluation_note")

    ath_highest_pct = models.DecimalField(**CHANGE_PCT)
    ath_lowest_pct = models.DecimalField(**CHANGE_PCT)
    ath_highest_timestamp = models.DateTimeField(null=True, blank=True)
    ath_lowest_timestamp = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    objects = PredictionQuerySet.as_manager()

    class Meta:
        db_table = "model_predictions"
        ordering = ["-prediction_timestamp"]
        indexes = [
            # A model's prediction log (pages, API, statistics per model), newest first.
            models.Index(fields=["active_model", "-prediction_timestamp"], name="predictions_model_time_idx"),
            # The evaluator: pending rows whose horizon has passed, oldest first; also ATH tracking.
            models.Index(
                fields=["evaluation_timestamp"],
                condition=Q(status="aktiv"),
                name="predictions_due_idx",
            ),
            # /api/stats windows (last hour/day/week): rows arrive in created_at order, so BRIN suffices.
            BrinIndex(fields=["created_at"], name="predictions_created_idx"),
        ]
        constraints = [
            # One prediction per model per coin row: a second listener or a replay cannot duplicate it. It includes
            # the partition key (tag), as PostgreSQL demands, and serves a coin's predictions newest first
            # (`coin_filter`).
            models.UniqueConstraint(
                fields=["coin_key", "prediction_timestamp", "active_model", "tag"], name="predictions_once_per_row"
            ),
            models.CheckConstraint(condition=Q(prediction__in=[0, 1]), name="predictions_prediction_binary"),
            models.CheckConstraint(
                condition=Q(probability__gte=0, probability__lte=1), name="predictions_probability_range"
            ),
            models.CheckConstraint(condition=Q(tag__in=Tag.values), name="predictions_tag"),
            # Pending rows have no verdict; evaluated rows always have one.
            models.CheckConstraint(
                condition=Q(status=PredictionStatus.PENDING, evaluation_result__isnull=True)
                | Q(
                    status=PredictionStatus.EVALUATED,
                    evaluation_result__isnull=False,  # IN (…) alone lets NULL through a CHECK
                    evaluation_result__in=EvaluationResult.values,
                ),
                name="predictions_status_result",
            ),
            models.CheckConstraint(
                condition=Q(ath_highest_pct__isnull=True) | Q(ath_highest_pct__gte=0),
                name="predictions_ath_highest_positive",
            ),
            models.CheckConstraint(
                condition=Q(ath_lowest_pct__isnull=True) | Q(ath_lowest_pct__lte=0),
                name="predictions_ath_lowest_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.coin_id} {self.tag} p={self.probability:.4f}"


class IgnoreReason(models.TextChoices):
    BAD = "bad", "bad"
    POSITIVE = "positive", "positive"
    ALERT = "alert", "alert"


class CoinScanCache(models.Model):
    """Per (coin, model): the last result and the ignore window that follows it."""

    coin_id = models.CharField(max_length=255)
    active_model = models.ForeignKey(
        ActiveModel, on_delete=models.CASCADE, db_column="active_model_id", related_name="scan_cache"
    )
    last_scan_at = models.DateTimeField()
    last_prediction = models.SmallIntegerField(null=True)
    last_probability = models.FloatField(null=True)
    was_alert = models.BooleanField(default=False)
    ignore_until = models.DateTimeField(null=True, blank=True)
    ignore_reason = models.CharField(max_length=10, choices=IgnoreReason.choices, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "coin_scan_cache"
        constraints = [
            # Also the index the listener's ignore-window lookup uses.
            models.UniqueConstraint(fields=["coin_id", "active_model"], name="scan_cache_one_per_coin_model"),
            models.CheckConstraint(
                condition=Q(ignore_reason__isnull=True) | Q(ignore_reason__in=IgnoreReason.values),
                name="scan_cache_ignore_reason",
            ),
            models.CheckConstraint(
                condition=Q(last_prediction__isnull=True) | Q(last_prediction__in=[0, 1]),
                name="scan_cache_last_prediction",
            ),
        ]
        indexes = [
            # The pairs an ignore window may hold back, found without reading every pair of the batch's coins (a
            # row written without a window keeps it NULL, and its upserts stay HOT).
            models.Index(fields=["coin_id"], name="scan_cache_ignore_windows", condition=Q(ignore_until__isnull=False)),
        ]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed (gave up)"


class WebhookDelivery(models.Model):
    """The outbox: one POST to one URL, written with the predictions it carries and retried until it lands."""

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook_url = models.TextField()
    coin_id = models.CharField(max_length=255)
    data_timestamp = models.DateTimeField()
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_default=Now())
    last_response_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhook_deliveries"
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The sender: pending deliveries that are due, oldest first.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="deliveries_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="deliveries_status"),
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.DELIVERED) | Q(delivered_at__isnull=False),
                name="deliveries_delivered_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} → {self.webhook_url} ({self.status})"


class WebhookLog(models.Model):
    """One row per POST attempt (the existing server's `prediction_webhook_log`, plus the delivery it belongs to)."""

    coin_id = models.CharField(max_length=255)
    data_timestamp = models.DateTimeField(null=True)
    webhook_url = models.TextField()
    payload = models.JSONField(null=True)
    response_status = models.IntegerField(null=True, blank=True)
    response_body = models.TextField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="attempt_log"
    )
    attempt = models.PositiveIntegerField(default=1)
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())

    class Meta:
        db_table = "prediction_webhook_log"
        ordering = ["-created_at"]
        verbose_name = "webhook attempt"
        indexes = [
            # n8n-status: newest attempt for a URL.
            models.Index(fields=["webhook_url", "-created_at"], name="webhook_log_url_time_idx"),
            # Statistics windows and housekeeping of old attempts.
            models.Index(fields=["created_at"], name="webhook_log_created_idx"),
        ]
