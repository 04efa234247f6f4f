"""Models users import, upload or train, with every per-model setting (table `prediction_active_models`).

Column names are the existing server's, because operators query this table directly (Grafana, SQL).
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Func, Q
from django.db.models.lookups import Exact

TAG_LIMIT_MAX = 1000
IGNORE_SECONDS_MAX = 86_400
SEND_MODES = ["all", "alerts_only", "positive_only", "negative_only"]


def default_send_mode() -> list[str]:
    return ["all"]


class ModelType(models.TextChoices):
    RANDOM_FOREST = "random_forest", "Random forest"
    XGBOOST = "xgboost", "XGBoost"


class ModelSource(models.TextChoices):
    TRAINING_SERVICE = "training_service", "Training service"
    UPLOAD = "upload", "Upload"
    BUILTIN_TRAINING = "builtin", "Trained here"
    COMMAND_LINE = "command_line", "Command line"


class TargetOperator(models.TextChoices):
    GT = ">", ">"
    LT = "<", "<"
    GE = ">=", ">="
    LE = "<=", "<="
    EQ = "=", "="


class TargetDirection(models.TextChoices):
    UP = "up", "up"
    DOWN = "down", "down"


class CoinFilterMode(models.TextChoices):
    ALL = "all", "All coins"
    WHITELIST = "whitelist", "Whitelist only"


class ArtifactFormat(models.TextChoices):
    XGBOOST_JSON = "xgboost_json", "XGBoost JSON"
    XGBOOST_UBJ = "xgboost_ubj", "XGBoost UBJSON"
    SKOPS = "skops", "scikit-learn (skops)"
    PICKLE = "pickle", "pickle/joblib (trusted source only)"


def _json_type(field: str, json_type: str) -> Exact:
    return Exact(Func(F(field), function="jsonb_typeof", output_field=models.CharField()), json_type)


def _between(field: str, low, high) -> Q:
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


class ActiveModel(models.Model):
    """One served model. `model_id` is the training service's id; `id` is the local (active_model_id) id."""

    # Identity and source
    model_id = models.BigIntegerField(
        unique=True, null=True, blank=True, help_text="Id in the training service (null for uploads and models trained here)."
    )
    source = models.CharField(max_length=20, choices=ModelSource.choices, default=ModelSource.TRAINING_SERVICE)
    model_name = models.CharField(max_length=255)
    custom_name = models.CharField(max_length=255, null=True, blank=True)
    model_type = models.CharField(max_length=50, choices=ModelType.choices)
    description = models.TextField(null=True, blank=True)

    # Target definition: time-based (future_minutes/price_change_percent/direction) or classic (operator/value)
    target_variable = models.CharField(max_length=100, default="price_close")
    target_operator = models.CharField(max_length=2, choices=TargetOperator.choices, null=True, blank=True)
    target_value = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    future_minutes = models.IntegerField(null=True, blank=True)
    price_change_percent = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    target_direction = models.CharField(max_length=4, choices=TargetDirection.choices, null=True, blank=True)

    # Inputs
    features = models.JSONField(default=list, help_text="Ordered model input names (the stored list is authoritative).")
    phases = models.JSONField(null=True, blank=True, help_text="Phase ids the model looks at; null or [] = all.")
    params = models.JSONField(null=True, blank=True)

    # Artifact (the current version lives in ModelArtifact; these are the existing server's columns)
    local_model_path = models.TextField(null=True, blank=True)
    model_file_url = models.TextField(null=True, blank=True)
    load_error = models.TextField(
        null=True, blank=True, help_text="Why the model could not be loaded or run; empty while it serves."
    )
    load_error_at = models.DateTimeField(null=True, blank=True)

    # State and counters
    is_active = models.BooleanField(default=True)
    total_predictions = models.BigIntegerField(default=0)
    last_prediction_at = models.DateTimeField(null=True, blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Training metrics
    training_accuracy = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    training_f1 = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    training_precision = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    training_recall = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    roc_auc = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    mcc = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    confusion_matrix = models.JSONField(null=True, blank=True, help_text="{tp, tn, fp, fn}")
    simulated_profit_pct = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    training_details = models.JSONField(
        null=True, blank=True, help_text="Further training output: fpr, fnr, cv_scores, feature_importance, …"
    )

    # Alerting and n8n
    alert_threshold = models.DecimalField(max_digits=5, decimal_places=4, default=0.7)
    n8n_webhook_url = models.TextField(null=True, blank=True)
    n8n_send_mode = models.JSONField(default=default_send_mode)
    n8n_enabled = models.BooleanField(default=True)
    send_ignored_to_n8n = models.BooleanField(default=False)

    # Which coins the model looks at, and how often
    coin_filter_mode = models.CharField(max_length=20, choices=CoinFilterMode.choices, default=CoinFilterMode.ALL)
    coin_whitelist = models.JSONField(null=True, blank=True)
    ignore_bad_seconds = models.IntegerField(default=0)
    ignore_positive_seconds = models.IntegerField(default=0)
    ignore_alert_seconds = models.IntegerField(default=0)
    min_scan_interval_seconds = models.IntegerField(default=20)
    max_log_entries_per_coin_negative = models.IntegerField(default=0)
    max_log_entries_per_coin_positive = models.IntegerField(default=0)
    max_log_entries_per_coin_alert = models.IntegerField(default=0)

    class Meta:
        db_table = "prediction_active_models"
        ordering = ["-is_active", "-created_at"]
        indexes = [
            # The listener reloads the active models every few seconds.
            models.Index(fields=["is_active"], name="active_models_is_active_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(model_type__in=ModelType.values), name="active_models_model_type"),
            models.CheckConstraint(condition=Q(source__in=ModelSource.values), name="active_models_source"),
            models.CheckConstraint(
                condition=Q(target_operator__isnull=True) | Q(target_operator__in=TargetOperator.values),
                name="active_models_target_operator",
            ),
            models.CheckConstraint(
                condition=Q(target_direction__isnull=True) | Q(target_direction__in=TargetDirection.values),
                name="active_models_target_direction",
            ),
            models.CheckConstraint(
                condition=Q(future_minutes__isnull=True) | Q(future_minutes__gt=0), name="active_models_future_minutes"
            ),
            models.CheckConstraint(
                condition=Q(price_change_percent__isnull=True) | Q(price_change_percent__gt=0),
                name="active_models_price_change_percent",
            ),
            models.CheckConstraint(condition=_between("alert_threshold", 0, 1), name="active_models_alert_threshold"),
            models.CheckConstraint(
                condition=Q(coin_filter_mode__in=CoinFilterMode.values), name="active_models_coin_filter_mode"
            ),
            models.CheckConstraint(condition=_json_type("features", "array"), name="active_models_features_array"),
            models.CheckConstraint(
                condition=Q(phases__isnull=True) | _json_type("phases", "array"), name="active_models_phases_array"
            ),
            models.CheckConstraint(
                condition=Q(coin_whitelist__isnull=True) | _json_type("coin_whitelist", "array"),
                name="active_models_whitelist_array",
            ),
            models.CheckConstraint(
                condition=_json_type("n8n_send_mode", "array") & Q(n8n_send_mode__contained_by=SEND_MODES),
                name="active_models_send_mode",
            ),
            *[
                models.CheckConstraint(condition=_between(field, 0, IGNORE_SECONDS_MAX), name=f"active_models_{field}")
                for field in (
                    "ignore_bad_seconds",
                    "ignore_positive_seconds",
                    "ignore_alert_seconds",
                    "min_scan_interval_seconds",
                )
            ],
            *[
                models.CheckConstraint(condition=_between(field, 0, TAG_LIMIT_MAX), name=f"active_models_{field}")
                for field in (
                    "max_log_entries_per_coin_negative",
                    "max_log_entries_per_coin_positive",
                    "max_log_entries_per_coin_alert",
                )
            ],
            models.CheckConstraint(condition=Q(total_predictions__gte=0), name="active_models_total_predictions"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} (#{self.pk})"

    @property
    def display_name(self) -> str:
        return self.custom_name or self.model_name


class ModelArtifact(models.Model):
    """One stored version of a model's file. Re-importing or re-uploading adds a version; one is current."""

    model = models.ForeignKey(ActiveModel, on_delete=models.CASCADE, related_name="artifacts")
    version = models.PositiveIntegerField()
    format = models.CharField(max_length=20, choices=ArtifactFormat.choices)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "model_artifacts"
        ordering = ["model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="model_artifacts_unique_version"),
            # At most one current version per model; the listener loads that one.
            models.UniqueConstraint(
                fields=["model"], condition=Q(is_current=True), name="model_artifacts_one_current"
            ),
            models.CheckConstraint(condition=Q(format__in=ArtifactFormat.values), name="model_artifacts_format"),
            models.CheckConstraint(condition=Q(version__gte=1), name="model_artifacts_version"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="model_artifacts_sha256"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} v{self.version} ({self.format})"
