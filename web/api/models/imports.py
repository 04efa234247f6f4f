"""Import from the training service (T1-T3), uploads and artifact versions: serializers and views.

Differences from the existing server, on purpose:

* T1 `GET /api/models/available`: a training-service failure answers 502 (503 when it is not configured) with the
  reason in `detail`, instead of "200 with an empty list", so a client can tell "nothing to import" from "service
  down".
* T2 answers 404 only when the training service says 404; unreachable/bad answers are 502.
* T3 `POST /api/models/import`: never installs a placeholder model (weakness 15). An already imported id still
  answers 400, as the spec says, unless the body asks `{"new_version": true}`: then the file is downloaded again
  and stored as a new version of the same model (settings kept). `model_file_url` is accepted and ignored: files
  are only ever downloaded from the operator-configured training service (the one trusted pickle source).
* `local_model_path` in T3's answer names the stored artifact (`db:model_artifacts/<active_model_id>/v<version>`):
  files live in the database, versioned, not on the web server's disk.
"""

from __future__ import annotations

import json

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from modelregistry import selectors, services
from modelregistry.models import ActiveModel, ModelArtifact
from modelregistry.training_service import TrainingServiceClient, TrainingServiceError, available_model
from pumpserver import limits
from pumpserver.scopes import ADMIN, READ
from web.api.common import field_errors

MAX_META_BYTES = 5 * 1024 * 1024


# --- serializers ----------------------------------------------------------------------------------------------------


class RegistryErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class AvailableModelSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Model id in the training service (model_id here).")
    name = serializers.CharField(allow_null=True)
    model_type = serializers.CharField(allow_null=True)
    target_variable = serializers.CharField(allow_null=True)
    target_operator = serializers.CharField(allow_null=True)
    target_value = serializers.FloatField(allow_null=True)
    future_minutes = serializers.IntegerField(allow_null=True)
    price_change_percent = serializers.FloatField(allow_null=True)
    target_direction = serializers.CharField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField())
    phases = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    training_accuracy = serializers.FloatField(allow_null=True)
    training_f1 = serializers.FloatField(allow_null=True)
    training_precision = serializers.FloatField(allow_null=True)
    training_recall = serializers.FloatField(allow_null=True)
    created_at = serializers.CharField(allow_null=True, help_text="As the training service sent it (ISO 8601).")


class AvailableModelListSerializer(serializers.Serializer):
    models = AvailableModelSerializer(many=True)
    total = serializers.IntegerField()


class ModelImportSerializer(serializers.Serializer):
    model_id = serializers.IntegerField(help_text="Model id in the training service.")
    model_file_url = serializers.CharField(
        required=False, allow_null=True, allow_blank=True,
        help_text="Accepted for compatibility and ignored: files come only from the configured training service.",
    )
    new_version = serializers.BooleanField(
        default=False,
        help_text="If the model is already imported, download it again and store it as a new version "
        "(default false: answer 400 as the existing server did).",
    )
    activate = serializers.BooleanField(default=True, help_text="Serve the model at once (default true).")


class ImportResponseSerializer(serializers.Serializer):
    active_model_id = serializers.IntegerField()
    model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    local_model_path = serializers.CharField(help_text="The stored artifact: db:model_artifacts/<id>/v<version>.")
    message = serializers.CharField()
    version = serializers.IntegerField()
    sha256 = serializers.CharField()


class ModelUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="XGBoost JSON/UBJ (booster.save_model) or skops (skops.io.dump) file.")
    meta = serializers.CharField(
        help_text="The model record in the training service's shape (GET /models/{id}), as a JSON string or a "
        "JSON file: name, model_type, features, params._time_based or target_operator/target_value, phases, …",
    )
    activate = serializers.BooleanField(default=True, help_text="Serve the model at once (default true).")


