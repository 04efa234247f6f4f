"""Create the admin user on first start: password from ADMIN_PASSWORD, or generated and kept in var/admin-password
(mode 0600) for `make run`'s start-up box (login_box) to show once."""

import os

from django.core.management.base import BaseCommand

from pumpserver.account_services import admin_username, ensure_admin_user, password_file


class Command(BaseCommand):
    help = "Create the superuser ADMIN_USERNAME (default admin) if it does not exist yet."

    def handle(self, *args, **options):
        login = ensure_admin_user(username=admin_username(), password=os.environ.get("ADMIN_PASSWORD") or None)
        if not login.created:
            self.stdout.write(f"Admin user '{login.username}' exists; its password is unchanged.")
        elif login.generated:
            self.stdout.write(
                f"Created admin user '{login.username}' with a generated password, kept in {password_file()} "
                "(make run shows it once it has started; make admin-password sets a new one)."
            )
        else:
            self.stdout.write(f"Created admin user '{login.username}' with the password from ADMIN_PASSWORD.")
