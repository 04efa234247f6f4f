"""Settings for the test suite: the embedded PostgreSQL gets its own data directory, apart from `make run`'s."""

import os
import shutil

from pumpserver.database import BASE_DIR

os.environ.setdefault("EMBEDDED_PGDATA", str(BASE_DIR / "var" / "test-pgdata"))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else")
os.environ.setdefault("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1,localhost")
# Far above what any test sends in a minute with one token (the write fuzzing sends 2,000 and more); the limit tests
# set their own.
os.environ.setdefault("API_RATE_LIMIT", "1000000")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.environ["EMBEDDED_PGDATA"] + "-metrics")
if not os.environ.get("PUMP_TEST_METRICS_FRESH"):
    # Once per test run, before any metric exists: processes the tests start inherit the flag and the files.
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os.environ["PUMP_TEST_METRICS_FRESH"] = "1"

from pumpserver.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; tests create users often
