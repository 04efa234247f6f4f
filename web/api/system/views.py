"""Monitoring, statistics, logs and the persisted UI configuration: /api/health (and /health), /api/health/ready,
/api/stats, /api/logs, /api/config."""

from __future__ import annotations

import json

from django.db import DatabaseError, InterfaceError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.selectors import system_stats
from pumpserver import config
from pumpserver.permissions import HealthPublic
from pumpserver.scopes import ADMIN, READ
from web import selectors
from web.api.common import BAD_REQUEST, query_data, validated

HEALTH_AUTH = [{"tokenAuth": []}, {"cookieAuth": []}, {}]  # open unless HEALTH_PUBLIC=false


# --- health ---------------------------------------------------------------------------------------------------------


class DatabaseCheckSerializer(serializers.Serializer):
    connected = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True, help_text="SELECT 1 round trip.")


class ProcessCheckSerializer(serializers.Serializer):
    alive = serializers.BooleanField(help_text="A heartbeat within HEARTBEAT_STALE_SECONDS.")
    last_seen = serializers.DateTimeField(allow_null=True, help_text="Newest heartbeat of this kind, live or not.")
    count = serializers.IntegerField(help_text="Live processes of this kind.")


class ModelsCheckSerializer(serializers.Serializer):
    active = serializers.IntegerField()
    loaded = serializers.IntegerField(help_text="Most models a live listener reports loaded.")
    errored = serializers.ListField(child=serializers.IntegerField(), help_text="Active models with a load error.")


class HealthChecksSerializer(serializers.Serializer):
    database = DatabaseCheckSerializer()
    listener = ProcessCheckSerializer()
    worker = ProcessCheckSerializer()
    models = ModelsCheckSerializer()
    queue_depth = serializers.IntegerField(
        allow_null=True, help_text=f"Queued coin_metrics rows (counted up to {selectors.QUEUE_DEPTH_CAP})."
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded"])
    db_connected = serializers.BooleanField()
    active_models = serializers.IntegerField()
    predictions_last_hour = serializers.IntegerField()
    degraded_models = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Models flagged degraded by the live-quality check (ids); they do not change status.",
    )
    uptime_seconds = serializers.IntegerField(help_text="Of this web process.")
    start_time = serializers.FloatField(allow_null=True, help_text="Unix time this web process started.")
    last_error = serializers.CharField(allow_null=True, help_text="What is wrong, when degraded.")
    checks = HealthChecksSerializer()


class HealthView(APIView):
    """The health report, always 200 (as the existing server answered): `status` says healthy or degraded.

    Healthy means the database answers and a listener and a worker sent a heartbeat lately. For a check that
    fails while anything is down (load balancers, alerting) use ReadinessView.
    """

    required_scopes = {"GET": READ}

    permission_classes = [HealthPublic]
    rate_limited = False  # health checks are never refused for rate (pumpserver.limits)
    degraded_status = 200

    def perform_authentication(self, request):
        pass  # lazy: a public health check must not need the database to look up a token or session

    def handle_exception(self, exc):
        if isinstance(exc, (DatabaseError, InterfaceError)):
            # The token or session of a private health check could not be looked up: the database is down, which
            # is the answer, not a server error.
            report = selectors.health()
            if not report["db_connected"]:
                return Response(HealthSerializer(report).data, status=self.degraded_status)
            exc = NotAuthenticated()  # the database is back, but this request's credentials were not checked
        return super().handle_exception(exc)

    def answer(self):
        report = selectors.health()
        status = 200 if report["status"] == "healthy" else self.degraded_status
        return Response(HealthSerializer(report).data, status=status)

    @extend_schema(
        operation_id="health",
        auth=HEALTH_AUTH,
        responses={200: OpenApiResponse(HealthSerializer, description="healthy or degraded (see status)")},
    )
    def get(self, request):
        return self.answer()


class RootHealthView(HealthView):
    """`/health`: the same as `/api/health`."""

    @extend_schema(
        operation_id="health_root",
        auth=HEALTH_AUTH,
        responses={200: OpenApiResponse(HealthSerializer, description="healthy or degraded (see status)")},
    )
    def get(self, request):
        return self.answer()


class ReadinessView(HealthView):
    """`/api/health/ready`: the same report, but 503 while the database, every listener or every worker is down."""

    degraded_status = 503

    @extend_schema(
        operation_id="health_ready",
        auth=HEALTH_AUTH,
        responses={200: HealthSerializer, 503: OpenApiResponse(HealthSerializer, description="degraded")},
    )
    def get(self, request):
        return self.answer()


# --- statistics -----------------------------------------------------------------------------------------------------


