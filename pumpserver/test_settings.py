"""Settings for the test suite: the embedded PostgreSQL gets its own data directory, apart from `make run`'s."""

import os

from pumpserver.database import BASE_DIR

os.environ.setdefault("EMBEDDED_PGDATA", str(BASE_DIR / "var" / "test-pgdata"))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else")
os.environ.setdefault("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1,localhost")

from pumpserver.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; tests create users often
