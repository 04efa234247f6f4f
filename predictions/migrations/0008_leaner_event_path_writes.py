"""Less work per stored prediction (issue 16, docs/benchmarks.md "Event path: less database work per batch"):

- the partial index of pending rows per (model, coin, tag) is dropped: it served only the max-log caps (off by
  default) and cost every prediction insert ~20 % of its time; the caps now count through the unique key, which
  leads with the coin;
- `coin_scan_cache` keeps 30 % of each page free, so that the listener's per-batch upsert of every (coin, model)
  it scanned updates in place (a HOT update touches none of the table's three indexes).
"""

from django.db import migrations

CAP_INDEX = ("CREATE INDEX IF NOT EXISTS predictions_pending_cap_idx ON model_predictions (active_model_id, coin_id, tag) "
             "WHERE status = 'aktiv'")


class Migration(migrations.Migration):
    dependencies = [("predictions", "0007_derived_evaluation_notes")]
    operations = [
        migrations.SeparateDatabaseAndState(
            # IF EXISTS: databases created after this change never had it (predictions/partitions.py).
            database_operations=[migrations.RunSQL("DROP INDEX IF EXISTS predictions_pending_cap_idx", CAP_INDEX)],
            state_operations=[migrations.RemoveIndex(model_name="modelprediction",
                                                     name="predictions_pending_cap_idx")],
        ),
        migrations.RunSQL("ALTER TABLE coin_scan_cache SET (fillfactor = 70)",
                          "ALTER TABLE coin_scan_cache RESET (fillfactor)"),
    ]
