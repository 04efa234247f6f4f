"""Reads of backtest runs and their replayed rows."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from backtests.models import BacktestRow, BacktestRun

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
