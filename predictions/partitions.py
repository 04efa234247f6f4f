"""`model_predictions` as one natively partitioned table: LIST by kind (alerts, everything else), then RANGE by the
UTC day of `prediction_timestamp` (the data time, the key the evaluation, ATH tracking and the pages filter on).

    model_predictions                       PARTITION BY LIST (tag)
      model_predictions_alert               FOR VALUES IN ('alert'), PARTITION BY RANGE (prediction_timestamp)
        model_predictions_alert_20261204    one UTC day
        model_predictions_alert_default     any day without a partition of its own
      model_predictions_other               DEFAULT (every other tag), PARTITION BY RANGE (prediction_timestamp)
        model_predictions_other_20261204
        model_predictions_other_default

Users, the API and the pages read and write `model_predictions` only. An insert never fails for want of a
partition: a row of a day without one lands in its kind's DEFAULT partition, and the next housekeeping moves such
rows into a day partition of their own (`ensure_partitions`), so retention can drop them by day later. Day
partitions are created `DAYS_AHEAD` days ahead by the migration and by the worker's hourly housekeeping.

Keys include the partition key, as PostgreSQL requires: the primary key is (id, prediction_timestamp, tag) and
"one prediction per model per coin row" is unique on (coin_key, prediction_timestamp, active_model_id, tag). Ids
still come from one sequence, `model_predictions_id_seq`, so they stay unique across partitions.

`coin_key` is the coin's 64-bit hash, `hashtextextended(coin_id, 0)`, a column PostgreSQL computes on every write
(whoever writes: the listener, the ORM, an import, users' own SQL). In the unique key it takes 8 bytes where the
44-character mint took 48, which halves that index and makes every insert cheaper (migration 0009, "Storage per
prediction" in docs/benchmarks.md). Two mints share a key with odds of about 1 in 2^64; a clash matters only
between two coins predicted by one model at the same microsecond, about one in 10^13 for a flush of 2,000 coins.
A coin's rows are found through the key: filter on `coin_key` as well as `coin_id` (`coin_filter` in
predictions/models.py; in SQL, `coin_key = hashtextextended('…', 0) AND coin_id = '…'`).

Row layout (docs/benchmarks.md, "Storage per prediction"): 8-byte columns first so no alignment padding is wasted,
no index that another one already serves (the unique key serves a coin's predictions newest first; the foreign key
needs no index of its own; `created_at` grows with the insert order, so a BRIN index does what a B-tree did). The
max-log caps count pending rows through the unique key (it leads with the coin), not through an index of their own:
that index cost every insert a fifth of its time to serve a setting that is off by default (migration 0008).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from django.db import connections, transaction
from django.utils import timezone as django_timezone
from psycopg import sql

TABLE = "model_predictions"
KINDS = ("alert", "other")
DAYS_AHEAD = 3
SEQUENCE = "model_predictions_id_seq"
DAY_FORMAT = "%Y%m%d"

# The columns in storage order: 8-byte aligned ones first, then 4- and 2-byte ones, then the variable-length ones.
COLUMNS = """
    id bigint NOT NULL DEFAULT nextval('model_predictions_id_seq'),
    prediction_timestamp timestamptz NOT NULL,
    evaluation_timestamp timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    active_model_id bigint NOT NULL,
    model_id bigint,
    coin_key bigint NOT NULL GENERATED ALWAYS AS (hashtextextended(coin_id, 0)) STORED,
    probability double precision NOT NULL,
    prediction_duration_ms double precision,
    evaluated_at timestamptz,
    ath_highest_timestamp timestamptz,
    ath_lowest_timestamp timestamptz,
    model_version integer CHECK (model_version >= 0),
    phase_id_at_prediction integer,
    phase_id_at_evaluation integer,
    prediction smallint NOT NULL,
    tag varchar(20) NOT NULL,
    status varchar(20) NOT NULL,
    coin_id varchar(255) NOT NULL,
    price_close_at_prediction numeric(30, 18),
    price_open_at_prediction numeric(30, 18),
    price_high_at_prediction numeric(30, 18),
    price_low_at_prediction numeric(30, 18),
    market_cap_at_prediction numeric(20, 2),
    volume_at_prediction numeric(20, 6),
    price_close_at_evaluation numeric(30, 18),
    price_open_at_evaluation numeric(30, 18),
    price_high_at_evaluation numeric(30, 18),
    price_low_at_evaluation numeric(30, 18),
    market_cap_at_evaluation numeric(20, 2),
    volume_at_evaluation numeric(20, 6),
    actual_price_change_pct numeric(16, 4),
    ath_highest_pct numeric(16, 4),
    ath_lowest_pct numeric(16, 4),
    evaluation_result varchar(20),
    evaluation_note text
