"""Model pages: list with inline actions, import/upload/train, details, per-model settings.

Thin views: a form validates, a service or selector does the work (the same ones the REST API and MCP use).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from alerts.selectors import model_statistics
from modelregistry import selectors, services
from modelregistry.models import ActiveModel, ModelType
from modelregistry.training_service import (
    TrainingServiceClient,
    TrainingServiceError,
    configured_base_url,
)
from predictions import log_selectors
from predictions import selectors as prediction_selectors
from pumpserver.scopes import ADMIN, OPERATE
from web import charts
from web.csv_export import csv_response
from web.forms.models import (
    TIME_RANGES,
    ImportForm,
    ModelSettingsForm,
    PredictionFilterForm,
    RangeForm,
    RenameForm,
    TrainCommandForm,
    UploadForm,
)
from web.views import quality as quality_pages
from web.views.base import Pager, page_login_required, partial_request, wants_partial
from web.views.permissions import post_needs

PREDICTIONS_PER_PAGE = 25


def _model_or_404(active_model_id: int) -> ActiveModel:
    try:
        return prediction_selectors.get_model_with_statistics(active_model_id=active_model_id)
    except ActiveModel.DoesNotExist:
        raise Http404(f"Model {active_model_id} does not exist") from None


def _card(request, model: ActiveModel, *, error: str | None = None, notice: str | None = None, status: int = 200):
    model = _model_or_404(model.pk)
    return render(request, "modelregistry/model_list.html#model_card", {"m": model, "error": error, "notice": notice},
                  status=status)


# --- list and inline actions ----------------------------------------------------------------------------------------


@page_login_required
@require_GET
def model_list(request):
    """`/models/`: every model with status, type, target and counters; activate, deactivate, rename, delete inline."""
    status = request.GET.get("status", "")
    model_type = request.GET.get("type", "")
    models = prediction_selectors.list_models(include_inactive=True)
    if status == "active":
        models = models.filter(is_active=True)
    elif status == "inactive":
        models = models.filter(is_active=False)
    if model_type in ModelType.values:
        models = models.filter(model_type=model_type)
    models = list(models)
    context = {
        "models": models,
        "status": status,
        "type": model_type,
        "types": ModelType.choices,
        "total": len(models),
        "active": sum(1 for m in models if m.is_active),
        "filtered": bool(status or model_type),
    }
    template = "modelregistry/model_list.html"
    return render(request, f"{template}#model_grid" if partial_request(request) else template, context)


@page_login_required
@require_POST
@post_needs(OPERATE)
def model_activate(request, active_model_id: int):
    model = _model_or_404(active_model_id)
    try:
        services.activate_model(active_model_id=model.pk)
    except services.OperationRefused as exc:
        return _card(request, model, error=str(exc))
    return _card(request, model, notice="Activated: the listener predicts with it from the next coin event.")


@page_login_required
@require_POST
@post_needs(OPERATE)
def model_deactivate(request, active_model_id: int):
    model = _model_or_404(active_model_id)
    services.deactivate_model(active_model_id=model.pk)
    return _card(request, model, notice="Deactivated: no new predictions; open ones are still evaluated.")


@page_login_required
@require_POST
@post_needs(OPERATE)
def model_rename(request, active_model_id: int):
    model = _model_or_404(active_model_id)
    form = RenameForm(request.POST)
    status = 200 if partial_request(request) else 400  # htmx swaps only 2xx answers
    if not form.is_valid():
        return _card(request, model, error=" ".join(form.errors.get("custom_name", ["Invalid name."])), status=status)
    try:
        services.rename_model(active_model_id=model.pk, custom_name=form.cleaned_data["custom_name"])
    except services.InvalidSetting as exc:
        return _card(request, model, error=f"Not renamed: {exc.message}.", status=status)
    return _card(request, model, notice="Renamed.")


@page_login_required
@require_POST
@post_needs(ADMIN)
def model_delete(request, active_model_id: int):
    """Delete the model with its predictions (POST only; the page asks to confirm first)."""
    model = _model_or_404(active_model_id)
    name = model.display_name
    services.delete_model(active_model_id=model.pk)
    if partial_request(request):
        if request.POST.get("from") == "detail":
            messages.success(request, f"Deleted model {name} and its predictions.")
            return HttpResponseClientRedirect(reverse("modelregistry:list"))
        return HttpResponse("")  # the card is swapped out
    messages.success(request, f"Deleted model {name} and its predictions.")
    return redirect("modelregistry:list")


# --- import, upload, training ---------------------------------------------------------------------------------------


@page_login_required
@require_http_methods(["GET", "POST"])
@post_needs(ADMIN)
def model_import(request):
    """`/models/import/`: models of the training service (loaded by a partial), upload, training command."""
    upload_form = UploadForm()
    if request.method == "POST":
        upload_form = UploadForm(request.POST, request.FILES)
        if upload_form.is_valid():
            data = upload_form.cleaned_data
            upload = data["file"]
            try:
                model = services.upload_model(
                    file_bytes=upload.read(), filename=upload.name, meta=data["meta"], activate=data["activate"]
                )
            except services.RegistrationError as exc:
                upload_form.add_error("file", f"{upload.name}: {exc}")
            else:
                messages.success(request, f"Uploaded {model.display_name} (version {model.artifacts.count()}).")
                return redirect("modelregistry:detail", model.pk)
    train_form = TrainCommandForm(request.GET if "future_minutes" in request.GET else None)
    context = {
        "upload_form": upload_form,
        "train_form": train_form,
        "train_command": train_form.command() if train_form.is_bound and train_form.is_valid() else None,
        "training_url": configured_base_url(),
    }
    if partial_request(request) and request.method == "GET" and train_form.is_bound:
        return render(request, "modelregistry/model_import.html#train", context)
    return render(request, "modelregistry/model_import.html", context, status=400 if upload_form.errors else 200)


@page_login_required
@require_GET
def available_models(request):
    """The training service's READY models with their metrics (a partial of the import page; can take seconds)."""
    context = {"error": None, "models": [], "not_configured": False}
    client = TrainingServiceClient()
    if not client.base_url:
        context["not_configured"] = True
    else:
        try:
            context["models"] = selectors.training_service_models(client=client)
        except TrainingServiceError as exc:
            context["error"] = exc.message
        else:
            context["service_url"] = client.base_url
    return render(request, "modelregistry/model_import.html#available", context)


