"""Evaluation notes that the verdict and the model's target tell again are no longer stored (predictions/notes.py):
the function prediction_note(), the trigger that writes the notes out before a target changes, and every existing
note equal to its derived text set to NULL (no other row is touched). Reversing stores every note again."""

from django.db import migrations, models

from predictions import notes


def forward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        notes.install(cursor)


def backward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        notes.uninstall(cursor)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0006_partition_model_predictions")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            # The column keeps its name: only the model's field is renamed, so reads go through readable().
            state_operations=[
                migrations.RenameField(model_name="modelprediction", old_name="evaluation_note",
                                       new_name="stored_note"),
                migrations.AlterField(model_name="modelprediction", name="stored_note",
                                      field=models.TextField(blank=True, db_column="evaluation_note", null=True)),
            ],
        ),
    ]
