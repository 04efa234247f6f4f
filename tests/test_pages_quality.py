"""Live quality pages: the "Live quality" section of a model's page (banner when degraded, success rate with its
interval over time, reliability diagram, drift bars, references), its own page and htmx partial, and the compare
page with the McNemar verdict."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from backtests.models import BacktestRun, RunState
from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction
from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN
from quality import selectors, services, stats
from quality.models import DriftHour, FeatureReference, QualitySettings
from tests.test_quality import predict

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(django_user_model) -> Client:
    client = Client()
    user = django_user_model.objects.create_user(username="operator", password="a-long-test-password-1")
    set_role(user=user, scope=ADMIN)
    client.force_login(user)
    return client


def make_model(name: str, **fields) -> ActiveModel:
    return ActiveModel.objects.create(model_type="xgboost", features=["price_close", "volume_sol"], model_name=name,
                                      training_precision=Decimal("0.8000"), **fields)


def hour_start(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def degraded():
    """A model whose alerts hit 3 of 30 over the last two days, flagged by the check, with drifted inputs."""
    model = make_model("falling")
    QualitySettings.objects.create(active_model=model, min_judged_alerts=20)
    now = timezone.now()
    for k in range(30):
        predict(model, f"c{k}", 0.9 if k % 3 else 0.6, k % 10 == 0, at=now - timedelta(hours=2 + k), change=k - 10.0)
    FeatureReference.objects.create(
        active_model=model, source="training", start=now - timedelta(days=30), end=now - timedelta(days=20), rows=800,
        features={name: {"edges": [1.0, 2.0, 3.0], "shares": [0.25] * 4} for name in ("price_close", "volume_sol")},
        importance={"price_close": 2.0, "volume_sol": 1.0})
    DriftHour.objects.create(active_model=model, hour=hour_start(now) - timedelta(hours=3), rows=400,
                             counts={"price_close": [340, 20, 20, 20], "volume_sol": [100, 100, 100, 100]})
    services.refresh_hours(since=None)
    assert services.check_models(now=now) == [model.pk]
    return model


def charts_in(html: str) -> int:
    return html.count("<svg")


def test_model_page_shows_the_live_quality_section_with_banner_and_charts(client, degraded):
    page = client.get(f"/models/{degraded.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="quality"' in html and "Live quality, last 7 days" in html
    assert 'id="degraded-banner"' in html and "below the reference 80.0%" in html
    assert "drifted past PSI" in html and 'class="badge bad" href="#quality"' in html
    assert "Alert success rate per day" in html and 'class="rate"' in html  # points with whiskers
    assert 'class="diagonal"' in html and 'class="bin"' in html  # the reliability diagram
    assert "Feature drift" in html and 'class="threshold"' in html and html.count('class="bar"') == 2
    assert ">reference</text>" in html and "reference − margin" in html
    assert re.search(r"<th>Alert success rate</th><td class=\"num\">10.0\xa0%</td><td class=\"num\">80.0\xa0%</td>", html)


def test_quality_page_and_its_partial_per_window(client, degraded):
    for window in ("1h", "24h", "7d", "all"):
        page = client.get(f"/models/{degraded.pk}/quality/", {"window": window})
        assert page.status_code == 200, window
        assert "<html" in page.content.decode() and 'id="degraded-banner"' in page.content.decode()
    day = client.get(f"/models/{degraded.pk}/quality/", {"window": "24h"}).content.decode()
    assert "Alert success rate per hour" in day and "Live quality, last 24 hours" in day
    partial = client.get(f"/models/{degraded.pk}/quality/?window=24h", HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body and body.lstrip().startswith('<section class="card" id="quality">')
    assert charts_in(body) >= 3
    assert client.get(f"/models/{degraded.pk}/quality/?window=nonsense").status_code == 200  # the default window
    assert client.get("/models/987654/quality/").status_code == 404


def test_a_healthy_model_without_data_has_no_banner_and_no_drift_chart(client):
    idle = make_model("idle")
    BacktestRun.objects.create(active_model=idle, start=timezone.now() - timedelta(days=2),
                               end=timezone.now() - timedelta(days=1), threshold=0.7, state=RunState.DONE,
                               finished_at=timezone.now(), summary={"success_rate": 0.55, "roc_auc": 0.71,
                                                                    "base_rate": 0.2, "alerts": 40, "threshold": 0.7})
    html = client.get(f"/models/{idle.pk}/").content.decode()
    assert 'id="quality"' in html and 'id="degraded-banner"' not in html and "Feature drift" not in html
    assert "No judged alerts in the last 7 days" in html and "No judged predictions in the last 7 days" in html
    assert "reference − margin" not in html  # nothing judged: the rate chart is empty
    assert "Held against 55.0\xa0% (backtest, run" in html


def test_compare_page_table_chart_and_mcnemar(client, degraded):
    steady = make_model("steady")
    now = timezone.now()
    for row in ModelPrediction.objects.filter(active_model=degraded)[:12]:  # the same coin events: steady is right
        predict(steady, row.coin_id, 0.9, True, at=row.prediction_timestamp)
    services.refresh_hours(since=None)
    page = client.get("/models/compare/", {"ids": f"{steady.pk},{degraded.pk}", "window": "7d"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="compare-table"' in html and "steady" in html and "falling" in html
    assert 'id="compare-chart"' in html and html.count('class="rate"') == 2
    pair = selectors.paired_comparison(first=steady.pk, second=degraded.pk, start=now - timedelta(days=7), end=now)
    assert pair["better"] == "first"
    assert "steady is better (p = " in html and 'class="badge bad"' in html

    picker = client.get("/models/compare/")
    assert picker.status_code == 200 and "Choose two to six models." in picker.content.decode()
    preselected = client.get("/models/compare/", {"ids": str(steady.pk)})
    assert preselected.status_code == 200 and f'value="{steady.pk}" checked' in preselected.content.decode()
    assert client.get("/models/compare/", {"ids": f"{steady.pk},x"}).status_code == 400
    assert client.get("/models/compare/", {"ids": f"{steady.pk},{degraded.pk}", "window": "2d"}).status_code == 400
    missing = client.get("/models/compare/", {"ids": f"{steady.pk},987654"})
    assert missing.status_code == 404 and "No model with id 987654." in missing.content.decode()


def test_pages_need_a_login(degraded):
    anonymous = Client()
    for url in (f"/models/{degraded.pk}/quality/", "/models/compare/"):
        assert anonymous.get(url).status_code == 302


def test_the_success_rate_series_per_hour_and_per_day(degraded):
    now = timezone.now()
    hourly = selectors.success_rate_series(active_model_id=degraded.pk, start=now - timedelta(days=7), end=now,
                                           bucket="hour")
    alerts = [row for row in hourly if row["judged_alerts"]]
    assert len(alerts) == 20 and all(row["judged_alerts"] == 1 for row in alerts)  # one alert an hour (k % 3 != 0)
    assert sum(row["success"] for row in hourly) == 2  # k = 10 and 20; k = 0 is a positiv, not an alert
    daily = selectors.success_rate_series(active_model_id=degraded.pk, start=None, end=now, bucket="day")
    assert sum(row["judged_alerts"] for row in daily) == 20 and [row["bucket"] for row in daily] == sorted(
        {hour_start(row["bucket"]).replace(hour=0) for row in hourly})
    for row in daily:
        assert (row["success_rate_low"], row["success_rate_high"]) == pytest.approx(
            stats.wilson_interval(row["success"], row["judged_alerts"]))
    with pytest.raises(ValueError):
        selectors.success_rate_series(active_model_id=degraded.pk, start=None, end=now, bucket="week")
