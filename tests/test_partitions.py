"""model_predictions partitioned by kind and day: adoption of an unpartitioned table, partitions ahead and out of
the DEFAULT partitions, retention by whole partitions with its guards, and partition pruning of the worker's SQL."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from django.db import connection
from psycopg import sql

from alerts.services import EVALUATE_DUE_SQL, TRACK_ATH_SQL
from modelregistry.models import ActiveModel
from predictions import partition_adoption, partitions, retention
from predictions.models import ModelPrediction
from tests.conftest import connect, run_manage

NOW = datetime(2026, 6, 20, 12, 0, tzinfo=timezone.utc)
TODAY = NOW.date()

# Both kinds, judged and pending, on several days (one far in the past, one ahead), with a note and ATH figures.
ROWS_SQL = """
INSERT INTO model_predictions (coin_id, model_id, active_model_id, model_version, prediction, probability, tag,
    status, prediction_timestamp, evaluation_timestamp, evaluated_at, prediction_duration_ms,
    price_close_at_prediction, price_close_at_evaluation, actual_price_change_pct, evaluation_result,
    evaluation_note, ath_highest_pct, ath_highest_timestamp, created_at, updated_at)
SELECT 'coin' || abs(n %% 7), 42, %(model)s, 1, abs(n %% 2), abs(n %% 100) / 100.0,
       CASE WHEN n %% 3 = 0 THEN 'alert' WHEN n %% 2 = 0 THEN 'positiv' ELSE 'negativ' END,
       CASE WHEN n %% 4 = 0 THEN 'aktiv' ELSE 'inaktiv' END,
       %(start)s - make_interval(hours => n * 7), %(start)s - make_interval(hours => n * 7) + interval '10 minutes',
       CASE WHEN n %% 4 <> 0 THEN %(start)s END, 1.25,
       0.000000028, CASE WHEN n %% 4 <> 0 THEN 0.000000031 END, CASE WHEN n %% 4 <> 0 THEN 10.7143 END,
       CASE WHEN n %% 4 = 0 THEN NULL WHEN n %% 5 = 0 THEN 'not_applicable' WHEN n %% 2 = 0 THEN 'success'
            ELSE 'failed' END,
       CASE WHEN n %% 4 <> 0 THEN 'change +10.71 %% (target >= +5 %%, up): reached, predicted ' || abs(n %% 2) END,
       CASE WHEN n %% 4 <> 0 THEN 12.5 END, CASE WHEN n %% 4 <> 0 THEN %(start)s END, %(start)s, %(start)s
  FROM generate_series(-8, %(rows)s) AS n
