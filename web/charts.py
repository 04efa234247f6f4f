"""Tiny server-rendered SVG charts (line and bar) with axes, ticks and units; no JavaScript needed.

Every function returns a `SafeString` holding one `<svg>` element that scales to its container's width
(`viewBox` + `width="100%"`). All text is escaped. Times are shown in UTC (the server's TIME_ZONE).

    line_chart([Series("price", [(t1, 1.2), (t2, 1.3)])], y_unit="SOL")
    bar_chart(["0.0", "0.1"], [BarSeries("rows", [3, 5])], y_unit="rows")
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html import escape

from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]

# Layout (viewBox units; the SVG is scaled to its container, so keep fonts readable at phone width).
FONT = 12
PAD_LEFT = 48
PAD_RIGHT = 10
PAD_TOP = 26  # legend line
PAD_BOTTOM = 32


@dataclass
class Series:
    """Points (x, y) of one line. x: datetime or number; y: number or None (a gap).

    kind "line" joins the points; "points" draws markers only (events on a line, such as alerts on a price).
    """

    name: str
    points: list[tuple]
    color: str | None = None
    kind: str = "line"
    marker: str = "circle"  # circle, triangle, square (for kind="points")


@dataclass
class BarSeries:
    name: str
    values: list[float | int | None]
    color: str | None = None


@dataclass
class Marker:
    """A vertical reference line at x (for example "prediction" or "evaluation" time)."""

    x: datetime | float
    label: str = ""
    color: str = "#6b7280"


@dataclass
class _Axis:
    low: float
    high: float
    ticks: list[tuple[float, str]] = field(default_factory=list)

    def scale(self, value: float, start: float, end: float) -> float:
        span = self.high - self.low or 1.0
        return start + (value - self.low) / span * (end - start)


# --- ticks -------------------------------------------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 5) -> tuple[float, float, list[float]]:
    """Round axis bounds and about `count` evenly spaced ticks at 1/2/5 × 10^n steps."""
    if not math.isfinite(low) or not math.isfinite(high):
        low, high = 0.0, 1.0
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    end = math.ceil(high / step - 1e-9) * step
    ticks = []
    value = start
    while value <= end + step / 2:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return start, end, ticks


def format_number(value: float, step: float | None = None) -> str:
    """Short label: 1.2k, 3.4M, 0.00012 → 1.2e-4 where needed; decimals follow the tick step."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:.3g}G"
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude < 1e-3:
        return f"{value:.2g}"
    if step is not None and step > 0:
        decimals = 0
        while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
            decimals += 1
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"


_TIME_STEPS = [
    timedelta(seconds=s)
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
]


def time_ticks(low: datetime, high: datetime, count: int = 5) -> list[tuple[datetime, str]]:
    """Ticks on whole seconds/minutes/hours/days, labelled by what changes across the span (UTC)."""
    span = high - low
    if span <= timedelta(0):
        return [(low, low.astimezone(timezone.utc).strftime("%H:%M"))]
    raw = span / max(count, 1)
    step = next((s for s in _TIME_STEPS if s >= raw), _TIME_STEPS[-1])
    seconds = int(step.total_seconds())
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = epoch + timedelta(seconds=math.ceil((low - epoch).total_seconds() / seconds) * seconds)
    if span < timedelta(minutes=2):
        fmt = "%H:%M:%S"
    elif span < timedelta(days=2) and seconds < 86400:
        fmt = "%H:%M"
    elif seconds < 86400:
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%m-%d"
    ticks = []
    moment = first
    while moment <= high:
        ticks.append((moment, moment.astimezone(timezone.utc).strftime(fmt)))
        moment += step
    return ticks


# --- helpers -----------------------------------------------------------------------------------------------------


