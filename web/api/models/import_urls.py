"""Routes of web/api/models/imports.py; included before the other /api/ routes (web/urls.py)."""

from django.urls import path

from web.api.models.imports import (
    AvailableModelsView,
    AvailableModelView,
    ImportModelView,
    ModelVersionsView,
    UploadModelView,
)

urlpatterns = [
    path("models/available", AvailableModelsView.as_view(), name="models-available"),
    path("models/available/<int:model_id>", AvailableModelView.as_view(), name="models-available-detail"),
    path("models/import", ImportModelView.as_view(), name="models-import"),
    path("models/upload", UploadModelView.as_view(), name="models-upload"),
    path("models/<int:active_model_id>/versions", ModelVersionsView.as_view(), name="models-versions"),
]
