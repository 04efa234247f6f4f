"""What a finished replay amounts to: verdict counts, success rates per threshold, ROC AUC, and how the replay compares
with the predictions the model served live over the same range. Reads only; the runner stores the result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from sklearn.metrics import auc

from backtests.models import BacktestRun
from backtests.pipeline import lower_priority
from inference.history import float8_matrix

THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))  # 0.50 … 0.95
LISTED_DIFFERENCES = 50

# Per row: did the predicted event happen? (a success of prediction 1, or a failure of prediction 0); NULL when the
# row is not judged or not applicable.
_HAPPENED = ("CASE WHEN evaluation_result IN ('success', 'failed') "
             "THEN (evaluation_result = 'success') = (prediction = 1) END")

# The run's counts, and per threshold: alerts, successes, failures and the average change of the judged ones; one
# scan of the run.
FIGURES_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE tag = 'alert'),
       count(*) FILTER (WHERE tag = 'alert' AND evaluation_result = 'success'),
       count(*) FILTER (WHERE tag = 'alert' AND evaluation_result = 'failed'),
       count(*) FILTER (WHERE tag = 'alert' AND evaluation_result = 'not_applicable'),
       count(*) FILTER (WHERE tag = 'alert' AND evaluation_result IS NULL),
       avg(actual_price_change_pct) FILTER (WHERE tag = 'alert' AND evaluation_result IN ('success', 'failed')),
       sum(actual_price_change_pct) FILTER (WHERE tag = 'alert' AND evaluation_result IN ('success', 'failed')),
       count(*) FILTER (WHERE evaluation_result = 'success'),
       count(*) FILTER (WHERE evaluation_result = 'failed'),
       count(*) FILTER (WHERE evaluation_result = 'not_applicable'),
       count(*) FILTER (WHERE evaluation_result IS NULL),
       """ + ",\n       ".join(
    f"count(*) FILTER (WHERE probability >= %(t{k})s), "
    f"count(*) FILTER (WHERE probability >= %(t{k})s AND happened), "
    f"count(*) FILTER (WHERE probability >= %(t{k})s AND NOT happened), "
    f"avg(actual_price_change_pct) FILTER (WHERE probability >= %(t{k})s AND happened IS NOT NULL)"
    for k in range(len(THRESHOLDS))
) + f"""
  FROM (SELECT probability, actual_price_change_pct, tag, evaluation_result, {_HAPPENED} AS happened
          FROM backtest_rows WHERE run_id = %(run)s) b
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

# The model's live predictions in the range against the replay's row for the same coin and data time.
LIVE_SQL = """
SELECT p.coin_id, p.prediction_timestamp, p.probability, p.model_version, b.probability
  FROM model_predictions p
  LEFT JOIN backtest_rows b
         ON b.run_id = %(run)s AND b.coin_id = p.coin_id AND b.prediction_timestamp = p.prediction_timestamp
 WHERE p.active_model_id = %(model)s AND p.prediction_timestamp >= %(start)s AND p.prediction_timestamp <= %(end)s
 ORDER BY p.prediction_timestamp, p.coin_id
"""


def _rate(success: int, failed: int) -> float | None:
    return success / (success + failed) if success + failed else None


def _number(value) -> float | None:
    return None if value is None else float(value)


def summarize(*, run: BacktestRun, rows_replayed: int, data_end: datetime | None, duration_s: float) -> dict:
    """The run's figures. Alerts are the rows tagged by the run's threshold; success rates are fractions."""
    # The ROC read runs on a connection of its own meanwhile (each statement keeps one core busy); not inside a
    # transaction, whose rows another connection would not see.
    side = None if connection.in_atomic_block else ThreadPoolExecutor(1, thread_name_prefix="backtest-summary",
                                                                        initializer=lower_priority)
    try:
        roc = side.submit(_roc_points, run.pk) if side else None
        with connection.cursor() as cursor:
            cursor.execute(FIGURES_SQL, {"run": run.pk, **{f"t{k}": t for k, t in enumerate(THRESHOLDS)}})
            figures = cursor.fetchone()
        points = roc.result() if roc else _roc_points(run.pk)
    finally:
        if side:
            side.submit(_close_connection).result()
            side.shutdown()
    (predictions, alerts, success, failed, not_applicable, pending, avg_change, sum_change,
     all_success, all_failed, all_not_applicable, all_pending), counted = figures[:12], figures[12:]
    thresholds = [
        {"threshold": threshold, "alerts": n, "success": hit, "failed": miss, "success_rate": _rate(hit, miss),
         "avg_price_change_pct": _number(change)}
        for threshold, (n, hit, miss, change) in zip(THRESHOLDS, zip(*[iter(counted)] * 4))
    ]
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
        "not_applicable": not_applicable,
        "pending": pending,
        "success_rate": _rate(success, failed),
        "avg_price_change_pct": _number(avg_change),
        "sum_price_change_pct": _number(sum_change),
        "all_predictions": {"success": all_success, "failed": all_failed, "not_applicable": all_not_applicable,
                            "pending": all_pending},
        "base_rate": positives / judged if judged else None,
        "roc_auc": roc_auc(points) if negatives and positives else None,
        "thresholds": thresholds,
        "data_end": data_end.isoformat() if data_end else None,
        "duration_s": round(duration_s, 3),
        "rows_per_s": round(rows_replayed / duration_s, 1) if duration_s > 0 else None,
    }


def _roc_points(run_id: int) -> np.ndarray:
    with transaction.atomic(), connection.cursor() as cursor:
        # Its grouping and sort (~60-80 MB per million judged rows) at the default 4 MB go through temporary files
        # (~50 MB written and read back per million rows); with more room, less of them and ~15 % less server CPU.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        return float8_matrix(ROC_POINTS_SQL, {"run": run_id}, 2)


def _close_connection() -> None:
    connection.close()  # the calling thread's own


def roc_auc(points: np.ndarray) -> float:
    """scikit-learn's roc_auc_score from ROC_POINTS_SQL's points (false and true positive counts), bit for bit: the
    same curve (it prepends the origin and divides by the totals) and the same trapezoid sum (metrics.auc)."""
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
