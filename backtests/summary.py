"""What a finished replay amounts to: verdict counts, success rates per threshold, ROC AUC, and how the replay compares
with the predictions the model served live over the same range. Reads only; the runner stores the result."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.db import connection
from sklearn.metrics import roc_auc_score

from backtests.models import BacktestRun

THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))  # 0.50 … 0.95
LISTED_DIFFERENCES = 50

# Per row: did the predicted event happen? (a success of prediction 1, or a failure of prediction 0); NULL when the
# row is not judged or not applicable.
_HAPPENED = ("CASE WHEN evaluation_result IN ('success', 'failed') "
             "THEN (evaluation_result = 'success') = (prediction = 1) END")

COUNTS_SQL = """
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
       count(*) FILTER (WHERE evaluation_result IS NULL)
  FROM backtest_rows
 WHERE run_id = %s
"""

THRESHOLDS_SQL = f"""
SELECT t.threshold,
       count(b.id),
       count(b.id) FILTER (WHERE b.happened),
       count(b.id) FILTER (WHERE NOT b.happened),
       avg(b.actual_price_change_pct) FILTER (WHERE b.happened IS NOT NULL)
  FROM unnest(%s::float8[]) AS t(threshold)
  LEFT JOIN (SELECT id, probability, actual_price_change_pct, {_HAPPENED} AS happened
               FROM backtest_rows WHERE run_id = %s) b ON b.probability >= t.threshold
 GROUP BY t.threshold
 ORDER BY t.threshold
"""

SCORES_SQL = f"SELECT probability, {_HAPPENED} FROM backtest_rows WHERE run_id = %s AND {_HAPPENED} IS NOT NULL"

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
    with connection.cursor() as cursor:
        cursor.execute(COUNTS_SQL, [run.pk])
        (predictions, alerts, success, failed, not_applicable, pending, avg_change, sum_change,
         all_success, all_failed, all_not_applicable, all_pending) = cursor.fetchone()
        cursor.execute(THRESHOLDS_SQL, [list(THRESHOLDS), run.pk])
        thresholds = [
            {"threshold": threshold, "alerts": n, "success": hit, "failed": miss, "success_rate": _rate(hit, miss),
             "avg_price_change_pct": _number(change)}
            for threshold, n, hit, miss, change in cursor.fetchall()
        ]
        cursor.execute(SCORES_SQL, [run.pk])
        scored = cursor.fetchall()
    scores = np.array([row[0] for row in scored], dtype=np.float64)
    happened = np.array([row[1] for row in scored], dtype=bool)
    both_kinds = 0 < happened.sum() < len(happened)
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
        "base_rate": float(happened.mean()) if len(happened) else None,
        "roc_auc": float(roc_auc_score(happened, scores)) if both_kinds else None,
        "thresholds": thresholds,
        "data_end": data_end.isoformat() if data_end else None,
        "duration_s": round(duration_s, 3),
        "rows_per_s": round(rows_replayed / duration_s, 1) if duration_s > 0 else None,
    }


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
