"""The pages in a real browser: Debian's chromium driven by Playwright against a real daphne on the test database.

Never `playwright install`: the browser is /usr/bin/chromium (`make test` installs the Debian package).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from modelregistry.models import ActiveModel
from predictions.models import ModelPrediction
from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN
from tests.conftest import PROJECT_DIR, test_database_url, wait_until_serving

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SCREENSHOTS = PROJECT_DIR / "tests" / "artifacts"  # git-ignored
PASSWORD = "browser-test-password-1"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (make test installs it)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """daphne serving the whole application (pages, static files) over the test database."""
    port = _free_port()
    log = tmp_path_factory.mktemp("daphne-pages") / "daphne.log"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    env.pop("TRAINING_SERVICE_API_URL", None)
    env.pop("REDIS_URL", None)
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pumpserver.asgi:application"],
            cwd=PROJECT_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/accounts/login/", process=process, log=log)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "Traceback" not in text, text[-5000:]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def operator(django_user_model):
    """A user in the admin group: the page tests click every action."""
    user = django_user_model.objects.create_user(username="operator", password=PASSWORD)
    set_role(user=user, scope=ADMIN)
    return user


def make_model(name: str) -> ActiveModel:
    return ActiveModel.objects.create(
        model_name=name, model_type="xgboost", features=["price_close"], future_minutes=5,
        price_change_percent=Decimal("10"), target_direction="up",
    )


def predict(model: ActiveModel, count: int, *, tag: str = "alert", probability: float = 0.9, coin: str = "coin") -> None:
    now = timezone.now()
    ModelPrediction.objects.bulk_create([
        ModelPrediction(
            coin_id=f"{coin}{i:03d}pump", active_model=model, prediction=1, probability=probability, tag=tag,
            prediction_timestamp=now - timedelta(seconds=i * 37), evaluation_timestamp=now + timedelta(minutes=5),
        )
        for i in range(count)
    ])


def log_in(page, base: str) -> None:
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url  # anonymous users land on the login page
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def no_reload_marker(page) -> None:
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def test_dashboard_refreshes_itself_without_a_reload(server, browser, operator):
    model = make_model("live model")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server)
    kpi = page.locator("#kpi-predictions-hour")
    assert kpi.inner_text() == "0"
    no_reload_marker(page)

    predict(model, 3)

    page.wait_for_function("document.querySelector('#kpi-predictions-hour').textContent.trim() === '3'",
                           timeout=20_000)
    assert page.locator("#kpi-alerts-hour").inner_text() == "3"
    assert page.locator("text=coin000pump").count() == 1  # the newest alerts table followed
    assert_not_reloaded(page)
    page.close()


def test_config_is_saved_inline_with_an_invalid_then_a_valid_value(server, browser, operator):
    model = make_model("configurable")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server)
    page.goto(f"{server}/models/{model.pk}/config/")
    no_reload_marker(page)

    page.fill("#id_alert_threshold", "1.5")
    page.fill("#id_ignore_alert_seconds", "120")
    page.click("text=Save settings")
    error = page.locator("#field-alert_threshold .field-error")
    error.wait_for(timeout=10_000)
    assert "less than or equal to 1" in error.inner_text()
    assert page.locator("#id_alert_threshold").input_value() == "1.5"  # the typed value stays for correction
    stored = ActiveModel.objects.get(pk=model.pk)
    assert stored.alert_threshold == Decimal("0.7") and stored.ignore_alert_seconds == 0

    page.fill("#id_alert_threshold", "0.55")
    page.click("text=Save settings")
    page.locator("#saved-note").wait_for(timeout=10_000)
    assert page.locator("#field-alert_threshold .field-error").count() == 0
    stored = ActiveModel.objects.get(pk=model.pk)
    assert stored.alert_threshold == Decimal("0.55") and stored.ignore_alert_seconds == 120
    assert_not_reloaded(page)
    page.close()


def test_delete_asks_for_confirmation(server, browser, operator):
    model = make_model("doomed")
    kept = make_model("kept")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server)
    page.goto(f"{server}/models/")
    card = page.locator(f"#model-{model.pk}")
    messages = []

    def dismiss(dialog):
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    card.locator("button:has-text('Delete')").click()
    page.wait_for_timeout(500)
    assert messages and "doomed" in messages[0]
    assert ActiveModel.objects.filter(pk=model.pk).exists() and card.count() == 1

    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("button:has-text('Delete')").click()
    card.wait_for(state="detached", timeout=10_000)
    assert not ActiveModel.objects.filter(pk=model.pk).exists()
    assert ActiveModel.objects.filter(pk=kept.pk).exists() and page.locator(f"#model-{kept.pk}").count() == 1
    page.close()


def test_dashboard_at_phone_width(server, browser, operator, market):
    busy = make_model("Phone-width model")
    predict(busy, 40, coin="alertcoin")
    predict(busy, 60, tag="negativ", probability=0.2, coin="calm")
    now = timezone.now()
    with market.cursor() as cursor:  # a price history for one alerted coin
        cursor.executemany(
            "INSERT INTO coin_metrics (mint, timestamp, price_close, volume_sol) VALUES (%s, %s, %s, %s)",
            [("alertcoin000pump", now - timedelta(seconds=5 * i), 2.8e-8 * (1 + ((i * 7) % 13) / 40 - i / 400),
              1 + (i * 5) % 7) for i in range(180)],
        )
    alert = ModelPrediction.objects.get(coin_id="alertcoin000pump")
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    log_in(page, server)
    page.locator("#dashboard-live svg").first.wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the dashboard is {width}px wide at a 375px viewport"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / "dashboard-375.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    for path in ("/models/", f"/models/{busy.pk}/", f"/models/{busy.pk}/config/", "/alerts/", "/models/import/",
                 "/webhooks/", "/settings/", "/info/", f"/models/{busy.pk}/coins/alertcoin000pump/?prediction={alert.pk}"):
        page.goto(server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide at a 375px viewport"
        name = path.split("?")[0].strip("/").replace("/", "-").replace("-alertcoin000pump", "") or "dashboard"
        page.screenshot(path=str(SCREENSHOTS / f"{name.replace(str(busy.pk), 'id')}-375.png"), full_page=True)
    context.close()

    desktop = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(desktop, server)
    desktop.locator("#dashboard-live svg").first.wait_for()
    desktop.screenshot(path=str(SCREENSHOTS / "dashboard-1280.png"), full_page=True)
    desktop.goto(f"{server}/models/{busy.pk}/")
    desktop.screenshot(path=str(SCREENSHOTS / "models-id-1280.png"), full_page=True)
    desktop.close()


