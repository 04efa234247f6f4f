"""Coin histories from `coin_metrics`: one query builder for every reader of coin rows, and the listener's
incremental cache as an optional layer over it.

* `read_history_rows(requests, limit=...)`: per request, the newest `limit` rows of one coin (optional phase filter,
  `after`/`until` bounds), one lateral index read each; the one read behind the others.
* `coin_histories(requests=..., limit=..., until=...)`: the newest `limit` rows per coin and phase filter, as the
  listener (without its cache), /api/predict and MCP read them.
* `HistoryCache` (inference.history_cache): the listener's histories kept across batches, a layer over
  `read_history_rows`.
* `coin_rows(columns=..., phases=..., since=..., until=..., mints=...)`: every row of every coin in a time window
  (training labels); `window_counts` counts them per coin; `replay_rows` reads what a backtest replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

import numpy as np
from django.db import connection

from inference.features import VALUE_COLUMNS, CoinHistories
from pumpserver import sql_arrays

# --- the query builder -------------------------------------------------------------------------------------------


def float8_select(columns: Sequence[str]) -> str:
    """The select list of `columns` of `coin_metrics m` as float8: numeric::float8 is converted by PostgreSQL through
    the exact decimal text, so it is the correctly rounded double the feature engine needs, and it arrives far faster
    than Decimal objects."""
    return ", ".join(f"m.{c}::float8" if c != "is_koth" else "m.is_koth::int::float8" for c in columns)


# Timestamps as integer microseconds since the epoch (exact on every PostgreSQL version, and no datetime parsing).
EPOCH_MICROS_SQL = (
    "(extract(epoch FROM date_trunc('second', m.\"timestamp\"))::int8 * 1000000"
    " + mod(extract(microseconds FROM m.\"timestamp\")::int8, 1000000))"
)

# Per request: the newest rows (at most the query's LIMIT; NULL: all) of a coin that pass its phase filter (NULL: all
# phases) and lie after `after` and at or before `until` (NULL: unbounded); one lateral index read on (mint, timestamp)
# each. The bounds are written as COALESCE to ±infinity (not "IS NULL OR"), so that they are index conditions: the read
# of a coin's few new rows then touches those rows only, not every row the coin ever had. Rows come back newest first
# within a request; read_history_rows sorts them.
HISTORY_ROWS_SQL = f"""
SELECT req.i, h.*
  FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])
       WITH ORDINALITY AS req(mint, phases, after, until, i)
 CROSS JOIN LATERAL (
       SELECT {EPOCH_MICROS_SQL}, {float8_select(VALUE_COLUMNS)}
         FROM coin_metrics m
        WHERE m.mint = req.mint
          AND (req.phases IS NULL OR m.phase_id_at_time = ANY (req.phases::int[]))
          AND m."timestamp" > COALESCE(req.after, '-infinity')
          AND m."timestamp" <= COALESCE(req.until, 'infinity')
        ORDER BY m."timestamp" DESC
        LIMIT %s
 ) h
"""

_FETCH_ROWS = 10_000


@dataclass(frozen=True)
class HistoryRequest:
    """One coin's newest rows that pass `phases` (None: all) with `after` < timestamp <= `until` (None: unbounded)."""

    mint: str
    phases: tuple[int, ...] | None = None
    after: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class HistoryRows:
    """What read_history_rows read: request k's rows are `bounds[k]:bounds[k+1]`, ascending by time; `values` holds
    one row per VALUE_COLUMNS column (NaN = NULL)."""

    bounds: np.ndarray
    timestamps_ns: np.ndarray
    values: np.ndarray
    ids: np.ndarray | None = None  # coin_metrics ids of the rows (replay_rows only)
    columns: tuple[str, ...] = VALUE_COLUMNS  # the columns of `values`, in its order (replay_rows may read fewer)

    def histories(self, mints: Sequence[str], first: int = 0) -> CoinHistories:
        """Requests `first ..` (one per mint, labelled with it) as a CoinHistories; requests without rows are left
        out."""
        bounds = self.bounds[first : first + len(mints) + 1]
        lengths = np.diff(bounds)
        present = np.flatnonzero(lengths > 0)
        rows = slice(int(bounds[0]), int(bounds[-1]))
        return CoinHistories(
            mints=[mints[i] for i in present],
            offsets=np.r_[0, np.cumsum(lengths[present])].astype(np.int64),
            timestamps_ns=self.timestamps_ns[rows],
            columns={name: self.values[j, rows] for j, name in enumerate(self.columns)},
        )


