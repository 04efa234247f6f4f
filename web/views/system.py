"""Pages of the whole system: dashboard, settings, info."""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from alerts.selectors import alert_statistics, models_alert_statistics
from modelregistry.models import ActiveModel
from predictions import selectors as prediction_selectors
from pumpserver import config
from pumpserver.scopes import ADMIN
from web import charts
from web.forms.system import SettingsForm
from web.selectors import QUEUE_DEPTH_CAP, health, heartbeat_stale_seconds, process_heartbeats, version_info
from web.views.base import page_login_required, partial_request, verdict_chart
from web.views.demo import demo_banner
from web.views.permissions import post_needs

DASHBOARD_MINUTES = 60
DASHBOARD_MIN_MINUTES = 10  # the shortest per-minute chart, for a system that has just started
NEWEST_ALERTS = 8


def _chart_minutes(now) -> int:
    """60, or on a system younger than that the minutes since its first prediction (at least 10): the chart fits."""
    first = prediction_selectors.first_prediction_time()
    if first is None or first <= now - timedelta(minutes=DASHBOARD_MINUTES):
        return DASHBOARD_MINUTES
    return max(DASHBOARD_MIN_MINUTES, math.ceil((now - first).total_seconds() / 60) + 1)


def _dashboard_live() -> dict:
    now = timezone.now()
    minutes = _chart_minutes(now)  # the KPI sums stay "last 60 min": nothing was stored before the chart's start
    per_minute = prediction_selectors.predictions_per_minute(minutes=minutes, now=now)
    report = health()
    labels = [row["minute"].strftime("%H:%M") for row in per_minute]
    chart = charts.bar_chart(
        labels,
        [
            charts.BarSeries("other predictions", [row["predictions"] - row["alerts"] for row in per_minute], "#93c5fd"),
            charts.BarSeries("alerts", [row["alerts"] for row in per_minute], "#7c3aed"),
        ],
        title=f"Predictions per minute, last {minutes} minutes",
        y_unit="per minute",
        x_unit="UTC",
        max_labels=6,
        height=190,
    ) if any(row["predictions"] for row in per_minute) else charts.empty_chart(
        "No predictions in the last hour", height=190
    )
    complete = per_minute[-2] if len(per_minute) > 1 else per_minute[-1]
    queue_depth = report["checks"]["queue_depth"]
    return {
        "now": now,
        "health": report,
        "checks": report["checks"],
        "queue_depth": queue_depth,
        "queue_capped": queue_depth is not None and queue_depth >= QUEUE_DEPTH_CAP,
        "predictions_last_hour": sum(row["predictions"] for row in per_minute),
        "alerts_last_hour": sum(row["alerts"] for row in per_minute),
        "last_minute": complete,
        "per_minute_chart": chart,
        "newest_alerts": prediction_selectors.newest_alerts(limit=NEWEST_ALERTS),
    }


def _dashboard_stats() -> dict:
    statistics = alert_statistics()
    models = list(ActiveModel.objects.order_by("-is_active", "-created_at"))
    per_model = models_alert_statistics(active_model_ids=[model.pk for model in models])
    rows = []
    for model in models:
        figures = per_model[str(model.pk)]
        judged = figures["alerts_success"] + figures["alerts_failed"]
        rows.append({
            "model": model,
            **figures,
            "alerts_success_rate": 100.0 * figures["alerts_success"] / judged if judged else None,
        })
    rated = [row for row in rows if row["alerts_success_rate"] is not None]
    if rated:
        chart = charts.hbar_chart(  # 0–100 %, whole model names
            [(row["model"].display_name, row["alerts_success_rate"],
              f"({row['alerts_success']} of {row['alerts_success'] + row['alerts_failed']} judged)") for row in rated],
            title="Alert success rate per model",
        )
    else:
        chart = charts.empty_chart("No alert has been judged yet", height=190)
    verdicts = verdict_chart(statistics, height=190, empty_message="No alerts yet")
    return {"statistics": statistics, "model_rows": rows, "success_chart": chart, "verdict_chart": verdicts}


@page_login_required
def dashboard(request):
    """`/`: live figures (every 5 s) and alert statistics (every 30 s), each refreshed by an htmx partial swap."""
    template = "pumpserver/dashboard.html"
    if partial_request(request):
        if request.GET.get("partial") == "stats":
            return render(request, f"{template}#stats", _dashboard_stats())
        return render(request, f"{template}#live", _dashboard_live())
    return render(request, template, {**_dashboard_live(), **_dashboard_stats(), "demo": demo_banner()})


@page_login_required
@require_http_methods(["GET", "POST"])
@post_needs(ADMIN)
def settings_page(request):
    """`/settings/`: the persisted configuration (pumpserver.config), saved in place."""
    saved = False
    if request.method == "POST":
        form = SettingsForm(request.POST)
        if not form.is_valid():  # also the configuration's own checks of the accepted values: every problem at once
            accepted = {key: value for key, value in form.changes().items() if key in form.cleaned_data}
            for key, messages in config.check_config(changes=accepted).items():
                form.add_error(key if key in form.fields else None, " ".join(messages))
        else:
            try:
                config.update_config(changes=form.changes())
            except config.ConfigError as exc:
                for key, messages in exc.errors.items():
                    form.add_error(key if key in form.fields else None, " ".join(messages))
            else:
                saved = True
                form = SettingsForm(initial=config.get_config())
    else:
        form = SettingsForm(initial=config.get_config())
    context = {
        "form": form,
        "saved": saved,
        "current": config.get_config(),
        "serving_at": request.build_absolute_uri("/"),
        "env_n8n": settings.N8N_WEBHOOK_URL,
        "env_training": settings.TRAINING_SERVICE_API_URL,
    }
    template = "pumpserver/settings.html"
    return render(request, f"{template}#settings_form" if partial_request(request) else template, context)


def _info_context(request) -> dict:
    return {
        **version_info(),
        "heartbeats": process_heartbeats(),
        "stale_seconds": heartbeat_stale_seconds(),
        "base_url": request.build_absolute_uri("/").rstrip("/"),
        "endpoints": [
            ("Pages", "/", "this interface (login)"),
            ("Admin", "/admin/", "Django admin (staff users)"),
            ("REST API", "/api/", "token or session; e.g. /api/models, /api/alerts/statistics"),
            ("API docs", "/api/docs/", "Swagger UI of the OpenAPI schema (/api/schema/)"),
            ("Health", "/api/health", "always 200; status healthy or degraded, with the details (also /health)"),
            ("Readiness", "/api/health/ready", "503 while the database, the listener or the worker is down"),
            ("Metrics", "/metrics", "Prometheus text of every process"),
            ("MCP (Streamable HTTP)", "/mcp/", "Bearer token"),
            ("MCP (SSE)", "/mcp/sse", "Bearer token; messages go to /mcp/messages/"),
        ],
    }


@page_login_required
def info(request):
    """`/info/`: version, processes and heartbeats, endpoints, MCP client configuration (tokens: /tokens/)."""
    return render(request, "pumpserver/info.html", _info_context(request))
