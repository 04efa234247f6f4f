"""Live model quality under /api/ (no trailing slashes, as the other endpoints). models/compare is a literal path:
models/<int:…> cannot take it (its converter only matches digits), and it comes first so the order says so."""

from django.urls import path

from web.api.quality import views

urlpatterns = [
    path("models/compare", views.CompareView.as_view(), name="models-compare"),
    path("models/<int:active_model_id>/quality", views.ModelQualityView.as_view(), name="model-quality"),
    path("models/<int:active_model_id>/quality-settings", views.QualitySettingsView.as_view(),
         name="model-quality-settings"),
]