@page_login_required
@require_POST
@post_needs(ADMIN)
def import_model(request):
    """Import one training-service model (a new version when it is imported already); answers a result line."""
    form = ImportForm(request.POST)
    context = {"model": None, "error": None}
    if not form.is_valid():
        context["error"] = "Choose a model to import."
    else:
        try:
            context["model"] = services.import_from_training_service(
                model_id=form.cleaned_data["model_id"], activate=True, allow_new_version=True
            )
        except services.ModelImportError as exc:
            context["error"] = exc.message
    context["model_id"] = form.cleaned_data.get("model_id") if form.is_valid() else None
    if partial_request(request):
        return render(request, "modelregistry/model_import.html#import_result", context)
    if context["model"]:
        messages.success(request, f"Imported {context['model'].display_name}.")
        return redirect("modelregistry:detail", context["model"].pk)
    messages.error(request, context["error"])
    return redirect("modelregistry:import")


# --- details ----------------------------------------------------------------------------------------------------------


def _prediction_filters(form: PredictionFilterForm, model: ActiveModel) -> tuple[dict, int]:
    """The prediction log's filters and the page number of the model page's filter form (list and CSV alike)."""
    filters = {"active_model_id": model.pk}
    page = 1
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data.get("coin"):
            filters["coin_id"] = data["coin"].strip()
        if data.get("tag"):
            filters["tag"] = data["tag"]
        if data.get("date_from"):
            filters["alert_time_from"] = data["date_from"]
        if data.get("date_to"):
            filters["alert_time_to"] = data["date_to"]
        page = data.get("page") or 1
    return filters, page