"""

# What a copy of rows names: PostgreSQL computes the generated columns itself and refuses values for them.
STORED_COLUMN_NAMES = [line.split()[0] for line in COLUMNS.strip().splitlines() if " GENERATED ALWAYS " not in line]

# Everything that belongs to the parent and so to every partition (the same names as the model's Meta).
PARENT_DDL = f"""
CREATE SEQUENCE {SEQUENCE};
CREATE TABLE {TABLE} ({COLUMNS},
    CONSTRAINT model_predictions_pkey PRIMARY KEY (id, prediction_timestamp, tag),
    CONSTRAINT predictions_once_per_row UNIQUE (coin_key, prediction_timestamp, active_model_id, tag),
    CONSTRAINT predictions_prediction_binary CHECK (prediction IN (0, 1)),
    CONSTRAINT predictions_probability_range CHECK (probability >= 0 AND probability <= 1),
    CONSTRAINT predictions_tag CHECK (tag IN ('negativ', 'positiv', 'alert')),
    CONSTRAINT predictions_status_result CHECK (
        (evaluation_result IS NULL AND status = 'aktiv')
        OR (evaluation_result IN ('success', 'failed', 'not_applicable') AND evaluation_result IS NOT NULL
            AND status = 'inaktiv')),
    CONSTRAINT predictions_ath_highest_positive CHECK (ath_highest_pct IS NULL OR ath_highest_pct >= 0),
    CONSTRAINT predictions_ath_lowest_negative CHECK (ath_lowest_pct IS NULL OR ath_lowest_pct <= 0)
) PARTITION BY LIST (tag);
ALTER SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id;
CREATE INDEX predictions_model_time_idx ON {TABLE} (active_model_id, prediction_timestamp DESC);
CREATE INDEX predictions_due_idx ON {TABLE} (evaluation_timestamp) WHERE status = 'aktiv';
CREATE INDEX predictions_created_idx ON {TABLE} USING brin (created_at);
CREATE TABLE model_predictions_alert PARTITION OF {TABLE} FOR VALUES IN ('alert')
    PARTITION BY RANGE (prediction_timestamp);
CREATE TABLE model_predictions_other PARTITION OF {TABLE} DEFAULT PARTITION BY RANGE (prediction_timestamp);
CREATE TABLE model_predictions_alert_default PARTITION OF model_predictions_alert DEFAULT;
CREATE TABLE model_predictions_other_default PARTITION OF model_predictions_other DEFAULT;
"""

# Each kind's day partitions with their day, and its DEFAULT partition (day NULL).
KIND_PARTITIONS_SQL = """
SELECT c.relname, substring(c.relname FROM '_(\\d{8})$')
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = %s::regclass
"""


def stored_columns() -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, STORED_COLUMN_NAMES))


def kind_table(kind: str) -> str:
    return f"{TABLE}_{kind}"


def day_partition(kind: str, day: date) -> str:
    return f"{TABLE}_{kind}_{day.strftime(DAY_FORMAT)}"


def default_partition(kind: str) -> str:
    return f"{TABLE}_{kind}_default"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def is_partitioned(cursor) -> bool:
    cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return bool(row and row[0])


def day_partitions(cursor, kind: str) -> dict[date, str]:
    """The kind's day partitions by day."""
    cursor.execute(KIND_PARTITIONS_SQL, [kind_table(kind)])
    return {datetime.strptime(day, DAY_FORMAT).date(): name for name, day in cursor.fetchall() if day}