def read_history_rows(
    requests: Sequence[HistoryRequest], *, limit: int | None, server_side: bool = False
) -> HistoryRows:
    """Every request's newest `limit` rows (None: all) in one query. `server_side`: read through a server-side cursor
    in slices, so that whole histories of many coins (a start, an expiry wave of the cache) never sit in memory as
    one result set of Python tuples."""
    params = [
        sql_arrays.texts(r.mint for r in requests),
        sql_arrays.texts(None if r.phases is None else sql_arrays.numbers(r.phases) for r in requests),
        sql_arrays.timestamps(r.after for r in requests),
        sql_arrays.timestamps(r.until for r in requests),
        limit,
    ]
    parts = []  # request numbers and microseconds stay exact as float64 (< 2**53); NULL → NaN
    if requests and server_side:
        with connection.chunked_cursor() as cursor:
            cursor.execute(HISTORY_ROWS_SQL, params)
            while rows := cursor.fetchmany(_FETCH_ROWS):
                parts.append(np.array(rows, dtype=np.float64))
    elif requests:
        with connection.cursor() as cursor:
            cursor.execute(HISTORY_ROWS_SQL, params)
            rows = cursor.fetchall()
        if rows:
            parts.append(np.array(rows, dtype=np.float64))
    if not parts:
        return HistoryRows(
            np.zeros(len(requests) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((len(VALUE_COLUMNS), 0))
        )
    data = np.concatenate(parts) if len(parts) > 1 else parts[0]
    parts.clear()
    # By request, then time ascending; each column is gathered in that order straight into its place, so that at most
    # two copies of a large read (a start, an expiry wave of the cache) are alive at once rather than four.
    order = np.lexsort((data[:, 1], data[:, 0]))
    request = data[order, 0].astype(np.int64) - 1
    timestamps_ns = data[order, 1].astype(np.int64) * 1000
    values = np.empty((data.shape[1] - 2, len(data)))
    for j in range(len(values)):
        np.take(data[:, 2 + j], order, out=values[j])
    return HistoryRows(
        bounds=np.searchsorted(request, np.arange(len(requests) + 1)), timestamps_ns=timestamps_ns, values=values,
    )


def coin_histories(
    *, requests: dict[tuple[int, ...] | None, list[str]], limit: int,
    until: datetime | Mapping[str, datetime] | None = None,
) -> dict[tuple[int, ...] | None, CoinHistories]:
    """Newest `limit` rows per coin (at or before `until`, if given: one moment, or one per mint), per phase filter
    (None = all phases).

    Models with the same phase filter share one history block: the original server read each model's
    history with its own phase filter applied before the row limit. Coins without rows are left out.
    """
    reads: list[HistoryRequest] = []
    groups = []
    for key, mints in requests.items():
        mints = list(dict.fromkeys(mints))
        groups.append((key, len(reads), mints))
        reads.extend(HistoryRequest(mint, key, until=until.get(mint) if isinstance(until, Mapping) else until)
                     for mint in mints)
    rows = read_history_rows(reads, limit=limit)
    return {key: rows.histories(mints, first) for key, first, mints in groups}


# Every row of every coin in a time window (phase filter applied), grouped by coin, ascending by time.
_WINDOW_ROWS_SQL = """
SELECT m.mint, {epoch_micros}, {values}
  FROM coin_metrics m
 WHERE (%(since)s::timestamptz IS NULL OR m."timestamp" >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR m."timestamp" <= %(until)s::timestamptz)
   AND (%(phases)s::int[] IS NULL OR m.phase_id_at_time = ANY (%(phases)s::int[]))
   AND (%(mints)s::text[] IS NULL OR m.mint = ANY (%(mints)s::text[]))
 ORDER BY m.mint, m."timestamp"
"""

# Rows per coin in a time window: what a replay of the window has to read, coin by coin.
_WINDOW_COUNTS_SQL = """
SELECT m.mint, count(*)
  FROM coin_metrics m
 WHERE m."timestamp" >= %(since)s::timestamptz AND m."timestamp" <= %(until)s::timestamptz
 GROUP BY m.mint
 ORDER BY min(m."timestamp"), m.mint
"""


def coin_rows(
    *, columns: Sequence[str], phases: Sequence[int] | None = None, since: datetime | None = None,
    until: datetime | None = None, mints: Sequence[str] | None = None,
) -> CoinHistories:
    """Every row with since <= timestamp <= until (None: unbounded) that passes the phase filter (and is of one of
    `mints`, if given), with `columns`; coins in the database's order of mints."""
    sql = _WINDOW_ROWS_SQL.format(epoch_micros=EPOCH_MICROS_SQL, values=float8_select(columns))
    params = {"since": since, "until": until, "phases": None if phases is None else list(phases),
              "mints": None if mints is None else list(mints)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return CoinHistories.empty(columns)
    by_column = list(zip(*rows))  # transpose once, in C
    mint_per_row = np.array(by_column[0], dtype=object)
    coin_starts = np.flatnonzero(np.r_[True, mint_per_row[1:] != mint_per_row[:-1]])
    return CoinHistories(
        mints=[str(m) for m in mint_per_row[coin_starts]],
        offsets=np.r_[coin_starts, len(rows)].astype(np.int64),
        timestamps_ns=np.array(by_column[1], dtype=np.int64) * 1000,
        columns={name: np.array(values, dtype=np.float64) for name, values in zip(columns, by_column[2:])},
    )


def window_counts(*, since: datetime, until: datetime) -> dict[str, int]:
    """Rows per coin with since <= timestamp <= until, by mint; coins in the order of their first row in the window
    (coins that trade at the same time sit together in the table, so a replay reads them together)."""
    with connection.cursor() as cursor:
        cursor.execute(_WINDOW_COUNTS_SQL, {"since": since, "until": until})
        return dict(cursor.fetchall())


# What a replay of [since, until] reads per coin: its newest `earlier` rows before `since` (the history its first
# replayed row sees) and every row of the window, under the phase filter: (request, id, time, values) per row, all as
# float8 (ids are exact below 2**53; NULL is sent as NaN), in one array (see float8_matrix). The time is sent as
# seconds since the epoch (date_part: the exact microseconds divided by 10**6, correctly rounded, so that rounding it
# times 10**6 gives them back exactly until 2106), which costs the server a fraction of EPOCH_MICROS_SQL's numerics.
_EPOCH_SECONDS_SQL = "date_part('epoch', m.\"timestamp\")"
_PHASE_FILTER = "(%(phases)s::int[] IS NULL OR m.phase_id_at_time = ANY (%(phases)s::int[]))"


def _replay_rows_sql(columns: Sequence[str]) -> str:
    values = "".join(f", coalesce({float8_select([column])}, 'NaN') AS v{j}" for j, column in enumerate(columns))
    return f"""
SELECT array_agg(ARRAY[r.i::float8, r.id::float8, r.seconds{"".join(f", r.v{j}" for j in range(len(columns)))}])
  FROM (
       SELECT req.i, h.*
         FROM unnest(%(mints)s::text[]) WITH ORDINALITY AS req(mint, i)
        CROSS JOIN LATERAL (
              SELECT m.id, {_EPOCH_SECONDS_SQL} AS seconds{values}
                FROM coin_metrics m
               WHERE m.mint = req.mint AND m."timestamp" < %(since)s AND {_PHASE_FILTER}
               ORDER BY m."timestamp" DESC
               LIMIT %(earlier)s
        ) h
       UNION ALL
       SELECT req.i, m.id, {_EPOCH_SECONDS_SQL}{values}
         FROM coin_metrics m
         JOIN unnest(%(mints)s::text[]) WITH ORDINALITY AS req(mint, i) ON req.mint = m.mint
        WHERE m.mint = ANY (%(mints)s::text[]) AND m."timestamp" >= %(since)s AND m."timestamp" <= %(until)s
          AND {_PHASE_FILTER}
  ) r
"""


REPLAY_ROWS_SQL = _replay_rows_sql(VALUE_COLUMNS)
_COPY_HEADER_BYTES = 19
_ARRAY_ELEMENT = np.dtype([("size", ">i4"), ("value", ">f8")])


def float8_matrix(sql: str, params, width: int) -> np.ndarray:
    """The one value of `sql` (an array_agg of float8 arrays of `width` elements without NULLs) as a (rows, width)
    array. One binary COPY of one value: no Python object, and no protocol message, per row."""
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as copy:
        data = memoryview(b"".join(copy))
    size = int.from_bytes(data[_COPY_HEADER_BYTES + 2 : _COPY_HEADER_BYTES + 6], "big", signed=True)
    if size < 0:  # NULL: no rows
        return np.zeros((0, width))
    array = data[_COPY_HEADER_BYTES + 6 : _COPY_HEADER_BYTES + 6 + size]
    dimensions, has_nulls, _element_type = np.frombuffer(array[:12], ">i4")
    if dimensions != 2 or has_nulls:
        raise ValueError("expected a 2-dimensional float8 array without NULLs")
    rows, columns = np.frombuffer(array[12:28], ">i4")[::2]
    if columns != width:
        raise ValueError(f"expected {width} values per row, got {columns}")
    elements = np.frombuffer(array[28:], _ARRAY_ELEMENT)
    if len(elements) != rows * columns or np.any(elements["size"] != 8):
        raise ValueError("unexpected array layout")
    return elements["value"].astype(np.float64).reshape(rows, columns)


def replay_rows(
    *, mints: Sequence[str], phases: Sequence[int] | None, since: datetime, until: datetime, earlier: int,
    columns: Sequence[str] = VALUE_COLUMNS,
) -> HistoryRows:
    """Per coin of `mints` (request k = mints[k]): its newest `earlier` rows before `since` and every row with
    since <= timestamp <= until, passing the phase filter, ascending by time; of the VALUE_COLUMNS only `columns`."""
    params = {"mints": list(mints), "phases": None if not phases else list(phases), "since": since, "until": until,
              "earlier": earlier}
    columns = tuple(columns)
    sql = REPLAY_ROWS_SQL if columns == VALUE_COLUMNS else _replay_rows_sql(columns)
    rows = float8_matrix(sql, params, 3 + len(columns))
    request = rows[:, 0].astype(np.int64) - 1
    micros = np.rint(rows[:, 2] * 1e6).astype(np.int64)
    order = np.lexsort((micros, request))  # by request, then time ascending
    return HistoryRows(
        bounds=np.searchsorted(request[order], np.arange(len(mints) + 1)),
        timestamps_ns=micros[order] * 1000,
        values=np.ascontiguousarray(rows[order, 3:].T),
        ids=rows[order, 1].astype(np.int64),
        columns=columns,
    )

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch → aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(micros))


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)
