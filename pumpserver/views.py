"""The kernel's one view: Prometheus metrics of every process (pages, REST and MCP live in `web/`)."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from rest_framework.views import APIView

from pumpserver.permissions import MetricsPublic
from pumpserver.scopes import READ


class MetricsView(APIView):
    """Prometheus exposition of every process's metrics (web, listener, worker) from the shared directory."""

    required_scopes = {"GET": READ}

    permission_classes = [MetricsPublic]
    rate_limited = False  # scrapes are never refused for rate (pumpserver.limits)

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
