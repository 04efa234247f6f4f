"""process_heartbeats now belongs to the kernel (pumpserver.models.ProcessHeartbeat): state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("predictions", "0002_collector_tables"),
        ("pumpserver", "0001_kernel_tables"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="ProcessHeartbeat")]),
    ]
