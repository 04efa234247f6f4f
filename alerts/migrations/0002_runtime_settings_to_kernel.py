"""runtime_settings now belongs to the kernel (pumpserver.models.RuntimeSetting): state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("alerts", "0001_initial"),
        ("pumpserver", "0001_kernel_tables"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="RuntimeSetting")]),
    ]
