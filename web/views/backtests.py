"""Backtest pages: a model's backtests (the form and its runs), one run (live progress, then its charts beside the
model's live figures for the same period), every recent run, and several runs side by side.

Thin views: the form validates, backtests.services queues or cancels, backtests/predictions/alerts selectors read;
the worker runs the replay. A running run's page polls its own body every 2 s until the run ends.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from alerts.selectors import alert_statistics
from backtests import selectors, services
from backtests.models import FINAL_STATES, BacktestRun, RunState
from modelregistry.models import ActiveModel
from predictions import selectors as prediction_selectors
from pumpserver.scopes import OPERATE
from web import charts
from web.forms.backtests import BacktestForm, parse_run_ids
from web.views.base import VERDICT_COLORS, page_login_required, partial_request, wants_partial
from web.views.permissions import post_needs

RUNS_LISTED = 50
# Bucket sizes of the time charts: the smallest that keeps a range within MAX_BUCKETS bars.
BUCKET_SECONDS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 48
STATE_BADGES = {RunState.QUEUED: "muted", RunState.RUNNING: "warn", RunState.DONE: "ok", RunState.FAILED: "bad"}


def _model_or_404(active_model_id: int) -> ActiveModel:
    try:
        return prediction_selectors.get_model_with_statistics(active_model_id=active_model_id)
    except ActiveModel.DoesNotExist:
        raise Http404(f"Model {active_model_id} does not exist") from None


def _run_or_404(run_id: int) -> BacktestRun:
    try:
        return selectors.get_run(run_id=run_id)
    except BacktestRun.DoesNotExist:
        raise Http404(f"Backtest {run_id} does not exist") from None


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def run_row(run: BacktestRun) -> dict:
    """What a list of runs shows of one run."""
    done = run.state == RunState.DONE and run.summary
    return {
        "run": run,
        "badge": STATE_BADGES.get(run.state, "muted"),
        "progress_pct": round(100 * run.progress),
        "alerts": run.summary.get("alerts") if done else None,
        "success_rate_pct": _pct(run.summary.get("success_rate")) if done else None,
        "predictions": run.summary.get("predictions") if done else None,
    }


# --- a model's backtests: the form and the runs -----------------------------------------------------------------------


def _model_context(model: ActiveModel, form: BacktestForm) -> dict:
    runs = [run_row(run) for run in selectors.runs_of_model(active_model_id=model.pk)[:RUNS_LISTED]]
    data_start, data_end = selectors.market_time_range()
    return {
        "model": model,
        "form": form,
        "runs": runs,
        "any_active": any(row["run"].state not in FINAL_STATES for row in runs),
        "data_start": data_start,
        "data_end": data_end,
    }


@page_login_required
@require_http_methods(["GET", "POST"])
@post_needs(OPERATE)
def model_backtests(request, active_model_id: int):
    """`/models/<id>/backtests/`: run a backtest (range, threshold) and the model's runs, newest first."""
    model = _model_or_404(active_model_id)
    template = "backtests/model_backtests.html"
    status = 200
    if request.method == "POST":
        form = BacktestForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = services.queue_run(active_model_id=model.pk, start=data["start"], end=data["end"],
                                         threshold=data.get("threshold"), requested_by=request.user.get_username())
            except services.BacktestError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                target = reverse("backtests:run", args=[run.pk])
                return HttpResponseClientRedirect(target) if partial_request(request) else redirect(target)
        if partial_request(request):
            return render(request, f"{template}#backtest_form", _model_context(model, form))
        status = 400
    else:
        data_start, data_end = selectors.market_time_range()
        form = BacktestForm(initial=BacktestForm.initial_for(model, data_start=data_start, data_end=data_end))
        if wants_partial(request, "runs"):
            return render(request, f"{template}#runs", _model_context(model, form))
    return render(request, template, _model_context(model, form), status=status)


# --- one run ------------------------------------------------------------------------------------------------------


def bucket_seconds_for(span: timedelta) -> int:
    seconds = max(span.total_seconds(), 1)
    return next((size for size in BUCKET_SECONDS if seconds / size <= MAX_BUCKETS), BUCKET_SECONDS[-1])


