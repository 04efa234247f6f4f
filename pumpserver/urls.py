from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from pumpserver.api_views import RootHealthView
from pumpserver.views import MetricsView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/metrics", MetricsView.as_view(), name="api-metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("modelregistry.api.import_urls")),
    path("api/", include("modelregistry.api.urls")),
    path("api/", include("predictions.api.urls")),
    path("api/", include("alerts.api.urls")),
    path("api/", include("pumpserver.api_urls")),
    path("health", RootHealthView.as_view(), name="health"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