def _num(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        value = float(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _x_value(x) -> float:
    if isinstance(x, datetime):
        return x.timestamp()
    return float(x)


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, *, anchor: str = "middle", size: int = FONT, fill: str = "#374151",
          extra: str = "") -> str:
    return (
        f'<text x="{_fmt(x)}" y="{_fmt(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
        f"{escape(text)}</text>"
    )


def _marker_shape(kind: str, x: float, y: float, color: str, title: str) -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    if kind == "triangle":
        points = f"{_fmt(x)},{_fmt(y - 5)} {_fmt(x - 4.5)},{_fmt(y + 3.5)} {_fmt(x + 4.5)},{_fmt(y + 3.5)}"
        return f'<polygon points="{points}" fill="{color}" stroke="#fff" stroke-width="0.8">{tip}</polygon>'
    if kind == "square":
        return (
            f'<rect x="{_fmt(x - 3.5)}" y="{_fmt(y - 3.5)}" width="7" height="7" fill="{color}" stroke="#fff" '
            f'stroke-width="0.8">{tip}</rect>'
        )
    return f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="3.2" fill="{color}" stroke="#fff" stroke-width="0.8">{tip}</circle>'


def _text_width(text: str, size: float) -> float:
    return len(text) * size * 0.56


def _inside(center: float, label: str, width: int, *, size: int = FONT - 1) -> float:
    """The x of a centred label moved just enough that the whole label stays inside the chart (never cut)."""
    half = _text_width(label, size) / 2 + 2
    return min(max(center, half), width - half)


LEGEND_LINE = 16  # height of each further legend line


def _legend_rows(entries: list[tuple], width: int, start: float) -> list[list[tuple[float, tuple]]]:
    """Legend entries laid out left to right from `start` (after the unit label), wrapping onto further lines that
    start at the plot's left edge: every entry is listed."""
    rows: list[list[tuple[float, tuple]]] = [[]]
    x = start
    for entry in entries:
        label_width = 14 + _text_width(entry[0], FONT - 1) + 10
        if x + label_width > width and rows[-1]:
            rows.append([])
            x = min(start, PAD_LEFT)
        rows[-1].append((x, entry))
        x += label_width
    return rows


def legend_height(entries: list[tuple], width: int, *, start: float = PAD_LEFT) -> int:
    """Extra height the legend needs beyond its first line (the space PAD_TOP keeps for one)."""
    return (len(_legend_rows(entries, width, start)) - 1) * LEGEND_LINE if entries else 0


def _legend(entries: list[tuple], width: int, *, start: float = PAD_LEFT) -> str:
    """entries: (name, color, kind[, marker]) on the top lines, right of the unit label. A "points" entry shows its
    series' marker shape (circle, triangle, square), any other a colour swatch. Callers reserve legend_height()."""
    parts = []
    for line, row in enumerate(_legend_rows(entries, width, start)):
        middle = 10 + line * LEGEND_LINE
        for x, (name, color, kind, *marker) in row:
            if kind == "points":
                parts.append(_marker_shape(marker[0] if marker else "circle", x + 5, middle, color, ""))
            else:
                parts.append(f'<rect x="{_fmt(x)}" y="{middle - 5}" width="10" height="10" rx="2" fill="{color}"/>')
            parts.append(_text(x + 14, middle + 4, name, anchor="start", size=FONT - 1))
    return "".join(parts)


def _legend_start(unit: str) -> float:
    """The legend starts after the y unit, which sits at the top left above the axis."""
    return max(PAD_LEFT, 4 + _text_width(unit, FONT - 1) + 12) if unit else PAD_LEFT


def _svg(width: int, height: int, title: str, body: str) -> SafeString:
    label = escape(title or "chart")
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{label}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif">'
        f"<title>{label}</title>{body}</svg>"
    )


def empty_chart(message: str = "No data yet", *, width: int = 380, height: int = 200, title: str = "") -> SafeString:
    body = (
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="#e5e7eb" rx="4"/>'
        + _text(width / 2, height / 2 + 4, message, fill="#6b7280", size=FONT + 1)
    )
    return _svg(width, height, title or message, body)


def _y_axis_svg(axis: _Axis, *, top: float, bottom: float, left: float, right: float, unit: str,
                steps: list[float]) -> str:
    step = steps[1] - steps[0] if len(steps) > 1 else None
    parts = []
    for value in steps:
        y = axis.scale(value, bottom, top)
        parts.append(f'<line x1="{_fmt(left)}" x2="{_fmt(right)}" y1="{_fmt(y)}" y2="{_fmt(y)}" stroke="#e5e7eb"/>')
        parts.append(_text(left - 4, y + 3.5, format_number(value, step), anchor="end", size=FONT - 1))
    if unit:
        parts.append(_text(4, 14, unit, anchor="start", size=FONT - 1, fill="#6b7280"))
    parts.append(f'<line x1="{_fmt(left)}" x2="{_fmt(left)}" y1="{_fmt(top)}" y2="{_fmt(bottom)}" stroke="#9ca3af"/>')
    parts.append(f'<line x1="{_fmt(left)}" x2="{_fmt(right)}" y1="{_fmt(bottom)}" y2="{_fmt(bottom)}" stroke="#9ca3af"/>')
    return "".join(parts)


