"""The kernel adopts two tables that other apps created: runtime_settings (alerts) and process_heartbeats
(predictions). State only: the tables, their rows and their constraints stay as they are."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("alerts", "0001_initial"),
        ("predictions", "0002_collector_tables"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="RuntimeSetting",
                    fields=[
                        ("key", models.CharField(max_length=100, primary_key=True, serialize=False)),
                        ("value", models.JSONField(blank=True, null=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={"db_table": "runtime_settings", "ordering": ["key"]},
                ),
                migrations.CreateModel(
                    name="ProcessHeartbeat",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(help_text="kind@host:pid", max_length=200, unique=True)),
                        ("kind", models.CharField(choices=[("web", "web"), ("listener", "listener"), ("worker", "worker")], max_length=10)),
                        ("hostname", models.CharField(max_length=255)),
                        ("pid", models.IntegerField()),
                        ("started_at", models.DateTimeField()),
                        ("last_seen", models.DateTimeField()),
                        ("details", models.JSONField(blank=True, default=dict)),
                    ],
                    options={
                        "db_table": "process_heartbeats",
                        "ordering": ["kind", "name"],
                        "constraints": [models.CheckConstraint(condition=models.Q(("kind__in", ["web", "listener", "worker"])), name="heartbeats_kind")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
