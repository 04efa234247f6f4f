from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from modelregistry import selectors as registry_selectors
from modelregistry.models import ActiveModel
from predictions import log_selectors, log_services
from predictions.services import NoActiveModels, predict_coin
from pumpserver.scopes import ADMIN, OPERATE, READ
from web.api.common import (
    BAD_REQUEST,
    CSV_RESPONSES,
    NO_FORMAT_PARAMETER,
    NOT_FOUND,
    CsvExportView,
    query_data,
    validated,
)
from web.api.predictions.serializers import (
    CoinDetailsQuerySerializer,
    CoinDetailsSerializer,
    CoinIdSerializer,
    DeleteModelPredictionsResponseSerializer,
    DeleteOldLogsResponseSerializer,
    LatestPredictionQuerySerializer,
    ModelPredictionsQuerySerializer,
    ModelPredictionsResponseSerializer,
    PredictionDetailSerializer,
    PredictionsCsvQuerySerializer,
    PredictionsQuerySerializer,
    PredictionsResponseSerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
)
from web.api.scopes import allowed_model_ids
from web.csv_export import csv_response


class PredictView(APIView):
    """Predict one coin now with every active model (or the given training-service ids); results are stored."""

    required_scopes = {"POST": OPERATE}  # it stores the predictions (the MCP predict_coin dry run is read)

    @extend_schema(
        request=PredictRequestSerializer,
        responses={
            200: PredictResponseSerializer,
            400: OpenApiResponse(description="invalid fields (named in the body) or no active model"),
            404: OpenApiResponse(description="none of the given model_ids is active"),
            409: OpenApiResponse(description="a model was deleted while predicting; nothing was stored"),
        },
    )
    def post(self, request):
        query = PredictRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        try:
            outcome = predict_coin(
                coin_id=query.validated_data["coin_id"],
                model_ids=query.validated_data.get("model_ids"),
                active_model_ids=allowed_model_ids(request),
                timestamp=query.validated_data.get("timestamp"),
            )
        except NoActiveModels as exc:
            return Response({"detail": str(exc)}, status=exc.status_code)
        return Response(PredictResponseSerializer(outcome).data)


# --- prediction log (L1–L4) and legacy predictions (P2, P3) ---------------------------------------------------------


class ModelPredictionsView(APIView):
    """The prediction log (`model_predictions`), newest prediction first, with filters and the filtered total."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="model_predictions_list",
        parameters=[ModelPredictionsQuerySerializer],
        responses={200: ModelPredictionsResponseSerializer, 400: BAD_REQUEST},
    )
    def get(self, request):
        filters = validated(
            ModelPredictionsQuerySerializer,
            query_data(request.query_params, lists=("prediction_statuses", "evaluation_statuses")),
        )
        limit, offset = filters.pop("limit"), filters.pop("offset")
        page = log_selectors.model_predictions_page(filters=filters, limit=limit, offset=offset)
        return Response(ModelPredictionsResponseSerializer(page).data)


class ModelPredictionsDeleteView(APIView):
    """Delete every prediction of one model."""

    required_scopes = {"DELETE": ADMIN}

    @extend_schema(
        operation_id="model_predictions_delete",
        responses={200: DeleteModelPredictionsResponseSerializer, 404: NOT_FOUND},
    )
    def delete(self, request, active_model_id: int):
        try:
            deleted = log_services.delete_model_predictions(active_model_id=active_model_id)
        except ActiveModel.DoesNotExist:
            raise NotFound(f"Model {active_model_id} not found") from None
        return Response({"success": True, "deleted_predictions": deleted})


class DeleteOldLogsView(APIView):
    """Reset one model's logs: delete its predictions (only its own; legacy counts are always 0)."""

    required_scopes = {"DELETE": ADMIN}

    @extend_schema(operation_id="admin_delete_old_logs", responses={200: DeleteOldLogsResponseSerializer, 404: NOT_FOUND})
    def delete(self, request, active_model_id: int):
        try:
            return Response(log_services.delete_old_logs(active_model_id=active_model_id))
        except ActiveModel.DoesNotExist:
            raise NotFound(f"Model {active_model_id} not found") from None


class CoinDetailsView(APIView):
    """Prices, predictions and verdicts of one coin for one model, around a prediction or in a time window."""

    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="model_coin_details",
        parameters=[CoinDetailsQuerySerializer],
        responses={200: CoinDetailsSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, active_model_id: int, coin_id: str):
        coin_id = validated(CoinIdSerializer, {"coin_id": coin_id})["coin_id"]
        query = validated(CoinDetailsQuerySerializer, query_data(request.query_params))
        try:
            details = log_selectors.coin_details(active_model_id=active_model_id, coin_id=coin_id, **query)
        except log_selectors.NotFound as exc:
            raise NotFound(str(exc)) from None
        return Response(CoinDetailsSerializer(details).data)


class PredictionsView(APIView):
    """Legacy prediction list, served from `model_predictions` (newest first)."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="predictions_list",
        parameters=[PredictionsQuerySerializer],
        responses={200: PredictionsResponseSerializer, 400: BAD_REQUEST},
    )
    def get(self, request):
        filters = validated(PredictionsQuerySerializer, query_data(request.query_params))
        limit, offset = filters.pop("limit"), filters.pop("offset")
        rows, total = log_selectors.predictions_page(filters=filters, limit=limit, offset=offset)
        return Response(
            PredictionsResponseSerializer({"predictions": rows, "total": total, "limit": limit, "offset": offset}).data
        )


class LatestPredictionView(APIView):
    """The newest prediction of a coin (optionally of one training-service model id)."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="predictions_latest",
        parameters=[LatestPredictionQuerySerializer],
        responses={200: PredictionDetailSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, coin_id: str):
        coin_id = validated(CoinIdSerializer, {"coin_id": coin_id})["coin_id"]
        query = validated(LatestPredictionQuerySerializer, query_data(request.query_params))
        row = log_selectors.latest_prediction(coin_id=coin_id, model_id=query.get("model_id"))
        if row is None:
            raise NotFound(f"No prediction found for coin {coin_id}")
        return Response(PredictionDetailSerializer(row).data)


class ModelPredictionsCsvView(CsvExportView):
    """Every prediction of one model as CSV (the model page's filters), newest first, streamed without a cap."""

    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="model_predictions_csv",
        parameters=[PredictionsCsvQuerySerializer, NO_FORMAT_PARAMETER],
        responses={**CSV_RESPONSES, 404: NOT_FOUND},
    )
    def get(self, request, active_model_id: int):
        query = PredictionsCsvQuerySerializer(data=query_data(request.query_params, lists=("evaluation_statuses",)))
        query.is_valid(raise_exception=True)
        try:
            registry_selectors.get_model(active_model_id=active_model_id)
        except ActiveModel.DoesNotExist:
            raise NotFound(f"Model {active_model_id} not found") from None
        rows = log_selectors.export_rows(filters={"active_model_id": active_model_id, **query.filters()})
        return csv_response(request, header=log_selectors.EXPORT_COLUMNS, rows=rows,
                            filename=f"model-{active_model_id}-predictions.csv")

