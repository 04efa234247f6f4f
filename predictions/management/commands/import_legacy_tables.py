"""python manage.py import_legacy_tables [--dry-run]"""

from django.core.management.base import BaseCommand, CommandError

from predictions.legacy_services import LegacyImportError, import_legacy_tables


class Command(BaseCommand):
    help = (
        "Copy the existing server's models, predictions, scan cache and webhook log (set aside as legacy_* "
        "tables by migrate) into ours, keeping their ids, and its older prediction history (predictions and "
        "alert_evaluations) into model_predictions. Safe to run again: copied rows are not copied twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be copied and skipped; write nothing"
        )

    def handle(self, *args, dry_run: bool, **options):
        try:
            reports = import_legacy_tables(dry_run=dry_run)
        except LegacyImportError as exc:
            raise CommandError(str(exc)) from None
        for report in reports:
            self.stdout.write(report.summary(dry_run=dry_run))
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
