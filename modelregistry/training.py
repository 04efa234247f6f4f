"""Built-in training (`python manage.py train_model`): a time-based classifier from `coin_metrics`.

Target (spec features-and-models.md §5.1, time-based): for each row, look `k` rows ahead where
`k = max(1, ceil(future_minutes / (interval_seconds / 60)))` from the row's phase (`ref_coin_phases`; a NULL/unknown
phase uses the coin's mean gap between rows, `k = round(future_minutes / gap)`), take the percent change of
`price_close` and label 1 iff it is ≥ `min_percent_change` (direction up) or ≤ −`min_percent_change` (down).

What we do differently from the original training service, on purpose (spec §7):

* bug 8: rows are never dropped because another coin has the same timestamp (the collector stamps every coin of a
  flush cycle alike);
* bug 9: the look-ahead runs PER COIN — never into another coin's rows — and rows without a future value (the coin
  ends, or the price is missing or 0) are dropped, not labelled 0;
* train/serve skew (§4, bugs 1-3): features come from the SERVING feature code (`inference.features.
  build_features`): each training row's vector is computed "as of" that row exactly as the listener would compute
  it when the row is the newest — the coin's newest ≤ FEATURE_HISTORY_SIZE (1000) rows up to it, after the
  model's phase filter, float32 column rules included. A served model therefore sees the same numbers it was fit
  on (a listener with another FEATURE_HISTORY_SIZE would see other cumulative/ATH values);
* bug 10: one time-ordered split — train on the past, test on the future: rows at or after a timestamp cut-off
  are the test part; training rows whose label horizon (the look-ahead row) reaches the cut-off are dropped, so no
  training label peeks into the test period. The model is fit on the whole training part;
* class imbalance is handled with weights (`scale_pos_weight` for XGBoost, `class_weight="balanced"` for the
  forest), no SMOTE;
* the engineered feature order is fixed (no Python `set` order, bug 6), and the ATH features are real (bug 2).

To bound time and memory, at most `max_rows` labelled rows (a seeded random sample) get feature vectors; the
histories they need are read once per coin and cut into as-of prefixes in bulk.

The model is stored through `register_model` (XGBoost JSON or skops, source BUILTIN_TRAINING) with a record in the
training service's shape; `training_details.builtin_training` documents the run and
`training_details.test_predictions` holds (up to 200, evenly spread) test rows with the probability computed at
training time by the stored artifact, so serving can be checked against it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone as django_timezone

from inference import loading
from modelregistry.models import ActiveModel, ModelSource, ModelType, TargetDirection
from modelregistry.services import register_model
from inference.features import HISTORY_COLUMNS, VALUE_COLUMNS, CoinHistories, build_features

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

DEFAULT_WINDOWS = (5, 10, 15)
DEFAULT_MAX_DEPTH = {ModelType.XGBOOST: 6, ModelType.RANDOM_FOREST: 10}  # the training service's defaults
TARGET_VARIABLE = "price_close"
TEST_SAMPLE_SIZE = 200
MIN_ROWS_PER_CLASS = 5  # fewest training rows of each label
# As-of histories are built in blocks of about this many rows (~230 bytes per row and copy).
_BLOCK_ROWS = 300_000


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
        return TrainingConfig(
            model_type=self.model_type, features=features, windows=windows, future_minutes=self.future_minutes,
            min_percent_change=float(self.min_percent_change), direction=self.direction, phases=phases,
            since=self.since, until=self.until, name=self.name, activate=self.activate,
            n_estimators=self.n_estimators, max_depth=max_depth, seed=self.seed, max_rows=self.max_rows,
            min_rows=max(self.min_rows, 2), test_fraction=self.test_fraction,
            history_limit=int(self.history_limit or settings.FEATURE_HISTORY_SIZE),
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

    def summary(self) -> str:
        m, c = self.metrics, self.counts
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
        state = "active" if self.model.is_active else "inactive (activate it with --activate, the API or the admin)"
        return (
            f"Trained {self.model.model_type} '{self.model.model_name}' on {c['train_rows']} rows "
            f"({c['train_positive']} positive) and tested on {c['test_rows']} rows from {_iso(self.split_at)} on "
            f"({c['test_positive']} positive): accuracy {m['accuracy']:.3f}, precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}, F1 {m['f1']:.3f}, ROC AUC {auc}, MCC {m['mcc']:.3f}, "
            f"confusion {m['confusion_matrix']}.\nRegistered as model #{self.model.pk} (source builtin), {state}."
        )


# --- data --------------------------------------------------------------------------------------------------------

_EPOCH_MICROS_SQL = (
    "(extract(epoch FROM date_trunc('second', m.\"timestamp\"))::int8 * 1000000"
    " + mod(extract(microseconds FROM m.\"timestamp\")::int8, 1000000))"
)
_VALUE_SELECT = ", ".join(
    f"m.{c}::float8" if c != "is_koth" else "m.is_koth::int::float8" for c in HISTORY_COLUMNS[2:]
)
_PHASE_FILTER = "(%(phases)s::int[] IS NULL OR m.phase_id_at_time = ANY (%(phases)s::int[]))"

LABEL_ROWS_SQL = f"""
SELECT m.mint, {_EPOCH_MICROS_SQL}, m.phase_id_at_time::float8, m.{TARGET_VARIABLE}::float8
  FROM coin_metrics m
 WHERE (%(since)s::timestamptz IS NULL OR m."timestamp" >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR m."timestamp" <= %(until)s::timestamptz)
   AND {_PHASE_FILTER}
 ORDER BY m.mint, m."timestamp"
