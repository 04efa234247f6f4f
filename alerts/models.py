# Alerts are `model_predictions` rows seen through their tag and verdict (see predictions.models); this app
# holds the evaluation, ATH tracking and statistics logic, and the small table of settings operators change at
# run time.

from django.db import models


class RuntimeSetting(models.Model):
    """One persisted UI setting (the existing server's `ui_config.json`, one row per key).

    Read at use time by every process (see pumpserver.config), so a change needs no restart. Only the keys
    pumpserver.config.EDITABLE_KEYS are ever written.
    """

    key = models.CharField(max_length=100, primary_key=True)
    value = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "runtime_settings"
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key
