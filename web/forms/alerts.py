"""Filters of the alert page."""

from __future__ import annotations

from django import forms

from modelregistry.models import ActiveModel
from web.forms.system import TimeWindowFilterForm

STATUS_CHOICES = [
    ("", "any"),
    ("pending", "pending"),
    ("success", "success"),
    ("failed", "failed"),
    ("not_applicable", "expired (not applicable)"),
]
# status filter → the prediction log's evaluation_statuses ("wait" = not judged yet)
STATUS_FILTERS = {"pending": ["wait"], "success": ["success"], "failed": ["failed"], "not_applicable": ["not_applicable"]}


class ModelChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: ActiveModel) -> str:
        return f"{obj.display_name} (#{obj.pk})"


class AlertFilterForm(TimeWindowFilterForm):
    field_order = ["model", "status", "coin", "date_from", "date_to", "page"]
    model = ModelChoice(queryset=ActiveModel.objects.order_by("-is_active", "-created_at"), required=False,
                        empty_label="all models", label="Model")
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, label="Verdict")
    coin = forms.CharField(required=False, max_length=255, label="Coin")
