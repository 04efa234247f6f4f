"""Adopting a database of the existing server: its tables are renamed to legacy_*, never dropped.

Our tables keep the names users query (prediction_active_models, model_predictions, …) but have more columns
and constraints, so they are created fresh; `python manage.py import_legacy_tables` copies the old rows in.
"""

from django.db import migrations

LEGACY_TABLES = ["prediction_active_models", "model_predictions", "coin_scan_cache", "prediction_webhook_log"]


def _relations_of(cursor, table):
    """Indexes and owned sequences of a table: they carry the table's name and would collide with ours."""
    cursor.execute(
        """
        SELECT 'INDEX', c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = to_regclass(%s)
        UNION
        SELECT 'SEQUENCE', s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         WHERE d.refobjid = to_regclass(%s)
        """,
        [f"public.{table}", f"public.{table}"],
    )
    return cursor.fetchall()


def _rename_with_relations(cursor, old, new, rename):
    for kind, relation in _relations_of(cursor, old):
        cursor.execute(f'ALTER {kind} "{relation}" RENAME TO "{rename(relation)}"')
    cursor.execute(f'ALTER TABLE "{old}" RENAME TO "{new}"')


def set_aside(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table in LEGACY_TABLES:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{table}"])
            if cursor.fetchone()[0]:
                _rename_with_relations(cursor, table, f"legacy_{table}", lambda name: f"legacy_{name}")


def restore(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table in LEGACY_TABLES:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.legacy_{table}"])
            if cursor.fetchone()[0]:
                _rename_with_relations(cursor, f"legacy_{table}", table, lambda name: name.removeprefix("legacy_"))


class Migration(migrations.Migration):
    dependencies = []
    operations = [migrations.RunPython(set_aside, restore)]
