"""Migrations on an empty database, their reversal, and adoption of a collector's existing database."""

from __future__ import annotations

import pytest

from tests.conftest import connect, run_manage

OUR_TABLES = {
    "coin_metrics", "ref_coin_phases", "coin_metrics_queue", "prediction_active_models", "model_predictions",
    "coin_scan_cache", "prediction_webhook_log", "webhook_deliveries", "model_artifacts", "process_heartbeats",
}

# The collector's own DDL (collector schema of the spec: NUMERIC(24,9), identity id, its defaults and indexes),
# and the existing server's row-level notify trigger.
COLLECTOR_DDL = """
CREATE TABLE ref_coin_phases (id INT PRIMARY KEY, name VARCHAR(50), interval_seconds INT,
                              min_age_minutes INT, max_age_minutes INT);
INSERT INTO ref_coin_phases VALUES (1,'Baby Zone',5,0,10),(2,'Survival Zone',30,10,60),(3,'Mature Zone',60,60,1440),
                                   (99,'Finished',0,1440,999999);
CREATE TABLE coin_metrics (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mint VARCHAR(64) NOT NULL,
    timestamp TIMESTAMPTZ DEFAULT NOW(),
    phase_id_at_time INT,
    price_open NUMERIC(24,9), price_high NUMERIC(24,9), price_low NUMERIC(24,9), price_close NUMERIC(24,9),
    market_cap_close NUMERIC(24,9), bonding_curve_pct NUMERIC(10,4), virtual_sol_reserves NUMERIC(24,9),
    is_koth BOOLEAN DEFAULT FALSE,
    volume_sol NUMERIC(24,9), buy_volume_sol NUMERIC(24,9), sell_volume_sol NUMERIC(24,9),
    num_buys INT DEFAULT 0, num_sells INT DEFAULT 0, unique_wallets INT DEFAULT 0, num_micro_trades INT DEFAULT 0,
    dev_sold_amount NUMERIC(24,9) DEFAULT 0, max_single_buy_sol NUMERIC(24,9) DEFAULT 0,
    max_single_sell_sol NUMERIC(24,9) DEFAULT 0, net_volume_sol NUMERIC(24,9) DEFAULT 0,
    volatility_pct NUMERIC(10,4) DEFAULT 0, avg_trade_size_sol NUMERIC(24,9) DEFAULT 0,
    whale_buy_volume_sol NUMERIC(24,9) DEFAULT 0, whale_sell_volume_sol NUMERIC(24,9) DEFAULT 0,
    num_whale_buys INT DEFAULT 0, num_whale_sells INT DEFAULT 0,
    buy_pressure_ratio NUMERIC(5,4) DEFAULT 0, unique_signer_ratio NUMERIC(5,4) DEFAULT 0
);
CREATE INDEX idx_metrics_mint_time ON coin_metrics(mint, timestamp DESC);
CREATE INDEX idx_metrics_time ON coin_metrics(timestamp DESC);
CREATE INDEX idx_metrics_phase ON coin_metrics(phase_id_at_time);
CREATE INDEX idx_metrics_koth ON coin_metrics(is_koth) WHERE is_koth;
CREATE OR REPLACE FUNCTION notify_coin_metrics_insert() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('coin_metrics_insert', json_build_object('mint', NEW.mint, 'timestamp', NEW.timestamp,
                                                               'phase_id', NEW.phase_id_at_time)::text);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER coin_metrics_insert_trigger AFTER INSERT ON coin_metrics
    FOR EACH ROW EXECUTE FUNCTION notify_coin_metrics_insert();
CREATE TABLE prediction_active_models (id BIGSERIAL PRIMARY KEY, model_id BIGINT UNIQUE, model_name VARCHAR(255),
                                       model_type VARCHAR(50), alert_threshold NUMERIC(5,4) DEFAULT 0.7);
INSERT INTO prediction_active_models (model_id, model_name, model_type) VALUES (42, 'old model', 'xgboost');
"""

INSERT_COLLECTOR_ROW = (
    "INSERT INTO coin_metrics (mint, timestamp, phase_id_at_time, price_open, price_high, price_low, price_close, "
    "market_cap_close, volume_sol, buy_volume_sol, sell_volume_sol, num_buys, num_sells) "
    "VALUES (%s, now() - make_interval(secs => %s), 1, 0.000000028, 0.000000029, 0.000000027, 0.000000028, "
    "28.0, 1.5, 1.0, 0.5, 3, 1)"
)


