from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from pumpserver.permissions import MetricsPublic


class MetricsView(APIView):
    """Prometheus exposition of every process's metrics (web, listener, worker) from the shared directory."""

    permission_classes = [MetricsPublic]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# --- pages: shared helpers, dashboard, settings, info ---------------------------------------------------------------
# (The app pages live in modelregistry/views.py, alerts/views.py and predictions/views.py.)

import platform  # noqa: E402
from functools import wraps  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.views import redirect_to_login  # noqa: E402
from django.db import connection  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.views.decorators.http import require_http_methods, require_POST  # noqa: E402
from django_htmx.http import HttpResponseClientRedirect  # noqa: E402

DASHBOARD_MINUTES = 60
VERDICT_COLORS = {"success": "#16a34a", "failed": "#dc2626", "expired": "#9ca3af", "pending": "#f59e0b"}
NEWEST_ALERTS = 8


def page_login_required(view):
    """login_required for pages; an htmx request whose session ended is sent to the login page as a whole."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if getattr(request, "htmx", False):
            current = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?next={quote(current)}")
        return redirect_to_login(request.get_full_path())

    return wrapper


def partial_request(request) -> bool:
    """An htmx request that wants a fragment (not a history restore, which needs the whole page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request


def _dashboard_live() -> dict:
    from predictions import selectors as prediction_selectors
    from pumpserver import charts
    from pumpserver.selectors import QUEUE_DEPTH_CAP, health

    now = timezone.now()
    per_minute = prediction_selectors.predictions_per_minute(minutes=DASHBOARD_MINUTES, now=now)
    report = health()
    labels = [row["minute"].strftime("%H:%M") for row in per_minute]
    chart = charts.bar_chart(
        labels,
        [
            charts.BarSeries("other predictions", [row["predictions"] - row["alerts"] for row in per_minute], "#93c5fd"),
            charts.BarSeries("alerts", [row["alerts"] for row in per_minute], "#7c3aed"),
        ],
        title="Predictions per minute, last 60 minutes",
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
    from alerts.selectors import alert_statistics, models_alert_statistics
    from modelregistry.models import ActiveModel
    from pumpserver import charts

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
        chart = charts.bar_chart(
            [row["model"].display_name[:14] for row in rated],
            [charts.BarSeries("alert success rate", [row["alerts_success_rate"] for row in rated], "#16a34a")],
            title="Alert success rate per model", y_unit="%", height=190, max_labels=6, legend=False,
        )
    else:
        chart = charts.empty_chart("No alert has been judged yet", height=190)
    expired = max(statistics["alerts_above_threshold"] - statistics["alerts_success"] - statistics["alerts_failed"]
                  - statistics["alerts_pending"], 0)
    verdicts = charts.category_bars(
        [("success", statistics["alerts_success"], VERDICT_COLORS["success"]),
         ("failed", statistics["alerts_failed"], VERDICT_COLORS["failed"]),
         ("expired", expired, VERDICT_COLORS["expired"]),
         ("pending", statistics["alerts_pending"], VERDICT_COLORS["pending"])],
        title="Alert verdicts", y_unit="alerts", height=190, empty_message="No alerts yet",
    )
    return {"statistics": statistics, "model_rows": rows, "success_chart": chart, "verdict_chart": verdicts}


@page_login_required
def dashboard(request):
    """`/`: live figures (every 5 s) and alert statistics (every 30 s), each refreshed by an htmx partial swap."""
    template = "pumpserver/dashboard.html"
    if partial_request(request):
        if request.GET.get("partial") == "stats":
            return render(request, f"{template}#stats", _dashboard_stats())
        return render(request, f"{template}#live", _dashboard_live())
    return render(request, template, {**_dashboard_live(), **_dashboard_stats()})


@page_login_required
@require_http_methods(["GET", "POST"])
def settings_page(request):
    """`/settings/`: the persisted configuration (pumpserver.config), saved in place."""
    from pumpserver import config
    from pumpserver.forms import SettingsForm

    saved = False
    if request.method == "POST":
        form = SettingsForm(request.POST)
        if form.is_valid():
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
        "env_n8n": settings.N8N_WEBHOOK_URL,
        "env_training": settings.TRAINING_SERVICE_API_URL,
    }
    template = "pumpserver/settings.html"
    return render(request, f"{template}#settings_form" if partial_request(request) else template, context)


def _version() -> dict:
    commit = None
    git_dir = Path(settings.BASE_DIR if hasattr(settings, "BASE_DIR") else Path(__file__).resolve().parent.parent) / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = git_dir / head[5:]
            commit = ref.read_text().strip() if ref.exists() else None
        else:
            commit = head
    except OSError:
        commit = None
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        "version": settings.SPECTACULAR_SETTINGS.get("VERSION", "?"),
        "commit": commit[:12] if commit else None,
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgres": postgres,
        "database": "embedded" if getattr(settings, "USING_EMBEDDED_DATABASE", False) else "DATABASE_URL",
    }


def _token_context(request, *, new_key: str | None = None) -> dict:
    from rest_framework.authtoken.models import Token

    token = Token.objects.filter(user=request.user).first()
    return {"token": token, "new_key": new_key}


def _info_context(request, *, new_key: str | None = None) -> dict:
    from pumpserver.selectors import heartbeat_stale_seconds, process_heartbeats

    return {
        **_version(),
        **_token_context(request, new_key=new_key),
        "heartbeats": process_heartbeats(),
        "stale_seconds": heartbeat_stale_seconds(),
        "base_url": request.build_absolute_uri("/").rstrip("/"),
        "endpoints": [
            ("Pages", "/", "this interface (login)"),
            ("Admin", "/admin/", "Django admin (staff users)"),
            ("REST API", "/api/", "token or session; e.g. /api/models, /api/alerts/statistics"),
            ("API docs", "/api/docs/", "Swagger UI of the OpenAPI schema (/api/schema/)"),
            ("Health", "/api/health", "database, listener and worker liveness (also /health)"),
            ("Metrics", "/metrics", "Prometheus text of every process"),
            ("MCP (Streamable HTTP)", "/mcp/", "Bearer token"),
            ("MCP (SSE)", "/mcp/sse", "Bearer token; messages go to /mcp/messages/"),
        ],
    }


@page_login_required
def info(request):
    """`/info/`: version, processes and heartbeats, endpoints, MCP client configuration, API token."""
    return render(request, "pumpserver/info.html", _info_context(request))


@page_login_required
@require_POST
def info_token(request):
    """Create (or replace) the logged-in user's API token; the key is shown once, in the answer."""
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    with transaction.atomic():
        Token.objects.filter(user=request.user).delete()
        token = Token.objects.create(user=request.user)
    context = _info_context(request, new_key=token.key)
    template = "pumpserver/info.html"
    return render(request, f"{template}#token" if partial_request(request) else template, context)
