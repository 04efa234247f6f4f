"""Reads of the model registry: models with their prediction statistics, per-model settings, n8n delivery status.

API views, pages and MCP tools read through these functions, so every front door reports the same numbers.
"""

from __future__ import annotations

from django.db.models import Avg, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from modelregistry.models import ActiveModel, ModelArtifact
from predictions.models import Tag, WebhookLog
from pumpserver import config

N8N_URL_DISPLAY_LENGTH = 50  # n8n-status shows at most this many characters of the URL, then "..."


def models_with_statistics() -> QuerySet[ActiveModel]:
    """Models annotated with what ModelInfo reports, in its order (active first, newest first); one query.

    Annotations: `prediction_count`, `alert_count` (tag alert), `non_alert_count`, `average_probability`
    (over the model's model_predictions rows), `model_file_exists`, `artifact_version` (the current version)
    and `artifact_versions` (how many versions are stored).
    """
    artifacts = ModelArtifact.objects.filter(model=OuterRef("pk")).order_by()
    is_alert = Q(predictions__tag=Tag.ALERT)
    return ActiveModel.objects.annotate(
        prediction_count=Count("predictions"),
        alert_count=Count("predictions", filter=is_alert),
        non_alert_count=Count("predictions", filter=~is_alert),
        average_probability=Avg("predictions__probability"),
        model_file_exists=Exists(artifacts.filter(is_current=True)),
        artifact_version=Subquery(artifacts.filter(is_current=True).values("version")[:1]),
        artifact_versions=Coalesce(
            Subquery(artifacts.values("model").annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()),
            0,
        ),
    ).order_by("-is_active", "-created_at", "-pk")


def list_models(*, include_inactive: bool = False) -> QuerySet[ActiveModel]:
    models = models_with_statistics()
    return models if include_inactive else models.filter(is_active=True)


def get_model_with_statistics(*, active_model_id: int) -> ActiveModel:
    """One model (active or not) with the ModelInfo annotations; raises ActiveModel.DoesNotExist."""
    return models_with_statistics().get(pk=active_model_id)


def get_model(*, active_model_id: int) -> ActiveModel:
    """The model's row with its settings; raises ActiveModel.DoesNotExist."""
    return ActiveModel.objects.get(pk=active_model_id)


def n8n_status(*, active_model_id: int) -> dict:
    """How the last webhook POST to the model's target URL went (the URL is shared, so not per model).

    The target is the model's own URL, else the global one (N8N_WEBHOOK_URL or the stored UI setting).
    Keys depend on the case: unknown model / no URL → `status`, `message`; no attempt yet → also `n8n_url`;
    otherwise `status` (ok: 2xx; error: an error message or a status ≥ 300; unknown: neither, e.g. a timeout
    without text), `last_attempt`, `last_status`, `last_error`, `n8n_url`.
    """
    own_urls = list(ActiveModel.objects.filter(pk=active_model_id).values_list("n8n_webhook_url", flat=True))
    if not own_urls:
        return {"status": "unknown", "message": "Modell nicht gefunden"}
    url = own_urls[0] or config.global_n8n_webhook_url()
    if not url:
        return {"status": "no_url", "message": "Keine n8n URL konfiguriert"}
    shown_url = url[:N8N_URL_DISPLAY_LENGTH] + "..." if len(url) > N8N_URL_DISPLAY_LENGTH else url
    last = (
        WebhookLog.objects.filter(webhook_url=url)
        .order_by("-created_at", "-pk")
        .values("response_status", "error_message", "created_at")
        .first()
    )
    if last is None:
        return {"status": "unknown", "message": "Noch kein Webhook-Versuch", "n8n_url": shown_url}
    response_status, error_message = last["response_status"], last["error_message"]
    if response_status and 200 <= response_status < 300:
        status = "ok"
    elif error_message or (response_status and response_status >= 300):
        status = "error"
    else:
        status = "unknown"
    return {
        "status": status,
        "last_attempt": last["created_at"],
        "last_status": response_status,
        "last_error": error_message,
        "n8n_url": shown_url,
    }


def model_versions(*, active_model_id: int) -> list[dict]:
    """The stored versions of a model's file, newest first (without the file itself)."""
    return list(
        ModelArtifact.objects.filter(model_id=active_model_id)
        .order_by("-version")
        .values("version", "format", "sha256", "size_bytes", "created_at", "is_current")
    )
