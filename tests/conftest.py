"""Shared fixtures: real PostgreSQL only (the embedded test server, or DATABASE_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import xgboost  # noqa: F401

from pumpserver.database import open_connection

# XGBoost whole, with its scikit-learn layer: a listener run in this process would else import it without
# (inference.ml_imports.serve_only) and break the tests that train after it.

PROJECT_DIR = Path(__file__).resolve().parent.parent


def database_url(dbname: str) -> str:
    """A libpq URI for `dbname` on the test server; unix sockets use the `?host=/dir` form."""
    from django.db import connection

    params = connection.get_connection_params()
    user = quote(params.get("user") or "postgres")
    password = params.get("password")
    auth = f"{user}:{quote(password)}" if password else user
    host = params.get("host") or ""
    port = params.get("port") or ""
    if host.startswith("/"):
        suffix = f"?host={quote(host)}" + (f"&port={port}" if port else "")
        return f"postgresql://{auth}@/{dbname}{suffix}"
    return f"postgresql://{auth}@{host}{':' + str(port) if port else ''}/{dbname}"


@pytest.fixture
def api_client(django_user_model):
    """A DRF client authenticated with a real API token, as an external client would be."""
    from rest_framework.test import APIClient

    from pumpserver.tokens import issue_api_token

    user = django_user_model.objects.create_user(username="api-user", password="unused-password-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user=user).key}")
    return client


@pytest.fixture
def scratch_database(django_db_blocker):
    """An empty database of its own on the test server, dropped afterwards; yields its URL."""
    name = f"pump_scratch_{uuid.uuid4().hex[:10]}"
    with django_db_blocker.unblock():
        with open_connection(autocommit=True, dbname="postgres") as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(name)
        finally:
            with open_connection(autocommit=True, dbname="postgres") as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_manage(*args: str, env_overrides: dict[str, str | None] | None = None, timeout: float = 120):
    """Run manage.py in a fresh process, as an operator would."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "pumpserver.test_settings"
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, **kwargs)


def empty_market() -> None:
    """Empty coin_metrics and its queue, which Django's flush leaves alone (unmanaged, or written by the trigger)."""
    with open_connection(autocommit=True) as conn:
        # DELETE, not TRUNCATE: a test's still-open Django transaction may hold a share lock on these tables, and
        # TRUNCATE would wait for it forever. The lock timeout turns any other wait into an error.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute("DELETE FROM coin_metrics_queue")
        conn.execute("DELETE FROM coin_metrics")


@pytest.fixture
def market(django_db_blocker):
    """A collector's connection to coin_metrics; the table (not flushed by Django: it is unmanaged) is emptied after."""
    with django_db_blocker.unblock():
        conn = open_connection(autocommit=True)
        try:
            yield conn
        finally:
            conn.close()
            empty_market()


def test_database_url() -> str:
    """DATABASE_URL of the test database, for processes the tests start."""
    from django.db import connection

    return database_url(connection.settings_dict["NAME"])


test_database_url.__test__ = False  # a helper, not a test


def wait_until_serving(url: str, *, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Poll `url` until it answers 200; fail with the end of the server's log if it exits or never comes up."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server did not come up: {log.read_text()[-3000:]}")
        time.sleep(0.2)
