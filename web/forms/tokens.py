"""The form of the tokens page: name, scope (at most the user's own), expiry and the models a token is limited to."""

from __future__ import annotations

from django import forms
from django.conf import settings

from pumpserver.scopes import RANK, SCOPE_HELP, SCOPES
from pumpserver.tokens import parse_expiry

EXPIRY_CHOICES = [("7d", "7 days"), ("30d", "30 days"), ("365d", "1 year"), ("never", "never")]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the token is for, e.g. 'n8n agent'.")
    scope = forms.ChoiceField(help_text="admin includes operate, which includes read.")
    expires = forms.ChoiceField(label="Expires after")
    model_ids = forms.MultipleChoiceField(
        required=False, label="Only these models", widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every model, also those added later.",
    )

    def __init__(self, *args, access, models, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = [scope for scope in SCOPES if access.allows(scope)]
        self.fields["scope"].choices = [(scope, f"{scope}: {SCOPE_HELP[scope]}") for scope in allowed]
        self.fields["scope"].initial = allowed[0] if allowed else None
        default = f"{settings.API_TOKEN_DEFAULT_DAYS}d"
        choices = [(default, f"{settings.API_TOKEN_DEFAULT_DAYS} days (default)")]
        self.fields["expires"].choices = choices + [choice for choice in EXPIRY_CHOICES if choice[0] != default]
        self.fields["expires"].initial = default
        self.fields["model_ids"].choices = [(str(model.pk), f"{model.pk} · {model.display_name}") for model in models]
        self.access = access

    def clean_scope(self):
        scope = self.cleaned_data["scope"]
        if scope not in RANK or not self.access.allows(scope):
            raise forms.ValidationError(f"You cannot give a token the '{scope}' scope: it is wider than your own.")
        return scope

    def clean_expires(self):
        try:
            return parse_expiry(self.cleaned_data["expires"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_model_ids(self):
        return [int(model_id) for model_id in self.cleaned_data["model_ids"]] or None
