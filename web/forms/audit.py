from django import forms

from audit.models import Door


class AuditFilterForm(forms.Form):
    object_type = forms.CharField(required=False, max_length=100, label="Object type")
    object_id = forms.CharField(required=False, max_length=255, label="Object id")
    door = forms.ChoiceField(choices=[("", "any")] + Door.choices, required=False, label="Door")
    user = forms.CharField(required=False, max_length=150, label="User")
    since = forms.DateTimeField(required=False, label="Since", help_text="e.g. 2026-01-31 12:00 (UTC)",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
