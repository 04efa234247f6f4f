"""import_legacy_tables: the existing server's rows, set aside by migrate as legacy_*, copied into our tables."""

from __future__ import annotations

from decimal import Decimal

import pytest

from predictions.legacy_services import NO_ARTIFACT_YET
from tests.conftest import connect, run_manage

# The existing server's tables (Appendix A of the spec) as its SQL scripts create them. Its own constraints are
# looser than ours: probability has no range check, status and evaluation_result are not tied to each other.
# n8n_send_mode was a VARCHAR at first; later servers converted the column to JSONB in place.
EXISTING_SERVER_DDL = """
CREATE TABLE prediction_active_models (
    id BIGSERIAL PRIMARY KEY,
    model_id BIGINT NOT NULL UNIQUE,
    model_name VARCHAR(255) NOT NULL,
    model_type VARCHAR(50) NOT NULL CHECK (model_type IN ('random_forest', 'xgboost')),
    target_variable VARCHAR(100) NOT NULL,
    target_operator VARCHAR(10) CHECK (target_operator IN ('>', '<', '>=', '<=', '=')),
    target_value NUMERIC(20, 2),
    future_minutes INT,
    price_change_percent NUMERIC(10, 4),
    target_direction VARCHAR(10) CHECK (target_direction IN ('up', 'down')),
    features JSONB NOT NULL,
    phases JSONB,
    params JSONB,
    local_model_path TEXT NOT NULL,
    model_file_url TEXT,
    is_active BOOLEAN DEFAULT true,
    last_prediction_at TIMESTAMPTZ,
    total_predictions BIGINT DEFAULT 0,
    downloaded_at TIMESTAMPTZ DEFAULT NOW(),
    activated_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    custom_name VARCHAR(255),
    training_accuracy NUMERIC(5, 4), training_f1 NUMERIC(5, 4), training_precision NUMERIC(5, 4),
    training_recall NUMERIC(5, 4), roc_auc NUMERIC(5, 4), mcc NUMERIC(5, 4),
    confusion_matrix JSONB,
    simulated_profit_pct NUMERIC(8, 4),
    alert_threshold NUMERIC(5, 4) DEFAULT 0.7,
    n8n_webhook_url TEXT,
    n8n_send_mode {send_mode_type},
    n8n_enabled BOOLEAN,
    coin_filter_mode VARCHAR(20) DEFAULT 'all',
    coin_whitelist JSONB,
    ignore_bad_seconds INT DEFAULT 0,
    ignore_positive_seconds INT DEFAULT 0,
    ignore_alert_seconds INT DEFAULT 0,
    min_scan_interval_seconds INT DEFAULT 20,
    max_log_entries_per_coin_negative INT DEFAULT 0,
    max_log_entries_per_coin_positive INT DEFAULT 0,
    max_log_entries_per_coin_alert INT DEFAULT 0,
    send_ignored_to_n8n BOOLEAN DEFAULT false
);
CREATE INDEX idx_active_models_active ON prediction_active_models(is_active);

CREATE TABLE model_predictions (
    id BIGSERIAL PRIMARY KEY,
    coin_id VARCHAR(255) NOT NULL,
    model_id BIGINT NOT NULL,
    active_model_id BIGINT,
    prediction INT NOT NULL CHECK (prediction IN (0, 1)),
    probability NUMERIC(5, 4) NOT NULL,
    tag VARCHAR(20) NOT NULL CHECK (tag IN ('negativ', 'positiv', 'alert')),
    status VARCHAR(20) NOT NULL DEFAULT 'aktiv' CHECK (status IN ('aktiv', 'inaktiv')),
    prediction_timestamp TIMESTAMPTZ NOT NULL,
    evaluation_timestamp TIMESTAMPTZ NOT NULL,
    evaluated_at TIMESTAMPTZ,
    price_close_at_prediction NUMERIC(20, 12), price_open_at_prediction NUMERIC(20, 12),
    price_high_at_prediction NUMERIC(20, 12), price_low_at_prediction NUMERIC(20, 12),
    market_cap_at_prediction NUMERIC(20, 2), volume_at_prediction NUMERIC(20, 2), phase_id_at_prediction INT,
    price_close_at_evaluation NUMERIC(20, 12), price_open_at_evaluation NUMERIC(20, 12),
    price_high_at_evaluation NUMERIC(20, 12), price_low_at_evaluation NUMERIC(20, 12),
    market_cap_at_evaluation NUMERIC(20, 2), volume_at_evaluation NUMERIC(20, 2), phase_id_at_evaluation INT,
    actual_price_change_pct NUMERIC(10, 4),
    evaluation_result VARCHAR(20) CHECK (evaluation_result IN ('success', 'failed', 'not_applicable')),
    evaluation_note TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    ath_highest_pct NUMERIC(10, 4), ath_lowest_pct NUMERIC(10, 4),
    ath_highest_timestamp TIMESTAMPTZ, ath_lowest_timestamp TIMESTAMPTZ
);
CREATE INDEX idx_model_predictions_coin_timestamp ON model_predictions(coin_id, prediction_timestamp DESC);
CREATE INDEX idx_model_predictions_active_model ON model_predictions(active_model_id, prediction_timestamp DESC);
CREATE INDEX idx_model_predictions_status ON model_predictions(status) WHERE status = 'aktiv';
CREATE INDEX idx_model_predictions_tag ON model_predictions(tag);

CREATE TABLE coin_scan_cache (
    id BIGSERIAL PRIMARY KEY,
    coin_id VARCHAR(255) NOT NULL,
    active_model_id BIGINT NOT NULL REFERENCES prediction_active_models(id) ON DELETE CASCADE,
    last_scan_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_prediction INT CHECK (last_prediction IN (0, 1)),
    last_probability NUMERIC(5, 4),
    was_alert BOOLEAN DEFAULT false,
    ignore_until TIMESTAMPTZ,
    ignore_reason VARCHAR(20) CHECK (ignore_reason IN ('bad', 'positive', 'alert')),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE (coin_id, active_model_id)
);

CREATE TABLE prediction_webhook_log (
    id BIGSERIAL PRIMARY KEY,
    coin_id VARCHAR(255) NOT NULL,
    data_timestamp TIMESTAMPTZ NOT NULL,
    webhook_url TEXT NOT NULL,
    payload JSONB,
    response_status INT,
    response_body TEXT,
    error_message TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_webhook_log_created ON prediction_webhook_log(created_at DESC);
"""

