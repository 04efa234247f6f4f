"""python manage.py login_box --url URL: the box `make run` prints once everything has started: where to open the
pages, the user, and on first start the generated password (also kept in var/admin-password)."""

import os

from django.core.management.base import BaseCommand

from pumpserver.account_services import admin_username, password_file, take_unshown_password


class Command(BaseCommand):
    help = "Print the start-up box: URL, admin user and, on first start, its password."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="where the pages are served, e.g. http://127.0.0.1:8000/")

    def handle(self, *args, url: str, **options):
        self.stdout.write(login_box(url=url))


def login_box(*, url: str) -> str:
    path = password_file()
    password = take_unshown_password()
    if password:
        password_line = f"{password}   (first start; kept in {_short(path)})"
    elif path.exists():
        password_line = f"the one in {_short(path)}"
    elif os.environ.get("ADMIN_PASSWORD"):
        password_line = "the one in ADMIN_PASSWORD"
    else:
        password_line = "yours (make admin-password sets a new one)"
    url = url.rstrip("/") + "/"
    lines = [
        "Pump Server is running.",
        "",
        f"  Open      {url}",
        f"  User      {admin_username()}",
        f"  Password  {password_line}",
        "",
        f"  Admin {url}admin/   API docs {url}api/docs/",
        "  New password: make admin-password    Other port: make run PORT=8123",
        "  Ctrl-C stops everything.",
    ]
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def _short(path) -> str:
    """The path relative to the working directory when it lies below it (var/admin-password), else absolute."""
    try:
        return str(path.resolve().relative_to(os.getcwd()))
    except ValueError:
        return str(path)
