"""import_legacy_tables and the existing server's older prediction history: `predictions` with its verdicts in
`alert_evaluations`, set aside by migrate as legacy_*, converted into model_predictions (new ids), counted per
outcome."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tests.conftest import connect, run_manage
from tests.test_legacy_import import EXPECTED_SUMMARY, create_existing_server_tables, import_legacy, migrate

# The existing server's history tables (spec Appendix A.3, A.4), created after its prediction_active_models.
HISTORY_DDL = """
CREATE TABLE predictions (
    id BIGSERIAL PRIMARY KEY,
    coin_id VARCHAR(255) NOT NULL,
    data_timestamp TIMESTAMPTZ NOT NULL,
    model_id BIGINT NOT NULL,
    active_model_id BIGINT REFERENCES prediction_active_models(id) ON DELETE SET NULL,
    prediction INT NOT NULL,
    probability NUMERIC(5, 4) NOT NULL,
    phase_id_at_time INT,
    features JSONB,
    prediction_duration_ms INT,
    created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_predictions_coin_time ON predictions(coin_id, data_timestamp DESC);

CREATE TABLE alert_evaluations (
    id BIGSERIAL PRIMARY KEY,
    prediction_id BIGINT REFERENCES predictions(id) ON DELETE CASCADE,
    coin_id VARCHAR(255) NOT NULL,
    model_id BIGINT NOT NULL,
    prediction_type VARCHAR(20) DEFAULT 'time_based',
    probability NUMERIC(5, 4),
    target_variable VARCHAR(100), future_minutes INT, price_change_percent NUMERIC(10, 4),
    target_direction VARCHAR(10), target_operator VARCHAR(10), target_value NUMERIC(20, 2),
    alert_timestamp TIMESTAMPTZ NOT NULL,
    price_close_at_alert NUMERIC(20, 12), price_open_at_alert NUMERIC(20, 12),
    price_high_at_alert NUMERIC(20, 12), price_low_at_alert NUMERIC(20, 12),
    market_cap_close_at_alert NUMERIC(20, 2), market_cap_open_at_alert NUMERIC(20, 2),
    volume_sol_at_alert NUMERIC(20, 6), volume_usd_at_alert NUMERIC(20, 2),
    buy_volume_sol_at_alert NUMERIC(20, 6), sell_volume_sol_at_alert NUMERIC(20, 6),
    num_buys_at_alert INT, num_sells_at_alert INT, unique_wallets_at_alert INT, phase_id_at_alert INT,
    evaluation_timestamp TIMESTAMPTZ,
    price_close_at_evaluation NUMERIC(20, 12), price_open_at_evaluation NUMERIC(20, 12),
    price_high_at_evaluation NUMERIC(20, 12), price_low_at_evaluation NUMERIC(20, 12),
    market_cap_close_at_evaluation NUMERIC(20, 2), market_cap_open_at_evaluation NUMERIC(20, 2),
    volume_sol_at_evaluation NUMERIC(20, 6), volume_usd_at_evaluation NUMERIC(20, 2),
    buy_volume_sol_at_evaluation NUMERIC(20, 6), sell_volume_sol_at_evaluation NUMERIC(20, 6),
    num_buys_at_evaluation INT, num_sells_at_evaluation INT, unique_wallets_at_evaluation INT,
    phase_id_at_evaluation INT,
    actual_price_change_pct NUMERIC(10, 4), actual_value_at_evaluation NUMERIC(20, 6),
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'non_alert', 'success', 'failed', 'expired', 'not_applicable')),
    evaluated_at TIMESTAMPTZ, evaluation_note TEXT,
    ath_price_change_pct NUMERIC(10, 4), ath_timestamp TIMESTAMPTZ, ath_price_close NUMERIC(20, 12),
    created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_alert_evaluations_status ON alert_evaluations(status);
"""

# Legacy models after the import: 1 (training id 101, threshold 0.7, 10 min), 2 (102, 0.65, 5 min); 5 (105) is
# skipped by the import for its threshold of 1.5.
HISTORY_ROWS = """
INSERT INTO predictions (id, coin_id, data_timestamp, model_id, active_model_id, prediction, probability,
    phase_id_at_time, prediction_duration_ms, created_at)
