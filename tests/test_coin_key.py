"""The coin's 64-bit key in `model_predictions` (predictions/partitions.py): computed for every writer, unique with
the data time, model and kind, the way every coin lookup finds its rows, and migration 0009 adding it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, connection, transaction

from alerts import legacy_selectors
from modelregistry.models import ActiveModel
from predictions import log_selectors, selectors
from predictions.models import ModelPrediction, coin_filter
from tests.conftest import connect, run_manage
from tests.test_partitions import ROWS_SQL, every_row, insert_model

NOW = datetime.now(timezone.utc).replace(microsecond=0)
MINTS = ["So11111111111111111111111111111111111111112", "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr", "c"]


def model(model_id: int = 7) -> ActiveModel:
    return ActiveModel.objects.create(model_id=model_id, model_name="m", model_type="xgboost",
                                      features=["price_close"])


def add(active: ActiveModel, coin: str, *, at: datetime = NOW, tag: str = "alert") -> ModelPrediction:
    return ModelPrediction.objects.create(coin_id=coin, active_model=active, prediction=1, probability=0.9, tag=tag,
                                          prediction_timestamp=at)


def keys_match_postgres(cursor) -> bool:
    cursor.execute("SELECT bool_and(coin_key = hashtextextended(coin_id, 0)), count(*) FROM model_predictions")
    matched, rows = cursor.fetchone()
    return bool(matched) and rows > 0


@pytest.mark.django_db
def test_every_writer_gets_the_key_and_a_second_prediction_of_one_row_is_refused():
    active = model()
    for coin in MINTS:
        add(active, coin)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO model_predictions (coin_id, active_model_id, prediction, probability, tag, status, "
                       "prediction_timestamp) VALUES ('written by hand', %s, 0, 0.1, 'negativ', 'aktiv', %s)",
                       [active.pk, NOW])
        assert keys_match_postgres(cursor)
        cursor.execute("SELECT count(DISTINCT coin_key) FROM model_predictions")
        assert cursor.fetchone()[0] == len(MINTS) + 1
    with pytest.raises(IntegrityError, match=r"Key \(coin_key, prediction_timestamp, active_model_id, tag\)"), \
            transaction.atomic():
        add(active, MINTS[0])
    add(active, MINTS[0], at=NOW + timedelta(microseconds=1))  # another row of the coin: a prediction of its own
    add(model(8), MINTS[0])  # another model
    assert ModelPrediction.objects.filter(coin_filter(MINTS[0])).count() == 3


@pytest.mark.django_db
def test_coin_lookups_find_their_rows_through_the_unique_key():
    active = model()
    for k in range(30):
        for coin in MINTS:
            add(active, coin, at=NOW - timedelta(minutes=k), tag="alert" if k % 3 == 0 else "negativ")
    wanted = ModelPrediction.objects.filter(coin_id=MINTS[1])
    assert ModelPrediction.objects.filter(coin_filter(MINTS[1])).count() == wanted.count() == 30
    assert log_selectors.latest_prediction(coin_id=MINTS[1]).prediction_timestamp == NOW
    counts = selectors.pending_tag_counts(mints=MINTS[:2], model_ids=[active.pk])
    assert counts == {(active.pk, coin, tag): n for coin in MINTS[:2] for tag, n in (("alert", 10), ("negativ", 20))}
    one_coin = legacy_selectors.alerts_page(filters={"coin_id": MINTS[2]}, unique_coins=False)
    assert {row["coin_id"] for row in one_coin["alerts"]} == {MINTS[2]} and one_coin["total"] == 10
    per_coin = legacy_selectors.alerts_page(filters={})["alerts"]
    assert sorted((row["coin_id"], row["other_alerts_count"]) for row in per_coin) == sorted((c, 9) for c in MINTS)

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the tables are tiny: make the planner show its index
        query, params = ModelPrediction.objects.filter(coin_filter(MINTS[1])).query.sql_with_params()
        cursor.execute(f"EXPLAIN {query}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Cond: (coin_key = " in plan, plan


def test_migration_0009_adds_the_key_to_existing_rows_and_reversing_removes_it(scratch_database):
    env = {"DATABASE_URL": scratch_database}
    assert run_manage("migrate", "--noinput", env_overrides=env).returncode == 0
    back = run_manage("migrate", "predictions", "0008", "--noinput", env_overrides=env)
    assert back.returncode == 0, back.stderr[-2000:]
    unique_key = ("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                  "WHERE conname = 'predictions_once_per_row' AND conrelid = 'model_predictions'::regclass")
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(unique_key)
        assert cursor.fetchone()[0] == "UNIQUE (coin_id, prediction_timestamp, active_model_id, tag)"
        cursor.execute("SELECT 1 FROM pg_attribute WHERE attrelid = 'model_predictions'::regclass "
                       "AND attname = 'coin_key' AND NOT attisdropped")
        assert cursor.fetchone() is None
        active = insert_model(cursor, model_id=42)
        cursor.execute(ROWS_SQL, {"model": active, "start": NOW, "rows": 40})
        before = every_row(cursor)
    forward = run_manage("migrate", "--noinput", env_overrides=env)
    assert forward.returncode == 0, forward.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(unique_key)
        assert cursor.fetchone()[0] == "UNIQUE (coin_key, prediction_timestamp, active_model_id, tag)"
        assert every_row(cursor) == before
        assert keys_match_postgres(cursor)
    again = run_manage("migrate", "predictions", "0008", "--noinput", env_overrides=env)
    assert again.returncode == 0, again.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        assert every_row(cursor) == before
