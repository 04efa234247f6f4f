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

# JSON under /api/, Django's pages elsewhere (named by string: the kernel imports no front door).
handler400 = "web.api.errors.handler400"
handler403 = "web.api.errors.handler403"
handler404 = "web.api.errors.handler404"
handler500 = "web.api.errors.handler500"