# Per variant: the column type and the send modes of models 1 and 2 as that server stored them.
SEND_MODE_VARIANTS = {
    "varchar": ("VARCHAR(20) DEFAULT 'all'", "alerts_only", None),
    "jsonb": ("JSONB DEFAULT '[\"all\"]'", '"alerts_only"', '["positive_only", "negative_only"]'),
}

MODEL_ROWS = """
INSERT INTO prediction_active_models (id, model_id, model_name, model_type, target_variable, future_minutes,
    price_change_percent, target_direction, features, phases, params, local_model_path, is_active, activated_at,
    created_at, training_accuracy, alert_threshold, n8n_webhook_url, n8n_send_mode, n8n_enabled,
    coin_filter_mode, coin_whitelist, ignore_bad_seconds, total_predictions)
VALUES
  -- time-based, active, n8n_enabled never set (the column came without a migration)
  (1, 101, 'rf_pump_5pct', 'random_forest', 'price_close', 10, 5.0, 'up', '["price_close", "volume_sol"]', '[1, 2]',
   '{"_time_based": {"future_minutes": 10, "min_percent_change": 5.0, "direction": "up"}}',
   '/app/models/model_101.pkl', true, '2025-11-02 09:00:00+00', '2025-11-01 12:00:00+00', 0.8123, 0.7,
   'https://n8n.example/webhook/pump', %(mode_1)s, NULL, 'all', NULL, 0, 3),
  -- paused, whitelist, created_at and ignore_bad_seconds missing
  (2, 102, 'xgb_dump', 'xgboost', 'price_close', 5, 3.0, 'down', '["price_close"]', NULL, NULL,
   '/app/models/model_102.pkl', false, NULL, NULL, NULL, 0.65, NULL, %(mode_2)s, false,
   'whitelist', '["AbcPump"]', NULL, 2),
  -- a threshold ours rejects: the model is skipped, and its rows with it
  (5, 105, 'rf_broken_threshold', 'random_forest', 'price_close', 10, 5.0, 'up', '["price_close"]', NULL, NULL,
   '/app/models/model_105.pkl', true, NULL, '2025-11-03 12:00:00+00', NULL, 1.5, NULL, NULL, NULL,
   'all', NULL, 0, 1);
"""

