#!/usr/bin/env python
"""Django's command-line utility, with one readable line instead of a traceback when the database is down."""

import os
import sys

import django
from django.core.management import execute_from_command_line

from audit.context import Door, acting, operator_name
from pumpserver.database import DatabaseUnavailable, check_reachable

# Commands that never touch the database, so they need no connection check.
OFFLINE_COMMANDS = {"help", "version", "--help", "-h", "--version", "makemigrations", "check", "collectstatic"}
# The system's own processes: their writes (predictions, verdicts, webhooks, simulated market rows) are not an
# operator's, so they do not run as the `command` door of the audit trail. Every other command does.
PROCESS_COMMANDS = {"listen_events", "qcluster", "runserver", "simulate_market"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")
    try:
        django.setup()
        command = sys.argv[1] if len(sys.argv) > 1 else "help"
        if command not in OFFLINE_COMMANDS:
            check_reachable()
    except DatabaseUnavailable as exc:
        print(f"pump-server: {exc}", file=sys.stderr)
        sys.exit(2)

    if command in PROCESS_COMMANDS:
        execute_from_command_line(sys.argv)
        return
    with acting(door=Door.COMMAND, username=operator_name(), target=command):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
