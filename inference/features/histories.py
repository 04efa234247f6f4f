"""Coin histories as the feature engine reads them: the ``coin_metrics`` columns and the columnar
``CoinHistories`` block (many coins' rows in one CSR layout)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

import numpy as np

HISTORY_COLUMNS: tuple[str, ...] = (
    "mint",
    "timestamp",
    "phase_id_at_time",
    "price_open",
    "price_high",
    "price_low",
    "price_close",
    "market_cap_close",
    "bonding_curve_pct",
    "virtual_sol_reserves",
    "is_koth",
    "volume_sol",
    "buy_volume_sol",
    "sell_volume_sol",
    "num_buys",
    "num_sells",
    "unique_wallets",
    "num_micro_trades",
    "dev_sold_amount",
    "max_single_buy_sol",
    "max_single_sell_sol",
    "net_volume_sol",
    "volatility_pct",
    "avg_trade_size_sol",
    "whale_buy_volume_sol",
    "whale_sell_volume_sol",
    "num_whale_buys",
    "num_whale_sells",
    "buy_pressure_ratio",
    "unique_signer_ratio",
)

# The history columns a model may use directly as features (everything but the key).
VALUE_COLUMNS: tuple[str, ...] = HISTORY_COLUMNS[2:]

# The original server hard-coded this limit on the history query (spec §3.2).
HISTORY_LIMIT = 1000

DEFAULT_WINDOWS = (5, 10, 15)



@dataclass(frozen=True, eq=False)
class CoinHistories:
    """Histories of many coins in one columnar block (CSR layout).

    * ``mints[i]`` labels coin i (labels may repeat, e.g. the same mint "as of" several
      points in time).
    * ``offsets`` (int64, ``n_coins + 1``): coin i's rows are ``offsets[i]:offsets[i+1]``,
      ascending by time (newest last). Every coin has at least one row.
    * ``timestamps_ns`` (int64): UTC nanoseconds since the epoch, one per row.
    * ``columns``: name -> float64 array, one value per row; NaN = SQL NULL; a value is
      the correctly rounded double of the stored decimal; ``is_koth`` is 0/1/NaN.
    """

    mints: list[str]
    offsets: np.ndarray
    timestamps_ns: np.ndarray
    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64)
        timestamps = np.asarray(self.timestamps_ns, dtype=np.int64)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "timestamps_ns", timestamps)
        object.__setattr__(
            self,
            "columns",
            {name: np.asarray(values, dtype=np.float64) for name, values in self.columns.items()},
        )
        n_rows = len(timestamps)
        if offsets.ndim != 1 or len(offsets) != len(self.mints) + 1:
            raise ValueError("offsets must have one entry per coin plus one")
        if offsets[0] != 0 or offsets[-1] != n_rows:
            raise ValueError("offsets must start at 0 and end at the number of rows")
        if np.any(np.diff(offsets) <= 0):
            raise ValueError("every coin needs at least one history row")
        for name, values in self.columns.items():
            if values.shape != (n_rows,):
                raise ValueError(f"column {name!r} has {values.shape} values, expected {n_rows}")
        if n_rows > 1:
            # A step backwards in time is only allowed where a new coin starts.
            backwards = np.flatnonzero(np.diff(timestamps) < 0) + 1
            if not np.all(np.isin(backwards, offsets)):
                raise ValueError("each coin's rows must be sorted ascending by timestamp")

    @property
    def n_coins(self) -> int:
        return len(self.mints)

    @property
    def lengths(self) -> np.ndarray:
        """Number of history rows per coin."""
        return np.diff(self.offsets)

    @classmethod
    def empty(cls, column_names: Iterable[str] = VALUE_COLUMNS) -> CoinHistories:
        return cls(
            mints=[],
            offsets=np.zeros(1, np.int64),
            timestamps_ns=np.zeros(0, np.int64),
            columns={name: np.zeros(0) for name in column_names},
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[object]], column_names: Sequence[str]) -> CoinHistories:
        """Build the block from DB rows ordered by ``mint``, then ``timestamp`` ascending.

        Values as psycopg returns them: ``Decimal`` / ``int`` / ``float`` / ``bool`` /
        ``None``; ``timestamp`` as (time-zone aware) ``datetime``. ``column_names`` must
        contain ``mint`` and ``timestamp``; every other column is kept.

        ``Decimal`` -> float is correctly rounded (numpy calls ``Decimal.__float__``). Rows
        fetched as float8 (``numeric::float8`` in SQL, which PostgreSQL converts through the
        decimal text, so also correctly rounded) convert much faster than ``Decimal``.
        """
        names = list(column_names)
        for key in ("mint", "timestamp"):
            if key not in names:
                raise ValueError(f"column_names must include {key!r}")
        if len(rows) == 0:
            return cls.empty([n for n in names if n not in ("mint", "timestamp")])

        by_column = list(zip(*rows))  # transpose once, in C
        if len(by_column) != len(names):
            raise ValueError(f"rows have {len(by_column)} values, column_names has {len(names)}")
        mint_per_row = np.array(by_column[names.index("mint")], dtype=object)
        timestamps = _timestamps_to_ns(by_column[names.index("timestamp")])

        coin_starts = np.flatnonzero(np.r_[True, mint_per_row[1:] != mint_per_row[:-1]])
        mints = [str(m) for m in mint_per_row[coin_starts]]
        if len(set(mints)) != len(mints):
            raise ValueError("rows must be grouped by mint (ORDER BY mint, timestamp)")

        columns = {
            name: np.array(values, dtype=np.float64)  # None -> NaN, Decimal/int/bool -> float
            for name, values in zip(names, by_column)
            if name not in ("mint", "timestamp")
        }
        return cls(
            mints=mints,
            offsets=np.r_[coin_starts, len(rows)].astype(np.int64),
            timestamps_ns=timestamps,
            columns=columns,
        )

    @classmethod
    def concat(cls, parts: Sequence[CoinHistories]) -> CoinHistories:
        """All coins of ``parts`` in order (the parts must hold the same columns)."""
        if not parts:
            return cls.empty()
        names = list(parts[0].columns)
        if any(set(p.columns) != set(names) for p in parts):
            raise ValueError("all parts must hold the same columns")
        row_starts = np.cumsum([0] + [len(p.timestamps_ns) for p in parts])
        offsets = np.concatenate(
            [np.zeros(1, np.int64)] + [p.offsets[1:] + start for p, start in zip(parts, row_starts)]
        )
        return cls(
            mints=[m for p in parts for m in p.mints],
            offsets=offsets,
            timestamps_ns=np.concatenate([p.timestamps_ns for p in parts]),
            columns={n: np.concatenate([p.columns[n] for p in parts]) for n in names},
        )

    def take(self, coin_indices: Sequence[int] | np.ndarray) -> CoinHistories:
        """The given coins (in the given order) as a new block."""
        coin_indices = np.asarray(coin_indices, dtype=np.int64)
        row_index, offsets = rows_of_coins(self.offsets, coin_indices)
        return CoinHistories(
            mints=[self.mints[i] for i in coin_indices],
            offsets=offsets,
            timestamps_ns=self.timestamps_ns[row_index],
            columns={name: values[row_index] for name, values in self.columns.items()},
        )

    def select_rows(
        self, *, phases: Sequence[int] | None, max_rows: int = HISTORY_LIMIT
    ) -> tuple[CoinHistories, np.ndarray]:
        """What the original history query read for a model (spec §3.2).

        With a non-empty ``phases`` list only rows whose ``phase_id_at_time`` is in it are
        kept (NULL phase never matches, SQL ``= ANY``); then each coin keeps its newest
        ``max_rows`` rows. Coins left without rows cannot be predicted and are dropped.
        Returns ``(histories, kept)``: ``kept`` are the indices of the surviving coins in
        ``self``.

        ``self`` must hold every row the query could have returned: with a phase filter
        the newest ``max_rows`` matching rows may reach back past the newest ``max_rows``
        rows overall.
        """
        n_rows = len(self.timestamps_ns)
        coin_of_row = np.repeat(np.arange(self.n_coins), self.lengths)
        if phases:
            keep = np.isin(self.columns["phase_id_at_time"], np.asarray(list(phases), dtype=np.float64))
        else:
            keep = np.ones(n_rows, dtype=bool)
        # Rank of each kept row among its coin's kept rows, counted from the newest (0).
        kept_so_far = np.cumsum(keep)
        kept_by_coin_end = kept_so_far[self.offsets[1:] - 1]
        rank_from_newest = kept_by_coin_end[coin_of_row] - kept_so_far
        keep &= rank_from_newest < max_rows

        kept_counts = np.bincount(coin_of_row[keep], minlength=self.n_coins)
        kept = np.flatnonzero(kept_counts > 0)
        offsets = np.r_[0, np.cumsum(kept_counts[kept])].astype(np.int64)
        return (
            CoinHistories(
                mints=[self.mints[i] for i in kept],
                offsets=offsets,
                timestamps_ns=self.timestamps_ns[keep],
                columns={name: values[keep] for name, values in self.columns.items()},
            ),
            kept,
        )


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _timestamps_to_ns(values: Sequence[object]) -> np.ndarray:
    """``datetime`` (aware; naive ones are taken as UTC) or ``datetime64`` -> int64 ns.

    Integer timedelta arithmetic is exact and, per value, ~10x faster than numpy's own
    conversion of aware datetimes (which also warns about dropping the zone).
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if isinstance(values[0], np.datetime64):
        return np.array(values, dtype="datetime64[ns]").astype(np.int64)
    epoch = _EPOCH_UTC if values[0].tzinfo is not None else _EPOCH_NAIVE
    micros = np.fromiter(((v - epoch) // _ONE_MICROSECOND for v in values), np.int64, len(values))
    return micros * 1000


def rows_of_coins(offsets: np.ndarray, coin_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat row indices of the given coins (concatenated) and their new CSR offsets."""
    starts = offsets[coin_indices]
    lengths = offsets[coin_indices + 1] - starts
    new_offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    row_index = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1] - starts, lengths)
    return row_index, new_offsets
