"""What changed in `coin_metrics` behind a history cache since its previous look: late inserts, updates, deletes.

The rows come from `coin_metrics_changes` (written by triggers on coin_metrics, see
predictions/history_change_schema.py). A reader remembers the snapshot of its previous read and asks for the rows
that snapshot could not see: written by a transaction at or above the snapshot's xmin (an index range) that the
snapshot counts as not yet committed. Every committed change is so reported exactly once, whatever order the
writers commit in, with one query per batch; the snapshot and the changes come from the same statement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

# The statement's own snapshot, and per coin the earliest changed timestamp among the changes the previous snapshot
# could not see (none on the first read: the cache holds nothing older than this snapshot then).
CHANGES_SQL = """
SELECT pg_current_snapshot()::text, c.mint, c.since, c.everything
  FROM (SELECT 1) one
  LEFT JOIN LATERAL (
       SELECT mint, min(since) AS since, bool_or(mint IS NULL) AS everything
         FROM coin_metrics_changes
        WHERE %(previous)s::pg_snapshot IS NOT NULL
          AND changed_by_xid >= pg_snapshot_xmin(%(previous)s::pg_snapshot)
          AND NOT pg_visible_in_snapshot(changed_by_xid, %(previous)s::pg_snapshot)
        GROUP BY mint
  ) c ON true
"""

# Old changes matter to no cache (every entry older than its max age is read afresh anyway); listeners prune them
# now and then, skipping rows another listener is pruning at the same moment instead of waiting for it.
PRUNE_SQL = """
DELETE FROM coin_metrics_changes
 WHERE id IN (SELECT id FROM coin_metrics_changes
               WHERE changed_at < now() - %(keep_seconds)s * interval '1 second'
               ORDER BY id LIMIT 10000 FOR UPDATE SKIP LOCKED)
"""


@dataclass
class Changes:
    """Coins whose rows from `since` on may differ from what a cache holds; `everything`: coin_metrics was emptied."""

    since: dict[str, datetime] = field(default_factory=dict)
    everything: bool = False


class ChangeReader:
    """Reads the changes committed since its previous read; `reset()` after the cache was emptied."""

    def __init__(self, *, keep_seconds: float, prune_every_seconds: float = 60.0, clock=time.monotonic):
        self.keep_seconds = keep_seconds
        self.prune_every_seconds = prune_every_seconds
        self.clock = clock
        self.snapshot: str | None = None
        self.pruned_at = clock()
        self.reads = 0

    def reset(self) -> None:
        self.snapshot = None

    def read(self) -> Changes:
        changes = Changes()
        with connection.cursor() as cursor:
            cursor.execute(CHANGES_SQL, {"previous": self.snapshot})
            rows = cursor.fetchall()
            if self.clock() - self.pruned_at >= self.prune_every_seconds:
                self.pruned_at = self.clock()
                cursor.execute(PRUNE_SQL, {"keep_seconds": self.keep_seconds})
        self.reads += 1
        self.snapshot = rows[0][0]
        for _snapshot, mint, since, everything in rows:
            if everything:
                changes.everything = True
            elif mint is not None:
                changes.since[mint] = since
        return changes
