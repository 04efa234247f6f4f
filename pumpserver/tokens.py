"""API tokens (DRF's `authtoken`): the one place that issues them and the reads the front doors share.

A user has at most one token. The REST API accepts it as `Authorization: Token <key>` or `Bearer <key>`
(pumpserver.authentication), MCP as `Bearer <key>` (web.mcp.transport).
"""

from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token


def issue_api_token(*, user, replace: bool = True) -> Token:
    """`user`'s API token. With `replace` (the default) a new key replaces the old one, which stops working at once;
    without it an existing token is kept and only a missing one is created."""
    with transaction.atomic():
        if replace:
            Token.objects.filter(user=user).delete()
        token, _created = Token.objects.get_or_create(user=user)
    return token


def token_of(*, user) -> Token | None:
    """The user's current token, if any."""
    return Token.objects.filter(user=user).first()


def active_user_for_key(*, key: str):
    """The active user a token key belongs to; None for an unknown key or a deactivated user."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user