class UploadResponseSerializer(serializers.Serializer):
    active_model_id = serializers.IntegerField()
    model_id = serializers.IntegerField(allow_null=True)
    model_name = serializers.CharField()
    model_type = serializers.CharField()
    source = serializers.CharField()
    is_active = serializers.BooleanField()
    features = serializers.ListField(child=serializers.CharField())
    version = serializers.IntegerField()
    format = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    message = serializers.CharField()


class ModelVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    format = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    is_current = serializers.BooleanField()


class ModelVersionListSerializer(serializers.Serializer):
    active_model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    versions = ModelVersionSerializer(many=True)
    total = serializers.IntegerField()


# --- views ----------------------------------------------------------------------------------------------------------

_SERVICE_ERRORS = {
    502: OpenApiResponse(RegistryErrorSerializer, description="the training service is down or answered badly"),
    503: OpenApiResponse(RegistryErrorSerializer, description="no training service is configured"),
}


def _error(message: str, code: int) -> Response:
    return Response({"detail": message}, status=code)


def _current_artifact(model: ActiveModel) -> ModelArtifact:
    return model.artifacts.only("version", "format", "sha256", "size_bytes").get(is_current=True)


class AvailableModelsView(APIView):
    """T1: READY models of the training service that are not imported yet."""

    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="models_available_list",
        responses={200: AvailableModelListSerializer, **_SERVICE_ERRORS},
        description="READY, not deleted models of the training service, minus those already imported. A "
        "training-service failure answers 502 with the reason (the existing server answered 200 with an empty list).",
    )
    def get(self, request):
        try:
            models = selectors.training_service_models(client=TrainingServiceClient())
        except TrainingServiceError as exc:
            return _error(exc.message, exc.status)
        models = [model for model in models if model["imported_as"] is None]
        return Response(AvailableModelListSerializer({"models": models, "total": len(models)}).data)


class AvailableModelView(APIView):
    """T2: one model of the training service, as AvailableModel."""

    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="models_available_retrieve",
        responses={
            200: AvailableModelSerializer,
            404: OpenApiResponse(RegistryErrorSerializer, description="the training service does not know the id"),
            **_SERVICE_ERRORS,
        },
    )
    def get(self, request, model_id: int):
        try:
            record = TrainingServiceClient().get_model(model_id)
        except TrainingServiceError as exc:
            if exc.status == 404:
                return _error(f"Model {model_id} not found in the training service", 404)
            return _error(exc.message, exc.status)
        return Response(AvailableModelSerializer(available_model({**record, "id": record.get("id", model_id)})).data)


