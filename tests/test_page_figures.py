"""What the pages show adds up and fits: alert figures, percentage axes, legends, labels, time windows, favicon."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tests.test_pages import HX, add_prediction, make_model
from tests.test_pages import client as client  # noqa: F401  (the logged-in client fixture)
from tests.test_pages import user as user  # noqa: F401

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