VALUES
  (1, 'AbcPump', '2025-11-03 09:00:00+00', 101, 1, 1, 0.8500, 1, 12, '2025-11-03 09:00:01+00'),  -- a judged alert
  (2, 'DefPump', '2025-11-03 09:01:00+00', 101, NULL, 1, 0.6000, 1, 9, NULL),  -- positive below 0.7: inverted
  (3, 'GhiPump', '2025-11-03 09:02:00+00', 102, 2, 0, 0.2000, 2, NULL, NULL),  -- a non-alert not judged yet
  (4, 'JklPump', '2025-11-03 09:03:00+00', 102, 2, 1, 0.9000, 2, NULL, NULL),  -- no verdict row
  (5, 'AbcPump', '2025-11-03 09:04:00+00', 105, 5, 1, 0.9500, 1, NULL, NULL),  -- its model was skipped
  (6, 'AbcPump', '2025-11-03 09:05:00+00', 199, NULL, 0, 0.1000, 1, NULL, NULL),  -- a model deleted long ago
  (7, 'AbcPump', '2025-11-03 09:00:00+00', 101, 1, 1, 0.8500, 1, NULL, NULL),  -- repeats row 1
  (8, 'AbcPump', '2025-11-04 10:00:00+00', 101, 1, 1, 0.8123, 1, NULL, NULL),  -- also in legacy model_predictions
  (9, 'PqrPump', '2025-11-03 09:06:00+00', 101, 1, 1, 1.5000, 1, NULL, NULL),  -- a probability above 1
  (10, 'MnoPump', '2025-11-03 09:07:00+00', 102, 2, 1, 0.7000, 3, NULL, NULL);  -- expired

INSERT INTO alert_evaluations (prediction_id, coin_id, model_id, probability, alert_timestamp, price_close_at_alert,
    market_cap_close_at_alert, volume_sol_at_alert, phase_id_at_alert, evaluation_timestamp,
    price_close_at_evaluation, market_cap_close_at_evaluation, volume_sol_at_evaluation, phase_id_at_evaluation,
    actual_price_change_pct, status, evaluated_at, evaluation_note, ath_price_change_pct, ath_timestamp, updated_at)
VALUES
  (1, 'AbcPump', 101, 0.85, '2025-11-03 09:00:00+00', 0.00000002, 5000.00, 3.5, 1, '2025-11-03 09:10:00+00',
   0.000000023, 5750.00, 4.25, 2, 15.0000, 'success', '2025-11-03 09:10:30+00', 'Ziel erreicht', 18.5000,
   '2025-11-03 09:07:00+00', '2025-11-03 09:10:30+00'),
  (2, 'DefPump', 101, 0.60, '2025-11-03 09:01:00+00', 0.00000004, NULL, NULL, 1, '2025-11-03 09:11:00+00',
   0.000000048, NULL, NULL, 1, 20.0000, 'failed', '2025-11-03 09:11:30+00', NULL, 21.0000, NULL, NULL),
  (3, 'GhiPump', 102, 0.20, '2025-11-03 09:02:00+00', 0.00000001, NULL, NULL, 2, '2025-11-03 09:07:00+00',
   NULL, NULL, NULL, NULL, NULL, 'non_alert', NULL, NULL, -2.0000, '2025-11-03 09:03:00+00', NULL),
  (10, 'MnoPump', 102, 0.70, '2025-11-03 09:07:00+00', 0.00000003, NULL, NULL, 3, '2025-11-03 09:12:00+00',
   NULL, NULL, NULL, NULL, NULL, 'expired', '2025-11-03 09:12:30+00', 'keine Daten', NULL, NULL, NULL),
  (NULL, 'StuPump', 101, 0.90, '2025-11-03 09:08:00+00', NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, 'pending', NULL, NULL, NULL, NULL, NULL);  -- its prediction is gone
