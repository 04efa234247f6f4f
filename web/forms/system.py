"""Forms of the settings page (the persisted configuration of pumpserver.config), and the time-window filter every
list page shares."""

from __future__ import annotations

from django import forms


class TimeWindowFilterForm(forms.Form):
    """A From/To window (UTC) and a page number; list pages add their own filters to it."""

    date_from = forms.DateTimeField(
        required=False, label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    date_to = forms.DateTimeField(
        required=False, label="To (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_to", "“To” must be after “From”.")
        return cleaned


class SettingsForm(forms.Form):
    training_service_url = forms.CharField(
        label="Training service URL", required=False, max_length=2000,
        help_text="Base URL including /api, e.g. http://training:8000/api. Empty: TRAINING_SERVICE_API_URL applies.",
        widget=forms.URLInput(attrs={"placeholder": "http://training-service:8000/api"}),
    )
    n8n_webhook_url = forms.CharField(
        label="Global n8n webhook URL", required=False, max_length=2000,
        help_text="Used by models without their own URL. N8N_WEBHOOK_URL, when set, wins.",
        widget=forms.URLInput(attrs={"placeholder": "https://n8n.example.com/webhook/…"}),
    )
    # The old server's informational api_port and streamlit_port keys stay in /api/config for its clients; the page
    # leaves them out (they said nothing true about this server) and shows the address it is served at instead.

    def changes(self) -> dict:
        """Every key, as update_config takes it ("" and None reset a key to its default)."""
        return {name: self.cleaned_data.get(name) for name in self.fields}