def public_tables(url: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


@pytest.mark.django_db
def test_migrations_apply_to_an_empty_database_and_reverse_cleanly(scratch_database):
    applied = run_manage("migrate", "--noinput", env_overrides={"DATABASE_URL": scratch_database})
    assert applied.returncode == 0, applied.stderr
    assert OUR_TABLES <= public_tables(scratch_database)
    with connect(scratch_database) as conn:
        phases = conn.execute("SELECT id FROM ref_coin_phases ORDER BY id").fetchall()
        assert [p for (p,) in phases] == [1, 2, 3, 99, 100]

    for app in ("predictions", "modelregistry"):
        reversed_ = run_manage("migrate", app, "zero", "--noinput", env_overrides={"DATABASE_URL": scratch_database})
        assert reversed_.returncode == 0, reversed_.stderr
    assert not (OUR_TABLES & public_tables(scratch_database))
    with connect(scratch_database) as conn:
        functions = conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'notify_coin_metrics%'").fetchall()
    assert functions == []

    again = run_manage("migrate", "--noinput", env_overrides={"DATABASE_URL": scratch_database})
    assert again.returncode == 0, again.stderr
    assert OUR_TABLES <= public_tables(scratch_database)


@pytest.mark.django_db
def test_migrate_adopts_a_collector_database_without_losing_a_row(scratch_database):
    with connect(scratch_database, autocommit=True) as conn:
        conn.execute(COLLECTOR_DDL)
        for i in range(250):
            conn.execute(INSERT_COLLECTOR_ROW, [f"mint{i % 7}pump", 250 - i])
        before = conn.execute("SELECT * FROM coin_metrics ORDER BY id").fetchall()
        column_types_before = conn.execute(
            "SELECT column_name, data_type, numeric_scale FROM information_schema.columns "
            "WHERE table_name = 'coin_metrics' ORDER BY ordinal_position"
        ).fetchall()

    result = run_manage("migrate", "--noinput", env_overrides={"DATABASE_URL": scratch_database})
    assert result.returncode == 0, result.stderr

    with connect(scratch_database, autocommit=True) as conn:
        assert conn.execute("SELECT * FROM coin_metrics ORDER BY id").fetchall() == before
        assert conn.execute(
            "SELECT column_name, data_type, numeric_scale FROM information_schema.columns "
            "WHERE table_name = 'coin_metrics' ORDER BY ordinal_position"
        ).fetchall() == column_types_before
        # The collector's equivalent indexes are recognised, not duplicated under our names.
        index_names = {n for (n,) in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename='coin_metrics'")}
        assert index_names == {"coin_metrics_pkey", "idx_metrics_mint_time", "idx_metrics_time", "idx_metrics_phase",
                               "idx_metrics_koth"}
        # Phase 100, which the collector's seed script drops, is added; existing rows are kept.
        assert [p for (p,) in conn.execute("SELECT id FROM ref_coin_phases ORDER BY id")] == [1, 2, 3, 99, 100]
        # The existing server's table is set aside, with its rows, and ours takes the name.
        assert conn.execute("SELECT model_id, model_name FROM legacy_prediction_active_models").fetchall() == [
            (42, "old model")
        ]
        assert conn.execute("SELECT count(*) FROM prediction_active_models").fetchone() == (0,)

        conn.execute("LISTEN coin_metrics_insert")
        conn.execute(INSERT_COLLECTOR_ROW, ["newcoinpump", 0])
        notifications = list(conn.notifies(timeout=2, stop_after=1))
        assert notifications and '"mint" : "newcoinpump"' in notifications[0].payload
        queued = conn.execute("SELECT mint, coin_metric_id FROM coin_metrics_queue").fetchall()
        newest_id = conn.execute("SELECT max(id) FROM coin_metrics").fetchone()[0]
        assert queued == [("newcoinpump", newest_id)]

    # Reversing on an adopted database removes only what we added: the collector's table and rows stay.
    for app in ("predictions", "modelregistry"):
        assert run_manage("migrate", app, "zero", "--noinput",
                          env_overrides={"DATABASE_URL": scratch_database}).returncode == 0
    with connect(scratch_database) as conn:
        assert conn.execute("SELECT count(*) FROM coin_metrics").fetchone() == (251,)
        assert conn.execute("SELECT model_name FROM prediction_active_models").fetchall() == [("old model",)]
