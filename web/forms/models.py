"""Forms of the model pages. They check types and ranges for inline errors; the services check again for every caller."""

from __future__ import annotations

import json
import re
import shlex

from django import forms

from modelregistry.models import (
    IGNORE_SECONDS_MAX,
    SEND_MODES,
    TAG_LIMIT_MAX,
    CoinFilterMode,
    ModelType,
    TargetDirection,
)
from pumpserver import limits
from web.forms.system import TimeWindowFilterForm

SEND_MODE_LABELS = {
    "all": "all results",
    "alerts_only": "alerts (p ≥ threshold)",
    "positive_only": "positive (0.5 ≤ p < threshold)",
    "negative_only": "negative (p < 0.5)",
}
MAX_META_BYTES = 5 * 1024 * 1024


class RenameForm(forms.Form):
    custom_name = forms.CharField(
        max_length=255, required=False, strip=True, help_text="An empty name is refused."
    )


def _seconds(label: str, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, min_value=0, max_value=IGNORE_SECONDS_MAX, help_text=help_text,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


def _cap(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, min_value=0, max_value=TAG_LIMIT_MAX, help_text=f"0 = unlimited, at most {TAG_LIMIT_MAX}",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


class ModelSettingsForm(forms.Form):
    """Every per-model setting (spec §3) on one page; the names are the model's (and the API's) field names."""

    alert_threshold = forms.DecimalField(
        label="Alert threshold", min_value=0, max_value=1, max_digits=5, decimal_places=4,
        help_text="Probability from which a prediction is an alert (0–1). Not applied to stored rows.",
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    n8n_enabled = forms.BooleanField(label="Send to n8n", required=False)
    n8n_webhook_url = forms.CharField(
        label="n8n webhook URL", required=False, max_length=2000,
        help_text="Empty: the global URL from Settings (or N8N_WEBHOOK_URL) is used.",
        widget=forms.URLInput(attrs={"placeholder": "https://n8n.example.com/webhook/…"}),
    )
    n8n_send_mode = forms.MultipleChoiceField(
        label="Send", choices=[(mode, SEND_MODE_LABELS[mode]) for mode in SEND_MODES],
        widget=forms.CheckboxSelectMultiple, help_text="Any ticked kind is sent.",
        error_messages={"required": "Tick at least one kind of result to send."},
    )
    send_ignored_to_n8n = forms.BooleanField(
        label="Also send results held back by a max-log cap", required=False
    )
    coin_filter_mode = forms.ChoiceField(label="Which coins", choices=CoinFilterMode.choices)
    coin_whitelist = forms.CharField(
        label="Whitelist", required=False, widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="Mint addresses, one per line (or separated by commas or spaces).",
    )
    ignore_bad_seconds = _seconds("Ignore after negative (s)", "Skip the coin this long after p < 0.5; 0 = never")
    ignore_positive_seconds = _seconds("Ignore after positive (s)", "…after a positive prediction; 0 = never")
    ignore_alert_seconds = _seconds("Ignore after alert (s)", "…after an alert; 0 = never")
    min_scan_interval_seconds = _seconds("Minimum scan interval (s)", "At most one prediction per coin this often")
    max_log_entries_per_coin_negative = _cap("Max pending negatives per coin")
    max_log_entries_per_coin_positive = _cap("Max pending positives per coin")
    max_log_entries_per_coin_alert = _cap("Max pending alerts per coin")

    FIELDSETS = (
        ("Alerts", ("alert_threshold",)),
        ("n8n", ("n8n_enabled", "n8n_webhook_url", "n8n_send_mode", "send_ignored_to_n8n")),
        ("Coins", ("coin_filter_mode", "coin_whitelist")),
        ("Ignore windows and scan interval",
         ("ignore_bad_seconds", "ignore_positive_seconds", "ignore_alert_seconds", "min_scan_interval_seconds")),
        ("Max-log caps (pending rows per coin and tag)",
         ("max_log_entries_per_coin_negative", "max_log_entries_per_coin_positive", "max_log_entries_per_coin_alert")),
    )

    @classmethod
    def initial_for(cls, model) -> dict:
        initial = {name: getattr(model, name) for name in cls.base_fields}
        initial["coin_whitelist"] = "\n".join(model.coin_whitelist or [])
        initial["n8n_webhook_url"] = model.n8n_webhook_url or ""
        initial["alert_threshold"] = model.alert_threshold.normalize()  # 0.7, not 0.7000
        return initial

    def fieldsets(self):
        return [(title, [self[name] for name in names]) for title, names in self.FIELDSETS]

    def clean_coin_whitelist(self) -> list[str] | None:
        text = self.cleaned_data.get("coin_whitelist") or ""
        mints = [part for part in re.split(r"[\s,;]+", text) if part]
        bad = [mint for mint in mints if len(mint) > 255]
        if bad:
            raise forms.ValidationError("A mint address has at most 255 characters.")
        return list(dict.fromkeys(mints)) or None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("coin_filter_mode") == CoinFilterMode.WHITELIST and not cleaned.get("coin_whitelist"):
            self.add_error("coin_whitelist", "Whitelist mode needs at least one mint address (or choose all coins).")
        return cleaned

    def settings_changes(self) -> dict:
        """The cleaned values as update_model_settings takes them."""
        changes = dict(self.cleaned_data)
        changes["n8n_webhook_url"] = changes.get("n8n_webhook_url") or None
        return changes


class ImportForm(forms.Form):
    model_id = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Model file", help_text="XGBoost JSON/UBJ (booster.save_model) or scikit-learn saved with skops. "
        "Pickle/joblib files are refused."
    )
    meta_file = forms.FileField(label="Metadata file (JSON)", required=False)
    meta_text = forms.CharField(
        label="…or metadata as JSON text", required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false",
                                     "placeholder": '{"name": "my model", "model_type": "xgboost", "features": [...], '
                                                    '"params": {"_time_based": {"future_minutes": 5, '
                                                    '"min_percent_change": 10, "direction": "up"}}}'}),
    )
    activate = forms.BooleanField(label="Activate after upload", required=False, initial=True)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        upload_limit = limits.model_upload_limit()
        if upload.size > upload_limit.max_bytes:
            raise forms.ValidationError(limits.too_large(upload_limit, upload.size, what="The file"))
        return upload

    def clean(self):
        cleaned = super().clean()
        meta_file, meta_text = cleaned.get("meta_file"), (cleaned.get("meta_text") or "").strip()
        if meta_file and meta_text:
            self.add_error("meta_text", "Give the metadata once: as a file or as text.")
            return cleaned
        if not meta_file and not meta_text:
            self.add_error("meta_file", "The metadata is required: the model's record as JSON (file or text).")
            return cleaned
        if meta_file:
            if meta_file.size > MAX_META_BYTES:
                self.add_error("meta_file", "The metadata file is larger than 5 MB.")
                return cleaned
            meta_text = meta_file.read().decode("utf-8", errors="replace")
        try:
            meta = json.loads(meta_text)
        except json.JSONDecodeError as exc:
            self.add_error("meta_file" if meta_file else "meta_text", f"Not valid JSON: {exc}")
            return cleaned
        if not isinstance(meta, dict):
            self.add_error("meta_file" if meta_file else "meta_text", "The metadata must be a JSON object.")
            return cleaned
        cleaned["meta"] = meta
        return cleaned


