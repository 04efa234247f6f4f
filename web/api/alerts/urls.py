from django.urls import path

from web.api.alerts import views

urlpatterns = [
    path("alerts/statistics", views.AlertStatisticsView.as_view(), name="alerts-statistics"),
    path("alerts", views.AlertsView.as_view(), name="alerts"),
    path("alerts.csv", views.AlertsCsvView.as_view(), name="alerts-csv"),
    path("alerts/<int:alert_id>", views.AlertDetailsView.as_view(), name="alert-details"),
    path("models/alert-statistics", views.ModelsAlertStatisticsView.as_view(), name="models-alert-statistics"),
    path("models/<int:active_model_id>/statistics", views.ModelStatisticsView.as_view(), name="model-statistics"),
    path("models/<int:active_model_id>/alerts", views.ModelAlertsView.as_view(), name="model-alerts"),
]
