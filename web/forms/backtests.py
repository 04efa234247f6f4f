"""Forms of the backtest pages: the run form (range and threshold) and the run ids of the compare page. They check
types for inline errors; backtests.services.create_run checks the rest for every caller."""

from __future__ import annotations

import re
from datetime import timedelta

from django import forms
from django.conf import settings

DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
COMPARE_MAX_RUNS = 8


class BacktestForm(forms.Form):
    start = forms.DateTimeField(label="From (UTC)", widget=DATETIME_INPUT, help_text="First data time replayed.")
    end = forms.DateTimeField(label="To (UTC)", widget=DATETIME_INPUT,
                              help_text=f"Last data time replayed; at most {settings.BACKTEST_MAX_RANGE_DAYS} days "
                                        "after From.")
    threshold = forms.FloatField(
        label="Alert threshold", required=False, min_value=0, max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        help_text="Rows with a probability at or above it are alerts; empty: the model's threshold.",
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "“To” must not lie before “From”.")
        return cleaned

    @staticmethod
    def initial_for(model, *, data_start, data_end) -> dict:
        """The last 24 hours of recorded data (whole minutes) and the model's threshold."""
        initial = {"threshold": float(model.alert_threshold)}
        if data_end is not None:
            end = data_end.replace(second=0, microsecond=0) + timedelta(minutes=1)
            start = max(end - timedelta(hours=24), data_start.replace(second=0, microsecond=0))
            initial.update(start=start, end=end)
        return initial


def parse_run_ids(values: list[str]) -> list[int]:
    """Run ids from `?runs=1,2,3` (or repeated `runs`), in order, without repeats; ValueError names a bad one."""
    ids = []
    for value in values:
        for part in re.split(r"[\s,]+", value.strip()):
            if not part:
                continue
            if not part.isdigit() or len(part) > 18:
                raise ValueError(f"“{part[:40]}” is not a run id.")
            ids.append(int(part))
    ids = list(dict.fromkeys(ids))
    if len(ids) > COMPARE_MAX_RUNS:
        raise ValueError(f"Compare at most {COMPARE_MAX_RUNS} runs at once.")
    return ids
