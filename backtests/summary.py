"""What a finished replay amounts to: verdict counts, success rates per threshold, ROC AUC, and how the replay compares
with the predictions the model served live over the same range. Reads only; the runner stores the result.

The counts and averages are added up from partial figures of parts of the run's rows (`PARTIAL_SELECT` over any
relation of rows): the store computes those of each group from the rows it has just inserted (no scan of the run for
them afterwards), `summarize` without them reads the stored rows as one part. Parts add up exactly: counts and
numeric sums of the price changes. The ROC curve needs the run's probabilities in one order; it is read at the end,
its points only (ROC_POINTS_SQL), beside the live comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np
from django.db import connection, transaction
from sklearn.metrics import auc

from backtests.models import BacktestRun
from inference.history import float8_matrix

THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))  # 0.50 … 0.95
LISTED_DIFFERENCES = 50

# Per row: did the predicted event happen? (a success of prediction 1, or a failure of prediction 0); NULL when the
# row is not judged or not applicable.
_HAPPENED = ("CASE WHEN evaluation_result IN ('success', 'failed') "
             "THEN (evaluation_result = 'success') = (prediction = 1) END")

_TAGS = ("negativ", "positiv", "alert")


def part_cte(rows: str) -> str:
    """The CTE `part` PARTIAL_SELECT reads: the relation `rows` (columns probability, prediction, tag,
    evaluation_result, actual_price_change_pct)."""
    return f"part AS (SELECT probability, prediction, tag, evaluation_result, actual_price_change_pct FROM {rows})"


# One row of partial figures of `part`, grouped rather than filtered (a few aggregates per row instead of one per
# figure): per (threshold band: how many THRESHOLDS the probability reaches, tag, verdict, prediction) the rows, how
# many have a price change, and its numeric sum.
PARTIAL_SELECT = """
SELECT coalesce(array_agg(ARRAY[band, tag, result, prediction, n, changes]), '{}'), coalesce(array_agg(change), '{}')
  FROM (SELECT width_bucket(probability, %(thresholds)s::float8[]) AS band,
               array_position(%(tag_names)s::text[], tag) - 1 AS tag,
               coalesce(array_position(%(result_names)s::text[], evaluation_result::text), 0) AS result,
               prediction, count(*) AS n, count(actual_price_change_pct) AS changes,
               coalesce(sum(actual_price_change_pct), 0) AS change
          FROM part GROUP BY 1, 2, 3, 4) per_group
"""

# The ROC curve of the judged rows as scikit-learn's roc_curve builds it, from counts per distinct probability
# (highest first): cumulative true and false positives at each distinct probability, without the points that lie
# on a straight line between their neighbours (drop_intermediate: both second differences zero, i.e. the next
# probability has the same counts); the first and last point always stay. Only the points are sent.
ROC_POINTS_SQL = f"""
SELECT array_agg(ARRAY[fps::float8, tps::float8] ORDER BY probability DESC)
  FROM (
       SELECT probability,
              sum(negatives) OVER running AS fps, sum(positives) OVER running AS tps,
              row_number() OVER running = 1
                  OR lead(probability) OVER running IS NULL
                  OR lead(positives) OVER running <> positives
                  OR lead(negatives) OVER running <> negatives AS kept
         FROM (SELECT probability, count(*) FILTER (WHERE happened) AS positives,
                      count(*) FILTER (WHERE NOT happened) AS negatives
                 FROM (SELECT probability, {_HAPPENED} AS happened FROM backtest_rows WHERE run_id = %(run)s) b
                WHERE happened IS NOT NULL
                GROUP BY probability) counted
       WINDOW running AS (ORDER BY probability DESC ROWS UNBOUNDED PRECEDING)
  ) curve
 WHERE kept
