"""Helpers every app's API shares: validated query/body data, limit/offset paging with the existing server's defaults
and a hard maximum, id fields that fit PostgreSQL's bigint, the schema's 400 and 404 answers, and the base of the
CSV download endpoints."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

MAX_PAGE_SIZE = 1000
BIGINT_MAX = 2**63 - 1


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


BAD_REQUEST = OpenApiResponse(description="invalid parameters; the body names each one")
NOT_FOUND = OpenApiResponse(DetailSerializer, description="unknown id")


def id_field(**kwargs):
    """A non-negative id that fits PostgreSQL's bigint (larger values give 400, not a database error)."""
    return serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, **kwargs)


class PageQuerySerializer(serializers.Serializer):
    """`limit` (1..MAX_PAGE_SIZE, default 100) and `offset`, bounded so that it fits PostgreSQL's OFFSET; bad values
    give 400 naming the parameter."""

    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, default=0)


def field_errors(errors: dict) -> dict:
    """DRF's {field: [message]} with a `detail` that names every field too, for endpoints whose documented errors
    are `{"detail": …}`."""
    summary = "; ".join(
        f"{field}: {' '.join(map(str, messages if isinstance(messages, list) else [messages]))}"
        for field, messages in errors.items()
    )
    return {"detail": summary, **errors}


def validated(serializer_class, data) -> dict:
    """`data` checked by `serializer_class`; invalid data raises ValidationError (DRF answers 400 naming the fields)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def query_data(query_params, *, lists: tuple[str, ...] = ()) -> dict:
    """Query parameters for a serializer, leaving out empty ones (`?coin_id=` means "no filter", as UIs send it).

    Parameters named in `lists` are repeatable and become lists; for the others the last value counts.
    """
    data = {}
    for key in query_params:
        values = [value for value in query_params.getlist(key) if value != ""]
        if values:
            data[key] = values if key in lists else values[-1]
    return data


class CSVRenderer(BaseRenderer):
    """Lets a client that accepts only text/csv reach a CSV endpoint. The CSV itself is a StreamingHttpResponse,
    which no renderer touches; this one only ever sees error bodies, and CsvExportView answers those as JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode(self.charset)


class CsvExportView(APIView):
    """A CSV download endpoint: the rows as text/csv (web.csv_export), every error as JSON."""

    renderer_classes = [JSONRenderer, CSVRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):  # an error (400, 401, 404, 406): JSON, whatever the client accepts
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


CSV_RESPONSES = {(200, "text/csv"): OpenApiTypes.STR, 400: BAD_REQUEST}
NO_FORMAT_PARAMETER = OpenApiParameter("format", exclude=True)