def _label(bucket_seconds: int, span: timedelta):
    if bucket_seconds >= 86400:
        fmt = "%m-%d"
    elif span <= timedelta(days=1):
        fmt = "%H:%M"
    else:
        fmt = "%m-%d %H:%M"
    return lambda moment: moment.strftime(fmt)


def _bucket_text(bucket_seconds: int) -> str:
    if bucket_seconds < 3600:
        return f"{bucket_seconds // 60} min"
    if bucket_seconds < 86400:
        return f"{bucket_seconds // 3600} h"
    return f"{bucket_seconds // 86400} d"


def _verdict_bars(labels: list[str], timeline: list[dict], *, title: str, empty: str):
    if not any(row["success"] or row["failed"] or row["not_applicable"] or row["pending"] for row in timeline):
        return charts.empty_chart(empty)
    return charts.bar_chart(
        labels,
        [charts.BarSeries("success", [row["success"] for row in timeline], VERDICT_COLORS["success"]),
         charts.BarSeries("failed", [row["failed"] for row in timeline], VERDICT_COLORS["failed"]),
         charts.BarSeries("expired", [row["not_applicable"] for row in timeline], VERDICT_COLORS["expired"]),
         charts.BarSeries("pending", [row["pending"] for row in timeline], VERDICT_COLORS["pending"])],
        title=title, y_unit="alerts", x_unit="UTC", max_labels=6,
    )


def threshold_charts(summary: dict) -> dict:
    """Success rate and alert count per threshold (0.50 … 0.95), the run's threshold marked."""
    table = summary["thresholds"]
    rates = charts.line_chart(
        [charts.Series("success rate", [(row["threshold"], _pct(row["success_rate"])) for row in table])],
        title="Success rate per threshold", y_unit="%", x_unit="threshold", y_min=0, y_max=100,
        markers=[charts.Marker(summary["threshold"], f"threshold of this run: {summary['threshold']:g}")],
        empty_message="No alert was judged at any threshold",
    )
    counts = charts.bar_chart(
        [f"{row['threshold']:.2f}" for row in table],
        [charts.BarSeries("alerts", [row["alerts"] for row in table], "#7c3aed")],
        title="Alerts per threshold", y_unit="alerts", x_unit="threshold ≥", max_labels=10, legend=False,
    )
    return {"threshold_rate_chart": rates, "threshold_count_chart": counts}


def _run_charts(run: BacktestRun) -> dict:
    """The finished run's charts and the model's live figures over the same range and buckets."""
    span = run.end - run.start
    bucket = bucket_seconds_for(span)
    label = _label(bucket, span)
    timeline = selectors.alert_timeline(run=run, bucket_seconds=bucket)
    labels = [label(row["bucket"]) for row in timeline]
    step = timedelta(seconds=bucket)
    judged = [(min(row["bucket"] + step, run.end), row["cumulative_change_pct"]) for row in timeline]
    has_judged = any(row["success"] or row["failed"] for row in timeline)
    cumulative = charts.line_chart(
        [charts.Series("replayed alerts", [(run.start, 0.0), *judged], "#7c3aed")],
        title="Cumulative price change of judged alerts", y_unit="%", x_min=run.start, x_max=run.end,
    ) if has_judged else charts.empty_chart("No alert was judged (success or failed)")
    live_timeline = prediction_selectors.verdict_timeline(active_model_id=run.active_model_id, start=run.start,
                                                          end=run.end, bucket_seconds=bucket)
    live = alert_statistics(active_model_id=run.active_model_id, date_from=run.start, date_to=run.end)
    bucket_text = _bucket_text(bucket)
    return {
        "bucket_text": bucket_text,
        "verdict_chart": _verdict_bars(labels, timeline, title=f"Replayed alert verdicts per {bucket_text}",
                                       empty="No alerts in the replay"),
        "cumulative_chart": cumulative,
        **threshold_charts(run.summary),
        "live": live,
        "live_ran": live["total_predictions"] > 0,
        "live_success_rate": (100.0 * live["alerts_success"] / (live["alerts_success"] + live["alerts_failed"])
                              if live["alerts_success"] + live["alerts_failed"] else None),
        "live_verdict_chart": _verdict_bars([label(row["bucket"]) for row in live_timeline], live_timeline,
                                            title=f"Live alert verdicts per {bucket_text}",
                                            empty="No live alerts in this range"),
    }