"""

HISTORY_SUMMARY = (
    "model_predictions (prediction history from legacy_predictions, legacy_alert_evaluations): 5 copied "
    "(3 judged, 1 of them with the verdict converted, 2 pending), 4 skipped (1 breaks "
    "predictions_probability_range, 1 duplicate key (the row with the lower id was kept), 2 its model was not "
    "imported), 1 already in model_predictions; 1 legacy_alert_evaluations rows without their prediction not copied"
)
T = datetime(2025, 11, 3, 9, tzinfo=timezone.utc)


@pytest.fixture
def adopted_with_history(scratch_database):
    create_existing_server_tables(scratch_database, "jsonb")
    with connect(scratch_database, autocommit=True) as conn:
        conn.execute(HISTORY_DDL)
        conn.execute(HISTORY_ROWS)
    migrate(scratch_database)
    return scratch_database


def _history_rows(url: str) -> list[tuple]:
    with connect(url) as conn:
        return conn.execute(
            "SELECT coin_id, active_model_id, model_id, prediction, probability, tag, status, evaluation_result, "
            "prediction_timestamp, evaluation_timestamp, evaluated_at IS NOT NULL, prediction_duration_ms "
            "FROM model_predictions WHERE prediction_timestamp < '2025-11-04' ORDER BY prediction_timestamp"
        ).fetchall()


@pytest.mark.django_db
def test_migrate_sets_the_history_aside_and_reversing_gives_it_back(adopted_with_history):
    url = adopted_with_history
    with connect(url) as conn:
        tables = {name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"legacy_predictions", "legacy_alert_evaluations"} <= tables
        assert not {"predictions", "alert_evaluations"} & tables
        indexes = {name for (name,) in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename LIKE 'legacy_%'")}
        assert {"legacy_idx_predictions_coin_time", "legacy_predictions_pkey"} <= indexes
    reversed_ = run_manage("migrate", "predictions", "0003", "--noinput", env_overrides={"DATABASE_URL": url})
    assert reversed_.returncode == 0, reversed_.stderr
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM predictions").fetchone() == (10,)
        assert conn.execute("SELECT count(*) FROM alert_evaluations").fetchone() == (5,)


@pytest.mark.django_db
def test_the_history_is_converted_into_model_predictions_with_counts(adopted_with_history):
    url = adopted_with_history
    result = import_legacy(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED_SUMMARY[:-1] + [HISTORY_SUMMARY]

    minute = [T.replace(minute=m) for m in range(20)]
    assert _history_rows(url) == [
        # the judged alert, as it was
        ("AbcPump", 1, 101, 1, 0.85, "alert", "inaktiv", "success", minute[0], minute[10], True, 12.0),
        # found by its training id; a positive below the threshold: "failed" there (target reached) is a success here
        ("DefPump", 1, 101, 1, 0.6, "positiv", "inaktiv", "success", minute[1], minute[11], True, 9.0),
        # not judged yet there: pending here, with the verdict row's horizon
        ("GhiPump", 2, 102, 0, 0.2, "negativ", "aktiv", None, minute[2], minute[7], False, None),
        # no verdict row: pending, horizon = data time + the model's 5 minutes
        ("JklPump", 2, 102, 1, 0.9, "alert", "aktiv", None, minute[3], minute[8], False, None),
        # expired there, not_applicable here
        ("MnoPump", 2, 102, 1, 0.7, "alert", "inaktiv", "not_applicable", minute[7], minute[12], True, None),
    ]
    with connect(url) as conn:
        snapshot = conn.execute(
            "SELECT price_close_at_prediction, market_cap_at_prediction, volume_at_prediction, phase_id_at_prediction, "
            "price_close_at_evaluation, market_cap_at_evaluation, volume_at_evaluation, phase_id_at_evaluation, "
            "actual_price_change_pct, evaluation_note, ath_highest_pct, ath_highest_timestamp, created_at, id > 40 "
            "FROM model_predictions WHERE coin_id = 'AbcPump' AND prediction_timestamp = %s", [T]
        ).fetchone()
        assert snapshot == (
            Decimal("0.000000020000000000"), Decimal("5000.00"), Decimal("3.500000"), 1,
            Decimal("0.000000023000000000"), Decimal("5750.00"), Decimal("4.250000"), 2,
            Decimal("15.0000"), "Ziel erreicht", Decimal("18.5000"), minute[7], T.replace(second=1), True,
        )
        # A negative "ATH" (the first observed change) is no highest gain.
        assert conn.execute("SELECT ath_highest_pct FROM model_predictions WHERE coin_id = 'GhiPump'").fetchone() == (
            None,)
        assert conn.execute("SELECT count(*) FROM legacy_predictions").fetchone() == (10,)  # left as it was


@pytest.mark.django_db
def test_the_history_is_copied_once_and_a_dry_run_writes_nothing(adopted_with_history):
    url = adopted_with_history
    dry = import_legacy(url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-2] == HISTORY_SUMMARY.replace("5 copied", "5 to copy")
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM model_predictions").fetchone() == (0,)
        assert conn.execute(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('model_predictions', 'id')::regclass)"
        ).fetchone() == (None,)

    assert import_legacy(url).stdout.splitlines()[-1] == HISTORY_SUMMARY
    again = import_legacy(url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "model_predictions (prediction history from legacy_predictions, legacy_alert_evaluations): 0 copied "
        "(0 judged, 0 of them with the verdict converted, 0 pending), 3 skipped (1 breaks "
        "predictions_probability_range, 2 its model was not imported), 7 already in model_predictions; "
        "1 legacy_alert_evaluations rows without their prediction not copied"
    )
    assert len(_history_rows(url)) == 5
