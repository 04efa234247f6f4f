"""`model_predictions.active_model_id` loses its database-level foreign key, as the existing server's column never
had one: the deferred check ran once per stored prediction, about a sixth of the database's work per listener batch.
The listener holds the models' rows until it commits and rolls back if one is gone (predictions.services,
LOCK_MODEL_ROWS_SQL); the ORM cascade still deletes a model's predictions.

Dropping the constraint from the partitioned parent drops it from every partition; it takes a brief ACCESS
EXCLUSIVE lock and reads no rows.
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = "ALTER TABLE model_predictions DROP CONSTRAINT IF EXISTS predictions_active_model_fk"
# Validates every stored row: refused while predictions of deleted models remain.
BACKWARD = """
ALTER TABLE model_predictions ADD CONSTRAINT predictions_active_model_fk
    FOREIGN KEY (active_model_id) REFERENCES prediction_active_models (id) DEFERRABLE INITIALLY DEFERRED
"""


class Migration(migrations.Migration):

    dependencies = [
        ('modelregistry', '0002_initial'),
        ('predictions', '0010_scan_cache_ignore_windows'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name='modelprediction',
                    name='active_model',
                    field=models.ForeignKey(db_column='active_model_id', db_constraint=False, db_index=False,
                                            on_delete=django.db.models.deletion.CASCADE, related_name='predictions',
                                            to='modelregistry.activemodel'),
                ),
            ],
        ),
    ]
