"""Create or adopt the collector's coin_metrics/ref_coin_phases and install the insert trigger."""

from django.db import migrations

from predictions import collector_schema


def install(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        collector_schema.install(cursor)


def uninstall(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        collector_schema.uninstall(cursor)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0001_initial")]
    operations = [migrations.RunPython(install, uninstall)]