def _predictions_context(request, model: ActiveModel) -> dict:
    form = PredictionFilterForm(request.GET or None)
    filters, page = _prediction_filters(form, model)
    pager = Pager(page, PREDICTIONS_PER_PAGE)
    result = log_selectors.model_predictions_page(filters=filters, limit=pager.limit, offset=pager.offset)
    return {
        "model": model,
        "filter_form": form,
        "predictions": result.predictions,
        "total": result.total,
        **pager.context(result.total, query=request.GET, drop=("page", "partial")),
        "filtered": len(filters) > 1,
    }


FITTING_RANGES = ("1h", "6h", "24h")  # the default range: the shortest of these that holds every prediction
MIN_BUCKETS = 12  # a range cut to a young model's data keeps at least this many buckets


def _fitting_range(first, now) -> str:
    """The default time range: 24 hours, or on a young model the shortest range that holds all its predictions."""
    for key in FITTING_RANGES:
        if first is not None and first >= now - timedelta(seconds=TIME_RANGES[key][1]):
            return key
    return FITTING_RANGES[-1]


def _detail_charts(model: ActiveModel, range_key: str, statistics: dict, *, first=None) -> dict:
    """The model page's charts over `range_key`; a range longer than the model's data (`first`: the data time of
    its first prediction) starts at that data instead of showing empty buckets."""
    label, window, bucket = TIME_RANGES[range_key]
    end = timezone.now()
    start = end - timedelta(seconds=window)
    if first is not None and first > start + timedelta(seconds=bucket * MIN_BUCKETS):
        start = min(first - timedelta(seconds=bucket), end - timedelta(seconds=bucket * MIN_BUCKETS))
        label = f"since {start:%m-%d %H:%M} UTC"
    timeline = prediction_selectors.prediction_timeline(
        active_model_id=model.pk, start=start, end=end, bucket_seconds=bucket
    )
    verdicts = prediction_selectors.verdict_timeline(
        active_model_id=model.pk, start=start, end=end, bucket_seconds=bucket
    )
    fmt = "%H:%M" if bucket < 86400 and window <= 86400 else "%m-%d" if bucket >= 86400 else "%m-%d %H:%M"
    labels = [row["bucket"].strftime(fmt) for row in timeline]
    bucket_text = f"{bucket // 60} min" if bucket < 3600 else f"{bucket // 3600} h" if bucket < 86400 else "day"
    if any(row["negativ"] or row["positiv"] or row["alert"] for row in timeline):
        prediction_chart = charts.bar_chart(
            labels,
            [
                charts.BarSeries("negativ", [row["negativ"] for row in timeline], "#cbd5e1"),
                charts.BarSeries("positiv", [row["positiv"] for row in timeline], "#60a5fa"),
                charts.BarSeries("alert", [row["alert"] for row in timeline], "#7c3aed"),
            ],
            title=f"Predictions per {bucket_text}, {label}", y_unit="predictions", x_unit="UTC", max_labels=6,
        )
    else:
        prediction_chart = charts.empty_chart(f"No predictions, {label}")
    if any(row["success"] or row["failed"] or row["not_applicable"] or row["pending"] for row in verdicts):
        verdict_chart = charts.bar_chart(
            labels,
            [
                charts.BarSeries("success", [row["success"] for row in verdicts], "#16a34a"),
                charts.BarSeries("failed", [row["failed"] for row in verdicts], "#dc2626"),
                charts.BarSeries("expired", [row["not_applicable"] for row in verdicts], "#9ca3af"),
                charts.BarSeries("pending", [row["pending"] for row in verdicts], "#f59e0b"),
            ],
            title=f"Alert verdicts per {bucket_text}, {label}", y_unit="alerts", x_unit="UTC",
            max_labels=6,
        )
    else:
        verdict_chart = charts.empty_chart(f"No alerts, {label}")
    distribution = statistics["probability_distribution"]
    buckets = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)]
    if distribution:
        histogram = charts.bar_chart(
            [b.split("-")[0] for b in buckets],
            [charts.BarSeries("predictions", [distribution.get(b, 0) for b in buckets], "#2563eb")],
            title="Probability histogram (all predictions)", y_unit="predictions", x_unit="probability ≥",
            max_labels=10, legend=False,
        )
    else:
        histogram = charts.empty_chart("No predictions yet")
    return {"prediction_chart": prediction_chart, "verdict_chart": verdict_chart, "histogram": histogram,
            "range_label": label, "bucket_text": bucket_text}