class TrainCommandForm(forms.Form):
    """Builds the `python manage.py train_model …` command line (training runs in a shell, not in the web process)."""

    model_type = forms.ChoiceField(choices=ModelType.choices, initial=ModelType.XGBOOST)
    future_minutes = forms.IntegerField(min_value=1, max_value=1440, initial=5, label="Horizon (minutes)")
    min_percent_change = forms.DecimalField(
        min_value=0.01, max_value=10_000, initial=5, decimal_places=2, label="Required move (%)"
    )
    direction = forms.ChoiceField(choices=TargetDirection.choices, initial=TargetDirection.UP)
    phases = forms.CharField(required=False, label="Phases", help_text="Comma-separated phase ids; empty = all")
    name = forms.CharField(required=False, max_length=255, label="Name")
    activate = forms.BooleanField(required=False, initial=True, label="Activate when done")

    def clean_phases(self) -> list[int]:
        text = self.cleaned_data.get("phases") or ""
        try:
            return [int(part) for part in re.split(r"[\s,]+", text) if part]
        except ValueError:
            raise forms.ValidationError("Phase ids are whole numbers, separated by commas.") from None

    def command(self) -> str:
        data = self.cleaned_data
        parts = [
            "python", "manage.py", "train_model",
            "--model-type", data["model_type"],
            "--future-minutes", str(data["future_minutes"]),
            "--min-percent-change", f"{data['min_percent_change']:g}",
            "--direction", data["direction"],
        ]
        if data.get("phases"):
            parts += ["--phases", ",".join(map(str, data["phases"]))]
        if data.get("name"):
            parts += ["--name", data["name"]]
        if data.get("activate"):
            parts.append("--activate")
        return " ".join(shlex.quote(part) for part in parts)


TIME_RANGES = {  # key: (label, window, bucket seconds)
    "1h": ("last hour", 3600, 60),
    "6h": ("last 6 hours", 6 * 3600, 300),
    "24h": ("last 24 hours", 24 * 3600, 1800),
    "7d": ("last 7 days", 7 * 86400, 6 * 3600),
    "30d": ("last 30 days", 30 * 86400, 86400),
}


class PredictionFilterForm(TimeWindowFilterForm):
    """Filters and paging of a model's recent predictions."""

    field_order = ["coin", "tag", "date_from", "date_to", "page"]

    coin = forms.CharField(required=False, max_length=255, label="Coin")
    tag = forms.ChoiceField(
        required=False, label="Tag",
        choices=[("", "any"), ("negativ", "negativ"), ("positiv", "positiv"), ("alert", "alert")],
    )


class RangeForm(forms.Form):
    range = forms.ChoiceField(required=False, choices=[(key, value[0]) for key, value in TIME_RANGES.items()])
