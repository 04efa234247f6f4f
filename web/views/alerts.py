"""The alert page: alerts (model_predictions tagged alert) with filters, paging and verdict statistics."""

from __future__ import annotations

from django.db.models import prefetch_related_objects
from django.shortcuts import render
from django.views.decorators.http import require_GET

from alerts.selectors import alert_statistics
from predictions import log_selectors
from predictions.models import Tag
from web.csv_export import csv_response
from web.forms.alerts import STATUS_FILTERS, AlertFilterForm
from web.views.base import Pager, expired_alerts, page_login_required, partial_request, verdict_chart

ALERTS_PER_PAGE = 25


def _alert_filters(form: AlertFilterForm) -> tuple[dict, dict, int]:
    """The prediction log's filters, the statistics' filters (model and time) and the page number of the alerts
    page's filter form (list and CSV alike)."""
    filters: dict = {"tag": Tag.ALERT}
    statistics_filters: dict = {}
    page = 1
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data.get("model"):
            filters["active_model_id"] = statistics_filters["active_model_id"] = data["model"].pk
        if data.get("status"):
            filters["evaluation_statuses"] = STATUS_FILTERS[data["status"]]
        if data.get("coin"):
            filters["coin_id"] = data["coin"].strip()
        if data.get("date_from"):
            filters["alert_time_from"] = statistics_filters["date_from"] = data["date_from"]
        if data.get("date_to"):
            filters["alert_time_to"] = statistics_filters["date_to"] = data["date_to"]
        page = data.get("page") or 1
    return filters, statistics_filters, page


@page_login_required
@require_GET
def alert_list(request):
    """`/alerts/`: alerts filterable by model, verdict, coin and time; statistics over the same model and time."""
    form = AlertFilterForm(request.GET or None)
    filters, statistics_filters, page = _alert_filters(form)
    pager = Pager(page, ALERTS_PER_PAGE)
    result = log_selectors.model_predictions_page(filters=filters, limit=pager.limit, offset=pager.offset)
    prefetch_related_objects(result.predictions, "active_model")  # model names in one query
    statistics = alert_statistics(**statistics_filters)
    context = {
        "form": form,
        "alerts": result.predictions,
        "total": result.total,
        **pager.context(result.total, query=request.GET),
        "filtered": len(filters) > 1,
        "statistics": statistics,
        "expired": expired_alerts(statistics),
        "verdict_chart": verdict_chart(statistics, height=170, empty_message="No alerts in this selection"),
    }
    template = "alerts/alert_list.html"
    return render(request, f"{template}#results" if partial_request(request) else template, context)


@page_login_required
@require_GET
def alerts_csv(request):
    """`/alerts.csv`: every alert the alerts page's filters select (not just one page), newest first."""
    filters, _statistics_filters, _page = _alert_filters(AlertFilterForm(request.GET or None))
    suffix = f"model-{filters['active_model_id']}-" if "active_model_id" in filters else ""
    return csv_response(request, header=log_selectors.EXPORT_COLUMNS, rows=log_selectors.export_rows(filters=filters),
                        filename=f"{suffix}alerts.csv")

