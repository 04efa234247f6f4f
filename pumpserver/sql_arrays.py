"""PostgreSQL array literals for the event path's batch parameters.

psycopg adapts a Python list element by element (a regular expression per string, a dumper per datetime): for a
batch of 500 coins that is ~2 ms per statement, more than many of the statements take. These build the array's text
form in one join, and the SQL casts it (`%s::text[]`, `%s::timestamptz[]`, ...). Values arrive exactly: floats as
repr() (the shortest string that reads back as the same double), datetimes with their microseconds and UTC offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def numbers(values: Iterable) -> str:
    """Numbers or booleans, none of them None (the fast path for per-prediction columns)."""
    return "{" + ",".join(map(repr, values)) + "}"


def values(values: Iterable) -> str:
    """Numbers, booleans or plain words (no quoting needed: letters, digits, underscores); None is NULL."""
    return "{" + ",".join("NULL" if value is None else value if isinstance(value, str) else repr(value)
                          for value in values) + "}"


def texts(words: Iterable[str | None]) -> str:
    """Any strings, each quoted (None is NULL)."""
    return "{" + ",".join("NULL" if word is None else quoted(word) for word in words) + "}"


def quoted(word: str) -> str:
    """One element of a text array literal."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def timestamps(moments: Iterable[datetime | None]) -> str:
    """Datetimes for a `timestamptz[]` (None is NULL); naive ones are read in the session's time zone, as psycopg
    sends them."""
    return "{" + ",".join("NULL" if moment is None else moment.isoformat() for moment in moments) + "}"
