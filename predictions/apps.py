from django.apps import AppConfig
from django.db.models.signals import post_migrate

from predictions.partitions import ensure_after_migrate


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Market data and predictions"

    def ready(self):
        # Every migrate creates the day partitions ahead, as the worker's hourly housekeeping does.
        post_migrate.connect(ensure_after_migrate, sender=self, dispatch_uid="predictions.partitions")
