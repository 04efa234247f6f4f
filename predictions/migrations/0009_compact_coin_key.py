"""The unique key "one prediction per model per coin row" holds the coin's 64-bit hash instead of its 44-character
mint (predictions/partitions.py, `coin_key`): half the index, and a cheaper insert of every prediction.

Adding the column rewrites every partition once (an ACCESS EXCLUSIVE lock for as long as that takes: about a second
per million rows). Databases whose table was partitioned after this change have the column and key already.
"""

from django.db import migrations, models

HAS_COIN_KEY = "SELECT 1 FROM pg_attribute WHERE attrelid = 'model_predictions'::regclass AND attname = 'coin_key'"

FORWARD = """
ALTER TABLE model_predictions
    ADD COLUMN coin_key bigint NOT NULL GENERATED ALWAYS AS (hashtextextended(coin_id, 0)) STORED;
ALTER TABLE model_predictions DROP CONSTRAINT predictions_once_per_row;
ALTER TABLE model_predictions
    ADD CONSTRAINT predictions_once_per_row UNIQUE (coin_key, prediction_timestamp, active_model_id, tag);
"""

BACKWARD = """
ALTER TABLE model_predictions DROP CONSTRAINT predictions_once_per_row;
ALTER TABLE model_predictions
    ADD CONSTRAINT predictions_once_per_row UNIQUE (coin_id, prediction_timestamp, active_model_id, tag);
ALTER TABLE model_predictions DROP COLUMN coin_key;
"""


def _has_coin_key(cursor) -> bool:
    cursor.execute(HAS_COIN_KEY)
    return cursor.fetchone() is not None


def add_coin_key(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        if not _has_coin_key(cursor):
            cursor.execute(FORWARD)


def remove_coin_key(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        if _has_coin_key(cursor):
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0008_leaner_event_path_writes")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_coin_key, remove_coin_key)],
            state_operations=[
                migrations.AddField(
                    model_name="modelprediction",
                    name="coin_key",
                    field=models.GeneratedField(
                        db_persist=True,
                        expression=models.Func(models.F("coin_id"), models.Value(0), function="hashtextextended",
                                               output_field=models.BigIntegerField()),
                        output_field=models.BigIntegerField()),
                ),
                migrations.RemoveConstraint(model_name="modelprediction", name="predictions_once_per_row"),
                migrations.AddConstraint(
                    model_name="modelprediction",
                    constraint=models.UniqueConstraint(
                        fields=("coin_key", "prediction_timestamp", "active_model", "tag"),
                        name="predictions_once_per_row"),
                ),
            ],
        ),
    ]
