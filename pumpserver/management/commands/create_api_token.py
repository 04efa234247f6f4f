"""python manage.py create_api_token USER [--scope read]… [--expires 30d|never] [--model ID]… [--name N] [--create]

Prints a new API token's key (once: only its hash is stored). Without --scope the token is `admin`, as every token
was before scopes existed, so scripts that ran `create_api_token USER` keep working.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from pumpserver.scopes import ADMIN, SCOPES
from pumpserver.tokens import DEFAULT_EXPIRY, issue_api_token, parse_expiry, revoke_user_tokens


class Command(BaseCommand):
    help = ("Create an API token for USER and print its key (shown once). For Authorization: Token <key> or "
            "Bearer <key>.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--scope", action="append", choices=SCOPES, dest="scopes",
                            help="read, operate or admin (repeatable; admin includes operate includes read). "
                                 "Default: admin")
        parser.add_argument("--expires", default=None,
                            help="a period such as 30d, 12h or 2w, or 'never' "
                                 f"(default: API_TOKEN_DEFAULT_DAYS, now {settings.API_TOKEN_DEFAULT_DAYS} days)")
        parser.add_argument("--model", action="append", type=int, dest="model_ids", metavar="ID",
                            help="limit the token to this model id (repeatable; default: every model)")
        parser.add_argument("--name", default="", help="what the token is for (shown in lists)")
        parser.add_argument("--create", action="store_true", help="create the user if it does not exist")
        parser.add_argument("--rotate", action="store_true", help="revoke the user's other tokens")

    def handle(self, *args, username: str, scopes, expires, model_ids, name: str, create: bool, rotate: bool,
               **options):
        try:
            expires_in = DEFAULT_EXPIRY if expires is None else parse_expiry(expires)
        except ValueError as exc:
            raise CommandError(f"--expires: {exc}") from None
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user named {username!r} (add --create to create one)")
            user = users.objects.create_user(username=username)
        try:
            issued = issue_api_token(user=user, scopes=scopes or [ADMIN], name=name, expires_in=expires_in,
                                     model_ids=model_ids)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if rotate:
            revoke_user_tokens(user=user, keep=issued.token)
        if not scopes:
            self.stderr.write("No --scope given: this token is admin (everything). Use --scope read for an agent "
                              "that only observes.")
        self.stdout.write(issued.key)
