"""Coin details (price and volume with a model's predictions) and the webhook outbox with redelivery."""

from __future__ import annotations

import bisect
import uuid
from datetime import datetime, timedelta

from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from modelregistry.models import ActiveModel
from predictions import log_selectors, selectors, webhook_services
from predictions.models import WebhookDelivery
from pumpserver.scopes import OPERATE
from web import charts
from web.forms.predictions import WINDOW_CHOICES, CoinWindowForm, DeliveryFilterForm
from web.views.base import Pager, page_login_required, partial_request
from web.views.permissions import post_needs

DELIVERIES_PER_PAGE = 50
TAG_STYLE = {"negativ": ("#9ca3af", "circle"), "positiv": ("#2563eb", "circle"), "alert": ("#7c3aed", "triangle")}


def _price_at(times: list[datetime], prices: list[float | None], moment: datetime) -> float | None:
    """The newest known price at or before `moment` (the first one if `moment` is earlier)."""
    if not times:
        return None
    index = bisect.bisect_right(times, moment) - 1
    for i in range(max(index, 0), -1, -1):
        if prices[i] is not None:
            return prices[i]
    return next((p for p in prices if p is not None), None)


def _coin_charts(details: dict, rows: list, *, anchor_time: datetime, markers: list[charts.Marker],
                 window: tuple[datetime, datetime], reference: str) -> dict:
    history = details["price_history"]
    times = [row["timestamp"] for row in history]
    prices = [row["price_close"] for row in history]
    base = _price_at(times, prices, anchor_time) if history else None

    def percent(price):
        return None if price is None or not base else (price / base - 1) * 100

    series = [charts.Series("price", [(t, percent(p)) for t, p in zip(times, prices)], "#0f172a")]
    by_tag: dict[str, list] = {"negativ": [], "positiv": [], "alert": []}
    for row in details["predictions"]:
        tag = "alert" if row["is_alert"] else ("positiv" if row["prediction"] == 1 else "negativ")
        by_tag[tag].append((row["prediction_timestamp"], percent(_price_at(times, prices, row["prediction_timestamp"]))))
    for tag, points in by_tag.items():
        if points:
            color, marker = TAG_STYLE[tag]
            series.append(charts.Series(f"{tag} ({len(points)})", points, color, kind="points", marker=marker))
    verdicts = {"success": [], "failed": []}
    for row in rows:  # at the horizon (evaluation_timestamp), not when the worker got to it
        if row.evaluation_result in verdicts and row.evaluation_timestamp:
            verdicts[row.evaluation_result].append(
                (row.evaluation_timestamp, percent(_price_at(times, prices, row.evaluation_timestamp)))
            )
    for status, color in (("success", "#16a34a"), ("failed", "#dc2626")):
        if verdicts[status]:
            series.append(charts.Series(f"judged {status}", verdicts[status], color, kind="points", marker="square"))
    price_chart = charts.line_chart(
        series, title="Price change with predictions", y_unit=f"% vs. {reference}", height=230, markers=markers,
        x_min=window[0], x_max=window[1], empty_message="No price rows in this window",
    ) if history else charts.empty_chart("No price rows in this window", height=230)
    volume_chart = charts.line_chart(
        [charts.Series("volume", [(row["timestamp"], row["volume_sol"]) for row in history], "#0891b2")],
        title="Volume", y_unit="SOL per row", height=170, y_min=0, markers=markers, x_min=window[0], x_max=window[1],
    ) if history else charts.empty_chart("No volume in this window", height=170)
    return {"price_chart": price_chart, "volume_chart": volume_chart, "base_price": base,
            "last_price": next((p for p in reversed(prices) if p is not None), None)}


