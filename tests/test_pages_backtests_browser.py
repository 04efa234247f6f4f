"""A backtest in a real browser, run by the real worker: Debian's chromium (Playwright) submits the form on a model's
backtest page, watches the run wait for the worker, starts `manage.py qcluster`, and sees the progress turn into the
finished run's figures and charts without a reload.

Never `playwright install`: the browser is /usr/bin/chromium (`make test` installs the Debian package).
"""

from __future__ import annotations

import os

import pytest

from backtests.models import BacktestRun, RunState
from tests import test_pages_browser as browser_pages
from tests.conftest import test_database_url
from tests.faults.processes import Processes
from tests.test_listener import ROWS, insert, register_xgb
from tests.test_pages_browser import CHROMIUM, SCREENSHOTS, assert_not_reloaded, log_in, no_reload_marker

# The browser page tests' fixtures: daphne on the test database (module), chromium (module), a user.
server = browser_pages.server
browser = browser_pages.browser
operator = browser_pages.operator

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (make test installs it)"),
]


def test_the_form_queues_a_run_that_the_worker_finishes_while_the_page_follows(server, browser, operator, market,
                                                                               tmp_path):
    insert(market, ROWS)
    model = register_xgb()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server)
    page.goto(f"{server}/models/{model.pk}/")
    page.click("a:has-text('Backtest')")
    page.wait_for_url(f"{server}/models/{model.pk}/backtests/")
    assert page.locator("#id_start").input_value() and page.locator("#id_end").input_value()  # the data's last day

    page.fill("#id_threshold", "1.5")  # refused inline, nothing queued
    page.click("#run-backtest")
    page.locator("#field-threshold .field-error").wait_for(timeout=10_000)
    assert not BacktestRun.objects.exists()

    page.fill("#id_threshold", "0.6")
    page.click("#run-backtest")
    page.wait_for_url(f"{server}/backtests/*/", timeout=10_000)
    run = BacktestRun.objects.get()
    assert run.threshold == 0.6 and run.state == RunState.QUEUED
    page.locator("#run-body[data-state='queued']").wait_for(timeout=10_000)
    assert "Waiting for the worker" in page.locator("#run-progress").inner_text()
    no_reload_marker(page)

    processes = Processes(tmp_path / "logs")
    try:
        processes.worker(test_database_url(), WORKER_PROCESSES="1")
        page.locator("#run-body[data-state='done']").wait_for(timeout=90_000)
    finally:
        processes.stop_all()
    assert "Traceback" not in processes.report(), processes.report()
    assert_not_reloaded(page)
    run.refresh_from_db()
    assert run.state == RunState.DONE and run.summary["rows_replayed"] == len(ROWS)
    figures = page.locator("#run-figures").inner_text()
    assert str(run.summary["alerts"]) in figures
    assert page.locator("#charts svg").count() >= 3 and page.locator("#thresholds svg").count() == 2
    download = page.request.get(f"{server}/api/backtests/{run.pk}/rows?format=csv")  # streamed by daphne (ASGI)
    assert download.ok and download.headers["content-type"].startswith("text/csv")
    lines = download.text().splitlines()
    assert lines[0].startswith("coin_id,timestamp,probability") and len(lines) == run.summary["predictions"] + 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "backtest-run-1280.png"), full_page=True)
    page.goto(f"{server}/models/{model.pk}/backtests/")
    page.screenshot(path=str(SCREENSHOTS / "backtests-model-1280.png"), full_page=True)
    page.check(f"input[name=runs][value='{run.pk}']")
    page.click("text=Compare ticked runs")
    page.wait_for_url(f"{server}/backtests/compare/?runs={run.pk}")
    page.locator("#compare-charts svg").first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "backtests-compare-1280.png"), full_page=True)
    page.close()

    phone = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                has_touch=True)
    page = phone.new_page()
    log_in(page, server)
    for path, name in ((f"/backtests/{run.pk}/", "backtest-run"), (f"/models/{model.pk}/backtests/", "backtests-model"),
                       (f"/backtests/compare/?runs={run.pk}", "backtests-compare"), ("/backtests/", "backtests")):
        page.goto(server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide at a 375px viewport"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-375.png"), full_page=True)
    phone.close()
