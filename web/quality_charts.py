"""Server-rendered SVG chart kinds of live model quality, in the style of web/charts.py (its layout, axes, legend and
escaping): rates with their confidence intervals, a reliability diagram, horizontal bars against a threshold.

    interval_chart([Interval("03-01", 0.62, 0.48, 0.74, n=40)], references=[ReferenceLine(0.7, "backtest")])
    reliability_diagram(figures["calibration"])
    threshold_bars([("price_close", 0.31), ("volume_sol", 0.04)], threshold=0.25, flagged={"price_close"})
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString

from web.charts import (
    FONT,
    PAD_BOTTOM,
    PAD_LEFT,
    PAD_RIGHT,
    PAD_TOP,
    PALETTE,
    _Axis,
    _fmt,
    _legend,
    _legend_start,
    _num,
    _svg,
    _text,
    _text_width,
    _y_axis_svg,
    empty_chart,
    format_number,
    nice_ticks,
)

RATE_COLOR = PALETTE[0]
FLAGGED_COLOR = "#dc2626"
ABOVE_COLOR = "#d97706"
MUTED = "#6b7280"


@dataclass
class Interval:
    """One slot of an interval chart: a rate (0..1) with its interval; value None leaves the slot empty."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    title: str = ""  # what the tooltip calls the slot (default: the label)
    color: str | None = None


@dataclass
class ReferenceLine:
    """A horizontal line at a rate (0..1), e.g. the backtest's success rate."""

    value: float
    label: str
    color: str = MUTED


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def interval_chart(items: list[Interval], *, references: list[ReferenceLine] | tuple = (), title: str = "",
                   width: int = 380, height: int = 200, max_labels: int = 8, x_unit: str = "",
                   empty_message: str = "Nothing judged yet") -> SafeString:
    """Rates in percent, one slot per item: a point with whiskers from the interval's low to high end, and dashed
    horizontal reference lines. Slot labels are thinned to fit."""
    if not any(_num(item.value) is not None for item in items):
        return empty_chart(empty_message, width=width, height=height, title=title)
    y_axis = _Axis(0.0, 100.0)
    left, right = PAD_LEFT, width - PAD_RIGHT
    top, bottom = PAD_TOP, height - PAD_BOTTOM
    parts = [_y_axis_svg(y_axis, top=top, bottom=bottom, left=left, right=right, unit="%", steps=nice_ticks(0, 100, 4)[2])]
    slot = (right - left) / len(items)
    every = max(1, math.ceil(len(items) / max_labels))
    cap = min(slot * 0.3, 5)
    for reference in references:
        value = _num(reference.value)
        if value is None:
            continue
        y = y_axis.scale(100 * min(max(value, 0.0), 1.0), bottom, top)
        parts.append(f'<line x1="{_fmt(left)}" x2="{_fmt(right)}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
                     f'stroke="{reference.color}" stroke-width="1.4" stroke-dasharray="5 3">'
                     f"<title>{escape(reference.label)}: {_pct(value)}</title></line>")
    for index, item in enumerate(items):
        center = left + (index + 0.5) * slot
        if index % every == 0:
            parts.append(_text(center, bottom + 15, item.label, size=FONT - 1))
        value = _num(item.value)
        if value is None:
            continue
        color = item.color or RATE_COLOR
        tip = f"{item.title or item.label}: {_pct(value)}"
        low, high = _num(item.low), _num(item.high)
        if low is not None and high is not None:
            tip += f" (95 % interval {_pct(low)} – {_pct(high)})"
            y_low, y_high = y_axis.scale(100 * low, bottom, top), y_axis.scale(100 * high, bottom, top)
            parts.append(f'<line x1="{_fmt(center)}" x2="{_fmt(center)}" y1="{_fmt(y_low)}" y2="{_fmt(y_high)}" '
                         f'stroke="{color}" stroke-width="1.4"/>')
            for y in (y_low, y_high):
                parts.append(f'<line x1="{_fmt(center - cap)}" x2="{_fmt(center + cap)}" y1="{_fmt(y)}" '
                             f'y2="{_fmt(y)}" stroke="{color}" stroke-width="1.4"/>')
        tip += f", {item.n} judged alerts"
        y = y_axis.scale(100 * value, bottom, top)
        parts.append(f'<circle class="rate" cx="{_fmt(center)}" cy="{_fmt(y)}" r="3.4" fill="{color}" stroke="#fff" '
                     f'stroke-width="0.8"><title>{escape(tip)}</title></circle>')
    if x_unit:
        parts.append(_text(right, height - 3, x_unit, anchor="end", size=FONT - 1, fill=MUTED))
    legend = [("success rate", RATE_COLOR, "points")]
    legend += [(reference.label, reference.color, "line") for reference in references if _num(reference.value) is not None]
    parts.append(_legend(legend, width, start=_legend_start("%")))
    return _svg(width, height, title, "".join(parts))