"""


def model() -> ActiveModel:
    return ActiveModel.objects.create(model_id=42, model_name="m", model_type="xgboost", features=["price_close"],
                                      future_minutes=10, price_change_percent=5)


def insert_model(cursor, **fields) -> int:
    """A model row written over a plain psycopg connection (a scratch database), with every default Django sets."""
    instance = ActiveModel(model_name="m", model_type="xgboost", features=["price_close"], **fields)
    columns = [field for field in ActiveModel._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in columns]
    cursor.execute(sql.SQL("INSERT INTO prediction_active_models ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(sql.Identifier(field.column) for field in columns),
        sql.SQL(", ").join(sql.Placeholder() * len(columns))), values)
    return cursor.fetchone()[0]


def every_row(cursor) -> list[tuple]:
    names = sql.SQL(", ").join(map(sql.Identifier, partitions.STORED_COLUMN_NAMES))
    cursor.execute(sql.SQL("SELECT {} FROM model_predictions ORDER BY id").format(names))
    return cursor.fetchall()


def rows_in_defaults(cursor) -> int:
    cursor.execute("SELECT (SELECT count(*) FROM model_predictions_alert_default) "
                   "+ (SELECT count(*) FROM model_predictions_other_default)")
    return cursor.fetchone()[0]


@pytest.mark.django_db
def test_an_unpartitioned_table_is_adopted_in_batches_without_losing_a_row():
    active = model()
    with connection.cursor() as cursor:
        partition_adoption.unpartition_table(cursor)
        assert not partitions.is_partitioned(cursor)
        cursor.execute(ROWS_SQL, {"model": active.pk, "start": NOW, "rows": 60})
        before = every_row(cursor)
        kinds = {row[partitions.STORED_COLUMN_NAMES.index("tag")] for row in before}
        statuses = {row[partitions.STORED_COLUMN_NAMES.index("status")] for row in before}
        assert kinds == {"alert", "positiv", "negativ"} and statuses == {"aktiv", "inaktiv"}

        moved = partition_adoption.partition_table(cursor, today=TODAY, batch_size=7)

        assert moved == len(before) == 69
        assert partitions.is_partitioned(cursor)
        assert every_row(cursor) == before  # every column of every row, ids included
        assert rows_in_defaults(cursor) == 0  # each day got its partition
        cursor.execute("SELECT count(*) FROM model_predictions_alert WHERE tag <> 'alert'")
        assert cursor.fetchone() == (0,)
    # The id sequence goes on after the highest id, and a new row lands in its day's partition.
    row = ModelPrediction.objects.create(coin_id="new", active_model=active, prediction=1, probability=0.9,
                                         tag="alert", prediction_timestamp=NOW)
    assert row.id > max(r[0] for r in before)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM model_predictions WHERE id = %s", [row.id])
        assert cursor.fetchone() == (f"model_predictions_alert_{TODAY:%Y%m%d}",)


def test_migrate_converts_the_table_and_reversing_gives_it_back(scratch_database):
    env = {"DATABASE_URL": scratch_database}
    assert run_manage("migrate", "--noinput", env_overrides=env).returncode == 0
    back = run_manage("migrate", "predictions", "0005", "--noinput", env_overrides=env)
    assert back.returncode == 0, back.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        assert not partitions.is_partitioned(cursor)
        active = insert_model(cursor, model_id=42)
        cursor.execute(ROWS_SQL, {"model": active, "start": NOW, "rows": 40})
        before = every_row(cursor)
    forward = run_manage("migrate", "--noinput", env_overrides=env)
    assert forward.returncode == 0, forward.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        assert partitions.is_partitioned(cursor)
        assert every_row(cursor) == before
        assert rows_in_defaults(cursor) == 0
        ahead = partitions.utc_today(datetime.now(timezone.utc)) + timedelta(days=partitions.DAYS_AHEAD)
        assert ahead in partitions.day_partitions(cursor, "alert")
        cursor.execute("INSERT INTO model_predictions (coin_id, active_model_id, prediction, probability, tag, "
                       "status, prediction_timestamp) VALUES ('c', %s, 0, 0.1, 'negativ', 'aktiv', now()) "
                       "RETURNING id", [active])
        assert cursor.fetchone()[0] > max(r[0] for r in before)


def add_row(active: ActiveModel, *, day: date, tag: str = "negativ", judged: bool = True,
            evaluated_at: datetime | None = None) -> ModelPrediction:
    at = partitions.day_start(day) + timedelta(hours=6)
    return ModelPrediction.objects.create(
        coin_id="coin", active_model=active, prediction=1, probability=0.9 if tag == "alert" else 0.2, tag=tag,
        prediction_timestamp=at, evaluation_timestamp=at + timedelta(minutes=10),
        status="inaktiv" if judged else "aktiv", evaluation_result="success" if judged else None,
        evaluated_at=(evaluated_at or at + timedelta(minutes=11)) if judged else None,
    )


def partition_names() -> set[str]:
    with connection.cursor() as cursor:
        return {name for kind in partitions.KINDS for name in partitions.day_partitions(cursor, kind).values()}


@pytest.mark.django_db
def test_retention_drops_only_expired_partitions_with_nothing_owed(settings):
    settings.PREDICTION_RETENTION_DAYS, settings.ALERT_RETENTION_DAYS = 3, 10
    active = model()
    old, older, oldest = TODAY - timedelta(days=5), TODAY - timedelta(days=6), TODAY - timedelta(days=12)
    dropped_rows = [add_row(active, day=old), add_row(active, day=oldest, tag="alert")]
    add_row(active, day=older, judged=False)  # a pending prediction holds its partition
    add_row(active, day=old, tag="alert")  # alerts are kept 10 days
    add_row(active, day=TODAY - timedelta(days=11), tag="alert", judged=False)  # an unjudged alert
    late = add_row(active, day=TODAY - timedelta(days=4), evaluated_at=NOW - timedelta(minutes=1))
    retention.record_aggregated_until(until=NOW - timedelta(minutes=10))
    existing = partition_names()  # the days around the real today, made by migrate

    dry = retention.maintain(now=NOW, dry_run=True)
    # Nothing changed: the rows still sit in the DEFAULT partitions, no day partition came or went.
    with connection.cursor() as cursor:
        assert rows_in_defaults(cursor) == 6
    assert partition_names() == existing
    assert {f"model_predictions_other_{d:%Y%m%d}" for d in (old, older)} <= set(dry.created)

    report = retention.maintain(now=NOW)

    dropped = {fate.name for fate in report.dropped}
    assert dropped == {f"model_predictions_other_{old:%Y%m%d}", f"model_predictions_alert_{oldest:%Y%m%d}"}
    kept = {fate.name: fate.kept_because for fate in report.kept}
    assert kept == {
        f"model_predictions_other_{older:%Y%m%d}": "1 predictions not judged yet",
        f"model_predictions_alert_{TODAY - timedelta(days=11):%Y%m%d}": "1 predictions not judged yet",
        f"model_predictions_other_{late.prediction_timestamp.date():%Y%m%d}":
            "verdicts not yet in the quality aggregates",
    }
    assert all(fate.rows == 1 and fate.bytes > 0 for fate in report.dropped)
    assert not ModelPrediction.objects.filter(id__in=[row.id for row in dropped_rows]).exists()
    assert ModelPrediction.objects.count() == 4
    assert dropped.isdisjoint(partition_names())
    with connection.cursor() as cursor:
        assert rows_in_defaults(cursor) == 0
    # Once the aggregates have caught up, the late verdict's partition goes too.
    retention.record_aggregated_until(until=NOW)
    assert [fate.name for fate in retention.maintain(now=NOW).dropped] == [
        f"model_predictions_other_{late.prediction_timestamp.date():%Y%m%d}"]


@pytest.mark.django_db
def test_without_retention_settings_or_aggregates_nothing_is_dropped(settings):
    settings.PREDICTION_RETENTION_DAYS = settings.ALERT_RETENTION_DAYS = None
    active = model()
    add_row(active, day=TODAY - timedelta(days=400))
    assert retention.maintain(now=NOW).dropped == []
    settings.PREDICTION_RETENTION_DAYS = 30
    report = retention.maintain(now=NOW)  # no quality record yet: a judged partition stays
    assert report.dropped == [] and [fate.kept_because for fate in report.kept] == [
        "verdicts not yet in the quality aggregates"]
    assert ModelPrediction.objects.count() == 1


def test_housekeeping_dry_run_prints_what_would_go_and_changes_nothing(scratch_database):
    env = {"DATABASE_URL": scratch_database, "PREDICTION_RETENTION_DAYS": "2"}
    assert run_manage("migrate", "--noinput", env_overrides=env).returncode == 0
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        active = insert_model(cursor)
        cursor.execute("INSERT INTO model_predictions (coin_id, active_model_id, prediction, probability, tag, "
                       "status, evaluation_result, evaluated_at, prediction_timestamp) "
                       "SELECT 'c' || n, %s, 0, 0.1, 'negativ', 'inaktiv', 'not_applicable', now(), "
                       "now() - interval '9 days' FROM generate_series(1, 5) n", [active])
    moved = run_manage("housekeeping", env_overrides=env)  # moves the rows out of the DEFAULT partition
    assert moved.returncode == 0, moved.stderr[-2000:]
    old_day = f"model_predictions_other_{datetime.now(timezone.utc) - timedelta(days=9):%Y%m%d}"
    assert f"dropped {old_day}: 5 rows" in moved.stdout  # not_applicable verdicts are nothing the aggregates need
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("INSERT INTO model_predictions (coin_id, active_model_id, prediction, probability, tag, "
                       "status, evaluation_result, evaluated_at, prediction_timestamp) "
                       "SELECT 'c' || n, %s, 0, 0.1, 'negativ', 'inaktiv', 'not_applicable', now(), "
                       "now() - interval '9 days' FROM generate_series(1, 3) n", [active])
    assert run_manage("housekeeping", env_overrides={**env, "PREDICTION_RETENTION_DAYS": "30"}).returncode == 0
    dry = run_manage("housekeeping", "--dry-run", env_overrides=env)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert re.search(rf"would drop {old_day}: 3 rows, [\d,.]+ (kB|MB|bytes)", dry.stdout), dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM model_predictions")
        assert cursor.fetchone() == (3,)
    bad = run_manage("housekeeping", env_overrides={**env, "ALERT_RETENTION_DAYS": "soon"})
    assert bad.returncode != 0 and "ALERT_RETENTION_DAYS must be an integer" in bad.stderr


def scanned(statement: str, params: dict) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    return set(re.findall(r" on (model_predictions_\w+)", plan))


@pytest.mark.django_db
def test_evaluation_and_ath_tracking_read_only_the_partitions_they_need():
    model()
    with connection.cursor() as cursor:
        partitions.ensure_partitions(cursor, today=TODAY - timedelta(days=20), days_ahead=23)
    recent = {f"model_predictions_{kind}_{day:%Y%m%d}" for kind in partitions.KINDS for day in (TODAY,)}
    yesterday = {f"model_predictions_{kind}_{TODAY - timedelta(days=1):%Y%m%d}" for kind in partitions.KINDS}
    ahead = {f"model_predictions_{kind}_{TODAY + timedelta(days=n):%Y%m%d}" for kind in partitions.KINDS
             for n in (1, 2, 3)}

    ath = scanned(TRACK_ATH_SQL, {"now": NOW, "since": NOW - timedelta(minutes=10)})
    assert ath == recent  # 10 minutes back at noon: only today's partitions (both kinds)

    due = scanned(EVALUATE_DUE_SQL, {"now": NOW, "limit": 1000})
    assert yesterday <= due and not due & ahead  # the backlog may be old; the days ahead cannot hold due rows