"""


def partial_params() -> dict:
    return {"thresholds": list(THRESHOLDS), "tag_names": list(_TAGS), "result_names": ["success", "failed",
                                                                                        "not_applicable"]}


RUN_PARTIAL_SQL = f"WITH {part_cte('backtest_rows WHERE run_id = %(run)s')}\n{PARTIAL_SELECT}"


@dataclass
class Figures:
    """Partial figures added up: per (band, tag, verdict, prediction) the rows, the price changes and their exact
    numeric sum."""

    groups: dict = field(default_factory=dict)  # (band, tag, result, prediction) -> [rows, changes, Decimal sum]

    def add(self, row) -> None:
        """Add one row of PARTIAL_SELECT (as the driver gives it: lists of keys and of Decimal sums)."""
        keys, sums = row
        for key, total in zip(keys, sums):
            band, tag, result, prediction, n, changes = (int(value) for value in key)
            entry = self.groups.setdefault((band, tag, result, prediction), [0, 0, Decimal(0)])
            entry[0] += n
            entry[1] += changes
            entry[2] += Decimal(total)

    def total(self, which) -> tuple[int, int, Decimal]:
        """Rows, price changes and their sum over the groups `which(band, tag, result, prediction)` selects."""
        n, changes, change = 0, 0, Decimal(0)
        for key, (rows, counted, total) in self.groups.items():
            if which(*key):
                n, changes, change = n + rows, changes + counted, change + total
        return n, changes, change


def run_figures(run_id: int) -> Figures:
    """The partial figures of every stored row of the run, in one part."""
    figures = Figures()
    with transaction.atomic(), connection.cursor() as cursor:
        # The grouping by probability (~60-80 MB per million judged rows) stays in memory instead of temporary files.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(RUN_PARTIAL_SQL, {"run": run_id, **partial_params()})
        figures.add(cursor.fetchone())
    return figures


def _rate(success: int, failed: int) -> float | None:
    return success / (success + failed) if success + failed else None


def _averages(sums: list[tuple[int, Decimal]]) -> list[float | None]:
    """Each (count, sum) as PostgreSQL's avg() gives it: the sum divided by the count in numeric (its scale, its
    rounding), None without values."""
    pairs = [(total, n) for n, total in sums if n]
    quotients = []
    if pairs:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(["%s::numeric / %s::numeric"] * len(pairs)),
                           [value for pair in pairs for value in pair])
            quotients = list(cursor.fetchone())
    return [float(quotients.pop(0)) if n else None for n, _total in sums]


def summarize(*, run: BacktestRun, rows_replayed: int, data_end: datetime | None, duration_s: float,
              figures: Figures | None = None) -> dict:
    """The run's figures (from its stored rows unless `figures` holds those of every row). Alerts are the rows tagged
    by the run's threshold; success rates are fractions."""
    if figures is None:
        figures = run_figures(run.pk)
    alert, judged_verdict = _TAGS.index("alert"), (1, 2)
    verdicts = {name: figures.total(lambda _b, _t, result, _p, code=code: result == code)[0]
                for code, name in enumerate(["pending", "success", "failed", "not_applicable"])}
    alert_verdicts = {name: figures.total(lambda _b, tag, result, _p, code=code: tag == alert and result == code)[0]
                      for code, name in enumerate(["pending", "success", "failed", "not_applicable"])}
    predictions = figures.total(lambda *_key: True)[0]
    alerts = figures.total(lambda _b, tag, _r, _p: tag == alert)[0]
    _n, alert_changes, alert_change = figures.total(lambda _b, tag, result, _p: tag == alert and result in judged_verdict)
    sums = [(alert_changes, alert_change)]
    thresholds = []
    for k, threshold in enumerate(THRESHOLDS):
        def reached(band, _tag, _result, _prediction, k=k):
            return band > k

        n = figures.total(reached)[0]
        hit = figures.total(lambda band, tag, result, prediction, k=k: reached(band, tag, result, prediction)
                            and result in judged_verdict and (result == 1) == (prediction == 1))[0]
        _m, changes, change = figures.total(lambda band, tag, result, prediction, k=k: reached(band, tag, result,
                                                                                             prediction)
                                            and result in judged_verdict)
        sums.append((changes, change))
        thresholds.append({"threshold": threshold, "alerts": n, "success": hit, "failed": _m - hit,
                           "success_rate": _rate(hit, _m - hit)})
    averages = _averages(sums)
    for row, average in zip(thresholds, averages[1:]):
        row["avg_price_change_pct"] = average
    success, failed = alert_verdicts["success"], alert_verdicts["failed"]
    points = _roc_points(run.pk)
    negatives, positives = (int(points[-1, 0]), int(points[-1, 1])) if len(points) else (0, 0)
    judged = negatives + positives
    return {
        "model_id": run.active_model_id,
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "threshold": run.threshold,
        "rows_replayed": rows_replayed,
        "predictions": predictions,
        "alerts": alerts,
        "success": success,
        "failed": failed,
        "not_applicable": alert_verdicts["not_applicable"],
        "pending": alert_verdicts["pending"],
        "success_rate": _rate(success, failed),
        "avg_price_change_pct": averages[0],
        "sum_price_change_pct": float(alert_change) if alert_changes else None,
        "all_predictions": {name: verdicts[name] for name in ("success", "failed", "not_applicable", "pending")},
        "base_rate": positives / judged if judged else None,
        "roc_auc": roc_auc(points) if negatives and positives else None,
        "thresholds": thresholds,
        "data_end": data_end.isoformat() if data_end else None,
        "duration_s": round(duration_s, 3),
        "rows_per_s": round(rows_replayed / duration_s, 1) if duration_s > 0 else None,
    }