@page_login_required
@require_GET
def model_detail(request, active_model_id: int):
    """`/models/<id>/`: settings, training metrics, versions, charts, recent predictions (filters, paging)."""
    model = _model_or_404(active_model_id)
    template = "modelregistry/model_detail.html"
    if wants_partial(request, "predictions"):
        return render(request, f"{template}#predictions", _predictions_context(request, model))
    range_form = RangeForm(request.GET)
    range_key = range_form.cleaned_data.get("range") if range_form.is_valid() else ""
    first = prediction_selectors.first_prediction_time(active_model_id=model.pk)
    range_key = range_key or _fitting_range(first, timezone.now())
    statistics = model_statistics(active_model_id=model.pk)
    context = {
        **_predictions_context(request, model),
        **_detail_charts(model, range_key, statistics, first=first),
        "statistics": statistics,
        "versions": selectors.model_versions(active_model_id=model.pk),
        "n8n": prediction_selectors.n8n_status(active_model_id=model.pk),
        "range": range_key,
        "ranges": [(key, value[0]) for key, value in TIME_RANGES.items()],
        "target": log_selectors.model_target_text(model),
        **quality_pages.section_context(model, quality_pages.DEFAULT_WINDOW),  # the "Live quality" section
    }
    if wants_partial(request, "charts"):
        return render(request, f"{template}#charts", context)
    return render(request, template, context)


@page_login_required
@require_GET
def model_predictions_csv(request, active_model_id: int):
    """`/models/<id>/predictions.csv`: every prediction the model page's filters select (not just one page)."""
    model = _model_or_404(active_model_id)
    filters, _page = _prediction_filters(PredictionFilterForm(request.GET or None), model)
    return csv_response(request, header=log_selectors.EXPORT_COLUMNS, rows=log_selectors.export_rows(filters=filters),
                        filename=f"model-{model.pk}-predictions.csv")


# --- per-model settings -----------------------------------------------------------------------------------------------


@page_login_required
@require_http_methods(["GET", "POST"])
@post_needs(OPERATE)
def model_config(request, active_model_id: int):
    """`/models/<id>/config/`: every per-model setting in one form, saved in place (hx-post answers the form)."""
    model = _model_or_404(active_model_id)
    saved = False
    status = 200
    if request.method == "POST":
        form = ModelSettingsForm(request.POST)
        if not form.is_valid():
            # The service's own checks (the webhook URL policy, …) of the values the form accepted, so that every
            # problem shows at once rather than one per save.
            accepted = {k: v for k, v in form.settings_changes().items() if k in form.cleaned_data}
            for field, message in services.check_model_settings(**accepted).items():
                form.add_error(field if field in form.fields else None, message)
        else:
            try:
                model = services.update_model_settings(active_model_id=model.pk, **form.settings_changes())
            except services.InvalidSetting as exc:
                for field, message in exc.errors.items():
                    form.add_error(field if field in form.fields else None, message)
            else:
                saved = True
                form = ModelSettingsForm(initial=ModelSettingsForm.initial_for(model))
        if form.errors:
            status = 200 if partial_request(request) else 400
    else:
        form = ModelSettingsForm(initial=ModelSettingsForm.initial_for(model))
    context = {"model": model, "form": form, "saved": saved, "n8n": prediction_selectors.n8n_status(active_model_id=model.pk),
               "error_fields": [form[name] for name in form.errors if name in form.fields]}
    template = "modelregistry/model_config.html"
    return render(request, f"{template}#config_form" if partial_request(request) else template, context, status=status)

