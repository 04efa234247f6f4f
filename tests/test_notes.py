"""Evaluation notes derived on read (predictions/notes.py): not stored where the verdict and the model's target tell
them again, the same text in every reader, kept when a model's target changes, and migration 0007 both ways."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction
from django.urls import reverse
from django.utils.html import escape

from alerts import legacy_selectors
from alerts.services import evaluate_due
from modelregistry.models import ActiveModel
from predictions import log_selectors, notes
from predictions.models import ModelPrediction
from pumpserver.database import open_connection
from tests.conftest import connect, run_manage
from tests.test_evaluation import AFTER_HORIZON, T0, note, path, predict, time_model
from tests.test_partitions import every_row, insert_model

REACHED = "change +15.00 % (target >= +10 %, up): reached, predicted 1"


def stored(row: ModelPrediction) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT evaluation_note FROM model_predictions WHERE id = %s", [row.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_derivable_note_is_not_stored_and_every_reader_shows_it(market):
    model = time_model(percent=10)
    row = predict(model, coin="up")
    dead = predict(model, coin="dead")  # no market rows: a note no reader can derive
    path(market, "up", 1.15)

    evaluate_due(now=AFTER_HORIZON)

    assert stored(row) is None and note(row) == REACHED
    assert stored(dead) == note(dead) == "no metrics between prediction and evaluation time"
    page = log_selectors.model_predictions_page(filters={"active_model_id": model.pk}, limit=10, offset=0)
    assert {p.coin_id: p.evaluation_note for p in page.predictions}["up"] == REACHED
    exported = {r[2]: r[log_selectors.EXPORT_COLUMNS.index("evaluation_note")]
                for r in log_selectors.export_rows(filters={"active_model_id": model.pk})}
    assert exported["up"] == REACHED
    assert legacy_selectors.alert_details(alert_id=row.pk)["alert"]["evaluation_note"] == REACHED


@pytest.mark.django_db
def test_the_admin_shows_the_derived_note(market, admin_client):
    row = predict(time_model(percent=10), coin="up")
    path(market, "up", 1.15)
    evaluate_due(now=AFTER_HORIZON)

    page = admin_client.get(reverse("admin:predictions_modelprediction_change", args=[row.pk]))

    assert page.status_code == 200 and escape(REACHED) in page.content.decode()


@pytest.mark.django_db
def test_a_target_change_writes_out_the_notes_judged_under_the_old_target(market):
    model, other = time_model(percent=10), time_model(percent=10)
    row, kept = predict(model, coin="up"), predict(other, coin="up")
    path(market, "up", 1.15)
    evaluate_due(now=AFTER_HORIZON)
    assert stored(row) is None and stored(kept) is None

    model.target_direction = "up"  # NULL and "up" are the same target: nothing to write out
    model.save()
    assert stored(row) is None

    model.price_change_percent = 20  # what registering a new version with another target does
    model.save()

    assert stored(row) == note(row) == REACHED
    assert stored(kept) is None and note(kept) == REACHED
    # Rows judged from now on are derived from the new target.
    later = predict(model, coin="later")
    path(market, "later", 1.25)
    evaluate_due(now=AFTER_HORIZON)
    assert stored(later) is None
    assert note(later) == "change +25.00 % (target >= +20 %, up): reached, predicted 1"


@pytest.mark.django_db
def test_a_target_change_waits_for_a_judgement_in_progress():
    """An evaluation run holds the shared lock until it commits: the change's trigger cannot write out notes before
    the rows judged under the old target are visible to it."""
    model = time_model(percent=10)
    evaluating = open_connection()  # a worker in the middle of evaluate_due
    try:
        evaluating.execute("SELECT pg_advisory_xact_lock_shared(%s)", [notes.TARGET_LOCK])
        model.price_change_percent = 20
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            model.save()
        evaluating.rollback()  # the run committed: the change goes through
        model.save()
    finally:
        evaluating.close()
    assert ActiveModel.objects.get(pk=model.pk).price_change_percent == 20


# Judged rows of migration 0006's layout: derivable notes (models 5 % up), a legacy text and a not_applicable one.
NOTES_SQL = """
INSERT INTO model_predictions (coin_id, active_model_id, prediction, probability, tag, status, prediction_timestamp,
    evaluation_timestamp, evaluated_at, actual_price_change_pct, evaluation_result, evaluation_note)
VALUES
    ('a', %(model)s, 1, 0.9, 'alert', 'inaktiv', %(at)s, %(at)s, %(at)s, 10.7143, 'success',
     'change +10.71 %% (target >= +5 %%, up): reached, predicted 1'),
    ('b', %(model)s, 0, 0.2, 'negativ', 'inaktiv', %(at)s, %(at)s, %(at)s, -3.5, 'success',
     'change -3.50 %% (target >= +5 %%, up): not reached, predicted 0'),
    ('c', %(model)s, 1, 0.9, 'alert', 'inaktiv', %(at)s, %(at)s, %(at)s, 10.7143, 'success', 'legacy: ATH reached'),
    ('d', %(model)s, 1, 0.9, 'alert', 'inaktiv', %(at)s, %(at)s, %(at)s, NULL, 'not_applicable',
     'no metrics between prediction and evaluation time'),
    ('e', %(model)s, 1, 0.9, 'alert', 'aktiv', %(at)s, %(at)s, NULL, NULL, NULL, NULL)
"""

READ_SQL = """
SELECT p.coin_id, p.evaluation_note,
       coalesce(p.evaluation_note, prediction_note(p.actual_price_change_pct, m.price_change_percent,
                                                   m.target_direction, p.evaluation_result, p.prediction))
  FROM model_predictions p JOIN prediction_active_models m ON m.id = p.active_model_id
 ORDER BY p.coin_id
"""


def test_migration_forgets_only_derivable_notes_and_reversing_stores_them_again(scratch_database):
    env = {"DATABASE_URL": scratch_database}
    assert run_manage("migrate", "--noinput", env_overrides=env).returncode == 0
    back = run_manage("migrate", "predictions", "0006", "--noinput", env_overrides=env)
    assert back.returncode == 0, back.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        active = insert_model(cursor, model_id=42, price_change_percent=5)
        cursor.execute(NOTES_SQL, {"model": active, "at": T0})
        before = every_row(cursor)
        notes_before = [(r[0], r[1]) for r in _notes(cursor)]

    forward = run_manage("migrate", "--noinput", env_overrides=env)
    assert forward.returncode == 0, forward.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(READ_SQL)
        after = cursor.fetchall()
    assert [(coin, read) for coin, _stored, read in after] == notes_before  # what users read is unchanged
    assert {coin for coin, stored_note, _read in after if stored_note is None} == {"a", "b", "e"}

    reverse = run_manage("migrate", "predictions", "0006", "--noinput", env_overrides=env)
    assert reverse.returncode == 0, reverse.stderr[-2000:]
    with connect(scratch_database, autocommit=True) as conn, conn.cursor() as cursor:
        assert every_row(cursor) == before
        cursor.execute("SELECT to_regproc('prediction_note')")
        assert cursor.fetchone() == (None,)


def _notes(cursor) -> list[tuple]:
    cursor.execute("SELECT coin_id, evaluation_note FROM model_predictions ORDER BY coin_id")
    return cursor.fetchall()

