from django.urls import path

from web.api.system import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="api-health"),
    path("health/ready", views.ReadinessView.as_view(), name="api-health-ready"),
    path("stats", views.StatsView.as_view(), name="stats"),
    path("logs", views.LogsView.as_view(), name="logs"),
    path("config", views.ConfigView.as_view(), name="config"),
]
