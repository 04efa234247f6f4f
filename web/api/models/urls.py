"""Model management and per-model settings under /api/ (no trailing slashes, as the existing server).

Literal paths under models/ (active here; available, import, alert-statistics elsewhere) cannot be taken by
models/<int:…>, whose converter only matches digits; they still come first so the order says so.
"""

from django.urls import path

from web.api.models import views

urlpatterns = [
    path("models", views.ModelListView.as_view(), name="models"),
    path("models/active", views.ModelListView.as_view(), name="models-active"),
    path("models/<int:active_model_id>", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<int:active_model_id>/activate", views.ModelActivateView.as_view(), name="model-activate"),
    path("models/<int:active_model_id>/deactivate", views.ModelDeactivateView.as_view(), name="model-deactivate"),
    path("models/<int:active_model_id>/rename", views.ModelRenameView.as_view(), name="model-rename"),
    path(
        "models/<int:active_model_id>/update-metrics",
        views.ModelUpdateMetricsView.as_view(),
        name="model-update-metrics",
    ),
    path(
        "models/<int:active_model_id>/alert-threshold", views.AlertThresholdView.as_view(), name="model-alert-threshold"
    ),
    path("models/<int:active_model_id>/n8n-settings", views.N8nSettingsView.as_view(), name="model-n8n-settings"),
    path("models/<int:active_model_id>/alert-config", views.AlertConfigView.as_view(), name="model-alert-config"),
    path(
        "models/<int:active_model_id>/ignore-settings", views.IgnoreSettingsView.as_view(), name="model-ignore-settings"
    ),
    path(
        "models/<int:active_model_id>/max-log-entries", views.MaxLogEntriesView.as_view(), name="model-max-log-entries"
    ),
    path("models/<int:active_model_id>/n8n-status", views.N8nStatusView.as_view(), name="model-n8n-status"),
]
