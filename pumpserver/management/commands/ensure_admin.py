"""Create the admin user on first start: password from ADMIN_PASSWORD, or generated and printed once."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser ADMIN_USERNAME (default admin) if it does not exist yet."

    def handle(self, *args, **options):
        username = os.environ.get("ADMIN_USERNAME", "admin")
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user '{username}' exists; its password is unchanged.")
            return
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        if os.environ.get("ADMIN_PASSWORD"):
            self.stdout.write(f"Created admin user '{username}' with the password from ADMIN_PASSWORD.")
        else:
            self.stdout.write(self.style.WARNING(
                f"Created admin user '{username}' with password: {password}  (shown once; change it in the admin)"
            ))
