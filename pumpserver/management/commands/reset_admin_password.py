"""python manage.py reset_admin_password (`make admin-password`): give the admin user a new password, keep it in
var/admin-password (mode 0600) and print it."""

from django.core.management.base import BaseCommand

from pumpserver.account_services import admin_username, password_file, reset_admin_password


class Command(BaseCommand):
    help = "Set a new generated password for ADMIN_USERNAME (default admin), creating the user if missing; print it."

    def handle(self, *args, **options):
        login = reset_admin_password(username=admin_username())
        state = "Created admin user" if login.created else "New password for admin user"
        self.stdout.write(f"{state} '{login.username}': {login.password}")
        self.stdout.write(f"(kept in {password_file()}, readable by you only; log in at /accounts/login/ or on the first page)")
