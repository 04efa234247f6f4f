"""Forms of the coin-details and webhook pages."""

from __future__ import annotations

from django import forms

from predictions.models import DeliveryStatus

WINDOW_CHOICES = [(15, "15 min"), (30, "30 min"), (60, "1 hour"), (180, "3 hours"), (360, "6 hours"), (1440, "1 day")]


class CoinWindowForm(forms.Form):
    """Around one prediction (`prediction`), or a window from the coin's first prediction, paged by `offset`."""

    prediction = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    window = forms.TypedChoiceField(choices=WINDOW_CHOICES, coerce=int, required=False, empty_value=60,
                                    label="Window")
    offset = forms.IntegerField(required=False, min_value=-525_600, max_value=525_600, widget=forms.HiddenInput)


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any")] + DeliveryStatus.choices, required=False, label="Status")
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
