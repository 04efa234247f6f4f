"""The evaluation note of a judged prediction, stored only where it cannot be told again from the row.

Nearly every verdict note reads "change +3.21 % (target >= +5 %, up): not reached, predicted 1": the stored change,
the model's target, the verdict and the prediction. Such a note is not stored (`model_predictions.evaluation_note`
stays NULL, ~60 bytes saved per judged row) but derived on read by `prediction_note()`, the one SQL function that
also writes it in the verdict (alerts.services.VERDICT_RULE_CTES). Every other note (no snapshot, classic targets,
missing prices, notes imported from the legacy server) is stored as before.

The derived note uses the model's target, which a newer version of the model may change (register_model). So a
target change first writes out the notes of that model's judged rows under the old target (the trigger below): a
stored row reads the same before and after. Evaluation runs hold a shared advisory lock and the trigger an exclusive
one, so a target change waits for judgements made under the old target to commit, and vice versa.
"""

from __future__ import annotations

from django.db.models import F, Func, TextField
from django.db.models.functions import Coalesce

# Taken shared by every evaluation run, exclusively by a target change (any fixed number, unique in this project).
TARGET_LOCK = 160_016_001

NOTE_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION prediction_note(change numeric, target_pct numeric, direction text, result text,
                                           prediction integer)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN result IN ('success', 'failed') AND change IS NOT NULL AND target_pct IS NOT NULL THEN
    'change ' || CASE WHEN change > 0 THEN '+' ELSE '' END || round(change, 2)
    || ' % (target ' || CASE WHEN coalesce(direction, 'up') = 'down' THEN '<= -' ELSE '>= +' END
    || trim_scale(target_pct) || ' %, ' || coalesce(direction, 'up') || '): '
    || CASE WHEN (result = 'success') = (prediction = 1) THEN 'reached' ELSE 'not reached' END
    || ', predicted ' || prediction
END
$$
"""

KEEP_NOTES_TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION prediction_notes_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({TARGET_LOCK});
    UPDATE model_predictions
       SET evaluation_note = prediction_note(actual_price_change_pct, OLD.price_change_percent, OLD.target_direction,
                                             evaluation_result, prediction)
     WHERE active_model_id = OLD.id AND evaluation_note IS NULL AND evaluation_result IN ('success', 'failed');
    RETURN NULL;
END
$$;
CREATE TRIGGER prediction_notes_keep
    AFTER UPDATE OF price_change_percent, target_direction ON prediction_active_models
    FOR EACH ROW
    WHEN (OLD.price_change_percent IS DISTINCT FROM NEW.price_change_percent
          OR coalesce(OLD.target_direction, 'up') IS DISTINCT FROM coalesce(NEW.target_direction, 'up'))
    EXECUTE FUNCTION prediction_notes_keep();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS prediction_notes_keep ON prediction_active_models;
DROP FUNCTION IF EXISTS prediction_notes_keep();
DROP FUNCTION IF EXISTS prediction_note(numeric, numeric, text, text, integer);
"""

# Applied to every row that exists when notes start being derived: only a note equal to its derived text goes.
FORGET_DERIVABLE_SQL = """
UPDATE model_predictions p
   SET evaluation_note = NULL
  FROM prediction_active_models m
 WHERE m.id = p.active_model_id AND p.evaluation_result IN ('success', 'failed')
   AND p.evaluation_note = prediction_note(p.actual_price_change_pct, m.price_change_percent, m.target_direction,
                                           p.evaluation_result, p.prediction)
"""

WRITE_OUT_SQL = """
UPDATE model_predictions p
   SET evaluation_note = prediction_note(p.actual_price_change_pct, m.price_change_percent, m.target_direction,
                                         p.evaluation_result, p.prediction)
  FROM prediction_active_models m
 WHERE m.id = p.active_model_id AND p.evaluation_note IS NULL AND p.evaluation_result IN ('success', 'failed')
"""


def install(cursor) -> int:
    """Create the function and the trigger, and forget the notes that can be derived; returns the rows changed."""
    cursor.execute(NOTE_FUNCTION_SQL)
    cursor.execute(KEEP_NOTES_TRIGGER_SQL)
    cursor.execute(FORGET_DERIVABLE_SQL)
    return cursor.rowcount


def uninstall(cursor) -> int:
    """The reverse: every note stored again, trigger and function gone; returns the rows changed."""
    cursor.execute(WRITE_OUT_SQL)
    written = cursor.rowcount
    cursor.execute(DROP_SQL)
    return written


def note_expression() -> Coalesce:
    """The note as users read it: the stored one, or the one derived from the verdict and the model's target."""
    derived = Func(
        F("actual_price_change_pct"), F("active_model__price_change_percent"), F("active_model__target_direction"),
        F("evaluation_result"), F("prediction"), function="prediction_note", output_field=TextField(),
    )
    return Coalesce(F("stored_note"), derived, output_field=TextField())
