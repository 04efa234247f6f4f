"""A failed save in a real browser: every field error shows at once and the first one is brought into view, with the
cursor in its field (static/js/forms.js), for the htmx-swapped forms and for a whole page answered with errors.

Debian's chromium driven by Playwright against daphne, as tests/test_pages_browser.py does (its fixtures).
"""

from __future__ import annotations

import pytest

from modelregistry.models import ActiveModel
from tests.test_pages_browser import CHROMIUM, assert_not_reloaded, log_in, make_model, no_reload_marker
from tests.test_pages_browser import browser as browser  # noqa: F401  (fixtures)
from tests.test_pages_browser import operator as operator  # noqa: F401
from tests.test_pages_browser import server as server  # noqa: F401

pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="chromium is not installed"),
]

PRIVATE_HOOK = "http://10.1.2.3/webhook/pump"

IN_VIEW = """selector => {
    const box = document.querySelector(selector).getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight;
}"""


def test_every_config_error_shows_at_once_and_the_first_is_scrolled_into_view(server, browser, operator):
    model = make_model("configurable")
    page = browser.new_page(viewport={"width": 1280, "height": 600})  # the form is taller than the window
    log_in(page, server)
    page.goto(f"{server}/models/{model.pk}/config/")
    no_reload_marker(page)

    page.fill("#id_alert_threshold", "1.5")  # the top of the form
    page.fill("#id_n8n_webhook_url", PRIVATE_HOOK)  # refused by the webhook URL policy, not by the form
    page.fill("#id_max_log_entries_per_coin_alert", "5000")  # the bottom of the form
    page.locator("button:has-text('Save settings')").scroll_into_view_if_needed()
    assert not page.evaluate(IN_VIEW, "#field-alert_threshold")
    page.click("text=Save settings")

    page.locator("#field-max_log_entries_per_coin_alert .field-error").wait_for(timeout=10_000)
    for field in ("alert_threshold", "n8n_webhook_url", "max_log_entries_per_coin_alert"):
        assert page.locator(f"#field-{field} .field-error").is_visible(), field
    assert "private" in page.locator("#field-n8n_webhook_url .field-error").inner_text()
    page.wait_for_function(IN_VIEW, arg="#field-alert_threshold", timeout=5_000)
    assert page.evaluate("document.activeElement.id") == "id_alert_threshold"
    summary = page.locator(".msg-error").inner_text()
    assert "Alert threshold" in summary and "n8n webhook URL" in summary and "Max pending alerts" in summary
    assert float(ActiveModel.objects.get(pk=model.pk).alert_threshold) == 0.7
    assert_not_reloaded(page)

    page.fill("#id_alert_threshold", "0.55")  # fixing all of them saves in one go
    page.fill("#id_n8n_webhook_url", "")
    page.fill("#id_max_log_entries_per_coin_alert", "5")
    page.click("text=Save settings")
    page.locator("#saved-note").wait_for(timeout=10_000)
    assert page.locator(".field-error").count() == 0
    stored = ActiveModel.objects.get(pk=model.pk)
    assert float(stored.alert_threshold) == 0.55 and stored.max_log_entries_per_coin_alert == 5
    page.close()


def test_the_settings_page_shows_both_errors(server, browser, operator):
    page = browser.new_page(viewport={"width": 375, "height": 500})
    log_in(page, server)
    page.goto(f"{server}/settings/")
    page.fill("#id_training_service_url", "ftp://training")
    page.fill("#id_n8n_webhook_url", PRIVATE_HOOK)
    page.locator("button:has-text('Save')").first.scroll_into_view_if_needed()
    page.locator("button:has-text('Save')").first.click()
    page.locator("#field-n8n_webhook_url .field-error").wait_for(timeout=10_000)
    assert page.locator("#field-training_service_url .field-error").is_visible()
    page.wait_for_function(IN_VIEW, arg="#field-training_service_url", timeout=5_000)
    assert page.evaluate("document.activeElement.id") == "id_training_service_url"
    page.close()


def test_a_page_answered_with_errors_opens_at_the_first_error(server, browser, operator):
    page = browser.new_page(viewport={"width": 375, "height": 600})
    log_in(page, server)
    page.goto(f"{server}/models/import/")
    upload = page.locator("form[enctype='multipart/form-data']")
    upload.locator("button[type=submit]").click()  # no file, no metadata: a whole page with errors (400)
    page.wait_for_load_state()
    page.locator("#field-file .field-error").wait_for(timeout=10_000)
    page.wait_for_function(IN_VIEW, arg="#field-file", timeout=5_000)
    assert page.locator(".field-error").count() >= 2  # the file and the metadata
    page.close()