PREDICTION_ROWS = """
INSERT INTO model_predictions (id, coin_id, model_id, active_model_id, prediction, probability, tag, status,
    prediction_timestamp, evaluation_timestamp, evaluated_at, price_close_at_prediction, volume_at_prediction,
    actual_price_change_pct, evaluation_result, ath_highest_pct, ath_lowest_pct)
VALUES
  (1, 'AbcPump', 101, 1, 1, 0.8123, 'alert', 'aktiv', '2025-11-04 10:00:00+00', '2025-11-04 10:10:00+00',
   NULL, 0.000000028123, 12.5, NULL, NULL, 3.2, -1.1),
  (2, 'DefPump', 101, 1, 1, 0.7300, 'alert', 'inaktiv', '2025-11-04 10:01:00+00', '2025-11-04 10:11:00+00',
   '2025-11-04 10:11:05+00', 0.000000031, 4.0, 6.2000, 'success', 7.5, NULL),
  -- evaluated without a verdict: becomes not_applicable
  (3, 'AbcPump', 102, 2, 0, 0.2100, 'negativ', 'inaktiv', '2025-11-04 10:02:00+00', '2025-11-04 10:07:00+00',
   '2025-11-04 10:07:02+00', 0.000000029, 1.0, -0.5000, NULL, NULL, -0.5),
  -- a probability outside 0..1
  (4, 'GhiPump', 101, 1, 1, 1.5000, 'alert', 'aktiv', '2025-11-04 10:03:00+00', '2025-11-04 10:13:00+00',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  -- an orphan: model 99 was deleted without its predictions (active_model_id had no foreign key)
  (5, 'AbcPump', 199, 99, 0, 0.1000, 'negativ', 'aktiv', '2025-11-04 10:04:00+00', '2025-11-04 10:14:00+00',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  -- belongs to the skipped model 5
  (6, 'AbcPump', 105, 5, 1, 0.9000, 'alert', 'aktiv', '2025-11-04 10:05:00+00', '2025-11-04 10:15:00+00',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  -- the same model, coin and time as row 1 (a replayed event): row 1 is kept
  (7, 'AbcPump', 101, 1, 1, 0.8123, 'alert', 'aktiv', '2025-11-04 10:00:00+00', '2025-11-04 10:10:00+00',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  -- pending, yet with a verdict
  (8, 'MnoPump', 102, 2, 0, 0.3000, 'negativ', 'aktiv', '2025-11-04 10:06:00+00', '2025-11-04 10:11:00+00',
   NULL, NULL, NULL, NULL, 'failed', NULL, NULL),
  (40, 'JklPump', 102, 2, 1, 0.6000, 'positiv', 'aktiv', '2025-11-04 10:07:00+00', '2025-11-04 10:12:00+00',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO coin_scan_cache (id, coin_id, active_model_id, last_scan_at, last_prediction, last_probability,
    was_alert, ignore_until, ignore_reason)
VALUES (1, 'AbcPump', 1, '2025-11-04 10:00:00+00', 1, 0.8123, true, '2025-11-04 10:05:00+00', 'alert'),
       (2, 'AbcPump', 5, '2025-11-04 10:05:00+00', 1, 0.9000, true, NULL, NULL);

INSERT INTO prediction_webhook_log (id, coin_id, data_timestamp, webhook_url, payload, response_status,
    response_body, error_message, created_at)
VALUES (1, 'AbcPump', '2025-11-04 10:00:00+00', 'https://n8n.example/webhook/pump', '{"coin_id": "AbcPump"}',
        200, 'ok', NULL, '2025-11-04 10:00:01+00'),
       (2, 'DefPump', '2025-11-04 10:01:00+00', 'https://n8n.example/webhook/pump', '{"coin_id": "DefPump"}',
        NULL, NULL, '', '2025-11-04 10:01:05+00');
"""