class SystemStatsSerializer(serializers.Serializer):
    total_predictions = serializers.IntegerField()
    predictions_last_hour = serializers.IntegerField()
    predictions_last_24h = serializers.IntegerField()
    predictions_last_7d = serializers.IntegerField()
    active_models = serializers.IntegerField()
    coins_tracked = serializers.IntegerField()
    avg_prediction_time_ms = serializers.FloatField(allow_null=True)
    webhook_total = serializers.IntegerField()
    webhook_success = serializers.IntegerField(help_text="Attempts answered 2xx.")
    webhook_failed = serializers.IntegerField()


class StatsView(APIView):
    """System-wide prediction and webhook figures."""

    required_scopes = {"GET": READ}
    server_wide = True  # every model's figures: refused to a model-limited token (web.api.scopes)

    @extend_schema(operation_id="stats", responses={200: SystemStatsSerializer})
    def get(self, request):
        return Response(SystemStatsSerializer(system_stats()).data)


# --- logs -----------------------------------------------------------------------------------------------------------


class PlainTextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        return json.dumps(data, ensure_ascii=False).encode(self.charset)


class LogsQuerySerializer(serializers.Serializer):
    tail = serializers.IntegerField(min_value=1, max_value=selectors.LOG_TAIL_MAX, default=100)


class LogsView(APIView):
    """The last `tail` lines of LOG_FILE as text (or a one-line hint when no log file is configured)."""

    required_scopes = {"GET": READ}
    server_wide = True  # every model's log lines: refused to a model-limited token (web.api.scopes)

    renderer_classes = [JSONRenderer, PlainTextRenderer]

    @extend_schema(
        operation_id="logs",
        parameters=[LogsQuerySerializer, OpenApiParameter("format", exclude=True)],
        responses={(200, "text/plain"): OpenApiTypes.STR, 400: BAD_REQUEST},
    )
    def get(self, request):
        query = validated(LogsQuerySerializer, query_data(request.query_params))
        text = selectors.log_tail(lines=query["tail"])
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


# --- persisted UI configuration -------------------------------------------------------------------------------------


class ConfigValuesSerializer(serializers.Serializer):
    database_url = serializers.CharField(
        allow_null=True, help_text="The configured database, password masked (read-only: set DATABASE_URL)."
    )
    training_service_url = serializers.CharField(allow_blank=True, help_text="Wins over TRAINING_SERVICE_API_URL.")
    n8n_webhook_url = serializers.CharField(
        allow_blank=True, help_text="Global webhook for models without their own; N8N_WEBHOOK_URL wins."
    )
    api_port = serializers.IntegerField(min_value=1, max_value=65535, help_text="Informational.")
    streamlit_port = serializers.IntegerField(min_value=1, max_value=65535, help_text="Informational.")


class ConfigUpdateSerializer(serializers.Serializer):
    """Keys to change (shallow merge); null or "" resets one to its default. Unknown keys are refused."""

    database_url = serializers.CharField(
        required=False, allow_null=True, allow_blank=True,
        help_text="Read-only: accepted only unchanged (as GET shows it, or the real value).",
    )
    training_service_url = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=2000, help_text="http(s) URL."
    )
    n8n_webhook_url = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=2000,
        help_text="http(s) URL that webhooks may reach (WEBHOOK_ALLOWED_HOSTS for private addresses).",
    )
    api_port = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=65535)
    streamlit_port = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=65535)


class ConfigResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    config = ConfigValuesSerializer()
    timestamp = serializers.DateTimeField()


class ConfigUpdateResponseSerializer(ConfigResponseSerializer):
    message = serializers.CharField()
    requires_restart = serializers.BooleanField(help_text="Always false: every process reads the values at use.")
    auto_restart = serializers.BooleanField(help_text="Always false: nothing restarts.")


class ConfigView(APIView):
    """The persisted UI configuration: read it, or shallow-merge changes into it (no restart needed)."""

    required_scopes = {"GET": READ, "POST": ADMIN}
    parser_classes = [JSONParser]  # the keys' types (ports are integers) exist only in JSON; form data is all strings

    @extend_schema(operation_id="config_retrieve", responses={200: ConfigResponseSerializer})
    def get(self, request):
        return Response(
            ConfigResponseSerializer(
                {"success": True, "config": config.get_config(), "timestamp": timezone.now()}
            ).data
        )

    @extend_schema(
        operation_id="config_update",
        request=ConfigUpdateSerializer,
        responses={200: ConfigUpdateResponseSerializer, 400: BAD_REQUEST},
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            return Response({"non_field_errors": ["The body must be a JSON object."]}, status=400)
        try:
            merged = config.update_config(changes=dict(request.data))
        except config.ConfigError as exc:
            return Response(exc.errors, status=400)
        return Response(
            ConfigUpdateResponseSerializer(
                {
                    "success": True,
                    "message": "Configuration saved; it applies without a restart.",
                    "config": merged,
                    "requires_restart": False,
                    "auto_restart": False,
                    "timestamp": timezone.now(),
                }
            ).data
        )
