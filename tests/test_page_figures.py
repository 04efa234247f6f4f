"""What the pages show adds up and fits: alert figures, percentage axes, legends, labels, time windows, favicon."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from predictions import selectors as prediction_selectors
from predictions.models import ModelPrediction
from tests.test_pages import COIN, HX, add_prediction, make_model
from tests.test_pages import client as client  # noqa: F401  (the logged-in client fixture)
from tests.test_pages import user as user  # noqa: F401
from web import charts

pytestmark = pytest.mark.django_db


def _kpi(text: str, label: str) -> str:
    match = re.search(rf'<div class="label">{label}</div><div class="value"[^>]*>([^<]*)<', text)
    assert match, label
    return match.group(1).strip()


def _per_model_rows(text: str) -> list[list[str]]:
    section = text.split("<h2>Per model</h2>", 1)[1].split("</table>", 1)[0]
    return [re.findall(r'class="num">([^<]*)</td>', row) for row in section.split("<tr>")[2:]]


def test_the_alerts_page_table_adds_up_to_its_figures(client):
    busy, quiet = make_model("busy"), make_model("quiet")
    for minute in range(20):  # many non-alerts must not show up as "rows" or "pending" of the per-model table
        add_prediction(busy, probability=0.2, tag="negativ", minutes_ago=minute + 1, coin=f"n{minute}")
    add_prediction(busy, probability=0.9, tag="alert", minutes_ago=2, coin="a1")
    add_prediction(busy, probability=0.9, tag="alert", minutes_ago=40, coin="a2", status="inaktiv",
                   evaluation_result="success", actual_price_change_pct=Decimal("12"))
    add_prediction(busy, probability=0.9, tag="alert", minutes_ago=50, coin="a3", status="inaktiv",
                   evaluation_result="failed", actual_price_change_pct=Decimal("-3"))
    add_prediction(quiet, probability=0.95, tag="alert", minutes_ago=60, coin="a4", status="inaktiv",
                   evaluation_result="not_applicable")

    text = client.get("/alerts/").content.decode()

    assert _kpi(text, "Alerts") == "4"
    rows = _per_model_rows(text)
    # Alerts, Success, Failed, Expired, Pending, Success rate
    assert rows == [["3", "1", "1", "0", "1", "50.0 %"], ["1", "0", "0", "1", "0", "–"]]
    assert sum(int(row[0]) for row in rows) == 4
    one = client.get(f"/alerts/?model={busy.pk}", **HX).content.decode()
    assert _kpi(one, "Alerts") == "3" and _per_model_rows(one) == [["3", "1", "1", "0", "1", "50.0 %"]]


def test_the_statistics_api_adds_up(api_client):
    model = make_model("m")
    for minute in range(9):
        add_prediction(model, probability=0.3, tag="negativ", minutes_ago=minute + 1, coin=f"c{minute}")
    add_prediction(model, probability=0.9, tag="alert", minutes_ago=30, coin="x")
    body = api_client.get("/api/alerts/statistics").json()
    assert body["total_predictions"] == 10
    assert body["total_alerts"] == body["alerts_above_threshold"] == 1
    assert body["pending"] + body["success"] + body["failed"] + body["expired"] == body["total_alerts"]
    assert [entry["total"] for entry in body["by_model"]] == [1]


# --- charts -----------------------------------------------------------------------------------------------------------

TEXT = re.compile(r'<text x="([\d.]+)" y="[\d.]+" font-size="(\d+)" text-anchor="(\w+)"[^>]*>([^<]*)</text>')


def _texts(svg: str) -> list[tuple[float, int, str, str]]:
    return [(float(x), int(size), anchor, html.unescape(text)) for x, size, anchor, text in TEXT.findall(svg)]


def _view_width(svg: str) -> float:
    return float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))


def _assert_no_text_is_cut(svg: str) -> None:
    """Every label lies inside the drawing (estimated as the charts estimate text width)."""
    width = _view_width(svg)
    for x, size, anchor, text in _texts(svg):
        span = len(text) * size * 0.56
        low = {"start": x, "middle": x - span / 2, "end": x - span}[anchor]
        assert low >= 0 and low + span <= width + 0.5, (text, low, low + span, width)


def test_percent_bars_use_a_0_to_100_axis_and_whole_labels():
    name = "demo: +10% in 5 minutes, trained on the simulated market"
    svg = str(charts.hbar_chart([(name, 6.0, "(3 of 50 judged)"), ("other", 100.0, "")]))
    bars = [float(w) for w in re.findall(r'<rect x="10" y="[\d.]+" width="([\d.]+)"', svg)]
    axis = _view_width(svg) - charts.PAD_RIGHT - 4 - 10
    assert bars == [pytest.approx(axis * 0.06, abs=0.1), pytest.approx(axis, abs=0.1)]  # 6 % is not a full bar
    words = " ".join(text for _, _, _, text in _texts(svg))
    assert name in words  # wrapped onto lines, never cut
    assert "6.0 % (3 of 50 judged)" in words and "100" in words
    _assert_no_text_is_cut(svg)
    vertical = str(charts.bar_chart(["a"], [charts.BarSeries("rate", [6.0])], y_unit="%", y_max=100, legend=False))
    assert ">100<" in vertical and ">75<" in vertical


def test_bar_and_line_labels_are_never_cut():
    long_labels = [f"model number {i} with a long name" for i in range(5)]
    _assert_no_text_is_cut(str(charts.bar_chart(long_labels, [charts.BarSeries("x", [1, 2, 3, 4, 5])])))
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    days = [charts.Series("p", [(start + timedelta(hours=7 * i), i) for i in range(30)])]
    _assert_no_text_is_cut(str(charts.line_chart(days, y_unit="% vs. price at the prediction")))


def test_legends_list_every_series_with_its_marker():
    start = timezone.now()
    points = [(start + timedelta(minutes=i), float(i)) for i in range(5)]
    series = [charts.Series("price", points, "#0f172a")]
    for name, marker in [("negativ (2)", "circle"), ("positiv (1)", "circle"), ("alert (3)", "triangle"),
                         ("judged success", "square"), ("judged failed", "square")]:
        series.append(charts.Series(name, points[:2], "#123456", kind="points", marker=marker))
    svg = str(charts.line_chart(series, y_unit="% vs. price at the prediction", height=230))
    legend = [text for _, _, anchor, text in _texts(svg) if anchor == "start"]
    assert all(item.name in legend for item in series), legend  # none dropped for lack of room
    legend_part = svg[svg.index(">price<"):]  # the legend comes last, its first entry is the price line
    assert "<polygon" in legend_part and "<rect" in legend_part  # the alert triangle and the verdict squares
    assert float(re.search(r'viewBox="0 0 \d+ ([\d.]+)"', svg).group(1)) > 230  # room for a second legend line
    _assert_no_text_is_cut(svg)


def test_the_coin_page_legend_names_every_marker_kind(client, market):
    model = make_model("coins")
    now = timezone.now().replace(microsecond=0)
    with market.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO coin_metrics (mint, timestamp, price_close, volume_sol) VALUES (%s, %s, %s, %s)",
            [(COIN, now - timedelta(minutes=m), 1 + m / 100, 5) for m in range(30)],
        )
    add_prediction(model, probability=0.2, tag="negativ", minutes_ago=20)
    add_prediction(model, probability=0.6, tag="positiv", minutes_ago=15)
    add_prediction(model, probability=0.9, tag="alert", minutes_ago=10, status="inaktiv", evaluation_result="success",
                   actual_price_change_pct=Decimal("12"))
    text = client.get(f"/models/{model.pk}/coins/{COIN}/").content.decode()
    svg = text.split("Price change with predictions", 1)[1].split("</svg>", 1)[0]
    labels = [label for _, _, _, label in _texts(svg)]
    for name in ("price", "negativ (1)", "positiv (1)", "alert (1)", "judged success"):
        assert name in labels, labels


# --- time windows on a young system -----------------------------------------------------------------------------------


def test_a_young_models_charts_fit_its_data(client):
    model = make_model("young")
    for minute in range(6):
        add_prediction(model, probability=0.9 if minute % 2 else 0.2, tag="alert" if minute % 2 else "negativ",
                       minutes_ago=minute, coin=f"young{minute}")
    text = client.get(f"/models/{model.pk}/").content.decode()
    charts_html = text.split('id="charts"', 1)[1].split("</section>", 1)[0]
    assert '<option value="1h" selected>' in charts_html  # not 24 hours of empty half-hour buckets
    assert "Activity, since " in charts_html
    bars = charts_html.split("</svg>", 1)[0].count("<title>") - 1  # one title per bar, plus the chart's
    assert 6 <= bars <= 8 and "Predictions per 1 min" in charts_html
    chosen = client.get(f"/models/{model.pk}/?range=24h&partial=charts", **HX).content.decode()
    assert '<option value="24h" selected>' in chosen and "Activity, since " in chosen  # still cut to the data
    old = make_model("old")
    add_prediction(old, probability=0.2, tag="negativ", minutes_ago=60 * 30)
    add_prediction(old, probability=0.2, tag="negativ", minutes_ago=5)
    mature = client.get(f"/models/{old.pk}/").content.decode()
    assert '<option value="24h" selected>' in mature and "Activity, last 24 hours" in mature


def test_the_model_pages_timelines_count_each_tag_and_verdict_in_its_bucket():
    model, other = make_model("counted"), make_model("elsewhere")
    for minutes_ago, tag, verdict in [(3, "negativ", None), (4, "positiv", None), (4, "alert", "success"),
                                      (5, "alert", "failed"), (5, "alert", None), (25, "alert", "not_applicable"),
                                      (25, "negativ", None)]:
        judged = {"status": "inaktiv", "evaluation_result": verdict} if verdict else {}
        add_prediction(model, probability=0.9 if tag == "alert" else 0.2, tag=tag, minutes_ago=minutes_ago,
                       coin=f"c{minutes_ago}{tag}", **judged)
    add_prediction(other, probability=0.9, tag="alert", minutes_ago=4)
    now = timezone.now()
    window = {"active_model_id": model.pk, "start": now - timedelta(minutes=30), "end": now, "bucket_seconds": 600}
    tags = prediction_selectors.prediction_timeline(**window)
    verdicts = prediction_selectors.verdict_timeline(**window)
    assert [row["bucket"] for row in tags] == [row["bucket"] for row in verdicts] == prediction_selectors.bucket_starts(
        window["start"], now, 600)
    assert all(row["bucket"].timestamp() % 600 == 0 for row in tags) and len(tags) in (3, 4)
    assert sum(row["negativ"] for row in tags) == 2 and sum(row["positiv"] for row in tags) == 1
    assert sum(row["alert"] for row in tags) == 4
    assert {key: sum(row[key] for row in verdicts) for key in ("success", "failed", "not_applicable", "pending")} == {
        "success": 1, "failed": 1, "not_applicable": 1, "pending": 1}
    oldest = next(row for row in verdicts if row["not_applicable"])  # the 25-minute-old alert sits apart
    assert oldest["success"] == oldest["failed"] == oldest["pending"] == 0


def test_a_young_dashboard_chart_covers_only_the_minutes_since_the_first_prediction(client):
    model = make_model("fresh")
    add_prediction(model, probability=0.9, tag="alert", minutes_ago=1)
    text = client.get("/").content.decode()
    assert "Predictions per minute, last 10 minutes" in text
    ModelPrediction.objects.filter(active_model=model).update(created_at=timezone.now() - timedelta(minutes=25))
    assert re.search(r"Predictions per minute, last 2[67] minutes", client.get("/").content.decode())
    ModelPrediction.objects.filter(active_model=model).update(created_at=timezone.now() - timedelta(hours=3))
    add_prediction(model, probability=0.9, tag="alert", minutes_ago=1, coin="recent")
    assert "Predictions per minute, last 60 minutes" in client.get("/").content.decode()  # older than an hour


def test_the_dashboard_success_rate_chart_is_a_percentage_of_100(client):
    model = make_model("demo: +10% in 5 minutes (bundled)")
    for i in range(50):
        add_prediction(model, probability=0.9, tag="alert", minutes_ago=10 + i, coin=f"c{i}", status="inaktiv",
                       evaluation_result="success" if i < 3 else "failed")
    text = client.get("/").content.decode()
    svg = text.split("<h2>Success rate per model</h2>", 1)[1].split("</svg>", 1)[0]
    words = " ".join(label for _, _, _, label in _texts(svg))
    assert "demo: +10% in 5 minutes (bundled)" in words and "6.0 % (3 of 50 judged)" in words
    (bar,) = [float(w) for w in re.findall(r'<rect x="10" y="[\d.]+" width="([\d.]+)" height="12" fill', svg)]
    assert bar == pytest.approx((_view_width(svg) - charts.PAD_RIGHT - 14) * 0.06, abs=0.1)


def test_pages_link_the_favicon(client):
    text = client.get("/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in text and 'rel="icon" href="/favicon.ico"' in text
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()  # before logging in too
