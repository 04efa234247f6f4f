"""The CSV download links of the pages in a real browser, served by daphne (ASGI: the rows are sent in chunks as the
server-side cursor reads them), with the page's filters; tests/test_pages_browser.py's fixtures."""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from predictions.models import ModelPrediction
from tests.test_pages_browser import CHROMIUM, log_in, make_model
from tests.test_pages_browser import browser as browser  # noqa: F401  (fixtures)
from tests.test_pages_browser import operator as operator  # noqa: F401
from tests.test_pages_browser import server as server  # noqa: F401

pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
]

ALERTS = 1_500  # more than one API page (1,000) and more than one chunk


def test_the_alerts_page_downloads_every_alert_its_filters_select(server, browser, operator):
    model, other = make_model("downloaded"), make_model("not downloaded")
    now = timezone.now()
    ModelPrediction.objects.bulk_create([
        ModelPrediction(coin_id=f"coin{i % 11}", active_model=model, prediction=1, probability=0.9, tag="alert",
                        prediction_timestamp=now - timedelta(seconds=10 * i),
                        evaluation_timestamp=now + timedelta(minutes=5))
        for i in range(ALERTS)
    ] + [
        ModelPrediction(coin_id="elsewhere", active_model=other, prediction=1, probability=0.9, tag="alert",
                        prediction_timestamp=now - timedelta(seconds=i), evaluation_timestamp=now)
        for i in range(5)
    ])
    page = browser.new_page(accept_downloads=True)
    log_in(page, server)
    page.goto(f"{server}/alerts/?model={model.pk}")
    with page.expect_download(timeout=30_000) as download_info:
        page.click("#alerts-csv")
    download = download_info.value
    assert download.suggested_filename == f"model-{model.pk}-alerts.csv"
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert len(rows) == ALERTS and {row["active_model_id"] for row in rows} == {str(model.pk)}
    assert rows[0]["coin_id"] == "coin0" and rows[-1]["coin_id"] == f"coin{(ALERTS - 1) % 11}"

    page.goto(f"{server}/models/{model.pk}/?coin=coin3")
    with page.expect_download(timeout=30_000) as download_info:
        page.click("#predictions-csv")
    rows = list(csv.DictReader(io.StringIO(open(download_info.value.path(), encoding="utf-8").read())))
    assert len(rows) == len(range(3, ALERTS, 11)) and {row["coin_id"] for row in rows} == {"coin3"}
    page.close()
