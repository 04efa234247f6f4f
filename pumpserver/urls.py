from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from pumpserver.api_views import RootHealthView
from pumpserver import views as page_views
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
    # Pages (HTMX, login required): dashboard, settings and info here; the rest in the apps' urls.py.
    path("accounts/", include("django.contrib.auth.urls")),
    path("settings/", page_views.settings_page, name="settings"),
    path("info/", page_views.info, name="info"),
    path("info/token/", page_views.info_token, name="info-token"),
    path("", include("modelregistry.urls")),
    path("", include("alerts.urls")),
    path("", include("predictions.urls")),
    path("", page_views.dashboard, name="dashboard"),
]
