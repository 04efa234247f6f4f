"""Backtests under /api/: queue a run of a model over the recorded market, list a model's runs, follow one (state,
progress, summary), page or download its replayed rows, cancel it.

The worker (django-q2) executes queued runs; these views only validate, call backtests.services/selectors and shape
the answer. Bad input answers 400 naming the field ({field: [message]}), unknown ids 404 {"detail": …}; nothing is
stored on bad input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from backtests import selectors, services
from backtests.models import BacktestRun, RunState
from modelregistry import selectors as registry_selectors
from modelregistry.models import ActiveModel
from pumpserver.scopes import OPERATE, READ
from web.api.backtests import serializers as s
from web.api.common import BAD_REQUEST, NOT_FOUND, PageQuerySerializer, query_data, validated
from web.api.scopes import check_model

TAGS = ["backtests"]
INVALID_FIELDS = OpenApiResponse(description="Invalid fields, named in the body: {field: [message]}.")


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` and `Accept: text/csv` choose the CSV answer; the rows view streams it itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Not reached: rows are streamed, and BacktestAPIView answers every error in JSON.
        return JSONRenderer().render(data)


class RowsNegotiation(DefaultContentNegotiation):
    """An unknown `?format=` is a 400 naming the parameter (DRF's own answer would be a bare 404)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        fmt = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if fmt and fmt not in ("json", "csv"):
            raise ValidationError({"format": [f'"{fmt}" is not a valid choice (json or csv).']})
        return super().select_renderer(request, renderers, format_suffix)


class BacktestAPIView(APIView):
    """Answers the backtests' exceptions: unknown run → 404, BacktestError → 400 naming the field. Errors are always
    JSON, also when CSV was asked for."""

    parser_classes = [JSONParser]

    def handle_exception(self, exc):
        if isinstance(exc, BacktestRun.DoesNotExist):
            exc = NotFound(f"backtest {self.kwargs.get('run_id')} not found")
        elif isinstance(exc, ActiveModel.DoesNotExist):
            exc = NotFound(f"model {self.kwargs.get('active_model_id')} not found")
        elif isinstance(exc, services.BacktestError):
            exc = ValidationError({exc.field: [exc.message]})
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


def _run_of_allowed_model(request, run_id: int) -> BacktestRun:
    """The run; 403 naming its model for a token limited to other models."""
    run = selectors.get_run(run_id=run_id)
    check_model(request, run.active_model_id)
    return run


def _run_answer(run: BacktestRun, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(s.BacktestRunSerializer(run).data, status=status_code)


class ModelBacktestsView(BacktestAPIView):
    """`POST /api/models/{id}/backtests` queues a run; `GET` lists the model's runs, newest first."""

    required_scopes = {"GET": READ, "POST": OPERATE}

    @extend_schema(
        tags=TAGS,
        operation_id="model_backtests_list",
        parameters=[PageQuerySerializer],
        responses={200: s.BacktestListSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, active_model_id: int):
        """The model's backtest runs, newest first, with their headline figures (paged by limit/offset)."""
        registry_selectors.get_model(active_model_id=active_model_id)
        page = validated(PageQuerySerializer, query_data(request.query_params))
        runs = selectors.runs_of_model(active_model_id=active_model_id)
        listed = list(runs[page["offset"]:page["offset"] + page["limit"]])
        return Response(s.BacktestListSerializer({"backtests": listed, "total": runs.count(), **page}).data)

    @extend_schema(
        tags=TAGS,
        operation_id="model_backtests_create",
        request=s.BacktestRequestSerializer,
        responses={202: s.BacktestRunSerializer, 400: INVALID_FIELDS, 404: NOT_FOUND},
    )
    def post(self, request, active_model_id: int):
        """Queue a replay of the model (active or not) over [start, end] of the recorded market; the worker runs it.
        Answers 202 with the run; follow it at `links.self`."""
        registry_selectors.get_model(active_model_id=active_model_id)
        data = validated(s.BacktestRequestSerializer, request.data)
        run = services.queue_run(active_model_id=active_model_id, start=data["start"], end=data["end"],
                                 threshold=data.get("threshold"), requested_by=request.user.get_username())
        answer = _run_answer(run, status_code=status.HTTP_202_ACCEPTED)
        answer["Location"] = reverse("backtest-detail", args=[run.pk])
        return answer


class BacktestDetailView(BacktestAPIView):
    """`GET /api/backtests/{run_id}`: state, progress and (when done) summary; `DELETE` cancels."""

    required_scopes = {"GET": READ, "DELETE": OPERATE}

    @extend_schema(tags=TAGS, operation_id="backtest_retrieve",
                   responses={200: s.BacktestRunSerializer, 404: NOT_FOUND})
    def get(self, request, run_id: int):
        """The run: state, progress (0..1, rows_done of rows_total), error, and its summary once done."""
        return _run_answer(_run_of_allowed_model(request, run_id))

    @extend_schema(
        tags=TAGS,
        operation_id="backtest_cancel",
        responses={
            200: OpenApiResponse(s.BacktestRunSerializer, description="Ended: a queued run is failed (cancelled) at "
                                 "once; a finished run is returned unchanged."),
            202: OpenApiResponse(s.BacktestRunSerializer, description="A running run was asked to stop; it ends "
                                 "failed (cancelled) within one step, its rows removed."),
            404: NOT_FOUND,
        },
    )
    def delete(self, request, run_id: int):
        """Cancel the run. It ends failed ("cancelled"), without results, and never looks complete."""
        _run_of_allowed_model(request, run_id)
        run = services.request_cancel(run_id=run_id)
        stopping = run.state == RunState.RUNNING
        return _run_answer(run, status_code=status.HTTP_202_ACCEPTED if stopping else status.HTTP_200_OK)


class BacktestRowsView(BacktestAPIView):
    """`GET /api/backtests/{run_id}/rows`: the replayed predictions in data-time order, paged as JSON, or every one
    streamed as CSV (`?format=csv` or `Accept: text/csv`)."""

    required_scopes = {"GET": READ}

    renderer_classes = [JSONRenderer, CSVRenderer]
    content_negotiation_class = RowsNegotiation

    @extend_schema(
        tags=TAGS,
        operation_id="backtest_rows",
        parameters=[s.BacktestRowsQuerySerializer],
        responses={
            (200, "application/json"): s.BacktestRowsPageSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="Every row; columns " +
                                               ", ".join(selectors.CSV_COLUMNS) + "."),
            400: BAD_REQUEST,
            404: NOT_FOUND,
        },
    )
    def get(self, request, run_id: int):
        """The replayed predictions in data-time order: a page as JSON, or every row as CSV."""
        run = _run_of_allowed_model(request, run_id)
        if request.accepted_renderer.format == "csv":
            return _csv_response(request, run)
        query = validated(s.BacktestRowsQuerySerializer, query_data(request.query_params))
        rows, total = selectors.rows_page(run_id=run.pk, limit=query["limit"], offset=query["offset"])
        page = {"rows": rows, "total": total, "limit": query["limit"], "offset": query["offset"]}
        return Response(s.BacktestRowsPageSerializer(page).data)


# --- CSV ---------------------------------------------------------------------------------------------------------


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    """The chunks pulled one by one in the request's database thread, so daphne streams them (Django would read a
    plain iterator to its end first under ASGI)."""
    while True:
        chunk = await sync_to_async(next)(chunks, None)
        if chunk is None:
            return
        yield chunk


def _csv_response(request, run: BacktestRun) -> StreamingHttpResponse:
    chunks = selectors.rows_csv(run_id=run.pk)
    content = _async_chunks(chunks) if isinstance(request._request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}-rows.csv"'
    return response
