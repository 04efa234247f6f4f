"""Reads of backtest runs and their replayed rows."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from itertools import islice

from django.db import connection
from django.db.models import QuerySet

from backtests.models import BacktestRow, BacktestRun
from predictions.selectors import bucket_starts

ROW_FIELDS = ("coin_id", "prediction_timestamp", "probability", "prediction", "tag", "evaluation_result",
              "actual_price_change_pct")


def get_run(*, run_id: int) -> BacktestRun:
    """Raises BacktestRun.DoesNotExist."""
    return BacktestRun.objects.get(pk=run_id)


def runs_of_model(*, active_model_id: int) -> QuerySet[BacktestRun]:
    """The model's runs, newest first."""
    return BacktestRun.objects.filter(active_model_id=active_model_id).order_by("-created_at", "-pk")


def rows_page(*, run_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
    """One page of the run's rows in time order, and how many there are."""
    rows = BacktestRow.objects.filter(run_id=run_id).order_by("prediction_timestamp", "coin_id", "pk")
    return list(rows.values(*ROW_FIELDS)[offset:offset + limit]), rows.count()


def iter_rows(*, run_id: int, chunk_size: int = 5000) -> Iterator[tuple]:
    """Every row of the run in time order, read in chunks from a server-side cursor (for streaming exports)."""
    rows = BacktestRow.objects.filter(run_id=run_id).order_by("prediction_timestamp", "coin_id", "pk")
    return rows.values_list(*ROW_FIELDS).iterator(chunk_size=chunk_size)


def runs_by_ids(*, run_ids: list[int]) -> list[BacktestRun]:
    """The runs of these ids with their models, in the order given; unknown ids are left out."""
    runs = BacktestRun.objects.select_related("active_model").in_bulk(run_ids)
    return [runs[run_id] for run_id in run_ids if run_id in runs]


def recent_runs(*, limit: int = 50) -> list[BacktestRun]:
    """The newest runs of every model, with their models."""
    return list(BacktestRun.objects.select_related("active_model").order_by("-created_at", "-pk")[:limit])


def market_time_range() -> tuple[datetime | None, datetime | None]:
    """Oldest and newest data time in coin_metrics (None, None when it is empty); two index reads."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT min("timestamp"), max("timestamp") FROM coin_metrics')
        return cursor.fetchone()


# The run's alerts per bucket of data time: verdicts, and the summed price change of the judged ones.
_ALERT_TIMELINE_SQL = """
SELECT to_timestamp(floor(extract(epoch FROM prediction_timestamp) / %(bucket)s) * %(bucket)s) AS bucket,
       count(*) FILTER (WHERE evaluation_result = 'success'),
       count(*) FILTER (WHERE evaluation_result = 'failed'),
       count(*) FILTER (WHERE evaluation_result = 'not_applicable'),
       count(*) FILTER (WHERE evaluation_result IS NULL),
       coalesce(sum(actual_price_change_pct) FILTER (WHERE evaluation_result IN ('success', 'failed')), 0)
  FROM backtest_rows
 WHERE run_id = %(run)s AND tag = 'alert'
 GROUP BY 1
"""


def alert_timeline(*, run: BacktestRun, bucket_seconds: int) -> list[dict]:
    """The run's alerts per bucket of data time over its range: `success, failed, not_applicable, pending` (horizon
    beyond the recorded data), `change_pct` (summed price change of the judged alerts, success and failed) and
    `cumulative_change_pct` (that sum from the start of the range up to the bucket's end)."""
    with connection.cursor() as cursor:
        cursor.execute(_ALERT_TIMELINE_SQL, {"bucket": bucket_seconds, "run": run.pk})
        counted = {row[0]: row[1:] for row in cursor.fetchall()}
    timeline, cumulative = [], 0.0
    for bucket in bucket_starts(run.start, run.end, bucket_seconds):
        success, failed, not_applicable, pending, change = counted.get(bucket, (0, 0, 0, 0, 0))
        cumulative += float(change)
        timeline.append({"bucket": bucket, "success": success, "failed": failed, "not_applicable": not_applicable,
                         "pending": pending, "change_pct": float(change), "cumulative_change_pct": cumulative})
    return timeline


# --- the rows as CSV: the same bytes for `manage.py backtest --rows-csv` and GET /api/backtests/{id}/rows ---------

CSV_COLUMNS = ["coin_id", "timestamp", "probability", "prediction", "tag", "evaluation_result",
               "actual_price_change_pct"]
CSV_LINES_PER_CHUNK = 2000


class _Line:
    """A file for csv.writer that hands each written line back."""

    def write(self, line: str) -> str:
        return line


def rows_csv(*, run_id: int) -> Iterator[str]:
    """The run's rows as CSV text (the header first), a few thousand lines per chunk."""
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_COLUMNS)
    rows = iter_rows(run_id=run_id)
    while True:
        chunk = [writer.writerow([coin_id, moment.isoformat(), *("" if v is None else v for v in rest)])
                 for coin_id, moment, *rest in islice(rows, CSV_LINES_PER_CHUNK)]
        if not chunk:
            return
        yield "".join(chunk)
