"""python manage.py create_api_token USERNAME — print an API token for the user (created if missing)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from pumpserver.tokens import issue_api_token


class Command(BaseCommand):
    help = "Print USERNAME's API token (for Authorization: Token <key> or Bearer <key>); --create adds the user."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the user if it does not exist")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token")

    def handle(self, *args, username: str, create: bool, rotate: bool, **options):
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user named {username!r} (add --create to create one)")
            user = users.objects.create_user(username=username)
        token = issue_api_token(user=user, replace=rotate)
        self.stdout.write(token.key)