NO_HISTORY = "model_predictions (prediction history): no legacy_predictions table, nothing to copy"
EXPECTED_SUMMARY = [
    "prediction_active_models: 2 copied, 1 skipped (1 breaks active_models_alert_threshold)",
    "model_predictions: 4 copied, 5 skipped (1 active_model_id matches no model, 1 breaks "
    "predictions_probability_range, 1 breaks predictions_status_result, 1 duplicate key (the row with the lower "
    "id was kept), 1 its model was not imported)",
    "coin_scan_cache: 1 copied, 1 skipped (1 its model was not imported)",
    "prediction_webhook_log: 2 copied, 0 skipped",
    NO_HISTORY,
]
OUR_TABLES = ["prediction_active_models", "model_predictions", "coin_scan_cache", "prediction_webhook_log"]


def create_existing_server_tables(url: str, send_mode_variant: str) -> None:
    send_mode_type, mode_1, mode_2 = SEND_MODE_VARIANTS[send_mode_variant]
    with connect(url, autocommit=True) as conn:
        conn.execute(EXISTING_SERVER_DDL.replace("{send_mode_type}", send_mode_type))
        conn.execute(MODEL_ROWS, {"mode_1": mode_1, "mode_2": mode_2})
        conn.execute(PREDICTION_ROWS)


def migrate(url: str) -> None:
    result = run_manage("migrate", "--noinput", env_overrides={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr


def import_legacy(url: str, *options: str):
    return run_manage("import_legacy_tables", *options, env_overrides={"DATABASE_URL": url})


def row_counts(url: str) -> dict[str, int]:
    with connect(url) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in OUR_TABLES}


@pytest.fixture(params=sorted(SEND_MODE_VARIANTS))
def adopted_database(request, scratch_database):
    """A database of the existing server after `migrate`: its tables are legacy_*, ours are empty."""
    create_existing_server_tables(scratch_database, request.param)
    migrate(scratch_database)
    return scratch_database, request.param


@pytest.mark.django_db
def test_import_copies_rows_with_their_ids_and_converts_what_ours_spells_differently(adopted_database):
    url, variant = adopted_database
    result = import_legacy(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED_SUMMARY

    with connect(url) as conn:
        models = conn.execute(
            "SELECT id, model_id, source, is_active, n8n_send_mode, n8n_enabled, ignore_bad_seconds, "
            "load_error, local_model_path, alert_threshold, created_at IS NOT NULL, total_predictions "
            "FROM prediction_active_models ORDER BY id"
        ).fetchall()
        assert models == [
            (1, 101, "training_service", True, ["alerts_only"], True, 0, NO_ARTIFACT_YET,
             "/app/models/model_101.pkl", Decimal("0.7000"), True, 3),
            (2, 102, "training_service", False,
             ["all"] if variant == "varchar" else ["positive_only", "negative_only"], False, 0, NO_ARTIFACT_YET,
             "/app/models/model_102.pkl", Decimal("0.6500"), True, 2),
        ]
        assert conn.execute(
            "SELECT features, phases, params->'_time_based'->>'direction', coin_whitelist, training_accuracy "
            "FROM prediction_active_models WHERE id = 1"
        ).fetchone() == (["price_close", "volume_sol"], [1, 2], "up", None, Decimal("0.8123"))
        assert conn.execute("SELECT count(*) FROM model_artifacts").fetchone() == (0,)

        predictions = conn.execute(
            "SELECT id, active_model_id, coin_id, probability, status, evaluation_result, price_close_at_prediction "
            "FROM model_predictions ORDER BY id"
        ).fetchall()
        assert predictions == [
            (1, 1, "AbcPump", 0.8123, "aktiv", None, Decimal("0.000000028123000000")),
            (2, 1, "DefPump", 0.73, "inaktiv", "success", Decimal("0.000000031000000000")),
            (3, 2, "AbcPump", 0.21, "inaktiv", "not_applicable", Decimal("0.000000029000000000")),
            (40, 2, "JklPump", 0.6, "aktiv", None, None),
        ]
        assert conn.execute("SELECT id, active_model_id, ignore_reason FROM coin_scan_cache").fetchall() == [
            (1, 1, "alert")
        ]
        assert conn.execute(
            "SELECT id, response_status, error_message, payload, attempt FROM prediction_webhook_log ORDER BY id"
        ).fetchall() == [(1, 200, None, {"coin_id": "AbcPump"}, 1), (2, None, "", {"coin_id": "DefPump"}, 1)]

        # New rows get ids above every legacy id, also above the skipped model 5, which a re-run may still copy.
        next_ids = {
            table: conn.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))").fetchone()[0]
            for table in OUR_TABLES
        }
        assert next_ids == {
            "prediction_active_models": 6, "model_predictions": 41, "coin_scan_cache": 3, "prediction_webhook_log": 3,
        }
        # The legacy tables are left as they were.
        assert conn.execute("SELECT count(*) FROM legacy_model_predictions").fetchone() == (9,)


