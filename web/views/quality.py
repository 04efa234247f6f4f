"""Live quality pages: the "Live quality" section of a model's page (also a page of its own, and the htmx partial
its window selector swaps in), and several models compared over one window.

Thin views: the figures are the REST API's (web/api/quality/answers.py), the per-bucket series and settings come from
quality.selectors; the charts are drawn by web/quality_charts.py.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET
from rest_framework import serializers

from modelregistry.models import ActiveModel
from predictions import selectors as prediction_selectors
from quality import selectors as quality_selectors
from web import charts
from web.api.common import BIGINT_MAX
from web.api.quality import answers
from web.api.quality import serializers as s
from web.quality_charts import Interval, ReferenceLine, interval_chart, reliability_diagram, threshold_bars
from web.views.base import page_login_required, partial_request

WINDOWS = [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("all", "all time")]
WINDOW_LABELS = dict(WINDOWS)
DEFAULT_WINDOW = "7d"  # the window the worker's degradation check holds the success rate against its reference
BUCKETS = {"1h": ("hour", timedelta(hours=1), "%H:%M"), "24h": ("hour", timedelta(hours=1), "%H:%M"),
           "7d": ("day", timedelta(days=1), "%m-%d"), "all": ("day", timedelta(days=1), "%m-%d")}
REFERENCE_COLOR = "#16a34a"
LIMIT_COLOR = "#dc2626"


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage for the page ("–" when there is none)."""
    return "–" if value is None else f"{100 * value:.{digits}f}\u00a0%"  # no break before the sign