"""

# Per coin: the rows from the first to the last sampled row, plus the history_limit - 1 rows before the first one
# (what the serving history query can reach back to), under the phase filter.
HISTORY_ROWS_SQL = f"""
SELECT req.i, h.*
  FROM unnest(%(mints)s::text[], %(firsts)s::timestamptz[], %(lasts)s::timestamptz[])
       WITH ORDINALITY AS req(mint, first_ts, last_ts, i)
 CROSS JOIN LATERAL (
       (SELECT {_EPOCH_MICROS_SQL} AS ts, {_VALUE_SELECT}
          FROM coin_metrics m
         WHERE m.mint = req.mint AND m."timestamp" < req.first_ts AND {_PHASE_FILTER}
         ORDER BY m."timestamp" DESC
         LIMIT %(before)s)
       UNION ALL
       (SELECT {_EPOCH_MICROS_SQL} AS ts, {_VALUE_SELECT}
          FROM coin_metrics m
         WHERE m.mint = req.mint AND m."timestamp" >= req.first_ts AND m."timestamp" <= req.last_ts
           AND {_PHASE_FILTER})
 ) h
"""


@dataclass
class _Labelled:
    """Labelled rows (one entry each): coin index, timestamp (µs), label, timestamp of the look-ahead row."""

    mints: list[str]
    coin: np.ndarray
    ts_us: np.ndarray
    label: np.ndarray
    future_ts_us: np.ndarray
    loaded_rows: int
    first_us: int | None
    last_us: int | None


def _phase_intervals() -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, interval_seconds FROM ref_coin_phases")
        return {int(pid): int(interval) for pid, interval in cursor.fetchall() if interval is not None}


def label_rows(config: TrainingConfig) -> _Labelled:
    """Every row in the window with its per-coin time-based label; rows without a future value are dropped."""
    with connection.cursor() as cursor:
        cursor.execute(LABEL_ROWS_SQL, {"since": config.since, "until": config.until, "phases": config.phases})
        rows = cursor.fetchall()
    n = len(rows)
    if n == 0:
        return _Labelled([], *(np.zeros(0, np.int64) for _ in range(4)), loaded_rows=0, first_us=None, last_us=None)
    mint_per_row = np.array([r[0] for r in rows], dtype=object)
    ts = np.fromiter((r[1] for r in rows), np.int64, n)
    phase = np.array([r[2] for r in rows], dtype=np.float64)
    target = np.array([r[3] for r in rows], dtype=np.float64)  # None -> NaN

    starts = np.flatnonzero(np.r_[True, mint_per_row[1:] != mint_per_row[:-1]])
    ends = np.r_[starts[1:], n]
    lengths = ends - starts
    coin = np.repeat(np.arange(len(starts)), lengths)
    coin_end = ends[coin]

    # Rows to look ahead: from the row's phase interval; unknown phases use the coin's mean gap (spec §5.1).
    steps = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    for phase_id, interval in _phase_intervals().items():
        if interval > 0:
            here = phase == phase_id
            steps[here] = max(1, math.ceil(config.future_minutes / (interval / 60)))
            known |= here
    if not known.all():
        span_minutes = (ts[ends - 1] - ts[starts]) / 60e6
        gap = np.where(lengths > 1, span_minutes / np.maximum(lengths - 1, 1), 0.0)
        fallback = np.where(gap > 0, np.round(config.future_minutes / np.where(gap > 0, gap, 1.0)), 0).astype(np.int64)
        steps[~known] = fallback[coin[~known]]
    future = np.arange(n) + steps
    valid = (steps > 0) & (future < coin_end)
    future = np.where(valid, future, 0)
    current, ahead = target, target[future]
    valid &= np.isfinite(current) & np.isfinite(ahead) & (current != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (ahead - current) / current * 100
    if config.direction == TargetDirection.UP:
        label = pct >= config.min_percent_change
    else:
        label = pct <= -config.min_percent_change

    kept_coins, coin_index = np.unique(coin[valid], return_inverse=True)
    return _Labelled(
        mints=[str(mint_per_row[starts[c]]) for c in kept_coins],
        coin=coin_index.astype(np.int64),
        ts_us=ts[valid],
        label=label[valid].astype(np.int64),
        future_ts_us=ts[future[valid]],
        loaded_rows=n,
        first_us=int(ts.min()),
        last_us=int(ts.max()),
    )


def feature_matrix(config: TrainingConfig, mints: list[str], coin: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """The serving feature vector of each (coin, timestamp) row, as of that row (it is the newest row seen)."""
    n = len(coin)
    X = np.zeros((n, len(config.features)))
    if n == 0:
        return X
    used, slot = np.unique(coin, return_inverse=True)
    firsts = np.full(len(used), np.iinfo(np.int64).max)
    lasts = np.full(len(used), np.iinfo(np.int64).min)
    np.minimum.at(firsts, slot, ts_us)
    np.maximum.at(lasts, slot, ts_us)
    with connection.cursor() as cursor:
        cursor.execute(
            HISTORY_ROWS_SQL,
            {
                "mints": [mints[c] for c in used],
                "firsts": [_from_us(t) for t in firsts],
                "lasts": [_from_us(t) for t in lasts],
                "phases": config.phases,
                "before": config.history_limit - 1,
            },
        )
        data = np.array(cursor.fetchall(), dtype=np.float64)
    order = np.lexsort((data[:, 1], data[:, 0]))
    data = data[order]
    request = data[:, 0].astype(np.int64) - 1  # position in `used`
    row_ts = data[:, 1].astype(np.int64)
    values = {name: np.ascontiguousarray(data[:, 2 + j]) for j, name in enumerate(HISTORY_COLUMNS[2:])}
    bounds = np.searchsorted(request, np.arange(len(used) + 1))

    # Each training row -> its position among its coin's loaded rows; its history is the newest
    # history_limit rows up to and including it (the listener's FEATURE_HISTORY_SIZE, 1000 as the original).
    ends = np.empty(n, dtype=np.int64)
    by_slot = np.argsort(slot, kind="stable")
    group_bounds = np.searchsorted(slot[by_slot], np.arange(len(used) + 1))
    for s in range(len(used)):
        mine = by_slot[group_bounds[s] : group_bounds[s + 1]]
        lo, hi = bounds[s], bounds[s + 1]
        pos = lo + np.searchsorted(row_ts[lo:hi], ts_us[mine])
        if np.any(pos >= hi) or np.any(row_ts[np.minimum(pos, hi - 1)] != ts_us[mine]):
            raise TrainingDataError("coin_metrics changed while training (a labelled row disappeared); run again")
        ends[mine] = pos + 1
    starts = np.maximum(bounds[slot], ends - config.history_limit)
    lengths = ends - starts

    block_start = 0
    while block_start < n:
        block_end = block_start + 1
        total = lengths[block_start]
        while block_end < n and total + lengths[block_end] <= _BLOCK_ROWS:
            total += lengths[block_end]
            block_end += 1
        part = slice(block_start, block_end)
        part_lengths = lengths[part]
        offsets = np.r_[0, np.cumsum(part_lengths)].astype(np.int64)
        row_index = np.arange(offsets[-1]) + np.repeat(starts[part] - offsets[:-1], part_lengths)
        histories = CoinHistories(
            mints=[str(i) for i in range(block_start, block_end)],
            offsets=offsets,
            timestamps_ns=row_ts[row_index] * 1000,
            columns={name: column[row_index] for name, column in values.items()},
        )
        X[part] = build_features(
            histories, feature_names=config.features, engineered=config.engineered, windows=config.windows
        )
        block_start = block_end
    return X


# --- training ------------------------------------------------------------------------------------------------------


def _fit(config: TrainingConfig, X: np.ndarray, y: np.ndarray):
    positives = int(y.sum())
    negatives = len(y) - positives
    n_jobs = max(1, min(os.cpu_count() or 1, 8))
    if config.model_type == ModelType.XGBOOST:
        import xgboost

        estimator = xgboost.XGBClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, learning_rate=0.1,
            random_state=config.seed, eval_metric="logloss", scale_pos_weight=negatives / positives, n_jobs=n_jobs,
        )
        estimator.fit(X, y)
        weighting = f"scale_pos_weight={negatives / positives:.4g}"
        artifact = bytes(estimator.get_booster().save_raw("json"))
        filename = "model.json"
    else:
        import skops.io
        from sklearn.ensemble import RandomForestClassifier

        estimator = RandomForestClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, min_samples_split=2,
            random_state=config.seed, class_weight="balanced", n_jobs=n_jobs,
        )
        estimator.fit(X, y)
        weighting = "class_weight=balanced"
        artifact = skops.io.dumps(estimator)
        filename = "model.skops"
    importance = [float(v) for v in estimator.feature_importances_]
    return artifact, filename, weighting, importance


def _metrics(y: np.ndarray, probabilities: np.ndarray, predictions: np.ndarray) -> dict:
    from sklearn import metrics

    tp = int(((predictions == 1) & (y == 1)).sum())
    tn = int(((predictions == 0) & (y == 0)).sum())
    fp = int(((predictions == 1) & (y == 0)).sum())
    fn = int(((predictions == 0) & (y == 1)).sum())
    both_classes = 0 < y.sum() < len(y)
    return {
        "accuracy": float(metrics.accuracy_score(y, predictions)),
        "precision": float(metrics.precision_score(y, predictions, zero_division=0)),
        "recall": float(metrics.recall_score(y, predictions, zero_division=0)),
        "f1": float(metrics.f1_score(y, predictions, zero_division=0)),
        "roc_auc": float(metrics.roc_auc_score(y, probabilities)) if both_classes else None,
        "mcc": float(metrics.matthews_corrcoef(y, predictions)),
        "fpr": fp / (fp + tn) if fp + tn else None,
        "fnr": fn / (fn + tp) if fn + tp else None,
        "confusion_matrix": {"tp": tp, "tn": tn, "fp": fp, "fn": fn},
    }


def train(config: TrainingConfig) -> TrainingResult:
    """Label, sample, split, build serving features, fit, test and register; raises TrainingDataError when the
    data cannot train a model (nothing is stored then)."""
    config = config.validated()
    labelled = label_rows(config)
    window = f"between {_iso_us(labelled.first_us, config.since)} and {_iso_us(labelled.last_us, config.until)}"
    if labelled.loaded_rows == 0:
        phases = f" in phases {config.phases}" if config.phases else ""
        raise TrainingDataError(f"coin_metrics has no rows{phases} {window}")
    n_labelled = len(labelled.coin)
    if n_labelled < config.min_rows:
        raise TrainingDataError(
            f"only {n_labelled} labelled rows {window} (of {labelled.loaded_rows} rows; the others have no "
            f"price {config.future_minutes} min later in their coin); need at least {config.min_rows}"
        )

    rng = np.random.default_rng(config.seed)
    chosen = np.arange(n_labelled)
    if n_labelled > config.max_rows:
        chosen = np.sort(rng.choice(n_labelled, size=config.max_rows, replace=False))
    chosen = chosen[np.argsort(labelled.ts_us[chosen], kind="stable")]
    ts = labelled.ts_us[chosen]
    cut_at = int(ts[min(len(ts) - 1, int(len(ts) * (1 - config.test_fraction)))])
    test = ts >= cut_at
    train_mask = (ts < cut_at) & (labelled.future_ts_us[chosen] < cut_at)
    dropped_for_horizon = int(((ts < cut_at) & ~train_mask).sum())
    y_all = labelled.label[chosen]
    counts = {
        "loaded_rows": labelled.loaded_rows,
        "labelled_rows": n_labelled,
        "labelled_positive": int(labelled.label.sum()),
        "sampled_rows": len(chosen),
        "train_rows": int(train_mask.sum()),
        "train_positive": int(y_all[train_mask].sum()),
        "test_rows": int(test.sum()),
        "test_positive": int(y_all[test].sum()),
        "dropped_for_horizon": dropped_for_horizon,
        "coins": len(labelled.mints),
    }
    min_train = max(10, config.min_rows // 2)
    if counts["train_rows"] < min_train or counts["test_rows"] < 1:
        raise TrainingDataError(
            f"the time split at {_iso(_from_us(cut_at))} leaves only {counts['train_rows']} training rows whose "
            f"{config.future_minutes}-min horizon ends before the test part ({dropped_for_horizon} dropped) and "
            f"{counts['test_rows']} test rows {window}; need at least {min_train} training rows: the data must span "
            "much longer than --future-minutes"
        )
    train_negative = counts["train_rows"] - counts["train_positive"]
    if min(counts["train_positive"], train_negative) < MIN_ROWS_PER_CLASS:
        move = f"{'+' if config.direction == 'up' else '-'}{config.min_percent_change:g} %"
        raise TrainingDataError(
            f"{counts['train_positive']} of {counts['train_rows']} training rows {window} are labelled 1 (a move "
            f"of {move} within {config.future_minutes} min) and {train_negative} are labelled 0; at least "
            f"{MIN_ROWS_PER_CLASS} of each class are needed: wait for more data or change --min-percent-change / "
            "--future-minutes"
        )

    selected = np.flatnonzero(train_mask | test)
    X = feature_matrix(config, labelled.mints, labelled.coin[chosen][selected], ts[selected])
    in_train = train_mask[selected]
    X_train, y_train = X[in_train], y_all[selected][in_train]
    X_test, y_test = X[~in_train], y_all[selected][~in_train]

    artifact, filename, weighting, importance = _fit(config, X_train, y_train)
    # Test probabilities from the stored artifact, through the serving loader: what the listener will compute.
    loaded = loading.load_model(artifact, fmt=loading.detect_format(artifact, filename))
    probabilities, predictions = loaded.predict_proba_positive(X_test)
    metrics = _metrics(y_test, probabilities, predictions)

    test_index = selected[~in_train]
    sample = np.unique(np.linspace(0, len(test_index) - 1, min(TEST_SAMPLE_SIZE, len(test_index))).astype(np.int64))
    test_coins = labelled.coin[chosen][test_index]
    now = django_timezone.now()
    train_ts = ts[train_mask]
    name = config.name or (
        f"{config.model_type} {'+' if config.direction == 'up' else '-'}{config.min_percent_change:g}% in "
        f"{config.future_minutes} min (trained {now:%Y-%m-%d %H:%M})"
    )
    params = {
        "n_estimators": config.n_estimators,
        "max_depth": config.max_depth,
        "random_state": config.seed,
        "_time_based": {
            "enabled": True,
            "future_minutes": config.future_minutes,
            "min_percent_change": config.min_percent_change,
            "direction": config.direction,
        },
        "use_engineered_features": config.engineered,
        "use_smote": False,
    }
    if config.model_type == ModelType.XGBOOST:
        params["learning_rate"] = 0.1
    if config.engineered:
        params["feature_engineering_windows"] = list(config.windows)
    meta = {
        "id": None,
        "name": name,
        "model_type": config.model_type,
        "status": "READY",
        "created_at": _iso(now),
        "is_deleted": False,
        "target_variable": TARGET_VARIABLE,
        "target_operator": None,
        "target_value": None,
        "train_start": _iso(_from_us(int(train_ts.min()))),
        "train_end": _iso(_from_us(int(train_ts.max()))),
        "features": list(config.features),
        "phases": config.phases,
        "params": params,
        "feature_importance": dict(zip(config.features, importance)),
        "training_accuracy": metrics["accuracy"],
        "training_f1": metrics["f1"],
        "training_precision": metrics["precision"],
        "training_recall": metrics["recall"],
        "roc_auc": metrics["roc_auc"],
        "mcc": metrics["mcc"],
        "fpr": metrics["fpr"],
        "fnr": metrics["fnr"],
        "confusion_matrix": metrics["confusion_matrix"],
        **metrics["confusion_matrix"],
        "description": (
            f"Trained here by train_model on {counts['train_rows']} rows before {_iso(_from_us(cut_at))}, tested on "
            f"{counts['test_rows']} rows from then on ({weighting})."
        ),
    }
    details = {
        "builtin_training": {
            "split_at": _iso(_from_us(cut_at)),
            "since": _iso(config.since) if config.since else None,
            "until": _iso(config.until) if config.until else None,
            "max_rows": config.max_rows,
            "test_fraction": config.test_fraction,
            "seed": config.seed,
            "history_limit": config.history_limit,
            "class_weighting": weighting,
            "labels": "per coin, k rows ahead by the row's phase interval; rows without a future value dropped",
            "features": "inference.features.build_features as of each row (serving code)",
            **counts,
        },
        "test_predictions": {
            "total": len(test_index),
            "mints": [labelled.mints[c] for c in test_coins[sample]],
            "timestamps": [_iso(_from_us(int(t))) for t in ts[test_index][sample]],
            "labels": [int(v) for v in y_test[sample]],
            "probabilities": [float(p) for p in probabilities[sample]],
        },
    }

    with transaction.atomic():
        model = register_model(
            artifact=artifact, meta=meta, source=ModelSource.BUILTIN_TRAINING, filename=filename,
            activate=config.activate,
        )
        model.training_details = {**(model.training_details or {}), **details}
        model.save(update_fields=["training_details", "updated_at"])
    return TrainingResult(model=model, metrics=metrics, counts=counts, split_at=_from_us(cut_at))


# --- helpers -------------------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _iso_us(micros: int | None, given: datetime | None) -> str:
    if given is not None:
        return _iso(given)
    return _iso(_from_us(micros)) if micros is not None else "-"
