"""python manage.py housekeeping [--dry-run]"""

from django.core.management.base import BaseCommand

from alerts import services
from predictions import retention


class Command(BaseCommand):
    help = (
        "What the worker does every hour: create the prediction partitions ahead, drop the day partitions that "
        "PREDICTION_RETENTION_DAYS and ALERT_RETENTION_DAYS let go (never one holding an unjudged or not yet "
        "aggregated prediction), delete old webhook and audit logs, and idle scan states."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="show which partitions would be created and dropped (rows, bytes); change nothing")

    def handle(self, *args, dry_run: bool, **options):
        report = retention.maintain(dry_run=dry_run)
        for line in retention.describe(report):
            self.stdout.write(line)
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
            return
        logs = services.housekeeping()
        self.stdout.write(f"{logs.webhook_log_deleted} webhook log rows deleted")
        self.stdout.write(f"{logs.audit_entries_deleted} audit entries deleted")
        self.stdout.write(f"{logs.scan_states_deleted} idle scan states deleted")
