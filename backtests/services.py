"""Backtests: replay a model over the market already recorded, judge every replayed prediction as the worker judges
live ones, and say how the replay compares with what the model served live.

A run is created (`create_run`: validated, nothing stored on bad input), then executed once (`execute_run`: by the
worker for REST and MCP, in the foreground by `manage.py backtest`). Execution reads the range coin group by coin
group (memory stays bounded whatever the range; coins that trade at the same time together), replays each group
through `inference.replay` (the listener's features and scoring, each row as if it had just arrived), stores the
predictions judged with the worker's own verdict rule (`backtests.row_services`: a COPY and one set-wise INSERT per
group), and stores a summary. A run that crashes or is cancelled ends `failed` with its rows removed; it never looks
complete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.services import record_created, record_object_change, snapshot
from backtests.models import FINAL_STATES, BacktestRow, BacktestRun, RunState
from backtests.pipeline import Pipeline
from backtests.row_services import judge_later, store_judged
from backtests.summary import Figures, live_comparison, summarize
from inference import history
from inference.as_of import columns_read
from inference.replay import ScanRules, replay
from inference.scoring import ServedModel, return_freed_memory
from modelregistry.models import ActiveModel
from modelregistry.serving import model_cache, served_model_by_id
from predictions.services import CLASSIC_HORIZON

# Rows replayed per coin group: bounds the memory of one step (the group's rows, features and staged rows).
GROUP_ROWS = 25_000
RUN_TASK = "backtests.tasks.run_backtest"
TASK_TIMEOUT_SECONDS = 6 * 3600  # a run of the longest range on a slow machine; the claim keeps it from running twice

CLAIM_RUN_SQL = """
UPDATE backtest_runs SET state = 'running', started_at = %(now)s, heartbeat_at = %(now)s
 WHERE id = %(run)s AND state = 'queued'
"""

class BacktestError(ValueError):
    """Input a backtest cannot run on; `field` names the input at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RunCancelled(Exception):
    pass


def create_run(
    *, active_model_id: int, start: datetime, end: datetime, threshold: float | None = None, requested_by: str = ""
) -> BacktestRun:
    """A queued run of the model (active or not) over [start, end]; raises BacktestError naming the field at fault."""
    try:
        model = served_model_by_id(active_model_id=active_model_id)
    except ActiveModel.DoesNotExist:
        raise BacktestError("active_model_id", f"no model with id {active_model_id}") from None
    if model.artifact_id is None:
        raise BacktestError("active_model_id", f"model {active_model_id} has no stored model file")
    if start.tzinfo is None or end.tzinfo is None:
        raise BacktestError("start" if start.tzinfo is None else "end", "give a time zone (e.g. 2026-01-01T00:00Z)")
    if end < start:
        raise BacktestError("end", "end lies before start")
    longest = timedelta(days=settings.BACKTEST_MAX_RANGE_DAYS)
    if end - start > longest:
        raise BacktestError("end", f"the range is longer than {settings.BACKTEST_MAX_RANGE_DAYS} days "
                                   "(BACKTEST_MAX_RANGE_DAYS)")
    if threshold is not None and not (0 < threshold <= 1 and math.isfinite(threshold)):
        raise BacktestError("threshold", "must be a number above 0 and at most 1")
    with connection.cursor() as cursor:
        cursor.execute('SELECT EXISTS (SELECT 1 FROM coin_metrics WHERE "timestamp" >= %s AND "timestamp" <= %s)',
                       [start, end])
        if not cursor.fetchone()[0]:
            raise BacktestError("start", "coin_metrics holds no rows between start and end")
    return BacktestRun.objects.create(
        active_model_id=active_model_id,
        start=start,
        end=end,
        threshold=model.alert_threshold if threshold is None else threshold,
        settings=_settings_of(model),
        requested_by=requested_by[:150],
    )


def queue_run(
    *, active_model_id: int, start: datetime, end: datetime, threshold: float | None = None, requested_by: str = ""
) -> BacktestRun:
    """create_run, and hand the run to the worker once it is committed."""
    with transaction.atomic():
        run = create_run(active_model_id=active_model_id, start=start, end=end, threshold=threshold,
                         requested_by=requested_by)
        transaction.on_commit(lambda: async_task(RUN_TASK, run.pk, timeout=TASK_TIMEOUT_SECONDS))
        record_created(run)
    return run


