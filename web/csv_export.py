"""CSV downloads (pages and REST): rows from a selector's iterator, written and sent as they are read.

Under ASGI (daphne) Django would collect a synchronous iterator into a list before sending it, so there the rows
are pulled in chunks through `sync_to_async` (thread-sensitive: every chunk is read in the request's own thread,
on the connection that holds the server-side cursor) and the first bytes leave while later rows are still read.
Under WSGI and the test client a plain generator does the same. Memory stays flat either way; nothing is capped.
"""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Iterable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

LINES_PER_CHUNK = 1000


class _Echo:
    """A file for csv.writer that hands back each written line instead of storing it."""

    def write(self, text: str) -> str:
        return text


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 0.000000028, not 2.8E-8
    return value


def _lines(header: Iterable[str], rows: Iterator[tuple]) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\n")
    try:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # a download stopped early closes the cursor now, not at garbage collection


def _take(lines: Iterator[str]) -> str:
    return "".join(islice(lines, LINES_PER_CHUNK))


def _chunks(lines: Iterator[str]) -> Iterator[str]:
    try:
        while chunk := _take(lines):
            yield chunk
    finally:
        lines.close()


async def _async_chunks(lines: Iterator[str]):
    take = sync_to_async(_take, thread_sensitive=True)
    try:
        while chunk := await take(lines):
            yield chunk
    finally:
        await sync_to_async(lines.close, thread_sensitive=True)()


def csv_response(request, *, header: Iterable[str], rows: Iterator[tuple], filename: str) -> StreamingHttpResponse:
    """A streamed `text/csv` attachment of `header` and `rows` (a DRF request or a Django one)."""
    lines = _lines(header, rows)
    django_request = getattr(request, "_request", request)
    content = _async_chunks(lines) if isinstance(django_request, ASGIRequest) else _chunks(lines)
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