# --- charts ------------------------------------------------------------------------------------------------------


def line_chart(
    series: list[Series],
    *,
    title: str = "",
    y_unit: str = "",
    x_unit: str = "",
    width: int = 380,
    height: int = 200,
    y_min: float | None = None,
    y_max: float | None = None,
    x_min=None,
    x_max=None,
    markers: list[Marker] | None = None,
    empty_message: str = "No data yet",
) -> SafeString:
    """Lines (and point markers) over a time or numeric x axis. y_min/y_max fix the range (0 and 1 for probabilities)."""
    cleaned = []
    for index, item in enumerate(series):
        points = [(x, _num(y)) for x, y in item.points if x is not None]
        cleaned.append((item, points, item.color or PALETTE[index % len(PALETTE)]))
    xs = [_x_value(x) for _, points, _ in cleaned for x, y in points if y is not None]
    ys = [y for _, points, _ in cleaned for _, y in points if y is not None]
    if not xs:
        return empty_chart(empty_message, width=width, height=height, title=title)
    is_time = any(isinstance(x, datetime) for _, points, _ in cleaned for x, _ in points)

    x_low = _x_value(x_min) if x_min is not None else min(xs)
    x_high = _x_value(x_max) if x_max is not None else max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - (30 if is_time else 0.5), x_high + (30 if is_time else 0.5)
    y_low = min(ys) if y_min is None else y_min
    y_high = max(ys) if y_max is None else y_max
    if y_min is None and y_max is None and y_high > y_low:
        pad = (y_high - y_low) * 0.05
        y_low, y_high = y_low - pad, y_high + pad
    lo, hi, steps = nice_ticks(y_low, y_high, 4)
    if y_min is not None:
        lo = y_min
        steps = [s for s in steps if s >= y_min - 1e-12]
    if y_max is not None:
        hi = y_max
        steps = [s for s in steps if s <= y_max + 1e-12]
    y_axis = _Axis(lo, hi)
    x_axis = _Axis(x_low, x_high)

    legend = [(item.name, color, item.kind, item.marker) for item, _, color in cleaned]
    extra = legend_height(legend, width, start=_legend_start(y_unit))
    height += extra  # a longer legend adds lines on top; the plot keeps its size
    left, right = PAD_LEFT, width - PAD_RIGHT
    top, bottom = PAD_TOP + extra, height - PAD_BOTTOM
    parts = [_y_axis_svg(y_axis, top=top, bottom=bottom, left=left, right=right, unit=y_unit, steps=steps)]

    # x ticks
    if is_time:
        low_dt = datetime.fromtimestamp(x_low, tz=timezone.utc)
        high_dt = datetime.fromtimestamp(x_high, tz=timezone.utc)
        x_ticks = [(moment.timestamp(), label) for moment, label in time_ticks(low_dt, high_dt, 4)]
        unit = x_unit or "UTC"
    else:
        _, _, values = nice_ticks(x_low, x_high, 5)
        step = values[1] - values[0] if len(values) > 1 else None
        x_ticks = [(v, format_number(v, step)) for v in values if x_low - 1e-9 <= v <= x_high + 1e-9]
        unit = x_unit
    for value, label in x_ticks:
        x = x_axis.scale(value, left, right)
        parts.append(f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(bottom)}" y2="{_fmt(bottom + 4)}" stroke="#9ca3af"/>')
        parts.append(_text(_inside(x, label, width), bottom + 15, label, size=FONT - 1))
    if unit:
        parts.append(_text(right, height - 3, unit, anchor="end", size=FONT - 1, fill="#6b7280"))

    # reference lines
    for marker in markers or []:
        x_val = _x_value(marker.x)
        if not x_low <= x_val <= x_high:
            continue
        x = x_axis.scale(x_val, left, right)
        parts.append(
            f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(top)}" y2="{_fmt(bottom)}" stroke="{marker.color}" '
            f'stroke-dasharray="4 3"><title>{escape(marker.label)}</title></line>'
        )

    # data
    clip = f"plot-{uuid.uuid4().hex[:8]}"  # ids are page-wide: one per chart
    parts.append(f'<clipPath id="{clip}"><rect x="{left}" y="{top - 6}" width="{right - left}" height="{bottom - top + 12}"/></clipPath>')
    for item, points, color in cleaned:
        coords = [
            (x_axis.scale(_x_value(x), left, right), None if y is None else y_axis.scale(y, bottom, top), x, y)
            for x, y in sorted(points, key=lambda p: _x_value(p[0]))
        ]
        if item.kind == "points":
            for px, py, x, y in coords:
                if py is None:
                    continue
                tip = f"{item.name}: {format_number(y)}{(' ' + y_unit) if y_unit else ''}"
                if isinstance(x, datetime):
                    tip += f" at {x.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
                parts.append(_marker_shape(item.marker, px, py, color, tip))
            continue
        segment: list[str] = []
        segments = []
        for px, py, _x, _y in coords:
            if py is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{_fmt(px)},{_fmt(py)}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) == 1:
                px, py = seg[0].split(",")
                parts.append(f'<circle cx="{px}" cy="{py}" r="2" fill="{color}"/>')
            else:
                parts.append(
                    f'<polyline points="{" ".join(seg)}" fill="none" stroke="{color}" stroke-width="1.8" '
                    f'stroke-linejoin="round" stroke-linecap="round" clip-path="url(#{clip})"/>'
                )
    parts.append(_legend(legend, width, start=_legend_start(y_unit)))
    return _svg(width, height, title, "".join(parts))


