"""Pump Server settings. Everything an operator sets comes from the environment (see docs/configuration.md)."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from pumpserver.database import BASE_DIR, django_database_settings, resolve_target
from pumpserver.env import env_bool, env_int, env_list, env_number, env_str

VAR_DIR = Path(env_str("PUMP_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Metrics of every process (web, listener, worker) meet in one directory and come out of one /metrics scrape.
# Must be set before prometheus_client is first imported; the launcher empties it at start (deploy/run-local.sh).
METRICS_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics")))
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)

DATABASE_TARGET = resolve_target()
DATABASES = {"default": django_database_settings(DATABASE_TARGET)}
USING_EMBEDDED_DATABASE = DATABASE_TARGET.source != "DATABASE_URL"


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not USING_EMBEDDED_DATABASE:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL points at a real database")
    # The embedded default is a developer setup: generate a key once and keep it, so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# daphne's app only replaces `manage.py runserver` with its ASGI server (pages, API, MCP; it must come first); in any
# other process (listener, worker, the daphne command itself) it would only import Twisted: ~28 MB each.
_DAPHNE_APP = ["daphne"] if sys.argv[1:2] == ["runserver"] else []

INSTALLED_APPS = [
    *_DAPHNE_APP,
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "pumpserver",
    "audit.apps.AuditConfig",
    "rest_framework",
    "channels",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_prometheus",
    "django_htmx",
    "template_partials",
    "modelregistry.apps.ModelRegistryConfig",
    "predictions.apps.PredictionsConfig",
    "alerts.apps.AlertsConfig",
    "backtests.apps.BacktestsConfig",
    "quality.apps.QualityConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AuditActorMiddleware",  # after authentication: the door and user of every write
    "pumpserver.limits.ApiLimitsMiddleware",  # /api/: rate per token (429) and body size (413)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "pumpserver.urls"
ASGI_APPLICATION = "pumpserver.asgi.application"
WSGI_APPLICATION = "pumpserver.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pumpserver.scopes.access_context",  # `access`: what the user may do (buttons)
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Pages need a login (Django auth views under /accounts/; logout is a POST).
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pumpserver.authentication.TokenOrBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every endpoint declares the scope each method needs (web.api.scopes; named by string: the kernel imports no
    # front door); a view that declares none is refused.
    "DEFAULT_PERMISSION_CLASSES": ["web.api.scopes.HasDeclaredScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "web.api.schema.LimitedAutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Pump Server API",
    "DESCRIPTION": "Predictions, alerts and model registry for memecoin market data. "
    "Authenticate with `Authorization: Token <key>` or `Bearer <key>` (python manage.py create_api_token USER).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # OpenAPI links between operations (web/api/links.py): clients and the stateful API tests follow them.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "web.api.links.add_links"],
}

# django-q2 on the same PostgreSQL (ORM broker): `python manage.py qcluster` is the worker process.
Q_CLUSTER = {
    "name": "pumpserver",
    "orm": "default",
    "workers": env_int("WORKER_PROCESSES", 2, minimum=1, maximum=64),
    "timeout": 600,  # seconds a task may run
    "retry": 720,  # must exceed timeout: a task not acknowledged by then is handed out again
    "max_attempts": 3,
    "catch_up": False,  # after downtime run a schedule once, not once per missed interval
    "poll": 0.5,  # seconds between ORM broker polls
    "save_limit": 1000,
    # A worker is replaced by a fresh fork of the sentinel (which shares the imported libraries with it) after this
    # many tasks, and after any task during which its resident size reached WORKER_MAX_RSS_MB: what a heavy task
    # (drift references, a backtest) leaves behind in the heap is then returned whole. docs/operations.md, "Worker".
    "recycle": env_int("WORKER_RECYCLE_TASKS", 500, minimum=1, maximum=1_000_000),
    "max_rss": env_int("WORKER_MAX_RSS_MB", 400, minimum=0, maximum=1_000_000) * 1024 or None,  # KiB; 0: never
    "ack_failures": True,
    "label": "Task queue",
}

# --- Pump Server behaviour (names and defaults of the existing server where it had them) ---
TRAINING_SERVICE_API_URL = env_str("TRAINING_SERVICE_API_URL")
N8N_WEBHOOK_URL = env_str("N8N_WEBHOOK_URL")
N8N_WEBHOOK_TIMEOUT = env_number("N8N_WEBHOOK_TIMEOUT", 5.0, minimum=0.1, maximum=300)
DEFAULT_ALERT_THRESHOLD = env_number("DEFAULT_ALERT_THRESHOLD", 0.7, minimum=0, maximum=1)
MODEL_STORAGE_PATH = Path(env_str("MODEL_STORAGE_PATH", str(VAR_DIR / "models")))
# The listener's safety-net poll; notifications wake it at once, this only bounds the delay if one is missed.
POLLING_INTERVAL_SECONDS = env_number("POLLING_INTERVAL_SECONDS", 5.0, minimum=0.1, maximum=3600)
# Most queued rows one listener claims per batch (a busy system drains the queue in batches of this size).
BATCH_SIZE = env_int("BATCH_SIZE", 5000, minimum=1, maximum=100_000)
# Batches one listener has in flight at once: with 2, one lane computes while another stores and commits.
MAX_LISTENER_LANES = 8  # every lane holds a database connection of its own
LISTENER_LANES = env_int("LISTENER_LANES", 2, minimum=1, maximum=MAX_LISTENER_LANES)
# Rows of history per coin the features see; the original server hard-coded 1000 (models depend on it).
FEATURE_HISTORY_SIZE = env_int("FEATURE_HISTORY_SIZE", 1000, minimum=1, maximum=100_000)
MODEL_CACHE_SIZE = env_int("MODEL_CACHE_SIZE", 50, minimum=1, maximum=10_000)
# Rows the listener's history cache holds (least recently used coins go first): ~260 bytes each with their spare
# room, so the default takes up to ~130 MB; below the rows of the coins that trade within a few minutes, coins are
# read afresh (up to FEATURE_HISTORY_SIZE rows each) on every event.
HISTORY_CACHE_MAX_ROWS = env_int("HISTORY_CACHE_MAX_ROWS", 500_000, minimum=1000, maximum=100_000_000)
# A coin without events for this long leaves the history cache; every cached coin is read afresh at least this often
# (the safety net for writes that bypass the coin_metrics triggers).
HISTORY_CACHE_IDLE_SECONDS = env_number("HISTORY_CACHE_IDLE_SECONDS", 300.0, minimum=1, maximum=86_400)
HISTORY_CACHE_MAX_AGE_SECONDS = env_number("HISTORY_CACHE_MAX_AGE_SECONDS", 600.0, minimum=1, maximum=86_400)
# Backtests: the longest range one run may replay, and how long a run may go without a sign of life before it
# counts as crashed (failed).
BACKTEST_MAX_RANGE_DAYS = env_int("BACKTEST_MAX_RANGE_DAYS", 31, minimum=1, maximum=3650)
BACKTEST_STALE_SECONDS = env_int("BACKTEST_STALE_SECONDS", 600, minimum=30, maximum=86_400)
# CPU priority (Linux nice value) of a running backtest's threads (with BACKTEST_NICE_BACKENDS also of their
# PostgreSQL backends where the server runs on this machine): the listener goes first while both run. 0 keeps the
# normal priority.
BACKTEST_NICE = env_int("BACKTEST_NICE", 19, minimum=0, maximum=19)
BACKTEST_NICE_BACKENDS = env_bool("BACKTEST_NICE_BACKENDS", False)
# A running backtest starts a read or a store only while the listener's queue holds fewer rows than this (0: never
# waits), waiting at most BACKTEST_YIELD_MAX_SECONDS each time, so that it still progresses under a queue that never
# empties.
BACKTEST_YIELD_QUEUE_ROWS = env_int("BACKTEST_YIELD_QUEUE_ROWS", 1, minimum=0, maximum=100_000)
BACKTEST_YIELD_MAX_SECONDS = env_int("BACKTEST_YIELD_MAX_SECONDS", 10, minimum=0, maximum=3600)
EVALUATION_INTERVAL_SECONDS = env_int("EVALUATION_INTERVAL_SECONDS", 30, minimum=1, maximum=3600)
WEBHOOK_SECRET = env_str("WEBHOOK_SECRET")
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])
# Only the hosts and networks above: other host names are refused without a DNS lookup (no outside access; tests).
WEBHOOK_ALLOWED_HOSTS_ONLY = env_bool("WEBHOOK_ALLOWED_HOSTS_ONLY", False)
REDIS_URL = env_str("REDIS_URL")

# Channels layer: carries MCP SSE messages from the process that receives a POST to the process holding the
# session's event stream. In-memory (one web process) by default; with REDIS_URL set, Redis, so several web
# processes can serve MCP over SSE without sticky sessions (needs channels-redis).
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # The layer blocks up to 5 s per receive (BZPOPMIN); redis-py 8 would cut reads at 5 s by default.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "pumpserver"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
HEALTH_PUBLIC = env_bool("HEALTH_PUBLIC", True)
# Days an API token works unless it is created with another expiry or none (create_api_token --expires never).
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=1, maximum=36_500)
# A listener or worker whose heartbeat is older than this counts as down: /api/health says degraded, and
# /api/health/ready answers 503.
HEARTBEAT_STALE_SECONDS = env_int("HEARTBEAT_STALE_SECONDS", 30, minimum=5, maximum=3600)
WEBHOOK_LOG_RETENTION_DAYS = env_int("WEBHOOK_LOG_RETENTION_DAYS", 30, minimum=1, maximum=3650)
# Days model_predictions keeps non-alert predictions and alerts (unset: forever); whole day partitions are dropped
# by the worker's hourly housekeeping (predictions/retention.py), never a row before it is judged and aggregated.
PREDICTION_RETENTION_DAYS = env_number("PREDICTION_RETENTION_DAYS", None, minimum=1, maximum=36_500, integer=True)
ALERT_RETENTION_DAYS = env_number("ALERT_RETENTION_DAYS", None, minimum=1, maximum=36_500, integer=True)
# Days a (coin, model) scan state is kept after its last scan and its ignore window ended (and never while the
# model's minimum scan interval could still hold the coin back); the worker's hourly housekeeping deletes older ones.
SCAN_CACHE_RETENTION_DAYS = env_int("SCAN_CACHE_RETENTION_DAYS", 7, minimum=1, maximum=36_500)
# Days the audit trail keeps an entry; the worker's hourly housekeeping deletes older ones.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=1, maximum=36_500)
# Optional log file (also what /api/logs shows); without it logs go to stderr only.
LOG_FILE = env_str("LOG_FILE")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", True)
# Request limits of the REST API and MCP (pumpserver.limits): requests per minute per token (else per session user,
# else per client address), 0 for none; the largest request body; the largest model upload (file and metadata).
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 600, minimum=0, maximum=10_000_000)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024, maximum=1024**3)
MODEL_UPLOAD_MAX_BYTES = env_int("MODEL_UPLOAD_MAX_BYTES", 200 * 1024 * 1024, minimum=1024, maximum=64 * 1024**3)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES  # Django's bound on form data and request.body: the same number

LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    LOG_LEVEL = "INFO"  # the existing server falls back the same way
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOG_JSON_INDENT = env_int("LOG_JSON_INDENT", 0, minimum=0, maximum=8)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "pumpserver.logging.JsonFormatter", "indent": LOG_JSON_INDENT or None},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        **(
            {"file": {"class": "logging.handlers.WatchedFileHandler", "filename": LOG_FILE, "formatter": LOG_FORMAT}}
            if LOG_FILE
            else {}
        ),
    },
    "root": {"handlers": ["console", "file"] if LOG_FILE else ["console"], "level": LOG_LEVEL},
}