def _run_context(run: BacktestRun) -> dict:
    context = {"run": run, **run_row(run), "final": run.state in FINAL_STATES}
    if run.state == RunState.DONE and run.summary:
        summary = run.summary
        context.update(
            summary=summary,
            success_rate_pct=_pct(summary["success_rate"]),
            base_rate_pct=_pct(summary.get("base_rate")),
            thresholds=[{**row, "success_rate_pct": _pct(row["success_rate"]),
                         "current": abs(row["threshold"] - run.threshold) < 1e-9}
                        for row in summary["thresholds"]],
            reproduced=summary.get("live"),
            **_run_charts(run),
        )
    return context


@page_login_required
@require_GET
def backtest_run(request, run_id: int):
    """`/backtests/<id>/`: the run's progress while it is queued or running (polled), then its figures and charts."""
    run = _run_or_404(run_id)
    template = "backtests/run.html"
    if wants_partial(request, "body"):
        return render(request, f"{template}#run_body", _run_context(run))
    return render(request, template, _run_context(run))


@page_login_required
@require_POST
@post_needs(OPERATE)
def backtest_cancel(request, run_id: int):
    """Cancel a queued or running run (a running one stops within one step)."""
    _run_or_404(run_id)
    run = services.request_cancel(run_id=run_id)
    if partial_request(request):
        return render(request, "backtests/run.html#run_body", _run_context(run))
    return redirect("backtests:run", run.pk)


# --- every run, and runs side by side ---------------------------------------------------------------------------


@page_login_required
@require_GET
def backtest_index(request):
    """`/backtests/`: the newest runs of every model; tick several to compare them."""
    runs = [run_row(run) for run in selectors.recent_runs(limit=RUNS_LISTED)]
    return render(request, "backtests/index.html", {"runs": runs})


def compare_charts(runs: list[BacktestRun]) -> dict:
    done = [run for run in runs if run.state == RunState.DONE and run.summary]
    if not done:
        return {"compare_rate_chart": None, "compare_count_chart": None}
    names = {run.pk: f"#{run.pk} {run.active_model.display_name}"[:40] for run in done}
    rates = charts.line_chart(
        [charts.Series(names[run.pk], [(row["threshold"], _pct(row["success_rate"]))
                                       for row in run.summary["thresholds"]]) for run in done],
        title="Success rate per threshold", y_unit="%", x_unit="threshold", y_min=0, y_max=100, width=560,
        height=240, empty_message="No alert was judged at any threshold",
    )
    counts = charts.line_chart(
        [charts.Series(names[run.pk], [(row["threshold"], row["alerts"]) for row in run.summary["thresholds"]])
         for run in done],
        title="Alerts per threshold", y_unit="alerts", x_unit="threshold", width=560, height=240, y_min=0,
    )
    return {"compare_rate_chart": rates, "compare_count_chart": counts}


@page_login_required
@require_GET
def backtest_compare(request):
    """`/backtests/compare/?runs=1,2,3`: the runs' summaries in one table and their success rate per threshold."""
    try:
        run_ids = parse_run_ids(request.GET.getlist("runs"))
    except ValueError as exc:
        return render(request, "backtests/compare.html", {"error": str(exc), "runs": []}, status=400)
    runs = selectors.runs_by_ids(run_ids=run_ids)
    missing = [run_id for run_id in run_ids if run_id not in {run.pk for run in runs}]
    rows = []
    for run in runs:
        row = run_row(run)
        if row["alerts"] is not None:
            row.update(summary=run.summary, roc_auc=run.summary.get("roc_auc"),
                       threshold_chart=threshold_charts(run.summary)["threshold_rate_chart"])
        rows.append(row)
    ranges = {(run.start, run.end) for run in runs}
    context = {
        "runs": rows,
        "missing": missing,
        "same_range": len(ranges) <= 1,
        "error": None,
        **compare_charts(runs),
    }
    return render(request, "backtests/compare.html", context, status=404 if missing and not runs else 200)
