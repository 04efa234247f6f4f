from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import legacy_selectors, legacy_services, selectors
from modelregistry.models import ActiveModel
from predictions import log_selectors
from pumpserver.scopes import ADMIN, READ
from web.api.alerts.serializers import (
    AlertDetailsQuerySerializer,
    AlertDetailsSerializer,
    AlertsCsvQuerySerializer,
    AlertsQuerySerializer,
    AlertsResponseSerializer,
    AlertStatisticsQuerySerializer,
    AlertStatisticsSerializer,
    DeleteAlertsResponseSerializer,
    ModelAlertCountsSerializer,
    ModelsAlertStatisticsQuerySerializer,
    ModelStatisticsSerializer,
    ResetStatisticsResponseSerializer,
)
from web.api.common import (
    BAD_REQUEST,
    CSV_RESPONSES,
    NO_FORMAT_PARAMETER,
    NOT_FOUND,
    CsvExportView,
    query_data,
    validated,
)
from web.api.scopes import check_model
from web.csv_export import csv_response

MODEL_COUNTS_MAP_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {name: {"type": "integer"} for name in ModelAlertCountsSerializer().fields},
        "required": list(ModelAlertCountsSerializer().fields),
    },
}


def _model_or_404(active_model_id: int) -> None:
    if not ActiveModel.objects.filter(pk=active_model_id).exists():
        raise NotFound(f"Model {active_model_id} not found")


class AlertStatisticsView(APIView):
    """Alert and verdict counts, rates and performance sums over `model_predictions` (all or one model)."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="alerts_statistics",
        parameters=[AlertStatisticsQuerySerializer],
        responses={200: AlertStatisticsSerializer, 400: BAD_REQUEST},
    )
    def get(self, request):
        query = validated(AlertStatisticsQuerySerializer, query_data(request.query_params))
        active_model_id = query.get("active_model_id", query.get("model_id"))
        statistics = selectors.alert_statistics(
            active_model_id=active_model_id, date_from=query.get("date_from"), date_to=query.get("date_to")
        )
        return Response(AlertStatisticsSerializer(statistics).data)


class ModelsAlertStatisticsView(APIView):
    """Per-model alert counts, keyed by active model id (a string); every active model unless ids are given."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="models_alert_statistics",
        parameters=[ModelsAlertStatisticsQuerySerializer],
        responses={
            200: OpenApiResponse(
                MODEL_COUNTS_MAP_SCHEMA, description="An object keyed by active_model_id (a string)."
            ),
            400: BAD_REQUEST,
        },
    )
    def get(self, request):
        query = validated(ModelsAlertStatisticsQuerySerializer, query_data(request.query_params, lists=("active_model_ids",)))
        ids = query.get("active_model_ids")
        statistics = selectors.models_alert_statistics(active_model_ids=list(dict.fromkeys(ids)) if ids else None)
        return Response({key: ModelAlertCountsSerializer(value).data for key, value in statistics.items()})


class ModelStatisticsView(APIView):
    """One model's prediction statistics (every field present, also without predictions); reset its counters."""

    required_scopes = {"GET": READ, "DELETE": ADMIN}

    @extend_schema(operation_id="model_statistics", responses={200: ModelStatisticsSerializer, 404: NOT_FOUND})
    def get(self, request, active_model_id: int):
        _model_or_404(active_model_id)
        return Response(ModelStatisticsSerializer(selectors.model_statistics(active_model_id=active_model_id)).data)

    @extend_schema(
        operation_id="model_statistics_reset",
        responses={200: ResetStatisticsResponseSerializer, 404: NOT_FOUND},
    )
    def delete(self, request, active_model_id: int):
        try:
            deleted = legacy_services.reset_model_statistics(active_model_id=active_model_id)
        except ActiveModel.DoesNotExist:
            raise NotFound(f"Model {active_model_id} not found") from None
        return Response({"success": True, "active_model_id": active_model_id, "deleted_predictions": deleted})


class AlertsView(APIView):
    """Alerts (predictions tagged `alert`) in the legacy alert shape, with status counts over the same filters."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="alerts_list",
        parameters=[AlertsQuerySerializer],
        responses={200: AlertsResponseSerializer, 400: BAD_REQUEST},
    )
    def get(self, request):
        query = validated(AlertsQuerySerializer, query_data(request.query_params))
        limit, offset = query.pop("limit"), query.pop("offset")
        unique_coins = query.pop("unique_coins")
        query.pop("include_non_alerts")  # accepted for compatibility; it never had an effect
        page = legacy_selectors.alerts_page(filters=query, unique_coins=unique_coins, limit=limit, offset=offset)
        return Response(AlertsResponseSerializer(page).data)


class AlertDetailsView(APIView):
    """One alert with the coin's figures at alert and evaluation time, charts, other alerts and model figures."""

    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="alerts_retrieve",
        parameters=[AlertDetailsQuerySerializer],
        responses={200: AlertDetailsSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, alert_id: int):
        query = validated(AlertDetailsQuerySerializer, query_data(request.query_params))
        details = legacy_selectors.alert_details(alert_id=alert_id, **query)
        if details is None:
            raise NotFound(f"Alert {alert_id} not found")
        check_model(request, details["alert"]["active_model_id"])
        return Response(AlertDetailsSerializer(details).data)


class ModelAlertsView(APIView):
    """Delete one model's alerts (its predictions tagged `alert`)."""

    required_scopes = {"DELETE": ADMIN}

    @extend_schema(operation_id="model_alerts_delete", responses={200: DeleteAlertsResponseSerializer, 404: NOT_FOUND})
    def delete(self, request, active_model_id: int):
        try:
            deleted = legacy_services.delete_model_alerts(active_model_id=active_model_id)
        except ActiveModel.DoesNotExist:
            raise NotFound(f"Model {active_model_id} not found") from None
        return Response({"success": True, "active_model_id": active_model_id, "deleted_alerts": deleted})


class AlertsCsvView(CsvExportView):
    """Alerts as CSV (the alerts page's filters: model, verdict, coin, time), newest first, streamed without a cap."""

    required_scopes = {"GET": READ}
    lists_every_model = True  # a model-limited token names its models (web.api.scopes)

    @extend_schema(
        operation_id="alerts_csv",
        parameters=[AlertsCsvQuerySerializer, NO_FORMAT_PARAMETER],
        responses={**CSV_RESPONSES, 404: NOT_FOUND},
    )
    def get(self, request):
        query = AlertsCsvQuerySerializer(data=query_data(request.query_params))
        query.is_valid(raise_exception=True)
        filters = query.filters()
        if "active_model_id" in filters:
            _model_or_404(filters["active_model_id"])
        suffix = f"model-{filters['active_model_id']}-" if "active_model_id" in filters else ""
        return csv_response(request, header=log_selectors.EXPORT_COLUMNS,
                            rows=log_selectors.export_rows(filters=filters), filename=f"{suffix}alerts.csv")

