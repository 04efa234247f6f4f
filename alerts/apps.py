from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self):
        from alerts.services import ensure_schedules  # needs django_q's models, importable only once apps are ready

        # After django_q's tables exist; a no-op update when the schedules are already there.
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="alerts.ensure_schedules")
