"""The prediction engine: which models look at which coin events, and one vectorised predict per model.

Pure computation over what the caller read from the database; the caller (predictions.services) claims the work
and stores the results in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import repeat

import numpy as np

from inference.features import CoinHistories, build_features
from inference.scoring import ModelCache, ServedModel
from pumpserver import metrics

logger = logging.getLogger(__name__)

CHUNK_COINS = 500  # most coins whose histories and features are in memory at once (see run_models)


@dataclass(frozen=True)
class CoinEvent:
    mint: str
    timestamp: datetime
    phase_id: int | None


@dataclass
class ModelResult:
    model: ServedModel
    events: list[CoinEvent]
    probabilities: np.ndarray
    predictions: np.ndarray
    seconds: float


@dataclass
class ModelFailure:
    model: ServedModel
    error: str
    kind: str  # "model_load" or "prediction"


@dataclass
class Prediction:
    """One model's answer for one coin event, tagged by the model's alert threshold."""

    model: ServedModel
    event: CoinEvent
    probability: float
    prediction: int
    tag: str


@dataclass
class EngineOutput:
    results: list[ModelResult] = field(default_factory=list)
    failures: list[ModelFailure] = field(default_factory=list)

    def predictions(self) -> list[Prediction]:
        """Every result, one per (model, coin event), in the order of the results."""
        items: list[Prediction] = []
        for result in self.results:
            items.extend(map(
                Prediction, repeat(result.model), result.events, result.probabilities.tolist(),
                result.predictions.tolist(), tags_for(result.probabilities, result.model.alert_threshold).tolist(),
            ))
        return items


def tags_for(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """The existing server's tag of every probability (an array of str): below 0.5 "negativ", below the model's
    threshold "positiv", else "alert", independent of the 0/1 prediction."""
    return np.where(probabilities < 0.5, "negativ", np.where(probabilities < threshold, "positiv", "alert"))


def looks_at(
    model: ServedModel, event: CoinEvent, scan_state: tuple[datetime | None, datetime] | None, now: datetime
) -> bool:
    """The per-model filters, in the existing server's order, plus the minimum scan interval it never applied."""
    if model.whitelist is not None and event.mint not in model.whitelist:
        return False
    if model.phases and event.phase_id not in model.phases:
        return False
    if scan_state is not None:
        ignore_until, last_scan_at = scan_state
        if ignore_until is not None and ignore_until > now:
            return False
        if model.min_scan_interval_seconds and last_scan_at > now - timedelta(seconds=model.min_scan_interval_seconds):
            return False
    return True


def ignore_rule(model: ServedModel, probability: float, prediction: int) -> tuple[int, str | None]:
    """(seconds, reason) of the ignore window a prediction opens for its coin; (0, None) for none. The alert
    window follows the probability, the others the 0/1 output."""
    if probability >= model.alert_threshold and model.ignore_alert_seconds > 0:
        return model.ignore_alert_seconds, "alert"
    if prediction == 1 and model.ignore_positive_seconds > 0:
        return model.ignore_positive_seconds, "positive"
    if prediction == 0 and model.ignore_bad_seconds > 0:
        return model.ignore_bad_seconds, "bad"
    return 0, None


def run_models(
    *,
    models: list[ServedModel],
    events: list[CoinEvent],
    scan_states: dict[tuple[str, int], tuple],
    load_histories,
    cache: ModelCache,
    now: datetime,
    apply_filters: bool = True,
) -> EngineOutput:
    """Predict every eligible (model, event) pair: histories loaded once (per chunk of CHUNK_COINS coins), features
    built once per feature set.

    `load_histories(requests)` takes {phase filter: [mints]} and returns {phase filter: CoinHistories}.
    A model that fails (cannot load, bad features) is reported and skipped; the others go on. Manual predictions
    pass apply_filters=False: whitelist, phase, ignore and scan-interval settings are for the event stream only.
    """
    output = EngineOutput()
    ready_models = []
    for model in models:
        try:
            ready = cache.get(model)
        except Exception as exc:  # any artifact problem is this model's problem only
            output.failures.append(ModelFailure(model, f"cannot load: {exc}", "model_load"))
            continue
        eligible = [
            e for e in events if not apply_filters or looks_at(model, e, scan_states.get((e.mint, model.id)), now)
        ]
        if eligible:
            ready_models.append((model, ready, eligible))
    if not ready_models:
        return output

    # Models of one feature family (engineered, windows) share one column set, so that a coin whose history is the
    # same under two phase filters gets its features built once (see _built_features).
    names_by_family: dict = defaultdict(set)
    for model, ready, _eligible in ready_models:
        names_by_family[_feature_set(model)[1:]].update(ready.input_names)
    # A large batch (a start, a burst) goes through in chunks of coins: the history blocks and feature arrays of one
    # chunk are alive at a time (~60 MB for 2,000 coins at once). A coin's features depend on its own rows only.
    mints = sorted({e.mint for _model, _ready, eligible in ready_models for e in eligible})
    parts: dict = defaultdict(list)  # model id → [(events, probabilities, predictions)]
    seconds: dict = defaultdict(float)
    failed: set = set()
    for first in range(0, len(mints), CHUNK_COINS):
        chunk = set(mints[first : first + CHUNK_COINS])
        in_chunk = [(model, ready, [e for e in eligible if e.mint in chunk]) for model, ready, eligible in ready_models
                    if model.id not in failed]
        requests: dict = defaultdict(set)
        for model, _ready, eligible in in_chunk:
            requests[model.phases].update(e.mint for e in eligible)
        histories = load_histories({key: sorted(coins) for key, coins in requests.items() if coins})
        built: dict = {}
        for model, ready, eligible in in_chunk:
            if not eligible:
                continue
            started = time.perf_counter()
            try:
                part = _predict(model, ready, eligible, histories[model.phases], built, names_by_family)
            except Exception as exc:
                logger.exception("model %s failed on a batch of %d coins", model.id, len(eligible))
                output.failures.append(ModelFailure(model, f"prediction failed: {exc}", "prediction"))
                failed.add(model.id)
                continue
            seconds[model.id] += time.perf_counter() - started
            if part is not None:
                parts[model.id].append(part)
        del histories, built
    for model, _ready, eligible in ready_models:
        if model.id in failed or not parts[model.id]:
            continue
        position = {id(event): i for i, event in enumerate(eligible)}  # the results in the order of the events
        predictable = [event for events, _p, _y in parts[model.id] for event in events]
        order = np.argsort([position[id(event)] for event in predictable], kind="stable")
        probabilities = np.concatenate([p for _e, p, _y in parts[model.id]])[order]
        predictions = np.concatenate([y for _e, _p, y in parts[model.id]])[order]
        output.results.append(ModelResult(model, [predictable[i] for i in order], probabilities, predictions,
                                          seconds[model.id]))
    return output


