"""What a training run is asked to do (TrainingConfig, checked) and what it gives back (TrainingResult)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from django.conf import settings

from inference.features import DEFAULT_WINDOWS, VALUE_COLUMNS
from inference.history import from_micros
from modelregistry.models import ActiveModel, ModelType, TargetDirection

# The base columns of the original training service's usual request (spec §2.3), target price_close removed.
BASE_FEATURES = (
    "price_open", "price_high", "price_low", "market_cap_close", "volume_sol", "buy_volume_sol", "sell_volume_sol",
    "net_volume_sol", "num_buys", "num_sells", "unique_wallets", "phase_id_at_time", "dev_sold_amount",
    "buy_pressure_ratio", "unique_signer_ratio", "whale_buy_volume_sol", "whale_sell_volume_sol", "volatility_pct",
    "avg_trade_size_sol", "bonding_curve_pct",
)
ATH_FEATURES = (
    "rolling_ath", "ath_distance_pct", "ath_breakout", "minutes_since_ath", "ath_age_hours", "ath_is_recent",
    "ath_is_old",
)
ROW_FEATURES = ("dev_sold_flag", "dev_sold_cumsum", "whale_net_volume")
# The 19 per-window families of training-service models (spec §3.5), in the table's order.
WINDOW_FAMILIES = (
    "dev_sold_spike", "buy_pressure_ma", "buy_pressure_trend", "whale_activity", "volatility_ma", "volatility_spike",
    "wash_trading_flag", "net_volume_ma", "volume_flip", "price_change", "price_roc", "volume_ratio", "volume_spike",
    "mcap_velocity", "ath_distance_trend", "ath_approach", "ath_breakout_count", "ath_breakout_volume_ma",
    "ath_age_trend",
)
# Further names the serving engine computes (not in training-service lists, but servable).
SERVING_ONLY_FEATURES = ("whale_dominance", "buy_sell_ratio", "prev_rolling_ath")
SERVING_ONLY_FAMILIES = ("price_acceleration",)

DEFAULT_MAX_DEPTH = {ModelType.XGBOOST: 6, ModelType.RANDOM_FOREST: 10}  # the training service's defaults
TARGET_VARIABLE = "price_close"
TEST_SAMPLE_SIZE = 200
MIN_ROWS_PER_CLASS = 5  # fewest training rows of each label


class TrainingConfigError(ValueError):
    """An option is unusable; the message names it."""


class TrainingDataError(Exception):
    """The data cannot train a model (too few labelled rows, one class only, …); the message says what is missing."""


def default_features(windows=DEFAULT_WINDOWS) -> list[str]:
    return [
        *BASE_FEATURES,
        *ATH_FEATURES,
        *ROW_FEATURES,
        *(f"{family}_{w}" for family in WINDOW_FAMILIES for w in windows),
    ]


def _known_feature(name: str, windows) -> bool:
    if name in VALUE_COLUMNS or name in ATH_FEATURES or name in ROW_FEATURES or name in SERVING_ONLY_FEATURES:
        return name != "mint"
    family, _, window = name.rpartition("_")
    return family in WINDOW_FAMILIES + SERVING_ONLY_FAMILIES and window.isdigit() and int(window) in windows


@dataclass
class TrainingConfig:
    model_type: str = ModelType.XGBOOST
    features: list[str] | None = None  # None: default_features(windows)
    windows: list[int] = field(default_factory=lambda: list(DEFAULT_WINDOWS))
    future_minutes: int = 5
    min_percent_change: float = 5.0
    direction: str = TargetDirection.UP
    phases: list[int] | None = None
    since: datetime | None = None
    until: datetime | None = None
    name: str | None = None
    activate: bool = False
    n_estimators: int = 100
    max_depth: int | None = None  # None: the model type's default
    seed: int = 42
    max_rows: int = 20_000
    min_rows: int = 200
    test_fraction: float = 0.2
    history_limit: int | None = None  # None: settings.FEATURE_HISTORY_SIZE, the listener's history length
    alert_threshold: float | None = None  # for the test-window alert figures; None: a new model's default threshold

    def validated(self) -> TrainingConfig:
        """A checked copy with defaults filled in; raises TrainingConfigError naming the option."""
        if self.model_type not in ModelType.values:
            raise TrainingConfigError(f"--model-type must be one of {', '.join(ModelType.values)}, not {self.model_type!r}")
        if self.direction not in TargetDirection.values:
            raise TrainingConfigError(f"--direction must be up or down, not {self.direction!r}")
        windows = [int(w) for w in self.windows]
        if not windows or any(w < 1 for w in windows) or len(set(windows)) != len(windows):
            raise TrainingConfigError(f"--windows must be distinct whole numbers ≥ 1, not {self.windows!r}")
        features = list(self.features) if self.features is not None else default_features(windows)
        if not features:
            raise TrainingConfigError("--features must name at least one feature")
        duplicates = sorted({f for f in features if features.count(f) > 1})
        if duplicates:
            raise TrainingConfigError(f"--features lists {', '.join(duplicates)} more than once")
        unknown = [f for f in features if not _known_feature(f, windows)]
        if unknown:
            raise TrainingConfigError(
                f"unknown feature(s) {', '.join(unknown)}: use coin_metrics columns, ATH/engineered names or "
                f"<family>_<window> with a window from --windows {windows} (e.g. price_roc_{windows[0]})"
            )
        if not isinstance(self.future_minutes, int) or self.future_minutes < 1:
            raise TrainingConfigError(f"--future-minutes must be a whole number ≥ 1, not {self.future_minutes!r}")
        if not (self.min_percent_change > 0 and math.isfinite(self.min_percent_change)):
            raise TrainingConfigError(f"--min-percent-change must be greater than 0, not {self.min_percent_change!r}")
        phases = None
        if self.phases:
            phases = sorted({int(p) for p in self.phases})
        if self.since and self.until and self.since >= self.until:
            raise TrainingConfigError("--since must be earlier than --until")
        if self.n_estimators < 1:
            raise TrainingConfigError("--n-estimators must be at least 1")
        max_depth = self.max_depth if self.max_depth is not None else DEFAULT_MAX_DEPTH[self.model_type]
        if max_depth < 1:
            raise TrainingConfigError("--max-depth must be at least 1")
        if self.seed < 0:
            raise TrainingConfigError("--seed must be at least 0")
        if self.max_rows < 20:
            raise TrainingConfigError("--max-rows must be at least 20")
        if not 0.05 <= self.test_fraction <= 0.5:
            raise TrainingConfigError("--test-fraction must be between 0.05 and 0.5")
        threshold = self.alert_threshold
        if threshold is None:
            threshold = float(ActiveModel._meta.get_field("alert_threshold").default)
        if not 0 < threshold <= 1:
            raise TrainingConfigError("the alert threshold must be greater than 0 and at most 1")
        return TrainingConfig(
            model_type=self.model_type, features=features, windows=windows, future_minutes=self.future_minutes,
            min_percent_change=float(self.min_percent_change), direction=self.direction, phases=phases,
            since=self.since, until=self.until, name=self.name, activate=self.activate,
            n_estimators=self.n_estimators, max_depth=max_depth, seed=self.seed, max_rows=self.max_rows,
            min_rows=max(self.min_rows, 2), test_fraction=self.test_fraction,
            history_limit=int(self.history_limit or settings.FEATURE_HISTORY_SIZE), alert_threshold=threshold,
        )

    @property
    def engineered(self) -> bool:
        return any(name not in VALUE_COLUMNS for name in self.features or ())


@dataclass
class TrainingResult:
    model: ActiveModel
    metrics: dict
    counts: dict
    split_at: datetime
    meta: dict = field(default_factory=dict)  # the training-service-shaped record the model was registered with
    test_alerts: dict = field(default_factory=dict)  # see alert_figures

    def summary(self) -> str:
        m, c = self.metrics, self.counts
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
        state = "active" if self.model.is_active else "inactive (activate it with --activate, the API or the admin)"
        return (
            f"Trained {self.model.model_type} '{self.model.model_name}' on {c['train_rows']} rows "
            f"({c['train_positive']} positive) and tested on {c['test_rows']} rows from {iso(self.split_at)} on "
            f"({c['test_positive']} positive): accuracy {m['accuracy']:.3f}, precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}, F1 {m['f1']:.3f}, ROC AUC {auc}, MCC {m['mcc']:.3f}, "
            f"confusion {m['confusion_matrix']}. {alert_sentence(self.test_alerts)}\nRegistered as model #{self.model.pk} (source builtin), {state}."
        )



def alert_figures(y: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """How alerts at `threshold` would have done on the test rows: how many rows reach it, the share of those whose
    label is 1 (the alert success rate) and the share of all test rows whose label is 1 (the base rate)."""
    alerts = probabilities >= threshold
    successes = int(y[alerts].sum())
    return {
        "threshold": threshold,
        "alerts": int(alerts.sum()),
        "successes": successes,
        "success_rate": successes / int(alerts.sum()) if alerts.any() else None,
        "base_rate": float(y.mean()) if len(y) else None,
    }


def alert_sentence(figures: dict) -> str:
    if not figures or figures.get("base_rate") is None:
        return ""
    if not figures["alerts"]:
        return f"No test row reached the alert threshold {figures['threshold']:g}."
    return (
        f"Alerts (probability ≥ {figures['threshold']:g}): {figures['alerts']} test rows, "
        f"{figures['success_rate']:.1%} reached the target (base rate {figures['base_rate']:.1%})."
    )


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def iso_us(micros: int | None, given: datetime | None) -> str:
    if given is not None:
        return iso(given)
    return iso(from_micros(micros)) if micros is not None else "-"
