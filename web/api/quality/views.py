"""Live model quality under /api/: one model's figures over a window, several models side by side (with McNemar's
test per pair), and a model's quality settings.

The figures come from the worker's hourly aggregates (quality.selectors); these views validate, call them and shape
the answer. Bad input answers 400 naming the field ({field: [message]}), unknown ids 404 {"detail": …}.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from modelregistry.models import ActiveModel
from modelregistry.selectors import get_model
from pumpserver.scopes import OPERATE, READ
from quality import selectors as quality_selectors
from quality import services as quality_services
from web.api.common import BAD_REQUEST, NOT_FOUND, query_data, validated
from web.api.quality import answers
from web.api.quality import serializers as s

TAGS = ["quality"]
INVALID_FIELDS = OpenApiResponse(description="Invalid fields, named in the body: {field: [message]}.")


class QualityAPIView(APIView):
    """Answers unknown models with 404 and refused settings with 400 naming the field."""

    parser_classes = [JSONParser]

    def handle_exception(self, exc):
        if isinstance(exc, ActiveModel.DoesNotExist):
            exc = NotFound(f"model {self.kwargs.get('active_model_id')} not found")
        elif isinstance(exc, answers.ModelsNotFound):
            exc = NotFound(str(exc))
        elif isinstance(exc, DjangoValidationError):
            exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
        return super().handle_exception(exc)


class ModelQualityView(QualityAPIView):
    """`GET /api/models/{id}/quality?window=24h` (or `start` and `end`)."""

    required_scopes = {"GET": READ}

    @extend_schema(
        tags=TAGS,
        operation_id="model_quality",
        parameters=[s.WindowQuerySerializer],
        responses={200: s.QualitySerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, active_model_id: int):
        """The model's live figures over a window (1h, 24h, 7d, all; or start/end): alert success rate with its
        Wilson 95 % interval, precision/recall/F1, ROC AUC, Brier score, calibration, price change, ATH gain,
        feature drift (PSI), the degradation flag, and the references it is held against (training, backtest).
        Computed from whole hours of the worker's aggregates."""
        model = get_model(active_model_id=active_model_id)
        window = validated(s.WindowQuerySerializer, query_data(request.query_params))
        return Response(answers.model_quality(model, window=window["window"], start=window["start"],
                                              end=window["end"]))


class CompareView(QualityAPIView):
    """`GET /api/models/compare?ids=1,2&window=7d`."""

    required_scopes = {"GET": READ}
    model_list_parameter = "ids"  # the compared models, checked against a model-limited token (web.api.scopes)

    @extend_schema(
        tags=TAGS,
        operation_id="models_compare",
        parameters=[s.CompareQuerySerializer],
        responses={200: s.CompareSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request):
        """Two to six models over the same window, each with the figures of /api/models/{id}/quality, and for each
        pair McNemar's exact test on the coin events both were judged on: `better` names the model that is right
        more often at p < 0.05 (null: no clear difference)."""
        query = validated(s.CompareQuerySerializer, query_data(request.query_params))
        models = answers.models_of(query["ids"])
        return Response(answers.comparison(models, window=query["window"], start=query["start"], end=query["end"]))


class QualitySettingsView(QualityAPIView):
    """`GET/PATCH /api/models/{id}/quality-settings`."""

    required_scopes = {"GET": READ, "PATCH": OPERATE}

    @extend_schema(tags=TAGS, operation_id="model_quality_settings_retrieve",
                   responses={200: s.QualitySettingsSerializer, 404: NOT_FOUND})
    def get(self, request, active_model_id: int):
        """How strictly the model is watched (margin, minimum judged alerts, PSI threshold, auto-pause) and what the
        last check found (degraded, reasons, since when)."""
        get_model(active_model_id=active_model_id)
        return Response(s.QualitySettingsSerializer(quality_selectors.settings_of(active_model_id=active_model_id)).data)

    @extend_schema(
        tags=TAGS,
        operation_id="model_quality_settings_update",
        request=s.QualitySettingsChangeSerializer,
        responses={200: s.QualitySettingsSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """Change some of margin, min_judged_alerts, psi_threshold and auto_pause; the others stay. The next check
        of the worker (every 5 minutes) applies them."""
        get_model(active_model_id=active_model_id)
        changes = validated(s.QualitySettingsChangeSerializer, request.data)
        stored = quality_services.update_settings(active_model_id=active_model_id, changes=changes)
        return Response(s.QualitySettingsSerializer(stored).data)
