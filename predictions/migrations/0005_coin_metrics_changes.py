"""coin_metrics_changes and its triggers: late inserts, updates, deletes and truncates of coin_metrics reach every
listener's history cache (predictions/history_change_schema.py)."""

from django.db import migrations

from predictions import history_change_schema


def install(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        history_change_schema.install(cursor)


def uninstall(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        history_change_schema.uninstall(cursor)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0004_set_aside_legacy_history")]
    operations = [migrations.RunPython(install, uninstall)]
