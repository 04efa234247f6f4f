"""Property-based API testing: schemathesis generates requests from the served OpenAPI schema against a real
server (daphne on the test database), over every operation and method (GET, POST, PATCH, DELETE), first one
operation at a time and then as stateful scenarios that follow the schema's links (create a backtest, then read
and cancel it; import a model, then change and delete it). Nothing may answer 5xx, and every answer must be
documented: its status code, content type and body schema.

Nothing leaves the machine: the training service is a local pytest-httpserver (a generated training-service URL
in POST /api/config is pinned to it by tests/schemathesis_hooks.py), every other outgoing HTTP request goes to a
closed local proxy port, and webhook URLs are checked with WEBHOOK_ALLOWED_HOSTS_ONLY (no DNS lookups).
"""

from __future__ import annotations

import collections
import os
import re
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

from backtests import services as backtest_services
from pumpserver.models import ProcessHeartbeat
from pumpserver.scopes import ADMIN
from pumpserver.tokens import issue_api_token
from tests import parity
from tests.conftest import PROJECT_DIR, test_database_url
from tests.test_api_model_predictions import insert_prices, make_model, make_prediction
from tests.test_listener import ROWS as LISTENER_ROWS
from tests.test_listener import insert, register_xgb

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20260114
MAX_EXAMPLES = 8
MIN_REQUESTS = 2000
ST = Path(sys.executable).with_name("st")
TRAINING_MODELS = {101: "model_xgb.pkl", 102: "model_rf.pkl"}  # the parity fixture's, importable

CONFIG = f"""
seed = {SEED}
workers = 1
request-timeout = 30

[generation]
max-examples = {MAX_EXAMPLES}
mode = "all"

[phases.stateful]
enabled = true
max-steps = 10

[phases.stateful.generation]
max-examples = 250

[checks]
not_a_server_error.enabled = true
status_code_conformance.enabled = true
response_schema_conformance.enabled = true
content_type_conformance.enabled = true
positive_data_acceptance.enabled = false
negative_data_rejection.enabled = false
missing_required_header.enabled = false
unsupported_method.enabled = false
ignored_auth.enabled = false
use_after_free.enabled = false
ensure_resource_availability.enabled = false

# C8 answers 200 for every integer id; a non-integer id is Django's 404 for a path that matches no route.
[[operations]]
include-path = "/api/models/{{active_model_id}}/n8n-status"
checks.status_code_conformance.enabled = false
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_environment(training_service_url: str) -> dict[str, str]:
    """Environment of a server that generated writes cannot make reach the outside world."""
    return {
        "TRAINING_SERVICE_API_URL": training_service_url,
        # Outgoing HTTP other than to this machine goes to a closed local port: refused at once, never sent.
        "HTTP_PROXY": f"http://127.0.0.1:{_free_port()}",
        "HTTPS_PROXY": f"http://127.0.0.1:{_free_port()}",
        "NO_PROXY": "127.0.0.1,localhost",
        # Generated webhook hosts are refused by the list alone: no DNS lookup can slow the run down.
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WEBHOOK_ALLOWED_HOSTS_ONLY": "true",
    }


@pytest.fixture
def training_service(httpserver):
    """The training service at {url}/api: the parity models 101 and 102 (importable), 404 for any other path."""
    records = [parity.meta(name) for name in ("xgb", "rf")]
    httpserver.expect_request("/api/models").respond_with_json(records)
    for record in records:
        model_id = record["id"]
        httpserver.expect_request(f"/api/models/{model_id}").respond_with_json(record)
        httpserver.expect_request(f"/api/models/{model_id}/download").respond_with_data(
            parity.artifact(TRAINING_MODELS[model_id]), content_type="application/octet-stream"
        )
    httpserver.expect_request(re.compile(".*")).respond_with_json({"detail": "no such model"}, status=404)
    return httpserver.url_for("/api")


@pytest.fixture
def server(tmp_path, training_service):
    """daphne serving the project on the test database, on a free port; stopped afterwards."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "pumpserver.test_settings",
        **offline_environment(training_service),
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


def seed_data(market) -> dict[str, list]:
    """Rows for generated requests and tool calls to find (models, prices, predictions of every kind, backtests,
    live process heartbeats); their ids by kind."""
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
    return {
        "model_ids": [model.pk, classic.pk, replayed.pk],
        "row_ids": [row.pk for row in rows],
        "run_ids": [done.pk, queued.pk],
        "training_ids": list(TRAINING_MODELS),
        "coins": ["CoinA", "CoinB"],
    }


def bindings(seeded: dict[str, list]) -> str:
    """Config lines that make generated ids hit the seeded rows half of the time."""
    dictionaries = "".join(f"[dictionaries.{name}]\nvalues = {values!r}\n\n" for name, values in seeded.items())
    return dictionaries + """

[parameters]
"path.active_model_id" = { dictionary = "model_ids", probability = 0.5 }
"path.alert_id" = { dictionary = "row_ids", probability = 0.5 }
"path.run_id" = { dictionary = "run_ids", probability = 0.5 }
"path.coin_id" = { dictionary = "coins", probability = 0.5 }
"query.active_model_id" = { dictionary = "model_ids", probability = 0.3 }
"query.prediction_id" = { dictionary = "row_ids", probability = 0.5 }
"query.coin_id" = { dictionary = "coins", probability = 0.3 }
"body.model_id" = { dictionary = "training_ids", probability = 0.5 }
"""


def test_generated_requests_of_every_method_get_no_server_error_and_documented_answers(
    server, training_service, market, tmp_path, django_user_model
):
    if not ST.exists():
        pytest.fail(f"schemathesis CLI not found at {ST} (requirements/test.txt installs it)")
    seeded = seed_data(market)
    admin = django_user_model.objects.create_superuser(username="schemathesis", password="unused-password-1")
    token = issue_api_token(user=admin, scopes=(ADMIN,)).key
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG + bindings(seeded))
    calls = tmp_path / "calls.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_DIR),
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "FUZZ_CALL_LOG": str(calls),
        "FUZZ_TRAINING_SERVICE_URL": training_service,
    }

    started = time.monotonic()
    result = subprocess.run(
        [
            str(ST), "--config-file", str(config), "--no-color", "run", f"{server}/api/schema/?format=json",
            "--header", f"Authorization: Token {token}",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
    )
    elapsed = time.monotonic() - started

    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)
    assert result.returncode == 0, output[-20000:]
    sent = [line.rsplit(" ", 2) for line in calls.read_text().splitlines()]
    by_method = collections.Counter(method for method, _path, _status in sent)
    server_errors = [line for line in sent if int(line[2]) >= 500]
    assert not server_errors, server_errors[:20]
    assert len(sent) >= MIN_REQUESTS, (len(sent), by_method, output[-3000:])
    writes = sum(by_method[method] for method in ("POST", "PATCH", "DELETE"))  # PUT: no operation has it
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(by_method) and writes >= MIN_REQUESTS // 2, by_method
    followed = re.search(r"API Links:\s+(\d+) covered", output)
    assert followed and int(followed.group(1)) >= 10, "the stateful phase followed too few links: " + output[-3000:]
    assert elapsed < 240, f"the run took {elapsed:.0f} s for {len(sent)} requests"
