"""Every route of the front doors: the REST API under /api/ and the pages (HTMX, login required).

URL namespaces keep the app names (`modelregistry:detail`, `alerts:list`, …) that the templates use.
"""

from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularJSONAPIView, SpectacularSwaggerView

from web.api.errors import FALLBACK_NAME, api_not_found
from web.api.system.views import RootHealthView
from web.views import alerts as alert_pages
from web.views import assets
from web.views import audit as audit_pages
from web.views import backtests as backtest_pages
from web.views import models as model_pages
from web.views import predictions as prediction_pages
from web.views import quality as quality_pages
from web.views import system as system_pages
from web.views import tokens as token_pages

model_routes = [
    path("models/", model_pages.model_list, name="list"),
    path("models/import/", model_pages.model_import, name="import"),
    path("models/import/available/", model_pages.available_models, name="available"),
    path("models/import/run/", model_pages.import_model, name="import-run"),
    path("models/<int:active_model_id>/", model_pages.model_detail, name="detail"),
    path("models/<int:active_model_id>/predictions.csv", model_pages.model_predictions_csv, name="predictions-csv"),
    path("models/<int:active_model_id>/config/", model_pages.model_config, name="config"),
    path("models/<int:active_model_id>/activate/", model_pages.model_activate, name="activate"),
    path("models/<int:active_model_id>/deactivate/", model_pages.model_deactivate, name="deactivate"),
    path("models/<int:active_model_id>/rename/", model_pages.model_rename, name="rename"),
    path("models/<int:active_model_id>/delete/", model_pages.model_delete, name="delete"),
]

prediction_routes = [
    path("models/<int:active_model_id>/coins/<str:coin_id>/", prediction_pages.coin_detail, name="coin"),
    path("webhooks/", prediction_pages.webhook_list, name="webhooks"),
    path("webhooks/<uuid:delivery_id>/redeliver/", prediction_pages.webhook_redeliver, name="redeliver"),
]

backtest_routes = [
    path("models/<int:active_model_id>/backtests/", backtest_pages.model_backtests, name="model"),
    path("backtests/", backtest_pages.backtest_index, name="index"),
    path("backtests/compare/", backtest_pages.backtest_compare, name="compare"),
    path("backtests/<int:run_id>/", backtest_pages.backtest_run, name="run"),
    path("backtests/<int:run_id>/cancel/", backtest_pages.backtest_cancel, name="cancel"),
]

# models/compare/ is a literal path: models/<int:…>/ cannot take it, and it comes first so the order says so.
quality_routes = [
    path("models/compare/", quality_pages.model_compare, name="compare"),
    path("models/<int:active_model_id>/quality/", quality_pages.model_quality, name="model"),
]

alert_routes = [
    path("alerts/", alert_pages.alert_list, name="list"),
    path("alerts.csv", alert_pages.alerts_csv, name="csv"),
]

# Literal paths under models/ (available, import, upload) come before models/<int:…> so the order says so,
# though that converter only matches digits.
api_routes = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("web.api.models.import_urls")),
    path("", include("web.api.quality.urls")),  # models/compare before models/<int:…>
    path("", include("web.api.models.urls")),
    path("", include("web.api.predictions.urls")),
    path("", include("web.api.alerts.urls")),
    path("", include("web.api.system.urls")),
    path("", include("web.api.audit.urls")),
    path("", include("web.api.backtests.urls")),
    # Last: every other /api/ path answers JSON (404, naming the parameter for an id that is not a number).
    re_path(r"^(?P<unmatched>.*)$", api_not_found, name=FALLBACK_NAME),
]

urlpatterns = [
    path("api/", include(api_routes)),
    path("health", RootHealthView.as_view(), name="health"),
    # The existing server's API docs and schema addresses.
    path("docs", RedirectView.as_view(url="/api/docs/"), name="docs"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-json"),
    path("favicon.ico", assets.favicon, name="favicon"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("settings/", system_pages.settings_page, name="settings"),
    path("info/", system_pages.info, name="info"),
    path("audit/", audit_pages.audit_list, name="audit"),
    path("tokens/", token_pages.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", token_pages.token_revoke, name="token-revoke"),
    path("", include((quality_routes, "quality"))),
    path("", include((model_routes, "modelregistry"))),
    path("", include((alert_routes, "alerts"))),
    path("", include((backtest_routes, "backtests"))),
    path("", include((prediction_routes, "predictions"))),
    path("", system_pages.dashboard, name="dashboard"),
]
