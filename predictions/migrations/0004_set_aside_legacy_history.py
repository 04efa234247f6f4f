"""Adopting a database of the existing server: its raw prediction history, `predictions` and `alert_evaluations`
(tables nothing writes any more), is set aside as `legacy_predictions` and `legacy_alert_evaluations` with its
indexes and sequences, as modelregistry's first migration does for the other tables. Rows are untouched;
`python manage.py import_legacy_tables` copies them into model_predictions. Reversing gives the names back.
"""

import importlib

from django.db import migrations

# The renaming of modelregistry's first migration (a module whose name starts with a digit: imported by name).
first = importlib.import_module("modelregistry.migrations.0001_set_aside_legacy_tables")

HISTORY_TABLES = ["predictions", "alert_evaluations"]


def set_aside(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table in HISTORY_TABLES:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{table}"])
            if cursor.fetchone()[0]:
                first._rename_with_relations(cursor, table, f"legacy_{table}", lambda name: f"legacy_{name}")


def restore(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table in HISTORY_TABLES:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.legacy_{table}"])
            if cursor.fetchone()[0]:
                first._rename_with_relations(
                    cursor, f"legacy_{table}", table, lambda name: name.removeprefix("legacy_")
                )


class Migration(migrations.Migration):
    dependencies = [("predictions", "0003_heartbeats_to_kernel")]
    operations = [migrations.RunPython(set_aside, restore)]
