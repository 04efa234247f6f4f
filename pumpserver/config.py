"""The persisted UI configuration (`GET/POST /api/config`), stored in `runtime_settings`, read at use time.

The existing server kept these keys in `ui_config.json`, read them once at process start and restarted itself
after a change (and only the API process, so the ingestion process kept old values, weakness 18). Here every
process reads them when it needs them (`global_n8n_webhook_url()` caches for a few seconds), so nothing restarts.

| key | default | precedence / effect |
|---|---|---|
| `database_url` | the configured database, password masked | read-only: the database is chosen by `DATABASE_URL` |
| `training_service_url` | `TRAINING_SERVICE_API_URL` | stored value wins over the environment (as before) |
| `n8n_webhook_url` | `""` | global webhook for models without their own URL; `N8N_WEBHOOK_URL` wins |
| `api_port`, `streamlit_port` | 8000, 8501 | informational only |
"""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction

from pumpserver.changes import announce
from pumpserver.models import RuntimeSetting
from pumpserver.webhook_urls import InvalidWebhookUrl, validate_webhook_url

EDITABLE_KEYS = ("training_service_url", "n8n_webhook_url", "api_port", "streamlit_port")
READ_ONLY_KEYS = ("database_url",)
CONFIG_KEYS = READ_ONLY_KEYS + EDITABLE_KEYS
DEFAULT_PORTS = {"api_port": 8000, "streamlit_port": 8501}
MASK = "****"
CACHE_SECONDS = 5.0


class ConfigError(ValueError):
    """A change that cannot be applied; `errors` maps each offending key to its messages (a 400 body)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items()))
        self.errors = errors


def redact_database_url(url: str | None) -> str | None:
    """The URL (or key=value conninfo) with any password replaced by ****."""
    if not url:
        return url
    if "://" not in url:  # key=value conninfo
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = f"{userinfo}@{hostinfo}"
    query = re.sub(r"(^|&)(password=)[^&]*", rf"\g<1>\g<2>{MASK}", parts.query, flags=re.IGNORECASE)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _database_url() -> str | None:
    target = getattr(settings, "DATABASE_TARGET", None)
    return redact_database_url(target.conninfo) if target is not None else None


def _stored() -> dict:
    return dict(RuntimeSetting.objects.filter(key__in=EDITABLE_KEYS).values_list("key", "value"))


def get_config() -> dict:
    """Every key with its current value (stored, else the default); `database_url` with the password masked."""
    stored = _stored()
    return {
        "database_url": _database_url(),
        "training_service_url": stored.get("training_service_url") or settings.TRAINING_SERVICE_API_URL or "",
        "n8n_webhook_url": stored.get("n8n_webhook_url") or "",
        "api_port": stored.get("api_port") or DEFAULT_PORTS["api_port"],
        "streamlit_port": stored.get("streamlit_port") or DEFAULT_PORTS["streamlit_port"],
    }


def _validate_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def _clean(key: str, value):
    """The value to store for `key` (None = back to the default); raises ValueError saying what is wrong."""
    if key in ("api_port", "streamlit_port"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError("must be an integer port between 1 and 65535")
        return value
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    value = value.strip()
    if value == "":
        return None
    if "\x00" in value or len(value) > 2000:
        raise ValueError("must be at most 2000 characters without NUL")
    if key == "training_service_url":
        return _validate_http_url(value)
    try:
        return validate_webhook_url(value)
    except InvalidWebhookUrl as exc:
        raise ValueError(str(exc)) from None


def update_config(*, changes: dict) -> dict:
    """Shallow-merge `changes` into the stored configuration and return the new `get_config()`.

    `null` or `""` resets a key to its default. `database_url` may be sent back unchanged (as shown, masked, or
    the real value), but not changed: the database is chosen by the DATABASE_URL environment variable.
    Raises ConfigError naming every bad key; nothing is stored then.
    """
    cleaned = _cleaned(changes)
    with transaction.atomic():
        before = get_config()
        for key, value in cleaned.items():
            if value is None:
                RuntimeSetting.objects.filter(key=key).delete()
            else:
                RuntimeSetting.objects.update_or_create(key=key, defaults={"value": value})
        announce(action="update", object_type="config", object_id="global", before=before, after=get_config())
    _cache.clear()
    return get_config()


def check_config(*, changes: dict) -> dict[str, list[str]]:
    """What update_config would refuse in `changes`, per key (empty: nothing); stores nothing."""
    try:
        _cleaned(changes)
    except ConfigError as exc:
        return exc.errors
    return {}


def _cleaned(changes: dict) -> dict:
    """The values to store per key; ConfigError names every refused key."""
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}
    for key, value in changes.items():
        if key == "database_url":
            target = getattr(settings, "DATABASE_TARGET", None)
            unchanged = {None, "", _database_url(), target.conninfo if target else None}
            if not (value is None or isinstance(value, str)) or value not in unchanged:  # a list is unhashable
                errors[key] = [
                    "database_url is read-only here: set the DATABASE_URL environment variable of every process "
                    "(web, listener, worker) and restart them."
                ]
            continue
        if key not in EDITABLE_KEYS:
            errors[key] = [f"unknown configuration key; allowed: {', '.join(CONFIG_KEYS)}"]
            continue
        try:
            cleaned[key] = _clean(key, value)
        except ValueError as exc:
            errors[key] = [f"{key} {exc}"]
    if errors:
        raise ConfigError(errors)
    return cleaned


# --- reads for the processes (at use time) -------------------------------------------------------------------------

_cache: dict[str, tuple[float, object]] = {}
_cache_lock = threading.Lock()


def _stored_value(key: str):
    """The stored value of one key, cached for CACHE_SECONDS per process (the listener asks once per batch)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    value = RuntimeSetting.objects.filter(key=key).values_list("value", flat=True).first()
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def global_n8n_webhook_url() -> str | None:
    """The global n8n webhook for models without their own URL: N8N_WEBHOOK_URL if set, else the stored one."""
    return settings.N8N_WEBHOOK_URL or _stored_value("n8n_webhook_url") or None


def training_service_url() -> str | None:
    """The training-service base URL: the stored one if set (it wins, as before), else TRAINING_SERVICE_API_URL."""
    return _stored_value("training_service_url") or settings.TRAINING_SERVICE_API_URL or None