def bar_chart(
    labels: list[str],
    series: list[BarSeries],
    *,
    title: str = "",
    y_unit: str = "",
    x_unit: str = "",
    stacked: bool = True,
    width: int = 380,
    height: int = 200,
    max_labels: int = 8,
    legend: bool = True,
    empty_message: str = "No data yet",
    y_max: float | None = None,
) -> SafeString:
    """Bars per label; several series stack (or stand side by side with stacked=False). Labels are thinned to fit.

    `y_max` fixes the top of the axis (100 for percentages), so a bar's height means the same in every chart.
    """
    if not labels or not series:
        return empty_chart(empty_message, width=width, height=height, title=title)
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    values = [[_num(v) or 0.0 for v in s.values] + [0.0] * (len(labels) - len(s.values)) for s in series]
    if stacked:
        top_value = max(sum(v[i] for v in values) for i in range(len(labels)))
    else:
        top_value = max(max(v) for v in values)
    if top_value <= 0:
        top_value = 1.0
    lo, hi, steps = nice_ticks(0.0, max(y_max, top_value) if y_max is not None else top_value, 4)
    y_axis = _Axis(0.0, hi)
    steps = [s for s in steps if s >= 0]

    entries = [(s.name, colors[i], "line") for i, s in enumerate(series)]
    show_legend = legend and (len(series) > 1 or bool(series[0].name))
    extra = legend_height(entries, width, start=_legend_start(y_unit)) if show_legend else 0
    height += extra
    left, right = PAD_LEFT, width - PAD_RIGHT
    top, bottom = PAD_TOP + extra, height - PAD_BOTTOM
    parts = [_y_axis_svg(y_axis, top=top, bottom=bottom, left=left, right=right, unit=y_unit, steps=steps)]
    slot = (right - left) / len(labels)
    gap = min(slot * 0.2, 6)
    widest = max(_text_width(label, FONT - 1) for label in labels) + 6
    every = max(1, math.ceil(len(labels) / max_labels), math.ceil(widest / slot))  # labels never overlap
    for i, label in enumerate(labels):
        x0 = left + i * slot + gap / 2
        bar_width = slot - gap
        if stacked:
            base = 0.0
            for s_index, s in enumerate(series):
                value = values[s_index][i]
                if value <= 0:
                    continue
                y_top = y_axis.scale(base + value, bottom, top)
                y_bottom = y_axis.scale(base, bottom, top)
                parts.append(
                    f'<rect x="{_fmt(x0)}" y="{_fmt(y_top)}" width="{_fmt(max(bar_width, 0.8))}" '
                    f'height="{_fmt(max(y_bottom - y_top, 0.5))}" fill="{colors[s_index]}">'
                    f"<title>{escape(label)} · {escape(s.name)}: {format_number(value)}</title></rect>"
                )
                base += value
        else:
            inner = bar_width / len(series)
            for s_index, s in enumerate(series):
                value = values[s_index][i]
                if value <= 0:
                    continue
                y_top = y_axis.scale(value, bottom, top)
                parts.append(
                    f'<rect x="{_fmt(x0 + s_index * inner)}" y="{_fmt(y_top)}" width="{_fmt(max(inner - 0.5, 0.8))}" '
                    f'height="{_fmt(max(bottom - y_top, 0.5))}" fill="{colors[s_index]}">'
                    f"<title>{escape(label)} · {escape(s.name)}: {format_number(value)}</title></rect>"
                )
        if i % every == 0:
            center = left + (i + 0.5) * slot
            parts.append(_text(_inside(center, label, width), bottom + 15, label, size=FONT - 1))
    if x_unit:
        parts.append(_text(right, height - 3, x_unit, anchor="end", size=FONT - 1, fill="#6b7280"))
    if show_legend:
        parts.append(_legend(entries, width, start=_legend_start(y_unit)))
    return _svg(width, height, title, "".join(parts))