@pytest.mark.django_db
@pytest.mark.parametrize("adopted_database", ["jsonb"], indirect=True)
def test_running_the_import_again_copies_nothing_new(adopted_database):
    url, _ = adopted_database
    assert import_legacy(url).returncode == 0
    copied = row_counts(url)

    again = import_legacy(url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "prediction_active_models: 0 copied, 1 skipped (1 breaks active_models_alert_threshold), 2 already imported",
        "model_predictions: 0 copied, 5 skipped (1 active_model_id matches no model, 1 breaks "
        "predictions_probability_range, 1 breaks predictions_status_result, 1 duplicate key (the row with the "
        "lower id was kept), 1 its model was not imported), 4 already imported",
        "coin_scan_cache: 0 copied, 1 skipped (1 its model was not imported), 1 already imported",
        "prediction_webhook_log: 0 copied, 0 skipped, 2 already imported",
        NO_HISTORY,
    ]
    assert row_counts(url) == copied


@pytest.mark.django_db
@pytest.mark.parametrize("adopted_database", ["jsonb"], indirect=True)
def test_a_fixed_legacy_row_is_copied_by_the_next_run_with_its_rows(adopted_database):
    url, _ = adopted_database
    assert import_legacy(url).returncode == 0
    with connect(url, autocommit=True) as conn:
        conn.execute("UPDATE legacy_prediction_active_models SET alert_threshold = 0.9 WHERE id = 5")

    again = import_legacy(url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "prediction_active_models: 1 copied, 0 skipped, 2 already imported"
    with connect(url) as conn:
        assert conn.execute("SELECT id FROM model_predictions WHERE active_model_id = 5").fetchall() == [(6,)]
        assert conn.execute("SELECT id FROM coin_scan_cache WHERE active_model_id = 5").fetchall() == [(2,)]


@pytest.mark.django_db
@pytest.mark.parametrize("adopted_database", ["jsonb"], indirect=True)
def test_a_model_registered_before_the_import_keeps_its_id_and_gets_no_legacy_rows(adopted_database):
    url, _ = adopted_database
    with connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO prediction_active_models (id, model_id, source, model_name, model_type, target_variable, "
            "features, is_active, total_predictions, created_at, updated_at, alert_threshold, n8n_send_mode, "
            "n8n_enabled, send_ignored_to_n8n, coin_filter_mode, ignore_bad_seconds, ignore_positive_seconds, "
            "ignore_alert_seconds, min_scan_interval_seconds, max_log_entries_per_coin_negative, "
            "max_log_entries_per_coin_positive, max_log_entries_per_coin_alert) "
            "VALUES (1, 900, 'upload', 'uploaded here', 'xgboost', 'price_close', '[]', true, 0, now(), now(), "
            "0.7, '[\"all\"]', true, false, 'all', 0, 0, 0, 20, 0, 0, 0)"
        )

    result = import_legacy(url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "prediction_active_models: 1 copied, 2 skipped (1 breaks active_models_alert_threshold, "
        "1 id already used by another row)"
    )
    with connect(url) as conn:
        assert conn.execute("SELECT id, model_name FROM prediction_active_models ORDER BY id").fetchall() == [
            (1, "uploaded here"), (2, "xgb_dump")
        ]
        # Legacy model 1's predictions stay behind instead of being attached to the uploaded model.
        assert conn.execute("SELECT id, active_model_id FROM model_predictions ORDER BY id").fetchall() == [
            (3, 2), (40, 2)
        ]


@pytest.mark.django_db
@pytest.mark.parametrize("adopted_database", ["varchar"], indirect=True)
def test_dry_run_reports_the_counts_and_writes_nothing(adopted_database):
    url, _ = adopted_database
    result = import_legacy(url, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        line.replace(" copied,", " to copy,") for line in EXPECTED_SUMMARY
    ] + ["Dry run: nothing was written."]
    assert row_counts(url) == dict.fromkeys(OUR_TABLES, 0)
    with connect(url) as conn:
        untouched = conn.execute(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence(t, 'id')::regclass) FROM unnest(%s::text[]) t",
            [OUR_TABLES],
        ).fetchall()
    assert untouched == [(None,)] * 4

    assert import_legacy(url).stdout.splitlines() == EXPECTED_SUMMARY


