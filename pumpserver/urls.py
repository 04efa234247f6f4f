"""Root URLs: the admin and metrics here; the front doors (REST API and pages) in web/urls.py."""

from django.contrib import admin
from django.urls import include, path

from pumpserver.views import MetricsView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/metrics", MetricsView.as_view(), name="api-metrics"),
    path("", include("web.urls")),
]
