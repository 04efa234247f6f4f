"""Adopting an unpartitioned `model_predictions` (every database before migration 0005) and giving it back.

The conversion runs inside the migration's transaction, so it is all or nothing: the old table is renamed aside,
the partitioned one created with a day partition for every day that has rows (and the days ahead), the rows are
copied over in id ranges of `batch_size` (a bounded statement each, ids kept), the counts are compared, the id
sequence continues where the old one stopped, and only then is the old table dropped.
"""

from __future__ import annotations

from datetime import date, timedelta

from psycopg import sql

from predictions import partitions
from predictions.partitions import SEQUENCE, TABLE

OLD_TABLE = "model_predictions_unpartitioned"
BATCH_SIZE = 100_000

# The layout of migration 0001 (what reversing 0005 restores), apart from the identity: ids keep their sequence.
UNPARTITIONED_INDEXES = f"""
ALTER TABLE {TABLE} ADD CONSTRAINT model_predictions_pkey PRIMARY KEY (id);
ALTER TABLE {TABLE} ADD CONSTRAINT predictions_once_per_row UNIQUE (active_model_id, coin_id, prediction_timestamp);
ALTER TABLE {TABLE} ADD CONSTRAINT model_predictions_active_model_id_b7eefe5a_fk_predictio
    FOREIGN KEY (active_model_id) REFERENCES prediction_active_models (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX model_predictions_active_model_id_b7eefe5a ON {TABLE} (active_model_id);
CREATE INDEX predictions_coin_time_idx ON {TABLE} (coin_id, prediction_timestamp DESC);
CREATE INDEX predictions_model_time_idx ON {TABLE} (active_model_id, prediction_timestamp DESC);
CREATE INDEX predictions_due_idx ON {TABLE} (evaluation_timestamp) WHERE status = 'aktiv';
CREATE INDEX predictions_pending_cap_idx ON {TABLE} (active_model_id, coin_id, tag) WHERE status = 'aktiv';
CREATE INDEX predictions_created_idx ON {TABLE} (created_at);
"""


def _free_index_names(cursor, table: str) -> None:
    """Drop the table's indexes and unique constraints but its primary key (renamed), so the names are free."""
    cursor.execute("""
        SELECT i.relname, c.conname
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
          LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
         WHERE x.indrelid = %s::regclass AND NOT x.indisprimary
    """, [table])
    for index, constraint in cursor.fetchall():
        if constraint:
            cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table),
                                                                               sql.Identifier(constraint)))
        else:
            cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
    cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [table])
    for (name,) in cursor.fetchall():
        cursor.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            sql.Identifier(table), sql.Identifier(name), sql.Identifier(f"{table}_pkey")))


def _next_id(cursor, table: str) -> int | None:
    """The value the table's id sequence would hand out next (None without rows or sequence use)."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    (sequence,) = cursor.fetchone()
    last = None
    if sequence:
        cursor.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(sequence)))
        value, called = cursor.fetchone()
        last = value if called else value - 1
    cursor.execute(sql.SQL("SELECT max(id) FROM {}").format(sql.Identifier(table)))
    (highest,) = cursor.fetchone()
    known = [n for n in (last, highest) if n]
    return max(known) + 1 if known else None


def _copy_in_batches(cursor, *, source: str, target: str, batch_size: int) -> int:
    cursor.execute(sql.SQL("SELECT min(id), max(id) FROM {}").format(sql.Identifier(source)))
    low, high = cursor.fetchone()
    copied = 0
    if low is None:
        return 0
    statement = sql.SQL("INSERT INTO {target} ({columns}) SELECT {columns} FROM {source} "
                        "WHERE id >= %s AND id < %s").format(
        target=sql.Identifier(target), source=sql.Identifier(source), columns=partitions.stored_columns())
    for start in range(low, high + 1, batch_size):
        cursor.execute(statement, [start, start + batch_size])
        copied += cursor.rowcount
    return copied


def _count(cursor, table: str) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return cursor.fetchone()[0]


def partition_table(cursor, *, today: date, batch_size: int = BATCH_SIZE) -> int:
    """Convert an unpartitioned `model_predictions` into the partitioned layout, keeping every row and id; returns
    the rows moved. A no-op on a table that is partitioned already."""
    if partitions.is_partitioned(cursor):
        return 0
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred FK checks of this transaction first: ALTER needs it
    next_id = _next_id(cursor, TABLE)
    cursor.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(TABLE), sql.Identifier(OLD_TABLE)))
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [OLD_TABLE])
    (old_sequence,) = cursor.fetchone()
    if old_sequence:  # an identity's or serial's sequence: out of the way of the new one's name
        cursor.execute(sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
            sql.SQL(old_sequence), sql.Identifier(f"{OLD_TABLE}_id_seq")))
    _free_index_names(cursor, OLD_TABLE)
    partitions.create_partitioned_table(cursor)
    cursor.execute(sql.SQL(
        "SELECT DISTINCT tag = 'alert', (prediction_timestamp AT TIME ZONE 'UTC')::date FROM {}"
    ).format(sql.Identifier(OLD_TABLE)))
    days = {(("alert" if is_alert else "other"), day) for is_alert, day in cursor.fetchall()}
    days |= {(kind, today + timedelta(days=n)) for kind in partitions.KINDS for n in range(partitions.DAYS_AHEAD + 1)}
    for kind, day in sorted(days):
        # The DEFAULT partitions are empty here: the plain form is quickest.
        cursor.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES {}").format(
            sql.Identifier(partitions.day_partition(kind, day)), sql.Identifier(partitions.kind_table(kind)),
            partitions.day_bounds(day)))
    copied = _copy_in_batches(cursor, source=OLD_TABLE, target=TABLE, batch_size=batch_size)
    expected = _count(cursor, OLD_TABLE)
    if copied != expected or _count(cursor, TABLE) != expected:
        raise RuntimeError(f"partitioning model_predictions copied {copied} of {expected} rows; nothing was changed")
    if next_id:
        cursor.execute("SELECT setval(%s, %s, false)", [SEQUENCE, next_id])
    cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(OLD_TABLE)))
    return copied


def unpartition_table(cursor, *, batch_size: int = BATCH_SIZE) -> int:
    """The reverse: one plain table with migration 0001's indexes, every row and id kept; returns the rows moved."""
    if not partitions.is_partitioned(cursor):
        return 0
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(sql.SQL(
        "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)"
    ).format(sql.Identifier(OLD_TABLE), sql.Identifier(TABLE)))
    copied = _copy_in_batches(cursor, source=TABLE, target=OLD_TABLE, batch_size=batch_size)
    if copied != _count(cursor, TABLE):
        raise RuntimeError("unpartitioning model_predictions lost rows; nothing was changed")
    cursor.execute(sql.SQL("ALTER SEQUENCE {} OWNED BY NONE").format(sql.Identifier(SEQUENCE)))
    cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TABLE)))
    cursor.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(OLD_TABLE), sql.Identifier(TABLE)))
    cursor.execute(sql.SQL("ALTER SEQUENCE {} OWNED BY {}.id").format(sql.Identifier(SEQUENCE),
                                                                      sql.Identifier(TABLE)))
    cursor.execute(UNPARTITIONED_INDEXES)
    return copied
