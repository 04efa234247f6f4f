"""The demo as a newcomer meets it after `make run`, taken in a real browser: the demo market has been playing the
collector for half an hour, the listener has predicted every row with the bundled demo model, the worker has judged
the alerts and refreshed the quality figures. The dashboard and the model page must show the model succeeding
clearly, not the "3 successes against 47 failures" a user once saw.

The processes are the real ones: simulate_market writes coin_metrics as a collector, a listen_events process
predicts them through the insert trigger's queue; the worker's two periodic tasks run in this process (what
qcluster would run on its schedule); daphne serves the pages to Debian's chromium.
"""

from __future__ import annotations

import re
import signal
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.tasks import evaluate_and_track
from modelregistry.demo import BUNDLED_NAME, DEMO_FUTURE_MINUTES
from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction
from pumpserver.database import open_connection
from quality.tasks import refresh_and_check
from tests.conftest import empty_market
from tests.test_listener import listener_process, wait_until
from tests.test_pages_browser import PASSWORD, SCREENSHOTS, log_in
from tests.test_pages_browser import browser as browser  # noqa: F401  (fixtures)
from tests.test_pages_browser import server as server  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

COINS = 100  # what `make run` simulates (DEMO_COINS)
ROWS = 12_000  # about half an hour of a 100-coin market
RATE = 400  # rows per second of wall time


def _queue_depth() -> int:
    with open_connection(autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM coin_metrics_queue").fetchone()[0]


@pytest.fixture
def demo_half_hour_in(django_db_blocker):
    """The state of `make run` half an hour after start: market rows up to a few minutes ago, all predicted, the
    alerts whose horizon has passed judged."""
    with django_db_blocker.unblock():
        empty_market()
        call_command("ensure_demo_model", stdout=StringIO())
        # Half an hour of market passes here in half a minute of wall time, and the minimum scan interval counts wall
        # time: at its default of 20 s a coin would be predicted about twice. Live, a coin's rows come about every
        # 17 s and most of them are predicted; interval 0 gives that here.
        ActiveModel.objects.filter(model_name=BUNDLED_NAME).update(min_scan_interval_seconds=0)
        start = (timezone.now() - timedelta(minutes=45)).isoformat()
        listener = listener_process()
        try:
            # At a pace the listener follows row by row, as in the live demo (a backlog would be collapsed to the
            # newest row per coin), but faster than real time.
            call_command("simulate_market", coins=COINS, rate=RATE, rows=ROWS, seed=7, start=start,
                         stdout=StringIO())
            wait_until(lambda: _queue_depth() == 0, timeout=300)
        finally:
            listener.send_signal(signal.SIGTERM)
            output, _ = listener.communicate(timeout=60)
        assert listener.returncode == 0, output
        evaluate_and_track()
        refresh_and_check()
        try:
            yield ActiveModel.objects.get(model_name=BUNDLED_NAME)
        finally:
            empty_market()


def _percent(text: str) -> float:
    match = re.search(r"(-?[\d.]+)\s*%", text)
    assert match, f"no percentage in {text!r}"
    return float(match.group(1))


def _kpi(page, label: str) -> str:
    kpi = page.locator(".kpi", has=page.locator(".label", has_text=re.compile(f"^{re.escape(label)}$")))
    return kpi.first.locator(".value").inner_text()


def test_the_demo_model_succeeds_clearly_on_the_dashboard_and_its_page(demo_half_hour_in, server, browser,
                                                                       django_user_model):
    model = demo_half_hour_in
    django_user_model.objects.create_user(username="operator", password=PASSWORD)
    alerts = ModelPrediction.objects.filter(active_model=model, tag="alert")
    judged = alerts.filter(evaluation_result__in=["success", "failed"])
    success = judged.filter(evaluation_result="success").count()
    assert judged.count() >= 30, "too few judged alerts for the figures to mean anything"
    assert not alerts.filter(prediction_timestamp__lt=timezone.now() - timedelta(minutes=DEMO_FUTURE_MINUTES + 1),
                             status="aktiv").exists(), "alerts past their horizon left unjudged"

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    log_in(page, server)
    banner = page.locator("#demo-banner").inner_text()
    assert "The market is simulated." in banner and BUNDLED_NAME in banner

    # The dashboard: the alert success rate the user reads, the same figure as the judged alerts, and clearly good.
    dashboard_rate = _percent(_kpi(page, "Alert success rate"))
    assert dashboard_rate == pytest.approx(100 * success / judged.count(), abs=0.05)
    assert dashboard_rate >= 40, f"the demo model looks weak on the dashboard: {dashboard_rate} %"
    assert _percent(_kpi(page, "Performance sum")) > 0
    models_table = page.locator("section.card", has=page.locator("h2", has_text=re.compile("^Models$")))
    model_row = models_table.locator("tr", has=page.locator(f"a[href='/models/{model.pk}/']"))
    assert _percent(model_row.locator("td[data-label='Success rate']").inner_text()) == dashboard_rate
    page.screenshot(path=str(_screenshot("demo-dashboard.png")), full_page=True)

    # The model page: its live quality against the base rate of the same rows.
    page.goto(f"{server}/models/{model.pk}/")
    page_rate = _percent(_kpi(page, "Alert success rate"))
    assert page_rate == pytest.approx(dashboard_rate, abs=0.05)
    base_rate = _percent(page.locator("#quality tr", has=page.locator("th", has_text="Base rate"))
                         .first.locator("td").first.inner_text())
    assert page_rate >= 3 * base_rate, (page_rate, base_rate)
    assert float(_kpi(page, "ROC AUC")) >= 0.75
    assert page.locator("#degraded-banner").count() == 0
    page.screenshot(path=str(_screenshot("demo-model-page.png")), full_page=True)
    page.close()



def _screenshot(name: str):
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / name
