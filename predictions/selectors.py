"""Reads of market data and prediction state, each one query for a whole listener batch."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db import connection

from predictions.features import HISTORY_COLUMNS, CoinHistories

# numeric::float8 is converted by PostgreSQL through the exact decimal text, so it is the correctly rounded double
# the feature engine needs, and it arrives far faster than Decimal objects.
_FLOAT_COLUMNS = [c for c in HISTORY_COLUMNS if c not in ("mint", "timestamp")]
_HISTORY_SELECT = ", ".join(
    ["m.mint", 'm."timestamp"'] + [f"m.{c}::float8" if c != "is_koth" else "m.is_koth::int::float8" for c in _FLOAT_COLUMNS]
)

# One lateral index scan on (mint, timestamp DESC) per (coin, phase filter) request.
HISTORY_SQL = f"""
SELECT req.grp, h.*
  FROM unnest(%s::text[], %s::int[], %s::text[]) AS req(mint, grp, phases)
 CROSS JOIN LATERAL (
       SELECT {_HISTORY_SELECT}
         FROM coin_metrics m
        WHERE m.mint = req.mint
          AND (req.phases IS NULL OR m.phase_id_at_time = ANY (req.phases::int[]))
          AND (%s::timestamptz IS NULL OR m."timestamp" <= %s::timestamptz)
        ORDER BY m."timestamp" DESC
        LIMIT %s
 ) h
 ORDER BY req.grp, h.mint, h."timestamp"
"""


def coin_histories(
    *, requests: dict[tuple[int, ...] | None, list[str]], limit: int, until: datetime | None = None
) -> dict[tuple[int, ...] | None, CoinHistories]:
    """Newest `limit` rows per coin (at or before `until`, if given), per phase filter (None = all phases).

    Models with the same phase filter share one history block: the original server read each model's
    history with its own phase filter applied before the row limit.
    """
    keys = list(requests)
    mints, groups, phase_filters = [], [], []
    for group, key in enumerate(keys):
        for mint in requests[key]:
            mints.append(mint)
            groups.append(group)
            phase_filters.append(None if key is None else "{" + ",".join(map(str, key)) + "}")
    with connection.cursor() as cursor:
        cursor.execute(HISTORY_SQL, [mints, groups, phase_filters, until, until, limit])
        rows = cursor.fetchall()
    by_group: dict[int, list] = defaultdict(list)
    for row in rows:
        by_group[row[0]].append(row[1:])
    return {key: CoinHistories.from_rows(by_group.get(group, []), HISTORY_COLUMNS) for group, key in enumerate(keys)}


SNAPSHOT_SQL = """
SELECT ev.mint, s.price_close, s.price_open, s.price_high, s.price_low, s.market_cap_close, s.volume_sol,
       s.phase_id_at_time
  FROM unnest(%s::text[], %s::timestamptz[]) AS ev(mint, ts)
 CROSS JOIN LATERAL (
       SELECT * FROM coin_metrics m
        WHERE m.mint = ev.mint AND m."timestamp" <= ev.ts
        ORDER BY m."timestamp" DESC LIMIT 1
 ) s
"""


def price_snapshots(*, events: list[tuple[str, datetime]]) -> dict[str, tuple]:
    """Per coin, its newest row at or before the event time: (close, open, high, low, market cap, volume, phase)."""
    if not events:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(SNAPSHOT_SQL, [[m for m, _ in events], [t for _, t in events]])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def scan_states(*, mints: list[str], model_ids: list[int]) -> dict[tuple[str, int], tuple[datetime | None, datetime]]:
    """(coin, model) → (ignore_until, last_scan_at) for the pairs of a batch."""
    if not mints or not model_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coin_id, active_model_id, ignore_until, last_scan_at FROM coin_scan_cache "
            "WHERE coin_id = ANY(%s) AND active_model_id = ANY(%s)",
            [mints, model_ids],
        )
        return {(coin, model): (until, scanned) for coin, model, until, scanned in cursor.fetchall()}


def pending_tag_counts(*, mints: list[str], model_ids: list[int]) -> dict[tuple[int, str, str], int]:
    """(model, coin, tag) → number of pending predictions, for the max-log caps."""
    if not mints or not model_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT active_model_id, coin_id, tag, count(*) FROM model_predictions "
            "WHERE status = 'aktiv' AND coin_id = ANY(%s) AND active_model_id = ANY(%s) "
            "GROUP BY 1, 2, 3",
            [mints, model_ids],
        )
        return {(model, coin, tag): count for model, coin, tag, count in cursor.fetchall()}


def queue_depth() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM coin_metrics_queue")
        return cursor.fetchone()[0]