@pytest.mark.django_db
@pytest.mark.parametrize("adopted_database", ["varchar"], indirect=True)
def test_the_listener_reports_imported_models_without_a_file_and_carries_on(adopted_database):
    url, _ = adopted_database
    assert import_legacy(url).returncode == 0
    with connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO coin_metrics (mint, timestamp, phase_id_at_time, price_close) "
                     "VALUES ('AbcPump', now(), 1, 0.00000003)")

    listened = run_manage("listen_events", "--once", env_overrides={"DATABASE_URL": url})
    assert listened.returncode == 0, listened.stderr
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM model_predictions").fetchone() == (4,)
        # The active model's error now says what the listener saw; the paused one keeps the import's note.
        assert conn.execute("SELECT id, load_error FROM prediction_active_models ORDER BY id").fetchall() == [
            (1, "cannot load: the model has no stored artifact"), (2, NO_ARTIFACT_YET)
        ]


@pytest.mark.django_db
@pytest.mark.parametrize("adopted_database", ["jsonb"], indirect=True)
def test_a_value_that_does_not_fit_ours_stops_the_import_and_copies_nothing(adopted_database):
    url, _ = adopted_database
    with connect(url, autocommit=True) as conn:  # numeric(20,2) there, numeric(20,6) here
        conn.execute("UPDATE legacy_model_predictions SET volume_at_prediction = 1e17 WHERE id = 2")

    result = import_legacy(url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: copying legacy_model_predictions failed, nothing was copied: numeric field overflow"
    ]
    assert row_counts(url) == dict.fromkeys(OUR_TABLES, 0)


@pytest.mark.django_db
def test_without_legacy_tables_the_command_fails_with_one_readable_line(scratch_database):
    migrate(scratch_database)
    result = import_legacy(scratch_database)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: no legacy tables found (legacy_prediction_active_models, legacy_model_predictions, "
        "legacy_coin_scan_cache, legacy_prediction_webhook_log): this database holds no data of the existing "
        "server, or `migrate` has not set it aside yet"
    ]