def create_partitioned_table(cursor) -> None:
    cursor.execute(PARENT_DDL)


def day_bounds(day: date) -> sql.Composed:
    return sql.SQL("FROM ({}) TO ({})").format(sql.Literal(day_start(day).isoformat()),
                                               sql.Literal(day_start(day + timedelta(days=1)).isoformat()))


def create_day_partition(cursor, *, kind: str, day: date) -> None:
    """Create the kind's partition of `day`, taking over that day's rows from the DEFAULT partition if it has any.

    The new table is filled and then attached (ATTACH needs only a SHARE UPDATE EXCLUSIVE lock on the kind's table,
    where CREATE … PARTITION OF would block every reader and writer of it for a moment).
    """
    name, parent, default = day_partition(kind, day), kind_table(kind), default_partition(kind)
    start, end = day_start(day), day_start(day + timedelta(days=1))
    cursor.execute(sql.SQL(
        "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)"
    ).format(sql.Identifier(name), sql.Identifier(parent)))
    cursor.execute(sql.SQL(
        "WITH moved AS (DELETE FROM {default} WHERE prediction_timestamp >= %s AND prediction_timestamp < %s "
        "RETURNING *) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved"
    ).format(default=sql.Identifier(default), name=sql.Identifier(name), columns=stored_columns()), [start, end])
    # The CHECK lets ATTACH skip its validating scan of the new table; it is redundant once attached.
    cursor.execute(sql.SQL(
        "ALTER TABLE {name} ADD CONSTRAINT {check} CHECK (prediction_timestamp >= {start} AND "
        "prediction_timestamp < {end})"
    ).format(name=sql.Identifier(name), check=sql.Identifier(f"{name}_day"), start=sql.Literal(start),
             end=sql.Literal(end)))
    cursor.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES {}").format(
        sql.Identifier(parent), sql.Identifier(name), day_bounds(day)))
    cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(name),
                                                                        sql.Identifier(f"{name}_day")))


def days_in_default(cursor, kind: str) -> set[date]:
    """UTC days of the rows that sit in the kind's DEFAULT partition (normally none)."""
    cursor.execute(sql.SQL(
        "SELECT DISTINCT (prediction_timestamp AT TIME ZONE 'UTC')::date FROM {}"
    ).format(sql.Identifier(default_partition(kind))))
    return {day for (day,) in cursor.fetchall()}


def _missing(cursor, *, today: date, days_ahead: int) -> list[tuple[str, date]]:
    """(kind, day) of each day partition to create: today and `days_ahead` days after it, and every day that has
    rows in a DEFAULT partition."""
    missing = []
    for kind in KINDS:
        wanted = {today + timedelta(days=n) for n in range(days_ahead + 1)} | days_in_default(cursor, kind)
        missing += [(kind, day) for day in sorted(wanted - set(day_partitions(cursor, kind)))]
    return missing


def missing_partitions(cursor, *, today: date, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """The names `ensure_partitions` would create (nothing is changed)."""
    return [day_partition(kind, day) for kind, day in _missing(cursor, today=today, days_ahead=days_ahead)]


def ensure_partitions(cursor, *, today: date, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Create the missing day partitions (moving rows out of the DEFAULT partitions); returns their names.
    Idempotent."""
    created = []
    for kind, day in _missing(cursor, today=today, days_ahead=days_ahead):
        create_day_partition(cursor, kind=kind, day=day)
        created.append(day_partition(kind, day))
    return created


def utc_today(now: datetime) -> date:
    return now.astimezone(timezone.utc).date()


def ensure_after_migrate(using: str = "default", **_signal_kwargs) -> None:
    """post_migrate: the day partitions ahead exist after every migrate (a no-op while the table is unpartitioned,
    i.e. when migrating backwards)."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        if is_partitioned(cursor):
            ensure_partitions(cursor, today=utc_today(django_timezone.now()))
