"""`model_predictions` becomes a partitioned table (by kind, then by day; predictions/partitions.py), adopting the
existing rows without losing one (predictions/partition_adoption.py), with the leaner indexes of the model's Meta.
Reversing gives back one plain table with the indexes of migration 0001."""

import django.contrib.postgres.indexes
import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

from predictions import partition_adoption, partitions


def partition(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        partition_adoption.partition_table(cursor, today=partitions.utc_today(timezone.now()))


def unpartition(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        partition_adoption.unpartition_table(cursor)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0005_coin_metrics_changes")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition, unpartition)],
            state_operations=[
                migrations.AlterField(
                    model_name="modelprediction",
                    name="active_model",
                    field=models.ForeignKey(db_column="active_model_id", db_index=False,
                                            on_delete=django.db.models.deletion.CASCADE, related_name="predictions",
                                            to="modelregistry.activemodel"),
                ),
                migrations.RemoveIndex(model_name="modelprediction", name="predictions_coin_time_idx"),
                migrations.RemoveIndex(model_name="modelprediction", name="predictions_created_idx"),
                migrations.AddIndex(
                    model_name="modelprediction",
                    index=django.contrib.postgres.indexes.BrinIndex(fields=["created_at"],
                                                                     name="predictions_created_idx"),
                ),
                migrations.RemoveConstraint(model_name="modelprediction", name="predictions_once_per_row"),
                migrations.AddConstraint(
                    model_name="modelprediction",
                    constraint=models.UniqueConstraint(
                        fields=("coin_id", "prediction_timestamp", "active_model", "tag"),
                        name="predictions_once_per_row"),
                ),
            ],
        ),
    ]
