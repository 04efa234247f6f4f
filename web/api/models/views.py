"""Model management (spec §1.2 M1–M8) and per-model settings (§1.4 C1–C8).

Each view validates its input with a serializer, calls one service or selector, and shapes the answer.
Unknown ids answer 404 {"detail": "Model not found"}; refused values 400 naming the field.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from modelregistry import selectors, services
from modelregistry.models import ActiveModel
from modelregistry.training_service import TrainingServiceError
from predictions import selectors as prediction_selectors
from pumpserver.scopes import ADMIN, OPERATE, READ
from web.api.common import validated
from web.api.models import serializers as s
from web.api.scopes import allows_model

MODEL_NOT_FOUND = "Model not found"

NOT_FOUND = OpenApiResponse(s.ErrorDetailSerializer, description=MODEL_NOT_FOUND)
INVALID_FIELDS = OpenApiResponse(description="Invalid fields, named in the body: {field: [message]}.")
TAGS = ["models"]


class OperationRefusedError(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"


class WholeBodyPatchSchema(AutoSchema):
    """Documents PATCH bodies as validated: required fields and defaults apply (these PATCH endpoints are the
    existing server's, not DRF partial updates, which drf-spectacular assumes for PATCH)."""

    def _get_request_for_media_type(self, serializer, direction="request"):
        if self.method != "PATCH":
            return super()._get_request_for_media_type(serializer, direction)
        self.method = "PUT"  # the only difference drf-spectacular makes between the two is the partial body
        try:
            return super()._get_request_for_media_type(serializer, direction)
        finally:
            self.method = "PATCH"


class ModelRegistryView(APIView):
    """Answers the registry's exceptions: unknown id → 404, refused value → 400 naming the field, refused
    operation → 400 with the reason, training-service failure → its status. The views catch nothing themselves."""

    parser_classes = [JSONParser]
    schema = WholeBodyPatchSchema()

    def handle_exception(self, exc):
        if isinstance(exc, ActiveModel.DoesNotExist):
            exc = NotFound(MODEL_NOT_FOUND)
        elif isinstance(exc, services.InvalidSetting):
            exc = ValidationError({field: [message] for field, message in exc.errors.items()})
        elif isinstance(exc, services.OperationRefused):
            exc = OperationRefusedError(str(exc))
        elif isinstance(exc, TrainingServiceError):
            answer = APIException(str(exc))
            answer.status_code = exc.status
            exc = answer
        return super().handle_exception(exc)


def _action(message: str, active_model_id: int, **extra) -> Response:
    return Response({"message": message, "active_model_id": active_model_id, **extra})


# --- M1–M8 -------------------------------------------------------------------------------------------------------


class ModelListView(ModelRegistryView):
    """M1 `GET /api/models` and M2 `GET /api/models/active` (the same list): active models, or all of them."""

    required_scopes = {"GET": READ}

    @extend_schema(tags=TAGS, parameters=[s.ModelListQuerySerializer],
                   responses={200: s.ModelListSerializer, 400: INVALID_FIELDS})
    def get(self, request):
        include_inactive = validated(s.ModelListQuerySerializer, request.query_params)["include_inactive"]
        listed = prediction_selectors.list_models(include_inactive=include_inactive)
        models = s.with_quality_state([model for model in listed if allows_model(request, model.pk)])
        return Response(s.ModelListSerializer({"models": models, "total": len(models)}).data)


class ModelDetailView(ModelRegistryView):
    """M3 `GET /api/models/{id}` (inactive models too) and M7 `DELETE /api/models/{id}`."""

    required_scopes = {"GET": READ, "DELETE": ADMIN}

    @extend_schema(tags=TAGS, operation_id="api_models_detail", responses={200: s.ModelInfoSerializer, 404: NOT_FOUND})
    def get(self, request, active_model_id: int):
        model = prediction_selectors.get_model_with_statistics(active_model_id=active_model_id)
        return Response(s.ModelInfoSerializer(model).data)

    @extend_schema(tags=TAGS, responses={200: s.DeletedModelSerializer, 404: NOT_FOUND})
    def delete(self, request, active_model_id: int):
        """Delete the model, its predictions, scan-cache rows and stored files (the webhook log stays)."""
        model = services.delete_model(active_model_id=active_model_id)
        return _action(
            f"Model {active_model_id} deleted", active_model_id, model_id=model.model_id, model_name=model.model_name
        )


class ModelActivateView(ModelRegistryView):
    required_scopes = {"POST": OPERATE}

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={
            200: s.ModelActionSerializer,
            400: OpenApiResponse(s.ErrorDetailSerializer, description="The model file does not load; says why."),
            404: NOT_FOUND,
        },
    )
    def post(self, request, active_model_id: int):
        """M4: activate after checking that the stored model file loads; a broken model stays inactive (400)."""
        services.activate_model(active_model_id=active_model_id)
        return _action(f"Model {active_model_id} activated", active_model_id)


