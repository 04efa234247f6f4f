"""Helpers every app's API shares: validated query/body data, limit/offset paging with the existing server's defaults
and a hard maximum, id fields that fit PostgreSQL's bigint, and the schema's 400 and 404 answers."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

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
