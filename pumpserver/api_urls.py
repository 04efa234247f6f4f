from django.urls import path

from pumpserver import api_views

urlpatterns = [
    path("health", api_views.HealthView.as_view(), name="api-health"),
    path("stats", api_views.StatsView.as_view(), name="stats"),
    path("logs", api_views.LogsView.as_view(), name="logs"),
    path("config", api_views.ConfigView.as_view(), name="config"),
]
