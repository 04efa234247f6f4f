"""Property-based API testing: schemathesis generates requests from the served OpenAPI schema against a real
server (daphne on the test database) and checks that nothing answers 5xx and every answer is documented.

Read-only operations only (GET): destructive DELETEs would remove the data the others need, and POST /api/config
would resolve generated host names (webhook URL validation). Those are covered by their own tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from rest_framework.authtoken.models import Token

from backtests import services as backtest_services
from pumpserver.models import ProcessHeartbeat
from tests.conftest import PROJECT_DIR, test_database_url
from tests.test_api_model_predictions import insert_prices, make_model, make_prediction
from tests.test_listener import ROWS as LISTENER_ROWS
from tests.test_listener import insert, register_xgb

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20260114
MAX_EXAMPLES = 15
ST = Path(sys.executable).with_name("st")

CONFIG = f"""
seed = {SEED}
workers = 1
request-timeout = 30

[generation]
max-examples = {MAX_EXAMPLES}
mode = "all"

[phases.stateful]
enabled = false

[checks]
not_a_server_error.enabled = true
status_code_conformance.enabled = true
response_schema_conformance.enabled = true
content_type_conformance.enabled = false
positive_data_acceptance.enabled = false
negative_data_rejection.enabled = false
missing_required_header.enabled = false
unsupported_method.enabled = false
ignored_auth.enabled = false
use_after_free.enabled = false
ensure_resource_availability.enabled = false

# The training-service catalogue needs the external service (503 while none is configured): tested on its own.
[[operations]]
include-path-regex = "^/api/models/available"
enabled = false

# C8 answers 200 for every integer id; a non-integer id is Django's 404 for a path that matches no route.
[[operations]]
include-path = "/api/models/{{active_model_id}}/n8n-status"
checks.status_code_conformance.enabled = false
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """daphne serving the project on the test database, on a free port; stopped afterwards."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings",
        "TRAINING_SERVICE_API_URL": "",
    }
    log = (tmp_path / "daphne.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pumpserver.asgi:application"],
        cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/api/health", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("daphne did not start:\n" + (tmp_path / "daphne.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def seed_data(market) -> str:
    """Rows for the generated requests to find (models, prices, predictions of every kind, live process
    heartbeats), and the config lines that make generated ids hit them half of the time."""
    model = make_model(custom_name="Schemathesis")
    classic = make_model(price_change_percent=None, target_operator=">", target_value=Decimal("2"), target_direction=None)
    insert_prices(market, "CoinA", range(-15, 30))
    rows = [
        make_prediction(model, coin="CoinA", minute=0, probability=0.9, result="success",
                        actual_price_change_pct=Decimal("6")),
        make_prediction(model, coin="CoinA", minute=1, probability=0.3, result="failed",
                        actual_price_change_pct=Decimal("-1")),
        make_prediction(model, coin="CoinB", minute=2, probability=0.6, result="not_applicable"),
        make_prediction(classic, coin="CoinB", minute=3, probability=0.95),
    ]
    now = timezone.now()
    for kind in ("listener", "worker"):  # seen "in the future": alive for the whole run
        ProcessHeartbeat.objects.create(
            name=f"{kind}@schemathesis:1", kind=kind, hostname="schemathesis", pid=1, started_at=now,
            last_seen=now + timedelta(hours=1), details={"models_loaded": 2},
        )
    replayed = register_xgb()  # a backtest that ran (rows, summary) and one still queued
    insert(market, LISTENER_ROWS[:200])
    window = {"start": datetime.fromisoformat(LISTENER_ROWS[0][1]),
              "end": datetime.fromisoformat(LISTENER_ROWS[199][1])}
    done = backtest_services.create_run(active_model_id=replayed.pk, **window)
    backtest_services.execute_run(run_id=done.pk)
    queued = backtest_services.create_run(active_model_id=replayed.pk, **window)
    model_ids = [model.pk, classic.pk, replayed.pk]
    row_ids = [row.pk for row in rows]
    run_ids = [done.pk, queued.pk]
    return f"""
[dictionaries.model_ids]
values = {model_ids}

[dictionaries.run_ids]
values = {run_ids}

[dictionaries.row_ids]
values = {row_ids}

[dictionaries.coins]
values = ["CoinA", "CoinB"]

[parameters]
"path.active_model_id" = {{ dictionary = "model_ids", probability = 0.5 }}
"path.alert_id" = {{ dictionary = "row_ids", probability = 0.5 }}
"path.run_id" = {{ dictionary = "run_ids", probability = 0.5 }}
"path.coin_id" = {{ dictionary = "coins", probability = 0.5 }}
"query.active_model_id" = {{ dictionary = "model_ids", probability = 0.3 }}
"query.prediction_id" = {{ dictionary = "row_ids", probability = 0.5 }}
"query.coin_id" = {{ dictionary = "coins", probability = 0.3 }}
"""


def test_generated_requests_get_no_server_error_and_documented_answers(server, market, tmp_path, django_user_model):
    if not ST.exists():
        pytest.fail(f"schemathesis CLI not found at {ST} (requirements/test.txt installs it)")
    bindings = seed_data(market)
    user = django_user_model.objects.create_user(username="schemathesis")
    token = Token.objects.create(user=user).key
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG + bindings)
    report = tmp_path / "report.xml"

    started = time.monotonic()
    result = subprocess.run(
        [
            str(ST), "--config-file", str(config), "--no-color", "run", f"{server}/api/schema/?format=json",
            "--header", f"Authorization: Token {token}", "--include-method", "GET",
            "--report", "junit", "--report-junit-path", str(report),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    elapsed = time.monotonic() - started

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    generated = [line for line in output.splitlines() if "generated" in line and "Test cases" not in line]
    assert elapsed < 120, f"the run took {elapsed:.0f} s"
    summary = output[output.find("Test cases:"):]
    count = int(summary.split("Test cases:")[1].split("generated")[0].strip()) if "Test cases:" in summary else 0
    assert count >= 200, (count, generated, output[-3000:])