def reliability_diagram(bins: list[dict], *, title: str = "Reliability diagram", width: int = 380, height: int = 240,
                        empty_message: str = "Nothing judged yet") -> SafeString:
    """Calibration: mean predicted probability (x) against the observed rate (y) per bin, a marker sized by the bin's
    predictions, and the diagonal a perfectly calibrated model would follow."""
    points = [b for b in bins if b.get("n") and _num(b.get("predicted")) is not None and _num(b.get("observed")) is not None]
    if not points:
        return empty_chart(empty_message, width=width, height=height, title=title)
    axis = _Axis(0.0, 1.0)
    left, right = PAD_LEFT, width - PAD_RIGHT
    top, bottom = PAD_TOP, height - PAD_BOTTOM
    steps = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    parts = [_y_axis_svg(axis, top=top, bottom=bottom, left=left, right=right, unit="observed", steps=steps)]
    for value in steps:
        x = axis.scale(value, left, right)
        parts.append(f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(bottom)}" y2="{_fmt(bottom + 4)}" stroke="#9ca3af"/>')
        parts.append(_text(x, bottom + 15, format_number(value, 0.2), size=FONT - 1))
    parts.append(_text(right, height - 3, "predicted", anchor="end", size=FONT - 1, fill=MUTED))
    parts.append(f'<line class="diagonal" x1="{_fmt(left)}" y1="{_fmt(bottom)}" x2="{_fmt(right)}" y2="{_fmt(top)}" '
                 f'stroke="{MUTED}" stroke-dasharray="4 3"><title>perfect calibration</title></line>')
    largest = max(b["n"] for b in points)
    coords = [(axis.scale(_num(b["predicted"]), left, right), axis.scale(_num(b["observed"]), bottom, top), b)
              for b in points]
    parts.append('<polyline points="' + " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y, _ in coords)
                 + f'" fill="none" stroke="{RATE_COLOR}" stroke-width="1.4" stroke-linejoin="round"/>')
    for x, y, b in coords:
        radius = 2.5 + 4 * math.sqrt(b["n"] / largest)
        tip = (f"probability {b['bin_low']:.1f}–{b['bin_high']:.1f}: predicted {b['predicted']:.3f}, observed "
               f"{b['observed']:.3f}, {b['n']} predictions")
        parts.append(f'<circle class="bin" cx="{_fmt(x)}" cy="{_fmt(y)}" r="{_fmt(radius)}" fill="{RATE_COLOR}" '
                     f'fill-opacity="0.75" stroke="#fff" stroke-width="0.8"><title>{escape(tip)}</title></circle>')
    parts.append(_legend([("live", RATE_COLOR, "points"), ("perfect calibration", MUTED, "line")], width,
                         start=_legend_start("observed")))
    return _svg(width, height, title, "".join(parts))


def threshold_bars(items: list[tuple[str, float | None]], *, threshold: float, flagged: set[str] | frozenset = frozenset(),
                   title: str = "", unit: str = "PSI", width: int = 380, max_items: int = 15,
                   empty_message: str = "No values yet") -> SafeString:
    """One horizontal bar per (label, value), largest first (at most max_items), and a dashed line at the threshold.
    Flagged labels are red, others above the threshold amber; a value None is shown as "–"."""
    rows = sorted(items, key=lambda item: -(_num(item[1]) if _num(item[1]) is not None else -1))[:max_items]
    if not rows or all(_num(value) is None for _, value in rows):
        return empty_chart(empty_message, width=width, title=title)
    names = [label if len(label) <= 24 else label[:23] + "…" for label, _ in rows]
    left = min(170.0, max(_text_width(name, FONT - 1) for name in names) + 10)
    right = width - PAD_RIGHT - 14  # room for the last tick's label
    row_height = 18
    top = PAD_TOP
    bottom = top + row_height * len(rows)
    height = int(bottom + PAD_BOTTOM)
    high = max([threshold] + [_num(value) for _, value in rows if _num(value) is not None]) * 1.1
    _, hi, steps = nice_ticks(0.0, high, 4)
    axis = _Axis(0.0, hi)
    parts = []
    step = steps[1] - steps[0] if len(steps) > 1 else None
    for value in steps:
        x = axis.scale(value, left, right)
        parts.append(f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(top)}" y2="{_fmt(bottom)}" stroke="#e5e7eb"/>')
        parts.append(_text(x, bottom + 15, format_number(value, step), size=FONT - 1))
    parts.append(f'<line x1="{_fmt(left)}" x2="{_fmt(left)}" y1="{_fmt(top)}" y2="{_fmt(bottom)}" stroke="#9ca3af"/>')
    for index, ((label, value), name) in enumerate(zip(rows, names)):
        y = top + index * row_height
        parts.append(_text(left - 4, y + row_height / 2 + 4, name, anchor="end", size=FONT - 1))
        value = _num(value)
        if value is None:
            parts.append(_text(left + 4, y + row_height / 2 + 4, "–", anchor="start", size=FONT - 1, fill=MUTED))
            continue
        color = FLAGGED_COLOR if label in flagged else ABOVE_COLOR if value > threshold else RATE_COLOR
        parts.append(f'<rect class="bar" x="{_fmt(left)}" y="{_fmt(y + 3)}" '
                     f'width="{_fmt(max(axis.scale(value, left, right) - left, 0.8))}" height="{row_height - 6}" '
                     f'fill="{color}"><title>{escape(label)}: {unit} {value:.3f}</title></rect>')
    x = axis.scale(threshold, left, right)
    parts.append(f'<line class="threshold" x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(top - 4)}" y2="{_fmt(bottom)}" '
                 f'stroke="{FLAGGED_COLOR}" stroke-width="1.4" stroke-dasharray="5 3">'
                 f"<title>threshold {threshold:g}</title></line>")
    parts.append(_text(right, height - 3, unit, anchor="end", size=FONT - 1, fill=MUTED))
    parts.append(_legend([(f"threshold {threshold:g}", FLAGGED_COLOR, "line")], width, start=left))
    return _svg(width, height, title, "".join(parts))
