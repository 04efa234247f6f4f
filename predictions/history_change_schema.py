"""DDL for `coin_metrics_changes`: the record of coin_metrics rows that changed behind a listener's history cache.

A listener keeps each coin's newest rows across batches and reads only the rows newer than the newest it holds. It
cannot see on its own that an older row appeared (a late insert, whichever listener claimed it), changed (UPDATE)
or disappeared (DELETE, TRUNCATE). The triggers installed here write one row per coin and statement for each of
those: the coin and the earliest timestamp whose rows may now differ (`since`; NULL `mint` for a TRUNCATE: every
coin). Each listener reads the rows committed since its previous read once per batch (one indexed query, see
`inference.history_changes`) and re-reads those coins from `since` on before it computes features.

The writing transaction's id (`changed_by_xid`) is what a reader compares with its previous snapshot: an identity
column is assigned at insert time and may commit out of order, a transaction id tells exactly which rows a snapshot
could not see yet. Appended rows (newer than every row of their coin) cost one index probe per coin and statement
and write nothing.
"""

from __future__ import annotations

TABLE = "coin_metrics_changes"

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mint VARCHAR(64),
    since TIMESTAMPTZ,
    changed_by_xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE {TABLE} IS 'coin_metrics rows changed behind the listeners'' history caches (pump-server)';
CREATE INDEX IF NOT EXISTS coin_metrics_changes_xid ON {TABLE} (changed_by_xid);
"""

# A new row is late when its coin has, besides the statement's own rows, a row at or after the statement's oldest
# row of that coin: EXISTS … OFFSET n is one probe of (mint, timestamp) that stops after n + 1 rows.
STATEMENT_TRIGGERS = f"""
CREATE OR REPLACE FUNCTION record_coin_metrics_late_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (mint, since)
    SELECT g.mint, g.since
      FROM (SELECT mint, min("timestamp") AS since, count(*) AS n FROM new_rows GROUP BY mint) g
     WHERE EXISTS (SELECT 1 FROM coin_metrics m WHERE m.mint = g.mint AND m."timestamp" >= g.since OFFSET g.n);
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION record_coin_metrics_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (mint, since)
    SELECT mint, min("timestamp")
      FROM (SELECT mint, "timestamp" FROM old_rows UNION ALL SELECT mint, "timestamp" FROM new_rows) r
     GROUP BY mint;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION record_coin_metrics_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (mint, since) SELECT mint, min("timestamp") FROM old_rows GROUP BY mint;
    RETURN NULL;
END
$$;
CREATE TRIGGER coin_metrics_late_insert_trigger AFTER INSERT ON coin_metrics
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_coin_metrics_late_insert();
CREATE TRIGGER coin_metrics_update_trigger AFTER UPDATE ON coin_metrics
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION record_coin_metrics_update();
CREATE TRIGGER coin_metrics_delete_trigger AFTER DELETE ON coin_metrics
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_coin_metrics_delete();
"""

# Row-level fallback for tables that refuse transition tables (TimescaleDB hypertables before 2.18). A row that
# shares its statement with newer rows of its coin counts as late here (AFTER ROW triggers see the whole statement):
# listeners then re-read a little more than needed, never less.
ROW_TRIGGERS = f"""
CREATE OR REPLACE FUNCTION record_coin_metrics_change_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM coin_metrics m
                    WHERE m.mint = NEW.mint AND m."timestamp" >= NEW."timestamp" OFFSET 1) THEN
            INSERT INTO {TABLE} (mint, since) VALUES (NEW.mint, NEW."timestamp");
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO {TABLE} (mint, since) VALUES (OLD.mint, OLD."timestamp");
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO {TABLE} (mint, since) VALUES (NEW.mint, NEW."timestamp");
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER coin_metrics_change_row_trigger AFTER INSERT OR UPDATE OR DELETE ON coin_metrics
    FOR EACH ROW EXECUTE FUNCTION record_coin_metrics_change_row();
"""

TRUNCATE_TRIGGER = f"""
CREATE OR REPLACE FUNCTION record_coin_metrics_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (mint, since) VALUES (NULL, NULL);
    RETURN NULL;
END
$$;
CREATE TRIGGER coin_metrics_truncate_trigger AFTER TRUNCATE ON coin_metrics
    FOR EACH STATEMENT EXECUTE FUNCTION record_coin_metrics_truncate();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS coin_metrics_late_insert_trigger ON coin_metrics;
DROP TRIGGER IF EXISTS coin_metrics_update_trigger ON coin_metrics;
DROP TRIGGER IF EXISTS coin_metrics_delete_trigger ON coin_metrics;
DROP TRIGGER IF EXISTS coin_metrics_change_row_trigger ON coin_metrics;
DROP TRIGGER IF EXISTS coin_metrics_truncate_trigger ON coin_metrics;
DROP FUNCTION IF EXISTS record_coin_metrics_late_insert();
DROP FUNCTION IF EXISTS record_coin_metrics_update();
DROP FUNCTION IF EXISTS record_coin_metrics_delete();
DROP FUNCTION IF EXISTS record_coin_metrics_change_row();
DROP FUNCTION IF EXISTS record_coin_metrics_truncate();
"""


def install_triggers(cursor, *, row_level: bool = False) -> str:
    """(Re)create the change triggers; statement-level unless the table refuses transition tables."""
    cursor.execute(DROP_TRIGGERS)
    cursor.execute(TRUNCATE_TRIGGER)
    if not row_level:
        cursor.execute("SAVEPOINT pump_change_triggers")
        try:
            cursor.execute(STATEMENT_TRIGGERS)
            cursor.execute("RELEASE SAVEPOINT pump_change_triggers")
            return "statement"
        except Exception:  # feature_not_supported on hypertables; anything else fails again below, loudly
            cursor.execute("ROLLBACK TO SAVEPOINT pump_change_triggers")
    cursor.execute(ROW_TRIGGERS)
    return "row"


def install(cursor) -> None:
    cursor.execute(CREATE_TABLE)
    install_triggers(cursor)


def uninstall(cursor) -> None:
    cursor.execute(DROP_TRIGGERS)
    cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