CANCEL_FIELDS = ("state", "cancel_requested", "error", "finished_at")


def request_cancel(*, run_id: int) -> BacktestRun:
    """Ask a queued or running run to stop; a queued one ends at once. Raises BacktestRun.DoesNotExist."""
    with transaction.atomic():
        run = BacktestRun.objects.select_for_update().get(pk=run_id)
        before = snapshot(run, fields=CANCEL_FIELDS)
        if run.state == RunState.QUEUED:
            _finish(run, state=RunState.FAILED, error="cancelled before it started")
        elif run.state == RunState.RUNNING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        record_object_change(action="cancel", obj=run, before=before, after=snapshot(run, fields=CANCEL_FIELDS))
    return run


def fail_stale_runs(*, now: datetime | None = None) -> int:
    """Runs whose process died (no sign of life for BACKTEST_STALE_SECONDS) end failed, their rows removed."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.BACKTEST_STALE_SECONDS)
    stale = list(BacktestRun.objects.filter(state=RunState.RUNNING, heartbeat_at__lt=stale_before))
    for run in stale:
        with transaction.atomic():
            BacktestRow.objects.filter(run=run).delete()
            _finish(run, state=RunState.FAILED, error="the process running it stopped (crashed or killed)")
    return len(stale)


def execute_run(*, run_id: int, progress: Callable[[BacktestRun], None] | None = None) -> BacktestRun:
    """Run a queued backtest to its end; a run another process took (or that ended) is returned as it is."""
    fail_stale_runs()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_RUN_SQL, {"run": run_id, "now": now})
        claimed = cursor.rowcount == 1
    run = BacktestRun.objects.get(pk=run_id)
    if not claimed:
        return run
    started = time.perf_counter()
    try:
        with Pipeline() as pipeline:
            rows_read, judged_until, figures, yielded = _replay_and_store(run, progress, pipeline)
            # On a pipeline thread: the summary's statements run at the backtest's priority too.
            summary = pipeline.compute(_conclude, run=run, rows_read=rows_read, judged_until=judged_until,
                                       figures=figures, started=started)
        summary["yielded_s"] = round(yielded, 3)
    except RunCancelled:
        _discard(run, error="cancelled")
    except Exception as exc:  # any failure ends the run failed, with the reason, and never half-complete
        _discard(run, error=f"{type(exc).__name__}: {exc}")
    else:
        run.summary = summary
        _finish(run, state=RunState.DONE)
    return run


# --- steps ---------------------------------------------------------------------------------------------------------


def _settings_of(model: ServedModel) -> dict:
    """The model settings a replay applies, kept with the run (a later change of the model does not rewrite it)."""
    return {
        "phases": list(model.phases) if model.phases else None,
        "whitelist": sorted(model.whitelist) if model.whitelist is not None else None,
        "ignore_bad_seconds": model.ignore_bad_seconds,
        "ignore_positive_seconds": model.ignore_positive_seconds,
        "ignore_alert_seconds": model.ignore_alert_seconds,
        "min_scan_interval_seconds": model.min_scan_interval_seconds,
        "future_minutes": model.future_minutes,
        "artifact_version": model.artifact_version,
        "history_limit": settings.FEATURE_HISTORY_SIZE,
    }


def coin_groups(counts: dict[str, int], *, group_rows: int = GROUP_ROWS) -> list[list[str]]:
    """Coins (by mint, in the order given) in groups of about `group_rows` rows of the range; a coin is never
    split."""
    groups, current, size = [], [], 0
    for mint, count in counts.items():
        if current and size + count > group_rows:
            groups.append(current)
            current, size = [], 0
        current.append(mint)
        size += count
    if current:
        groups.append(current)
    return groups


def _conclude(*, run: BacktestRun, rows_read: int, judged_until: datetime | None, figures: Figures | None,
              started: float) -> dict:
    """Judge what the market reached during the run, then the summary (from the stored groups' figures, or read
    again if rows were judged since) with the live comparison."""
    data_end = _newest_market_time()
    if data_end is not None and data_end != judged_until:  # the market grew during the run
        judge_later(run_id=run.pk, model_id=run.active_model_id, data_end=data_end)
        figures = None
    summary = summarize(run=run, rows_replayed=rows_read, data_end=data_end, duration_s=time.perf_counter() - started,
                        figures=figures)
    summary["live"] = live_comparison(run=run)
    return summary


def _replay_and_store(run: BacktestRun, progress, pipeline: Pipeline) -> tuple[int, datetime | None, Figures, float]:
    """Replay and store every group; returns the rows of the range, the market time the rows were judged up to, the
    summary figures of the stored rows and the seconds it waited for the listener. The next group is read and the previous one stored while the current one
    is computed (backtests.pipeline)."""
    model = served_model_by_id(active_model_id=run.active_model_id)
    ready = model_cache(size=1).get(model)
    counts = history.window_counts(since=run.start, until=run.end)  # coins in the order of their first row
    run.rows_total = sum(counts.values())
    run.save(update_fields=["rows_total"])
    rules = ScanRules(model)
    horizon_us = (timedelta(minutes=model.future_minutes) if model.future_minutes else CLASSIC_HORIZON) // timedelta(
        microseconds=1)
    data_end = _newest_market_time()
    groups = [(mints, [mint for mint in mints if model.whitelist is None or mint in model.whitelist])
              for mints in coin_groups(counts, group_rows=GROUP_ROWS)]

    columns = columns_read(feature_names=ready.input_names, engineered=model.engineered, windows=model.windows)

    def read(wanted: list[str]):
        if not wanted:
            return None
        return history.replay_rows(mints=wanted, phases=model.phases, since=run.start, until=run.end,
                                   earlier=settings.FEATURE_HISTORY_SIZE - 1, columns=columns)

    def stored(mints: list[str]) -> None:  # after a group's rows are in
        run.rows_done += sum(counts[mint] for mint in mints)
        run.progress = min(run.rows_done / max(run.rows_total, 1), 1.0)
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["rows_done", "progress", "heartbeat_at"])
        if progress is not None:
            progress(run)

    figures = Figures()

    def store(**kwargs) -> None:  # on the store thread, one group after the other
        partial = store_judged(**kwargs)
        if partial is not None:
            figures.add(partial)

    reading = pipeline.read(read, groups[0][1]) if groups else None
    previous = None
    for k, (mints, wanted) in enumerate(groups):
        if BacktestRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            raise RunCancelled()
        rows = reading.result()
        if k + 1 < len(groups):
            reading = pipeline.read(read, groups[k + 1][1])
        if rows is not None:
            replayed = pipeline.compute(replay, model=model, ready=ready, rows=rows, mints=wanted,
                                        since_us=history.to_micros(run.start), rules=rules,
                                        threshold=run.threshold, history_limit=settings.FEATURE_HISTORY_SIZE)
            pipeline.store(store, run_id=run.pk, model_id=run.active_model_id, mints=wanted,
                           replayed=replayed, horizon_us=horizon_us, data_end=data_end)
            del rows, replayed
            return_freed_memory()  # a group's temporaries: back to the system, in every thread's heap
        else:
            pipeline.wait_stored()
        if previous is not None:
            stored(previous)
        previous = mints
    pipeline.wait_stored()
    if previous is not None:
        stored(previous)
    return run.rows_total, data_end, figures, pipeline.yielded


def _newest_market_time() -> datetime | None:
    with connection.cursor() as cursor:
        cursor.execute('SELECT max("timestamp") FROM coin_metrics')
        return cursor.fetchone()[0]


def _discard(run: BacktestRun, *, error: str) -> None:
    with transaction.atomic():
        BacktestRow.objects.filter(run=run).delete()
        _finish(run, state=RunState.FAILED, error=error)


def _finish(run: BacktestRun, *, state: str, error: str = "") -> None:
    assert state in FINAL_STATES
    run.state = state
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "error", "finished_at", "summary", "progress", "rows_done"])