class ModelDeactivateView(ModelRegistryView):
    required_scopes = {"POST": OPERATE}

    @extend_schema(tags=TAGS, request=None, responses={200: s.ModelActionSerializer, 404: NOT_FOUND})
    def post(self, request, active_model_id: int):
        """M5: no new predictions; pending ones are still evaluated."""
        services.deactivate_model(active_model_id=active_model_id)
        return _action(f"Model {active_model_id} deactivated", active_model_id)


class ModelRenameView(ModelRegistryView):
    required_scopes = {"PATCH": OPERATE}

    @extend_schema(
        tags=TAGS,
        request=s.RenameSerializer,
        responses={200: s.ModelActionSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """M6: set the display name (`name`, or `custom_name`), verbatim; an empty or blank name is refused (400)."""
        custom_name = validated(s.RenameSerializer, request.data)["custom_name"]
        try:
            services.rename_model(active_model_id=active_model_id, custom_name=custom_name)
        except services.InvalidSetting as exc:  # named as the request named it
            raise ValidationError({"name" if "name" in request.data else "custom_name": [exc.message]}) from None
        return _action(f"Model {active_model_id} renamed to '{custom_name}'", active_model_id)


class ModelUpdateMetricsView(ModelRegistryView):
    required_scopes = {"POST": OPERATE}

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={
            200: s.MessageSerializer,
            400: OpenApiResponse(s.ErrorDetailSerializer, description="Not a training-service model."),
            404: NOT_FOUND,
            502: OpenApiResponse(s.ErrorDetailSerializer, description="The training service failed or is unreachable."),
            503: OpenApiResponse(s.ErrorDetailSerializer, description="TRAINING_SERVICE_API_URL is not set."),
        },
    )
    def post(self, request, active_model_id: int):
        """M8: re-read accuracy, F1, precision, recall, ROC AUC, MCC, confusion matrix and simulated profit."""
        services.refresh_training_metrics(active_model_id=active_model_id)
        return Response({"message": f"Training metrics of model {active_model_id} updated"})


# --- C1–C8 -------------------------------------------------------------------------------------------------------


class AlertThresholdView(ModelRegistryView):
    required_scopes = {"PATCH": OPERATE}

    @extend_schema(
        tags=TAGS,
        request=s.AlertThresholdSerializer,
        responses={200: s.AlertThresholdResponseSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """C1: the probability from which a result is an alert (0..1)."""
        threshold = validated(s.AlertThresholdSerializer, request.data)["alert_threshold"]
        services.update_model_settings(active_model_id=active_model_id, alert_threshold=threshold)
        return _action(
            f"Alert threshold of model {active_model_id} set to {threshold:.0%}",
            active_model_id,
            alert_threshold=threshold,
        )


class N8nSettingsView(ModelRegistryView):
    required_scopes = {"PATCH": OPERATE}

    @extend_schema(
        tags=TAGS,
        request=s.N8nSettingsSerializer,
        responses={200: s.N8nSettingsResponseSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """C2 (legacy): partial update of URL, one send mode and the on/off switch; the request is echoed."""
        changes = validated(s.N8nSettingsSerializer, request.data)
        services.update_model_settings(active_model_id=active_model_id, **changes)
        return Response(
            s.N8nSettingsResponseSerializer(
                {"message": f"n8n settings of model {active_model_id} updated",
                 "active_model_id": active_model_id, **changes}
            ).data
        )


class AlertConfigView(ModelRegistryView):
    required_scopes = {"PATCH": OPERATE}

    @extend_schema(
        tags=TAGS,
        request=s.AlertConfigSerializer,
        responses={200: s.AlertConfigResponseSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """C3: the model's whole alert configuration.

        Kept from the existing server because clients rely on it: this is a full replace of five fields and a
        partial update of three. Omitted `n8n_enabled` becomes true, `n8n_send_mode` ["all"], `alert_threshold`
        0.7, `coin_filter_mode` "all" and `send_ignored_to_n8n` false; omitted (or null) `n8n_webhook_url`,
        `coin_whitelist` and `min_scan_interval_seconds` stay unchanged. `n8n_webhook_url: ""` clears the URL
        (the global N8N_WEBHOOK_URL applies again). Send every field to be sure of the outcome; for a true partial
        update use C1/C2/C5/C7. `config` echoes the request after defaulting.
        """
        config = validated(s.AlertConfigSerializer, request.data)
        services.update_model_settings(active_model_id=active_model_id, **config)
        return Response(
            s.AlertConfigResponseSerializer(
                {"message": f"Alert configuration of model {active_model_id} updated",
                 "active_model_id": active_model_id, "config": config}
            ).data
        )


class IgnoreSettingsView(ModelRegistryView):
    """C4/C5: seconds a coin is skipped by the model after a bad, positive or alert result."""

    required_scopes = {"GET": READ, "PATCH": OPERATE}

    @extend_schema(tags=TAGS, responses={200: s.IgnoreSettingsSerializer, 404: NOT_FOUND})
    def get(self, request, active_model_id: int):
        return Response(s.IgnoreSettingsSerializer(selectors.get_model(active_model_id=active_model_id)).data)

    @extend_schema(
        tags=TAGS,
        request=s.IgnoreSettingsSerializer,
        responses={200: s.IgnoreSettingsResponseSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """Full replace: omitted values become 0 (never ignore)."""
        seconds = validated(s.IgnoreSettingsSerializer, request.data)
        services.update_model_settings(active_model_id=active_model_id, **seconds)
        message = f"Coin ignore settings of model {active_model_id} updated"
        return _action(message, active_model_id, **seconds)


class MaxLogEntriesView(ModelRegistryView):
    """C6/C7: per coin and tag, how many pending predictions the model stores at most."""

    required_scopes = {"GET": READ, "PATCH": OPERATE}

    @extend_schema(tags=TAGS, responses={200: s.MaxLogEntriesSerializer, 404: NOT_FOUND})
    def get(self, request, active_model_id: int):
        return Response(s.MaxLogEntriesSerializer(selectors.get_model(active_model_id=active_model_id)).data)

    @extend_schema(
        tags=TAGS,
        request=s.MaxLogEntriesSerializer,
        responses={200: s.MaxLogEntriesResponseSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def patch(self, request, active_model_id: int):
        """Full replace: omitted values become 0 (unlimited)."""
        caps = validated(s.MaxLogEntriesSerializer, request.data)
        services.update_model_settings(active_model_id=active_model_id, **caps)
        message = f"Max log entries of model {active_model_id} updated"
        return _action(message, active_model_id, **caps)


class N8nStatusView(ModelRegistryView):
    required_scopes = {"GET": READ}

    @extend_schema(tags=TAGS, responses={200: s.N8nStatusSerializer})
    def get(self, request, active_model_id: int):
        """C8: how the newest webhook POST to the model's URL went; 200 also for unknown ids (status unknown)."""
        return Response(prediction_selectors.n8n_status(active_model_id=active_model_id))