def decimal(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _window_key(request) -> str:
    key = request.GET.get("window") or DEFAULT_WINDOW
    return key if key in WINDOW_LABELS else DEFAULT_WINDOW


def _rate_chart(model: ActiveModel, figures: dict, window: str, start, end, margin: float):
    """The success rate with its interval per hour or per day of the window, against the reference (and the line
    below which the upper end of an interval counts as degraded)."""
    bucket, step, fmt = BUCKETS[window]
    series = quality_selectors.success_rate_series(active_model_id=model.pk, start=start, end=end, bucket=bucket)
    by_bucket = {row["bucket"]: row for row in series}
    first = start or (series[0]["bucket"] if series else end)
    items = []
    for moment in charts.time_buckets(first, end, step):
        row = by_bucket.get(moment)
        label = moment.strftime(fmt)
        title = moment.strftime("%Y-%m-%d %H:%M UTC" if bucket == "hour" else "%Y-%m-%d")
        items.append(Interval(label, None, title=title) if row is None else Interval(
            label, row["success_rate"], row["success_rate_low"], row["success_rate_high"], n=row["judged_alerts"],
            title=title))
    references = []
    expected = figures["reference"]["success_rate"]
    if expected is not None:
        references.append(ReferenceLine(expected, "reference", REFERENCE_COLOR))
        references.append(ReferenceLine(max(expected - margin, 0.0), "reference − margin", LIMIT_COLOR))
    return interval_chart(items, references=references, title=f"Alert success rate per {bucket}",
                          x_unit="UTC", max_labels=8, empty_message=f"No judged alerts in the {WINDOW_LABELS[window]}")


def _reference_rows(model: ActiveModel, figures: dict) -> list[dict]:
    """Live figures beside the ones the model is held against (training, latest backtest)."""
    training = figures["reference"]["training"] or {}
    backtest = figures["reference"]["backtest"] or {}
    return [
        {"label": "Alert success rate", "live": pct(figures["success_rate"]), "training": pct(training.get("precision")),
         "backtest": pct(backtest.get("success_rate"))},
        {"label": "Precision", "live": pct(figures["precision"]), "training": pct(training.get("precision")),
         "backtest": "–"},
        {"label": "Recall", "live": pct(figures["recall"]), "training": pct(training.get("recall")), "backtest": "–"},
        {"label": "F1", "live": pct(figures["f1"]), "training": pct(training.get("f1")), "backtest": "–"},
        {"label": "ROC AUC", "live": decimal(figures["roc_auc"]),
         "training": decimal(None if model.roc_auc is None else float(model.roc_auc)),
         "backtest": decimal(backtest.get("roc_auc"))},
        {"label": "Base rate", "live": pct(figures["base_rate"]), "training": "–", "backtest": pct(backtest.get("base_rate"))},
    ]


def section_context(model: ActiveModel, window: str) -> dict:
    """What the "Live quality" section shows for the window."""
    start, end = quality_selectors.window_bounds(window)
    figures = answers.model_quality(model, window=window, start=start, end=end)
    watched = quality_selectors.settings_of(active_model_id=model.pk)
    psi = figures["psi"]
    drift_chart = None
    if psi:
        drift_chart = threshold_bars(list(psi.items()), threshold=watched.psi_threshold,
                                     flagged=set(figures["drifted_features"]),
                                     title="Feature drift (PSI against the reference)",
                                     empty_message=f"No live rows counted in the {WINDOW_LABELS[window]}")
    return {
        "quality": figures,
        "quality_window": window,
        "quality_window_label": WINDOW_LABELS[window],
        "quality_windows": WINDOWS,
        "quality_settings": watched,
        "quality_kpis": [
            {"label": "Alert success rate", "value": pct(figures["success_rate"]),
             "sub": f"95 %: {pct(figures['success_rate_low'])} – {pct(figures['success_rate_high'])}"
             if figures["success_rate"] is not None else "nothing judged"},
            {"label": "Judged alerts", "value": figures["judged_alerts"],
             "sub": f"{figures['success']} success · {figures['failed']} failed"},
            {"label": "Precision", "value": pct(figures["precision"]),
             "sub": f"recall {pct(figures['recall'])} · F1 {decimal(figures['f1'], 2)}"},
            {"label": "ROC AUC", "value": decimal(figures["roc_auc"]), "sub": f"Brier {decimal(figures['brier'])}"},
            {"label": "Avg. change", "value": "–" if figures["avg_price_change_pct"] is None
             else f"{figures['avg_price_change_pct']:.2f} %", "sub": "of judged alerts"},
            {"label": "Avg. ATH gain", "value": "–" if figures["avg_ath_gain_pct"] is None
             else f"{figures['avg_ath_gain_pct']:.2f} %", "sub": "highest after the alert"},
        ],
        "reference_rows": _reference_rows(model, figures),
        "expected_rate": pct(figures["reference"]["success_rate"]),
        "rate_chart": _rate_chart(model, figures, window, start, end, watched.margin),
        "reliability_chart": reliability_diagram(
            figures["calibration"], empty_message=f"No judged predictions in the {WINDOW_LABELS[window]}"),
        "drift_chart": drift_chart,
        "psi_top": sorted(((name, value) for name, value in psi.items() if value is not None),
                          key=lambda item: -item[1])[:5],
    }


@page_login_required
@require_GET
def model_quality(request, active_model_id: int):
    """`/models/<id>/quality/?window=7d`: the model page's "Live quality" section (the section alone for htmx)."""
    try:
        model = prediction_selectors.get_model_with_statistics(active_model_id=active_model_id)
    except ActiveModel.DoesNotExist:
        raise Http404(f"Model {active_model_id} does not exist") from None
    context = {"model": model, **section_context(model, _window_key(request))}
    template = "modelregistry/model_detail_quality.html"
    return render(request, f"{template}#quality" if partial_request(request) else template, context)


# --- compare -----------------------------------------------------------------------------------------------------------


def _verdict(pair: dict, names: dict[int, str]) -> str:
    first, second = names[pair["first"]], names[pair["second"]]
    if not pair["shared_events"]:
        return "no shared judged events"
    if pair["p_value"] is None:
        return "no difference (always both right or both wrong)"
    if pair["better"] is None:
        return f"no clear difference (p = {pair['p_value']:.3f})"
    winner = first if pair["better"] == "first" else second
    return f"{winner} is better (p = {pair['p_value']:.3g})"


def _compare_context(ids: list[int], window: str) -> dict:
    models = answers.models_of(ids)
    start, end = quality_selectors.window_bounds(window)
    compared = answers.comparison(models, window=window, start=start, end=end)
    names = {model.pk: model.display_name for model in models}
    rows = []
    for index, figures in enumerate(compared["models"]):
        rows.append({
            "model": models[index], "figures": figures, "color": charts.PALETTE[index % len(charts.PALETTE)],
            "success_rate": pct(figures["success_rate"]),
            "interval": f"{pct(figures['success_rate_low'])} – {pct(figures['success_rate_high'])}"
            if figures["success_rate"] is not None else "–",
            "precision": pct(figures["precision"]), "recall": pct(figures["recall"]), "f1": decimal(figures["f1"], 2),
            "roc_auc": decimal(figures["roc_auc"]), "brier": decimal(figures["brier"]),
            "avg_change": "–" if figures["avg_price_change_pct"] is None else f"{figures['avg_price_change_pct']:.2f} %",
            "reference": pct(figures["reference"]["success_rate"]),
        })
    chart = interval_chart(
        [Interval(f"#{row['model'].pk}", row["figures"]["success_rate"], row["figures"]["success_rate_low"],
                  row["figures"]["success_rate_high"], n=row["figures"]["judged_alerts"],
                  title=row["model"].display_name, color=row["color"]) for row in rows],
        title=f"Alert success rate, {WINDOW_LABELS[window]}", empty_message=f"No judged alerts in the "
                                                                           f"{WINDOW_LABELS[window]}")
    pairs = [{**pair, "first_name": names[pair["first"]], "second_name": names[pair["second"]],
              "verdict": _verdict(pair, names)} for pair in compared["pairs"]]
    return {"rows": rows, "compare_chart": chart, "pairs": pairs}


@page_login_required
@require_GET
def model_compare(request):
    """`/models/compare/?ids=1,2&window=7d`: 2–6 models over one window (table, success-rate chart, McNemar)."""
    raw_ids = ",".join(request.GET.getlist("ids"))
    window = request.GET.get("window") or DEFAULT_WINDOW
    context = {"windows": WINDOWS, "window": window, "window_label": WINDOW_LABELS.get(window, window),
               "choices": list(prediction_selectors.list_models(include_inactive=True)), "selected": [],
               "error": None, "rows": []}
    status = 200
    single = raw_ids.strip(", ")
    if single.isdigit() and 1 <= int(single) <= BIGINT_MAX:  # from a model's page: pick the others here
        context["selected"] = [int(single)]
    elif raw_ids:
        try:
            ids = s.parse_ids(raw_ids)
            if window not in WINDOW_LABELS:
                raise serializers.ValidationError(f"Unknown window {window!r}: choose {', '.join(WINDOW_LABELS)}.")
            context["selected"] = ids
            context.update(_compare_context(ids, window))
        except serializers.ValidationError as exc:
            context["error"], status = " ".join(map(str, exc.detail)), 400
        except answers.ModelsNotFound as exc:
            context["error"], status = f"No model with id {', '.join(map(str, exc.ids))}.", 404
    return render(request, "modelregistry/model_compare.html", context, status=status)
