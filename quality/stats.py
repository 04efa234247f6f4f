"""The statistics of model quality, as pure functions over counts: they work the same on a handful of predictions and
on a year of hourly aggregates (counts add up; the figures are computed from the sums).

* `wilson_interval`: the 95 % Wilson score interval of a success rate (sensible at small n, unlike the normal one).
* `binary_figures`: precision, recall and F1 of the 0/1 prediction from its confusion counts.
* `roc_auc_from_histograms`: ROC AUC from per-class histograms of the probability over fixed bins; two scores in one
  bin count as a tie (half), so it is exact when no bin holds scores of both classes that differ, and within half a
  bin's share of pairs otherwise.
* `calibration`: mean predicted probability against observed rate in 10 equal-width bins.
* `psi` and `psi_threshold`: the population stability index over frozen reference bins, and the value above which a
  window of n rows is drifted: the configured threshold, raised for small windows by the PSI that sampling noise alone
  reaches (its expected value is about (bins − 1) / n for an unchanged distribution, plus a few standard deviations).
* `mcnemar`: the exact (binomial) McNemar test for two models judged on the same events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_95 = 1.959963984540054
AUC_BINS = 200
CALIBRATION_BINS = 10
PSI_EPSILON = 1e-4  # an empty bin counts as this share, so that the logarithm stays finite


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float | None, float | None]:
    """(low, high) of the Wilson score interval of successes / n; (None, None) for n = 0."""
    if n <= 0:
        return None, None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def binary_figures(*, tp: int, fp: int, tn: int, fn: int) -> dict:
    """Precision, recall and F1 of predictions against outcomes (None where undefined)."""
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1}


def auc_bin(probabilities: np.ndarray) -> np.ndarray:
    """The AUC histogram bin of each probability (0 … AUC_BINS − 1)."""
    return np.clip((np.asarray(probabilities, dtype=np.float64) * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)


def roc_auc_from_histograms(positives: Sequence[int], negatives: Sequence[int]) -> float | None:
    """P(score of a positive > score of a negative) + ½ P(same bin), from per-bin counts; None without both classes."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    negatives_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    return float((pos * (negatives_below + 0.5 * neg)).sum() / (n_pos * n_neg))


def calibration_bin(probabilities: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(probabilities, dtype=np.float64) * CALIBRATION_BINS).astype(np.int64), 0,
                   CALIBRATION_BINS - 1)


def calibration(counts: Sequence[int], probability_sums: Sequence[float], hits: Sequence[int]) -> list[dict]:
    """One entry per bin: its bounds, the mean predicted probability and the observed rate (None when empty)."""
    return [
        {"bin_low": k / CALIBRATION_BINS, "bin_high": (k + 1) / CALIBRATION_BINS,
         "predicted": ratio(probability_sums[k], counts[k]), "observed": ratio(hits[k], counts[k]), "n": int(counts[k])}
        for k in range(CALIBRATION_BINS)
    ]


def psi(reference: Sequence[float], observed: Sequence[int]) -> float | None:
    """Population stability index of observed bin counts against the reference bin shares; None without rows."""
    expected = np.asarray(reference, dtype=np.float64)
    counts = np.asarray(observed, dtype=np.float64)
    if counts.sum() == 0 or expected.sum() == 0:
        return None
    expected = np.maximum(expected / expected.sum(), PSI_EPSILON)
    actual = np.maximum(counts / counts.sum(), PSI_EPSILON)
    return float(((actual - expected) * np.log(actual / expected)).sum())


def psi_threshold(threshold: float, *, n: int, bins: int) -> float:
    """The PSI above which a window of n rows counts as drifted. For an unchanged distribution n·PSI is close to a
    chi-square variable with bins − 1 degrees of freedom, so sampling noise alone reaches (bins − 1 + 4·√(2(bins −
    1))) / n at about the 99.9th percentile: the threshold never lies below that."""
    if n <= 0:
        return math.inf
    degrees = bins - 1
    return max(threshold, (degrees + 4 * math.sqrt(2 * degrees)) / n)


def quantile_edges(values: np.ndarray, *, bins: int = 10) -> list[float]:
    """Inner bin edges (bins − 1 of them, ascending, duplicates removed) splitting `values` into equal shares."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return []
    edges = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted(set(float(edge) for edge in edges))


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts of `values` in the bins the edges make (len(edges) + 1 bins; a value on an edge goes right)."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(int).tolist()


def mcnemar(*, only_first_right: int, only_second_right: int) -> dict:
    """Exact McNemar test on the discordant pairs: two-sided p-value of 'both models are equally often right'."""
    n = only_first_right + only_second_right
    if n == 0:
        return {"discordant": 0, "p_value": None, "better": None}
    k = min(only_first_right, only_second_right)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    p_value = min(1.0, 2 * tail)
    better = None
    if p_value < 0.05:
        better = "first" if only_first_right > only_second_right else "second"
    return {"discordant": n, "p_value": p_value, "better": better}