class ImportModelView(APIView):
    """T3: download a model from the training service, check it and serve it."""

    required_scopes = {"POST": ADMIN}

    @extend_schema(
        operation_id="models_import",
        request=ModelImportSerializer,
        responses={
            201: ImportResponseSerializer,
            400: OpenApiResponse(
                RegistryErrorSerializer,
                description="already imported (without new_version), not READY, unusable record, invalid file",
            ),
            404: OpenApiResponse(RegistryErrorSerializer, description="the training service does not know the id"),
            **_SERVICE_ERRORS,
        },
    )
    def post(self, request):
        body = ModelImportSerializer(data=request.data)
        if not body.is_valid():
            return Response(field_errors(body.errors), status=400)
        model_id = body.validated_data["model_id"]
        try:
            model = services.import_from_training_service(
                model_id=model_id,
                activate=body.validated_data["activate"],
                allow_new_version=body.validated_data["new_version"],
            )
        except services.ModelImportError as exc:
            return _error(exc.message, exc.status)
        artifact = _current_artifact(model)
        state = "active" if model.is_active else "paused"
        message = (
            f"Model {model.model_name} imported (version {artifact.version}, {state})"
            if artifact.version == 1
            else f"New version {artifact.version} of model {model.model_name} imported ({state})"
        )
        return Response(
            ImportResponseSerializer(
                {
                    "active_model_id": model.pk,
                    "model_id": model.model_id,
                    "model_name": model.model_name,
                    "local_model_path": f"db:model_artifacts/{model.pk}/v{artifact.version}",
                    "message": message,
                    "version": artifact.version,
                    "sha256": artifact.sha256,
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )


class UploadModelView(APIView):
    """Upload a model file with its record; pickles are refused."""

    required_scopes = {"POST": ADMIN}

    parser_classes = [MultiPartParser, FormParser]
    body_limit = staticmethod(limits.model_upload_limit)  # not API_MAX_BODY_BYTES (pumpserver.limits)

    @extend_schema(
        operation_id="models_upload",
        request={"multipart/form-data": ModelUploadSerializer},
        responses={
            201: UploadResponseSerializer,
            400: OpenApiResponse(
                RegistryErrorSerializer,
                description="pickle/joblib file, unreadable or corrupt file, metadata that does not fit the file",
            ),
            413: OpenApiResponse(
                RegistryErrorSerializer, description="request larger than MODEL_UPLOAD_MAX_BYTES (default 200 MB)"
            ),
        },
        description="multipart/form-data with `file` (XGBoost JSON/UBJ or skops) and `meta` (JSON string or file "
        "in the training service's record shape). The file is validated against the record before anything is "
        "stored. A record whose `id` is already registered adds a new version to that model.",
    )
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            return _error("file is required (multipart/form-data field 'file')", 400)
        upload_limit = limits.model_upload_limit()
        if upload.size > upload_limit.max_bytes:
            return _error(limits.too_large(upload_limit, upload.size, what="file"), 413)
        try:
            meta = _meta(request)
        except ValueError as exc:
            return _error(str(exc), 400)
        activate = serializers.BooleanField(default=True).to_internal_value(request.data.get("activate", True))
        try:
            model = services.upload_model(
                file_bytes=upload.read(), filename=upload.name, meta=meta, activate=activate
            )
        except services.RegistrationError as exc:
            return _error(f"{upload.name}: {exc}", 400)
        artifact = _current_artifact(model)
        return Response(
            UploadResponseSerializer(
                {
                    "active_model_id": model.pk,
                    "model_id": model.model_id,
                    "model_name": model.model_name,
                    "model_type": model.model_type,
                    "source": model.source,
                    "is_active": model.is_active,
                    "features": model.features,
                    "version": artifact.version,
                    "format": artifact.format,
                    "sha256": artifact.sha256,
                    "size_bytes": artifact.size_bytes,
                    "message": f"Model {model.model_name} uploaded (version {artifact.version}, "
                    f"{'active' if model.is_active else 'paused'})",
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )


def _meta(request) -> dict:
    """The `meta` part: a form field with JSON text or an uploaded JSON file."""
    part = request.FILES.get("meta")
    if part is not None:
        if part.size > MAX_META_BYTES:
            raise ValueError("meta is larger than 5 MB")
        text = part.read()
    else:
        text = request.data.get("meta")
        if text in (None, ""):
            raise ValueError("meta is required: the model record as JSON (form field or file 'meta')")
    try:
        meta = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"meta is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError("meta must be a JSON object (the model record)")
    return meta


class ModelVersionsView(APIView):
    """The stored versions of a model's file, newest first."""

    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="models_versions_list",
        responses={200: ModelVersionListSerializer, 404: OpenApiResponse(RegistryErrorSerializer)},
    )
    def get(self, request, active_model_id: int):
        model = ActiveModel.objects.filter(pk=active_model_id).only("pk", "model_name", "custom_name").first()
        if model is None:
            return _error("Model not found", 404)
        versions = list(
            ModelArtifact.objects.filter(model=model)
            .order_by("-version")
            .values("version", "format", "sha256", "size_bytes", "created_at", "is_current")
        )
        return Response(
            ModelVersionListSerializer(
                {"active_model_id": model.pk, "model_name": model.display_name, "versions": versions,
                 "total": len(versions)}
            ).data
        )


__all__ = [
    "AvailableModelsView",
    "AvailableModelView",
    "ImportModelView",
    "UploadModelView",
    "ModelVersionsView",
]