def time_buckets(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Bucket starts from `start` (floored to the step) up to `end`, for bar charts over time."""
    seconds = int(step.total_seconds())
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = epoch + timedelta(seconds=math.floor((start - epoch).total_seconds() / seconds) * seconds)
    buckets = []
    moment = first
    while moment <= end:
        buckets.append(moment)
        moment += step
    return buckets


def category_bars(categories: list[tuple[str, float, str]], *, title: str = "", y_unit: str = "",
                  width: int = 380, height: int = 200, empty_message: str = "No data yet") -> SafeString:
    """One bar per (label, value, color), e.g. verdicts in their own colors; labels name the bars (no legend)."""
    if not categories or not any(value for _, value, _ in categories):
        return empty_chart(empty_message, width=width, height=height, title=title)
    labels = [label for label, _, _ in categories]
    series = [
        BarSeries(label, [value if j == i else 0 for j in range(len(categories))], color)
        for i, (label, value, color) in enumerate(categories)
    ]
    return bar_chart(labels, series, title=title, y_unit=y_unit, width=width, height=height, legend=False)


def _wrap(text: str, max_width: float, size: int) -> list[str]:
    """`text` in lines no wider than `max_width` (words kept whole unless one alone is too wide)."""
    per_line = max(4, int(max_width / (size * 0.56)))
    lines: list[str] = []
    for word in text.split() or [""]:
        while len(word) > per_line:
            if lines and not lines[-1]:
                lines.pop()
            lines.append(word[:per_line])
            word = word[per_line:]
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def hbar_chart(rows: list[tuple[str, float | None, str]], *, title: str = "", x_max: float = 100.0,
               unit: str = "%", color: str = "#16a34a", width: int = 380,
               empty_message: str = "No data yet") -> SafeString:
    """One horizontal bar per (label, value, note) on a fixed 0..x_max axis (0–100 % by default): 6 % is a short bar.

    The whole label stands above its bar, wrapped rather than cut; `note` follows the value (e.g. "3 of 50").
    A None value is drawn as "–" without a bar.
    """
    if not rows:
        return empty_chart(empty_message, width=width, title=title)
    left, right = 10, width - PAD_RIGHT - 4
    size, bar, gap, line_height = FONT - 1, 12, 10, 13
    axis = _Axis(0.0, x_max)
    wrapped = [_wrap(label, right - left, size) for label, _, _ in rows]
    bottom = 8 + sum(len(lines) * line_height + 4 + bar + gap for lines in wrapped)
    _, _, steps = nice_ticks(0.0, x_max, 4)
    step = steps[1] - steps[0] if len(steps) > 1 else None
    parts = []
    for value in steps:
        x, label = axis.scale(value, left, right), format_number(value, step)
        parts.append(f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="8" y2="{_fmt(bottom)}" stroke="#e5e7eb"/>')
        parts.append(_text(_inside(x, label, width), bottom + 12, label, size=size))
    if unit:
        parts.append(_text(right, bottom + 26, unit, anchor="end", size=size, fill="#6b7280"))
    y = 8.0
    for (label, value, note), lines in zip(rows, wrapped):
        for line in lines:
            y += line_height
            parts.append(_text(left, y, line, anchor="start", size=size))
        y += 4
        shown = "–" if value is None else f"{format_number(value, 0.1)} {unit}".rstrip()
        text = f"{shown} {note}".strip() if note else shown
        end = left if value is None else axis.scale(min(max(value, 0.0), x_max), left, right)
        if value is not None:
            parts.append(
                f'<rect x="{left}" y="{_fmt(y)}" width="{_fmt(max(end - left, 0.8))}" height="{bar}" fill="{color}">'
                f"<title>{escape(label)}: {escape(text)}</title></rect>"
            )
        fits_right = end + 4 + _text_width(text, size) <= right
        parts.append(_text(end + 4 if fits_right else end - 4, y + bar - 2, text, size=size,
                           anchor="start" if fits_right else "end", fill="#111827" if fits_right else "#fff"))
        y += bar + gap
    return _svg(width, int(bottom + 30), title, "".join(parts))
