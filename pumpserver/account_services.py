"""The admin login `make run` hands out: the superuser, its password and the file that keeps it.

On first start `ensure_admin` creates the superuser ADMIN_USERNAME (default `admin`) with ADMIN_PASSWORD, or with a
generated password that it keeps in `var/admin-password` (mode 0600) and marks as not shown yet; `make run` prints it
once in its start-up box (`login_box`). `reset_admin_password` (`make admin-password`) sets and keeps a new one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from pumpserver.changes import announce

PASSWORD_FILE_NAME = "admin-password"
NOT_SHOWN_SUFFIX = ".not-shown"


@dataclass(frozen=True)
class AdminLogin:
    username: str
    created: bool  # the user was created now
    password: str | None  # the password set now (None: unchanged)
    generated: bool  # the password was generated here (and kept in password_file())


def admin_username() -> str:
    return os.environ.get("ADMIN_USERNAME") or "admin"


def password_file() -> Path:
    return Path(settings.VAR_DIR) / PASSWORD_FILE_NAME


def ensure_admin_user(*, username: str, password: str | None = None) -> AdminLogin:
    """Create the superuser `username` if it does not exist, with `password`, or with a generated one that is kept
    in password_file() and marked as not shown yet; an existing user is left as it is."""
    users = get_user_model()
    with transaction.atomic():
        if users.objects.filter(username=username).exists():
            return AdminLogin(username=username, created=False, password=None, generated=False)
        generated = not password
        password = password or _new_password()
        user = users.objects.create_superuser(username=username, email="", password=password)
        announce(action="create", object_type="auth.user", object_id=user.pk,
                 after={**_admin_flags(user), "password": "(set)"})
        if generated:
            _keep(password)
    return AdminLogin(username=username, created=True, password=password, generated=generated)


def reset_admin_password(*, username: str) -> AdminLogin:
    """Give the superuser `username` a new generated password (creating the user if missing), keep it in
    password_file() and return it. Sessions logged in with the old password end (Django checks the hash)."""
    users = get_user_model()
    password = _new_password()
    with transaction.atomic():
        user = users.objects.filter(username=username).first()
        created = user is None
        before = None if created else {**_admin_flags(user), "password": "***"}
        if created:
            user = users.objects.create_superuser(username=username, email="", password=password)
        else:
            user.set_password(password)
            user.is_active = user.is_staff = user.is_superuser = True
            user.save(update_fields=["password", "is_active", "is_staff", "is_superuser"])
        announce(action="create" if created else "update", object_type="auth.user", object_id=user.pk,
                 before=before, after={**_admin_flags(user), "password": "(reset)"})
        _keep(password, not_shown=False)
    return AdminLogin(username=username, created=created, password=password, generated=True)


def _admin_flags(user) -> dict:
    return {"username": user.get_username(), "is_active": user.is_active, "is_staff": user.is_staff,
            "is_superuser": user.is_superuser}


def take_unshown_password() -> str | None:
    """The kept password if it has not been shown yet (then it counts as shown), else None."""
    marker = password_file().with_name(PASSWORD_FILE_NAME + NOT_SHOWN_SUFFIX)
    if not marker.exists():
        return None
    try:
        password = password_file().read_text().strip() or None
    except FileNotFoundError:
        password = None
    marker.unlink(missing_ok=True)
    return password


def _new_password() -> str:
    return secrets.token_urlsafe(12)


def _keep(password: str, *, not_shown: bool = True) -> None:
    """Write the password to password_file(), readable by its owner only (mode 0600 from the start)."""
    path = password_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC
    marker = path.with_name(PASSWORD_FILE_NAME + NOT_SHOWN_SUFFIX)
    if not_shown:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)
