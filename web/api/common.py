"""Helpers every app's API shares: limit/offset paging with the existing server's defaults and a hard maximum."""

from __future__ import annotations

from rest_framework import serializers

MAX_PAGE_SIZE = 1000


class PageQuerySerializer(serializers.Serializer):
    """`limit`/`offset` query parameters; bad values give 400 naming the parameter."""

    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=100)
    offset = serializers.IntegerField(min_value=0, default=0)


def page_params(query_params, *, default_limit: int = 100) -> tuple[int, int]:
    page = PageQuerySerializer(data={"limit": query_params.get("limit", default_limit),
                                     "offset": query_params.get("offset", 0)})
    page.is_valid(raise_exception=True)
    return page.validated_data["limit"], page.validated_data["offset"]


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
