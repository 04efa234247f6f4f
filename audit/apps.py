from django.apps import AppConfig

from pumpserver.changes import changed


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.receivers import record_kernel_change  # imports the models, importable only once apps are ready

        changed.connect(record_kernel_change, weak=False, dispatch_uid="audit.kernel_changes")