@page_login_required
@require_GET
def coin_detail(request, active_model_id: int, coin_id: str):
    """`/models/<id>/coins/<mint>/`: price and volume over time with this model's predictions and verdicts."""
    model = ActiveModel.objects.filter(pk=active_model_id).first()
    if model is None:
        raise Http404(f"Model {active_model_id} does not exist")
    form = CoinWindowForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    prediction_id = data.get("prediction")
    window = data.get("window") or 60
    offset = data.get("offset") or 0
    context = {"model": model, "coin_id": coin_id, "window": window, "offset": offset, "prediction_id": prediction_id,
               "windows": WINDOW_CHOICES, "details": None, "error": None}
    try:
        details = log_selectors.coin_details(
            active_model_id=model.pk, coin_id=coin_id, prediction_id=prediction_id,
            time_window_minutes=window, time_offset_minutes=offset,
        )
    except log_selectors.NotFound as exc:
        context["error"] = str(exc)
        return render(request, "predictions/coin_detail.html", context, status=404)
    markers = []
    anchor = details["prediction_timestamp"]
    history = details["price_history"]
    if prediction_id:
        anchor_row = next((row for row in details["predictions"] if row["id"] == prediction_id), None)
        horizon = anchor_row["evaluation_timestamp"] if anchor_row else None
        markers.append(charts.Marker(anchor, "prediction", "#7c3aed"))
        if horizon:
            markers.append(charts.Marker(horizon, "horizon", "#f59e0b"))
        window_range = (anchor - timedelta(minutes=10), (horizon or anchor) + timedelta(minutes=10))
        reference_time, reference = anchor, "price at the prediction"
    else:  # the selector's window: from 5 min before the coin's first prediction, moved by the offset
        start = anchor - timedelta(minutes=5) + timedelta(minutes=offset)
        # A window reaching into the future ends now (or at the newest row): the axis fits a young coin's data.
        newest = max([timezone.now(), *(row["timestamp"] for row in history[-1:])])
        end = max(min(start + timedelta(minutes=window), newest), start + timedelta(minutes=2))
        window_range = (start, end)
        reference_time, reference = (history[0]["timestamp"] if history else start), "first price"
    by_id = {row.pk: row for row in model.predictions.readable().filter(pk__in=[p["id"] for p in details["predictions"]])}
    rows = [by_id[p["id"]] for p in details["predictions"] if p["id"] in by_id]
    context.update(_coin_charts(details, rows, anchor_time=reference_time, markers=markers, window=window_range,
                                reference=reference))
    context.update({
        "details": details,
        "rows": rows[::-1],
        "history_rows": len(history),
        "window_start": window_range[0],
        "window_end": window_range[1],
        "earlier": offset - window,
        "later": offset + window,
    })
    return render(request, "predictions/coin_detail.html", context)


def _deliveries_context(request) -> dict:
    form = DeliveryFilterForm(request.GET or None)
    status, page = "", 1
    if form.is_bound and form.is_valid():
        status = form.cleaned_data.get("status") or ""
        page = form.cleaned_data.get("page") or 1
    pager = Pager(page, DELIVERIES_PER_PAGE)
    rows, total = selectors.webhook_deliveries(status=status or None, limit=pager.limit, offset=pager.offset)
    return {"form": form, "deliveries": rows, "total": total, **pager.context(total), "status": status,
            "counts": selectors.webhook_delivery_counts()}


@page_login_required
@require_GET
def webhook_list(request):
    """`/webhooks/`: the outbox, newest first, with status, attempts and the last answer; redeliver per row."""
    template = "predictions/webhooks.html"
    context = _deliveries_context(request)
    return render(request, f"{template}#deliveries" if partial_request(request) else template, context)


@page_login_required
@require_POST
@post_needs(OPERATE)
def webhook_redeliver(request, delivery_id: uuid.UUID):
    """Queue a delivered or failed delivery again (same delivery_id, due now); answers its updated row."""
    count = webhook_services.redeliver(delivery_ids=[delivery_id])
    delivery = WebhookDelivery.objects.filter(delivery_id=delivery_id).first()
    if delivery is None:
        raise Http404("No such delivery")
    if not partial_request(request):
        return redirect("predictions:webhooks")
    notice = "Queued again: the worker sends it within a minute." if count else "Already queued."
    return render(request, "predictions/webhooks.html#delivery_row", {"d": delivery, "notice": notice})