# The model's live predictions in the range against the replay's row for the same coin and data time.
LIVE_SQL = """
SELECT p.coin_id, p.prediction_timestamp, p.probability, p.model_version, b.probability
  FROM model_predictions p
  LEFT JOIN backtest_rows b
         ON b.run_id = %(run)s AND b.coin_id = p.coin_id AND b.prediction_timestamp = p.prediction_timestamp
 WHERE p.active_model_id = %(model)s AND p.prediction_timestamp >= %(start)s AND p.prediction_timestamp <= %(end)s
 ORDER BY p.prediction_timestamp, p.coin_id
"""


def _roc_points(run_id: int) -> np.ndarray:
    with transaction.atomic(), connection.cursor() as cursor:
        # Its grouping and sort (~60-80 MB per million judged rows) at the default 4 MB go through temporary files
        # (~50 MB written and read back per million rows); with more room, less of them and ~15 % less server CPU.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        return float8_matrix(ROC_POINTS_SQL, {"run": run_id}, 2)


def roc_auc(points: np.ndarray) -> float:
    """scikit-learn's roc_auc_score from the ROC points (false and true positive counts), bit for bit: the same curve
    (it prepends the origin and divides by the totals) and the same trapezoid sum (metrics.auc)."""
    fps, tps = np.r_[0.0, points[:, 0]], np.r_[0.0, points[:, 1]]
    return float(auc(fps / fps[-1], tps / tps[-1]))


def live_comparison(*, run: BacktestRun) -> dict:
    """How many of the model's live predictions in the range the replay reproduced exactly, and why others differ."""
    version = run.settings.get("artifact_version")
    with connection.cursor() as cursor:
        cursor.execute(LIVE_SQL, {"run": run.pk, "model": run.active_model_id, "start": run.start, "end": run.end})
        live = cursor.fetchall()
    reproduced, differences = 0, []
    for coin_id, moment, live_probability, live_version, replayed in live:
        if replayed is not None and replayed == live_probability:
            reproduced += 1
            continue
        if replayed is None:
            reason = ("not replayed: the model's current settings (phases, whitelist, ignore windows, scan interval) "
                      "skip this row, or the row is no longer in coin_metrics")
        elif live_version is not None and version is not None and live_version != version:
            reason = f"the model file changed: version {live_version} served it live, version {version} replayed it"
        else:
            reason = "the history differed: a row arrived late, or rows were changed or deleted after the prediction"
        differences.append({"coin_id": coin_id, "timestamp": moment.isoformat(), "live_probability": live_probability,
                            "replay_probability": replayed, "reason": reason})
    return {
        "live_predictions": len(live),
        "reproduced": reproduced,
        "differing": len(differences),
        "differences": differences[:LISTED_DIFFERENCES],
    }
