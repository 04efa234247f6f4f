"""Model pages (the REST routes are in modelregistry/api/)."""

from django.urls import path

from modelregistry import views

app_name = "modelregistry"

urlpatterns = [
    path("models/", views.model_list, name="list"),
    path("models/import/", views.model_import, name="import"),
    path("models/import/available/", views.available_models, name="available"),
    path("models/import/run/", views.import_model, name="import-run"),
    path("models/<int:active_model_id>/", views.model_detail, name="detail"),
    path("models/<int:active_model_id>/config/", views.model_config, name="config"),
    path("models/<int:active_model_id>/activate/", views.model_activate, name="activate"),
    path("models/<int:active_model_id>/deactivate/", views.model_deactivate, name="deactivate"),
    path("models/<int:active_model_id>/rename/", views.model_rename, name="rename"),
    path("models/<int:active_model_id>/delete/", views.model_delete, name="delete"),
]
