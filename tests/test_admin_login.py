"""Getting in: `ensure_admin` on first start, `make run`'s start-up box (login_box) and `make admin-password`
(reset_admin_password), with the generated password kept in var/admin-password, readable by its owner only."""

from __future__ import annotations

import stat
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("ADMIN_USERNAME", raising=False)
    monkeypatch.chdir(tmp_path.parent)
    return tmp_path


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def box(url: str = "http://127.0.0.1:8123/") -> str:
    return run("login_box", "--url", url)


def kept_password(var_dir) -> str:
    path = var_dir / "admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text().strip()


def test_first_start_generates_a_password_that_the_box_shows_once(var_dir):
    output = run("ensure_admin")
    assert "Created admin user 'admin' with a generated password" in output
    password = kept_password(var_dir)
    assert password not in output  # not among the install output: the box shows it
    assert authenticate(username="admin", password=password) is not None
    assert get_user_model().objects.get(username="admin").is_superuser

    first = box()
    lines = first.splitlines()
    assert lines[0] == lines[-1] and set(lines[0]) == {"+", "-"}  # one box
    assert all(line.startswith("| ") and line.endswith(" |") and len(line) == len(lines[0]) for line in lines[1:-1])
    assert "Open      http://127.0.0.1:8123/" in first and "User      admin" in first
    assert f"Password  {password}   (first start; kept in {var_dir.name}/admin-password)" in first
    assert "make admin-password" in first and "make run PORT=" in first

    again = box()
    assert password not in again and f"Password  the one in {var_dir.name}/admin-password" in again
    assert "exists; its password is unchanged" in run("ensure_admin")
    assert kept_password(var_dir) == password


def test_admin_password_sets_prints_and_keeps_a_new_password(var_dir):
    run("ensure_admin")
    old = kept_password(var_dir)
    box()
    output = run("reset_admin_password")
    new = kept_password(var_dir)
    assert new != old and f"New password for admin user 'admin': {new}" in output
    assert authenticate(username="admin", password=new) is not None
    assert authenticate(username="admin", password=old) is None
    assert new not in box()  # printed by the command already


def test_admin_password_creates_a_missing_user_and_a_given_password_is_not_kept(var_dir, monkeypatch):
    assert "Created admin user 'admin'" in run("reset_admin_password")
    assert authenticate(username="admin", password=kept_password(var_dir)) is not None

    monkeypatch.setenv("ADMIN_USERNAME", "operator")
    monkeypatch.setenv("ADMIN_PASSWORD", "a-chosen-password-1")
    (var_dir / "admin-password").unlink()
    assert "with the password from ADMIN_PASSWORD" in run("ensure_admin")
    assert not (var_dir / "admin-password").exists()
    assert authenticate(username="operator", password="a-chosen-password-1") is not None
    shown = box("http://localhost:8000")
    assert "User      operator" in shown and "Password  the one in ADMIN_PASSWORD" in shown
    assert "Open      http://localhost:8000/" in shown


def test_make_run_ends_with_the_box_and_make_admin_password_exists():
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "\nadmin-password:" in makefile and "manage.py reset_admin_password" in makefile
    script = (PROJECT_DIR / "deploy" / "run-local.sh").read_text()
    assert script.index("manage.py login_box") > script.index("train_demo_model")
