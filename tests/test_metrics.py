"""One /metrics scrape shows the ml_* metrics of every process, e.g. the listener's predictions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from tests.conftest import PROJECT_DIR, test_database_url
from tests.test_listener import MINT, ROWS, insert, register_xgb

pytestmark = pytest.mark.django_db(transaction=True)


def sample(text: str, series: str) -> float:
    """The value of one series in an exposition (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_prediction_by_the_listener_process_shows_in_the_web_scrape(market, client):
    model = register_xgb()
    series = f'ml_predictions_total{{model_id="{model.model_id}",model_name="{model.model_name}"}}'
    before = sample(client.get("/metrics").content.decode(), series)
    mint = sorted({row[MINT] for row in ROWS})[0]
    insert(market, [row for row in ROWS if row[MINT] == mint][:50])
    env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings"}
    subprocess.run([sys.executable, "manage.py", "listen_events", "--once"], cwd=PROJECT_DIR, env=env, check=True,
                   timeout=120)

    scrape = client.get("/metrics")

    assert scrape.status_code == 200
    text = scrape.content.decode()
    assert sample(text, series) == before + 1  # counted in the listener process, seen in this one
    assert "ml_prediction_duration_seconds_bucket" in text
    assert "ml_event_lag_seconds_count" in text
    assert "django_http_requests" in text  # the web process's own request metrics are in the same scrape


def test_metrics_can_be_made_private(settings):
    settings.METRICS_PUBLIC = False
    assert APIClient().get("/metrics").status_code == 401


def test_exposition_passes_promtool(client):
    """A real /metrics scrape (every kind of series: labelled counters, histograms, gauges) is valid for promtool."""
    import shutil

    from pumpserver import metrics

    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing; `make test` installs it (Debian package prometheus)")
        pytest.skip("promtool is not installed (`make test` installs the Debian package prometheus)")
    metrics.PREDICTIONS.labels(model_id="7", model_name='name with "quotes" and \\ backslash').inc()
    metrics.PREDICTION_SECONDS.labels(model_id="7").observe(0.02)
    metrics.ERRORS.labels(type="prediction").inc()
    metrics.QUEUE_DEPTH.set(3)
    client.get("/api/health")  # request metrics of the web process itself

    scrape = client.get("/metrics")

    assert scrape.status_code == 200
    assert b"ml_predictions_total" in scrape.content and b"django_http_requests" in scrape.content
    result = subprocess.run([promtool, "check", "metrics"], input=scrape.content, capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