def _predict(model: ServedModel, ready, eligible: list[CoinEvent], block: CoinHistories, built: dict,
             names_by_family: dict) -> tuple[list[CoinEvent], np.ndarray, np.ndarray] | None:
    """The model's (events, probabilities, predictions) for the eligible events of `block`'s coins; None if none of
    them has rows under the model's phase filter (the original failed on such a coin too)."""
    row_of = {mint: i for i, mint in enumerate(block.mints)}
    predictable = [e for e in eligible if e.mint in row_of]
    if not predictable:
        return None
    try:
        columns, all_features = _built_features(built, block, model, sorted(names_by_family[_feature_set(model)[1:]]))
    except Exception:  # a column another model of the family asks for must not fail this one: go alone
        names = sorted(set(ready.input_names))
        columns = {name: i for i, name in enumerate(names)}
        all_features = build_features(block, feature_names=names, engineered=model.engineered,
                                      windows=list(model.windows))
    matrix = all_features[np.ix_([row_of[e.mint] for e in predictable], [columns[n] for n in ready.input_names])]
    probabilities, predictions = ready.predict_proba_positive(matrix)
    return predictable, np.asarray(probabilities, dtype=np.float64), np.asarray(predictions, dtype=np.int64)


def _feature_set(model: ServedModel) -> tuple:
    """Models that agree on these see identical feature values, so their features are built once."""
    return (model.phases, model.engineered, model.windows)


def _built_features(built: dict, block: CoinHistories, model: ServedModel, names: list[str]):
    """The feature matrix of the model's feature set (one row per coin of `block`), built once per batch.

    A coin's features depend only on its own history rows, so a coin whose history under this set's phase filter is
    identical (same rows, same values) to its history under another phase filter of the same family, built earlier in
    the batch, takes that row instead of being built again; only the other coins go through build_features.
    """
    key = _feature_set(model)
    if key not in built:
        started = time.perf_counter()
        matrix = np.empty((block.n_coins, len(names)))
        todo = np.ones(block.n_coins, dtype=bool)
        for other_key, (other_block, _columns, other_matrix) in built.items():
            if other_key[1:] != key[1:] or not todo.any():
                continue
            if other_block is block:  # the same rows for every coin (the history cache hands out one block then)
                matrix, todo[:] = other_matrix, False
                break
            other_row = {mint: i for i, mint in enumerate(other_block.mints)}
            mine = np.asarray([i for i in np.flatnonzero(todo) if block.mints[i] in other_row], dtype=np.int64)
            theirs = np.asarray([other_row[block.mints[i]] for i in mine], dtype=np.int64)
            same = _same_histories(block, mine, other_block, theirs)
            matrix[mine[same]] = other_matrix[theirs[same]]
            todo[mine[same]] = False
        if todo.any():  # build_features works through the coins in groups of bounded memory (length_groups)
            coins = np.flatnonzero(todo)
            matrix[coins] = build_features(
                block, feature_names=names, engineered=model.engineered, windows=list(model.windows),
                coins=None if todo.all() else coins,
            )
        metrics.FEATURE_SECONDS.observe(time.perf_counter() - started)
        built[key] = (block, {name: i for i, name in enumerate(names)}, matrix)
    _block, columns, matrix = built[key]
    return columns, matrix


def _same_histories(a: CoinHistories, a_coins: np.ndarray, b: CoinHistories, b_coins: np.ndarray) -> np.ndarray:
    """Per pair k: do coin a_coins[k] of `a` and coin b_coins[k] of `b` have identical histories (NaN equals NaN)?"""
    same = a.lengths[a_coins] == b.lengths[b_coins]
    candidates = np.flatnonzero(same)
    if len(candidates) == 0:
        return same
    left, right = a.take(a_coins[candidates]), b.take(b_coins[candidates])
    equal = left.timestamps_ns == right.timestamps_ns
    for name, values in left.columns.items():
        other = right.columns.get(name)
        if other is None:
            return np.zeros(len(a_coins), dtype=bool)
        equal &= (values == other) | (np.isnan(values) & np.isnan(other))
    same[candidates] = np.logical_and.reduceat(equal, left.offsets[:-1])
    return same
