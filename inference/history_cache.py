"""The listener's history cache: each coin's newest rows kept across batches, so that a batch reads only the rows
that are new, and answers exactly what a fresh read of the database (`inference.history.coin_histories`) gives.

Every listener sees the same truth: rows newer than the newest held are read by every cache on the coin's next use
(whichever listener claimed them), and rows that appear, change or vanish behind what a cache holds (late inserts,
UPDATE, DELETE, TRUNCATE) are recorded by triggers in `coin_metrics_changes`, read once per batch
(`inference.history_changes`): the coin's held rows from the changed moment on are re-read before features are
built. See docs/how-it-works.md ("Several listeners, one truth").
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

import numpy as np

from inference.features import VALUE_COLUMNS, CoinHistories
from inference.history import HistoryRequest, from_micros, read_history_rows, to_micros
from inference.history_changes import ChangeReader, Changes

_SWEEP_SECONDS = 1.0  # how often expired and idle coins are looked for
_PLAIN_READ_COINS = 200  # up to this many coins' new rows are read without a server-side cursor
_SPARE_ROWS = 16  # room for a coin's next rows (about one per batch), so most batches append without reallocating
_PHASE_COLUMN = VALUE_COLUMNS.index("phase_id_at_time")


@dataclass
class _CachedHistory:
    """One coin's newest rows (under one phase filter), ascending by time, in buffers with room to grow: a batch
    appends a coin's new rows in place instead of reallocating its whole history."""

    timestamps_buffer: np.ndarray  # int64, capacity
    values_buffer: np.ndarray  # (len(VALUE_COLUMNS), capacity) float64, in VALUE_COLUMNS order
    rows: int
    complete: bool  # holds every row of the coin (under the filter), not only the newest `limit`
    expires_at: float
    used_at: float
    _view: tuple | None = None
    # Every phase value of the rows appended so far (a superset of the held rows' phases once rows were dropped):
    # when a filter admits all of them, the filter keeps every held row without a look at the rows.
    phases: set = field(default_factory=set)

    @classmethod
    def of(cls, timestamps: np.ndarray, values: np.ndarray, *, limit: int, complete: bool, expires_at: float,
           used_at: float) -> _CachedHistory:
        entry = cls(np.empty(0, np.int64), np.empty((values.shape[0], 0)), 0, complete, expires_at, used_at)
        entry.append(timestamps, values, limit=limit)
        return entry

    @property
    def timestamps_ns(self) -> np.ndarray:
        return self.timestamps_buffer[: self.rows]

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, values) of the held rows; the same tuple until rows are appended."""
        if self._view is None:
            self._view = (self.timestamps_buffer[: self.rows], self.values_buffer[:, : self.rows])
        return self._view

    @property
    def newest(self) -> datetime:
        return from_micros(int(self.timestamps_buffer[self.rows - 1]) // 1000)

    def holds(self, timestamp_ns: int) -> bool:
        held = self.timestamps_ns
        index = np.searchsorted(held, timestamp_ns)
        return bool(index < len(held) and held[index] == timestamp_ns)

    def append(self, timestamps: np.ndarray, values: np.ndarray, *, limit: int) -> None:
        """Add newer rows, keeping the newest `limit`."""
        new = min(len(timestamps), limit)
        kept = min(self.rows, limit - new)
        total = kept + new
        if total > len(self.timestamps_buffer):
            capacity = min(limit, total + _SPARE_ROWS)
            timestamps_buffer = np.empty(capacity, np.int64)
            values_buffer = np.empty((self.values_buffer.shape[0], capacity))
            timestamps_buffer[:kept] = self.timestamps_buffer[self.rows - kept : self.rows]
            values_buffer[:, :kept] = self.values_buffer[:, self.rows - kept : self.rows]
            self.timestamps_buffer, self.values_buffer = timestamps_buffer, values_buffer
        elif kept < self.rows:  # full: move the rows that stay to the front (numpy copies overlapping slices safely)
            self.timestamps_buffer[:kept] = self.timestamps_buffer[self.rows - kept : self.rows]
            self.values_buffer[:, :kept] = self.values_buffer[:, self.rows - kept : self.rows]
        self.timestamps_buffer[kept:total] = timestamps[len(timestamps) - new :]
        self.values_buffer[:, kept:total] = values[:, values.shape[1] - new :]
        self.phases.update(self.values_buffer[_PHASE_COLUMN, kept:total].tolist())
        self.rows = total
        self._view = None

    def truncate_from(self, timestamp_ns: int) -> None:
        """Forget the rows at or after `timestamp_ns` (they changed); the next read brings them back as they are."""
        self.rows = int(np.searchsorted(self.timestamps_ns, timestamp_ns))
        self._view = None


class HistoryCache:
    """The listener's per-coin histories, kept across batches so that a batch reads only the rows that are new.

    `histories(requests, until=...)` answers exactly what `coin_histories(requests=..., limit=..., until=...)` would
    read from the database (the newest `limit` rows per coin and phase filter, at or before the coin's moment in
    `until`), with one query per batch that fetches, per coin, only the rows newer than the newest one it holds (or
    the whole history for a coin it does not hold). A coin's moment lies before its newest held rows when its row
    arrived late or another listener already read newer ones: its history is cut from the held rows where they reach
    back far enough, else read on its own.

    Each coin is held once, unfiltered; a phase filter's history is cut from it (the newest `limit` held rows that
    pass the filter) when that is exact: the coin's whole history is held, or at least `limit` held rows pass.
    Otherwise the (filter, coin) pair is held on its own. When every held row passes the filter (the usual case),
    the filter's history is the very same arrays, and filters whose coins all share them get one block.

    Rows the cache cannot see coming are handled like this:
    * a row older than (or as old as) the newest held row of its coin and not held (a late, out-of-order insert) is
      noticed when the listener claims it (`forget_late_rows`): the coin is dropped and read afresh;
    * late rows claimed by another listener, updated, deleted or truncated rows: recorded by the database in
      `coin_metrics_changes`; each `histories` call first reads what changed since its previous call and forgets
      the held rows of those coins from the changed moment on (`forget_changes`), which the same call re-reads;
    * as a last resort (a change the triggers cannot record, such as rows written with triggers disabled), every
      coin is read afresh at least every `max_age_seconds` (with jitter, so coins do not all expire at once).

    Memory is bounded by `max_rows` (least recently used coins go first; ~232 bytes per row) and by
    `idle_seconds` (coins without events for that long are dropped).
    """

    def __init__(self, *, limit: int, max_rows: int = 500_000, idle_seconds: float = 300.0,
                 max_age_seconds: float = 600.0, track_changes: bool = True, clock=time.monotonic):
        self.limit = limit
        self.max_rows = max_rows
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._entries: dict[tuple[tuple[int, ...] | None, str], _CachedHistory] = {}
        self._keys_of_mint: dict[str, set] = defaultdict(set)
        self.rows = 0
        self.stats = {"full_loads": 0, "delta_loads": 0, "rows_read": 0, "late_rows": 0, "evicted": 0,
                      "changed_coins": 0, "own_reads": 0}
        # A change older than every held entry can be pruned from the log: entries are re-read within max_age anyway.
        self.changes = ChangeReader(keep_seconds=max(3600.0, 2 * max_age_seconds), clock=clock) if track_changes else None
        self._truncated: set = set()  # entries that lost rows to a change and may now hold too few
        self._next_sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._keys_of_mint.clear()
        self._truncated.clear()
        self.rows = 0
        if self.changes is not None:
            self.changes.reset()  # the database may be another one now: start from its present

    # -- invalidation -------------------------------------------------------------------------------------------

    def forget_late_rows(self, claimed_rows) -> None:
        """Drop the coins that got a row the cache may have missed: claimed rows are (mint, timestamp, ...)."""
        for mint, timestamp, *_rest in claimed_rows:
            keys = self._keys_of_mint.get(mint)
            if not keys:
                continue
            timestamp_ns = to_micros(timestamp) * 1000
            for key in list(keys):
                entry = self._entries[key]
                if timestamp_ns <= entry.timestamps_ns[-1] and not entry.holds(timestamp_ns):
                    self.stats["late_rows"] += 1
                    for stale in list(keys):
                        self._drop(stale)
                    break

    def forget_changes(self, changes: Changes) -> None:
        """Forget what changed behind the held rows: a coin's rows from the changed moment on (read again with the
        coin's next rows), every coin when coin_metrics was emptied."""
        if changes.everything:
            self._entries.clear()
            self._keys_of_mint.clear()
            self._truncated.clear()
            self.rows = 0
            return
        for mint, since in changes.since.items():
            keys = self._keys_of_mint.get(mint)
            if not keys:
                continue
            self.stats["changed_coins"] += 1
            since_ns = to_micros(since) * 1000
            for key in list(keys):
                entry = self._entries[key]
                held = entry.rows
                entry.truncate_from(since_ns)
                self.rows -= held - entry.rows
                if entry.rows == 0:
                    self._drop(key)
                elif entry.rows < held:
                    self._truncated.add(key)

    def _drop(self, key) -> None:
        entry = self._entries.pop(key, None)
        self._truncated.discard(key)
        if entry is None:
            return
        self.rows -= entry.rows
        keys = self._keys_of_mint.get(key[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_of_mint[key[1]]

    def _store(self, key, entry: _CachedHistory) -> None:
        self._drop(key)
        self._entries[key] = entry
        self._keys_of_mint[key[1]].add(key)
        self.rows += entry.rows

    # -- reading ------------------------------------------------------------------------------------------------

    def histories(
        self, requests: dict[tuple[int, ...] | None, list[str]], *, until: Mapping[str, datetime] | None = None
    ) -> dict[tuple[int, ...] | None, CoinHistories]:
        """{phase filter: mints} → {phase filter: CoinHistories}, as coin_histories (with `until`: each coin's rows at
        or before its moment) would read them now."""
        if self.changes is not None:
            self.forget_changes(self.changes.read())
        now = self.clock()
        if now >= self._next_sweep:  # memory: a look at every held coin, once a second is enough
            self._next_sweep = now + _SWEEP_SECONDS
            for key in [k for k, e in self._entries.items()
                        if e.expires_at <= now or e.used_at < now - self.idle_seconds]:
                self._drop(key)

        # Every requested coin is held unfiltered; (filter, coin) pairs held on their own are brought up to date too.
        wanted = {(None, mint) for mints in requests.values() for mint in mints}
        wanted.update((key, mint) for key, mints in requests.items() if key is not None for mint in mints
                      if (key, mint) in self._entries)
        for pair in [pair for pair in wanted if pair in self._entries and self._entries[pair].expires_at <= now]:
            self._drop(pair)  # expired since the last sweep: read afresh now
        self._refresh(sorted(wanted, key=lambda k: (k[1], k[0] is not None, k[0] or ())), now)

        views: dict = {}
        missing = []
        for key, mints in requests.items():
            for mint in mints:
                view = self._view(key, mint)
                if view is False:
                    missing.append((key, mint))
                else:
                    views[(key, mint)] = view
        if missing:  # a filter that cannot be cut from the held rows: hold that pair on its own from now on
            self._refresh(missing, now)
            for key, mint in missing:
                own = self._entries.get((key, mint))
                views[(key, mint)] = None if own is None else own.view()
        for pair in [*wanted, *missing]:
            entry = self._entries.get(pair)
            if entry is not None:
                entry.used_at = now
        if until:
            self._cut_views(views, until)
        self._evict(now)
        # Phase filters that leave every requested coin its unfiltered rows (the usual case) share one block, so the
        # engine sees at once that their features are the same.
        blocks: dict = {}
        by_content: dict = {}
        for key, mints in requests.items():
            content = tuple((mint, None if views[(key, mint)] is None else id(views[(key, mint)][0])) for mint in mints)
            if content not in by_content:
                by_content[content] = self._block(mints, key, views)
            blocks[key] = by_content[content]
        return blocks

    def _refresh(self, keys: list, now: float) -> None:
        """One query: new rows for held pairs, whole histories for the others."""
        if not keys:
            return
        reads = []
        for key, mint in keys:
            entry = self._entries.get((key, mint))
            # The newest `limit` rows of a coin (full load) or only the rows newer than what the cache holds.
            reads.append(HistoryRequest(mint, key, after=entry.newest if entry is not None else None))
        # Whole histories, or new rows of many coins (a listener that fell behind), may be many rows: those go through a
        # server-side cursor. A small batch's new rows (about one per coin) take one round trip instead of four.
        many = len(reads) > _PLAIN_READ_COINS or any(read.after is None for read in reads)
        rows = read_history_rows(reads, limit=self.limit, server_side=many)
        bounds, timestamps, values = rows.bounds, rows.timestamps_ns, rows.values
        self.stats["rows_read"] += len(timestamps)
        for i, (key, mint) in enumerate(keys):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            entry = self._entries.get((key, mint))
            if entry is None:
                self.stats["full_loads"] += 1
                if hi > lo:
                    self._store((key, mint), _CachedHistory.of(
                        timestamps[lo:hi], values[:, lo:hi], limit=self.limit, complete=hi - lo < self.limit,
                        expires_at=now + self.max_age_seconds * random.uniform(0.75, 1.0), used_at=now,
                    ))
                continue
            self.stats["delta_loads"] += 1
            if hi == lo:
                continue
            entry.complete = entry.complete and entry.rows + (hi - lo) <= self.limit
            self.rows -= entry.rows
            entry.append(timestamps[lo:hi], values[:, lo:hi], limit=self.limit)
            self.rows += entry.rows
        # An entry that lost rows to a change holds the coin's newest rows only if it still has `limit` of them (or
        # all of the coin's): rows deleted from it are not replaced by older ones it never held. Else read it whole.
        short = [pair for pair in keys if pair in self._truncated and not self._exact(self._entries.get(pair))]
        self._truncated.difference_update(keys)
        for pair in short:
            self._drop(pair)
        self._refresh(short, now)

    def _exact(self, entry: _CachedHistory | None) -> bool:
        return entry is None or entry.complete or entry.rows >= self.limit

    def _cut_views(self, views: dict, until: Mapping[str, datetime]) -> None:
        """Cut each pair's view to the rows at or before its coin's moment; pairs whose held rows do not reach back
        `limit` rows before that moment (and do not hold the whole coin) are read on their own, uncached."""
        own_reads = []
        # One cut per held view and moment, so that filters which shared a view share its cut (and so one block).
        # The view is kept beside its cut so that its id is not reused while the cuts are looked up.
        cuts: dict = {}
        for (key, mint), view in views.items():
            moment = until.get(mint)
            if view is None or moment is None:
                continue
            timestamps, values = view
            until_ns = to_micros(moment) * 1000
            if timestamps[-1] <= until_ns:
                continue
            kept = int(np.searchsorted(timestamps, until_ns, side="right"))
            source = self._entries.get((key, mint)) or self._entries[(None, mint)]
            if kept < self.limit and not source.complete:
                own_reads.append((key, mint))
                continue
            cut_key = (id(view), kept)
            if cut_key not in cuts:
                first = max(0, kept - self.limit)
                cuts[cut_key] = (view, (timestamps[first:kept], values[:, first:kept]) if kept else None)
            views[(key, mint)] = cuts[cut_key][1]
        if not own_reads:
            return
        self.stats["own_reads"] += len(own_reads)
        rows = read_history_rows([HistoryRequest(mint, key, until=until[mint]) for key, mint in own_reads],
                                 limit=self.limit)
        for i, pair in enumerate(own_reads):
            lo, hi = int(rows.bounds[i]), int(rows.bounds[i + 1])
            views[pair] = (rows.timestamps_ns[lo:hi], rows.values[:, lo:hi]) if hi > lo else None

    def _view(self, key, mint):
        """(timestamps, values) of the pair, None if the coin has no such rows, False if it must be read on its own."""
        own = self._entries.get((key, mint))
        if own is not None:
            return own.view()
        base = self._entries.get((None, mint))
        if base is None:
            return None  # the coin has no rows at all
        timestamps, values = view = base.view()
        if key is None or base.phases.issubset(key):
            return view  # the very same arrays: blocks of filters that change nothing are shared
        passes = np.isin(values[_PHASE_COLUMN], np.asarray(key, dtype=np.float64))
        if passes.all():
            return view
        if base.complete or int(passes.sum()) >= self.limit:
            kept = np.flatnonzero(passes)[-self.limit:]
            return (timestamps[kept], values[:, kept]) if len(kept) else None
        return False

    def _block(self, mints: list[str], key, views: dict) -> CoinHistories:
        parts = [views[(key, mint)] for mint in mints]
        present = [(mint, part) for mint, part in zip(mints, parts) if part is not None]
        if not present:
            return CoinHistories.empty(VALUE_COLUMNS)
        lengths = np.fromiter((len(part[0]) for _, part in present), np.int64, len(present))
        timestamps = np.concatenate([part[0] for _, part in present])
        values = np.concatenate([part[1] for _, part in present], axis=1)
        return CoinHistories(
            mints=[mint for mint, _ in present],
            offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
            timestamps_ns=timestamps,
            columns={name: values[j] for j, name in enumerate(VALUE_COLUMNS)},
        )

    def _evict(self, now: float) -> None:
        if self.rows <= self.max_rows:
            return
        by_age = sorted(((e.used_at, key) for key, e in self._entries.items() if e.used_at < now), key=lambda x: x[0])
        for _used, key in by_age:
            if self.rows <= 0.9 * self.max_rows:
                break
            self._drop(key)
            self.stats["evicted"] += 1
