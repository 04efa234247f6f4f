"""API tokens: the one place that issues, checks and revokes them (pumpserver.models.ApiToken).

A key is shown once, when it is issued; only its SHA-256 hash is stored. The REST API accepts a key as
`Authorization: Token <key>` or `Bearer <key>` (pumpserver.authentication), MCP as `Bearer <key>`
(web.mcp.transport); both call `token_for_key`. A token expires API_TOKEN_DEFAULT_DAYS after it is issued unless
it is issued without an expiry.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pumpserver.changes import announce
from pumpserver.models import ApiToken
from pumpserver.scopes import ADMIN, check_scopes

PREFIX_LENGTH = 8
MAX_KEY_LENGTH = 128
# last_used_at is written at most this often per token: a busy agent does not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
DEFAULT_EXPIRY = "default"  # `expires_in` of issue_api_token: API_TOKEN_DEFAULT_DAYS from now
_DURATION = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class TokenRefused(Exception):
    """A key that does not authenticate; the message says why (unknown, expired, revoked, inactive user)."""


@dataclass(frozen=True)
class IssuedToken:
    """A new token and its key: the only moment the key exists outside the caller's hands."""

    token: ApiToken
    key: str


def key_hash(key: str | None) -> str:
    """SHA-256 hex of a key: how tokens are stored, rate-counted and named in the audit trail ("" for no key)."""
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


def presented_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Token <key>` or `Bearer <key>` header, as presented (not checked), else None."""
    parts = (authorization or "").split()
    if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
        return parts[1]
    return None


def parse_expiry(text: str) -> timedelta | None:
    """`30d`, `12h`, `2w` → a period; `never` → None (no expiry); ValueError with a readable message otherwise."""
    if text.strip().lower() == "never":
        return None
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"expiry {text!r} is not a period such as 30d, 12h or 2w, or 'never'")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


def default_expiry() -> timedelta:
    return timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)


def issue_api_token(*, user, scopes=(ADMIN,), name: str = "", expires_in: timedelta | None | str = DEFAULT_EXPIRY,
                    model_ids=None) -> IssuedToken:
    """A new token for `user`. `scopes` defaults to admin (what every token could do before scopes existed);
    `expires_in` is a period, None for no expiry, or API_TOKEN_DEFAULT_DAYS by default; `model_ids` limits the
    token to those models (None: every model). ValueError names a bad scope or model id."""
    scopes = check_scopes(scopes)
    if model_ids is not None:
        model_ids = sorted({int(model_id) for model_id in model_ids})
        if not model_ids or min(model_ids) < 1:
            raise ValueError("model ids must be positive integers (leave them out for every model)")
    if expires_in == DEFAULT_EXPIRY:
        expires_in = default_expiry()
    now = timezone.now()
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip()[:100], key_hash=key_hash(key), prefix=key[:PREFIX_LENGTH], scopes=scopes,
        model_ids=model_ids, created_at=now, expires_at=now + expires_in if expires_in is not None else None,
    )
    announce(action="create", object_type="pumpserver.apitoken", object_id=token.pk, after=_described(token))
    return IssuedToken(token=token, key=key)


def _described(token: ApiToken) -> dict:
    """A token as the audit trail shows it: never the key or its hash, only what identifies and limits it."""
    return {"user": token.user.get_username(), "name": token.name, "prefix": token.prefix, "scopes": token.scopes,
            "model_ids": token.model_ids, "expires_at": token.expires_at.isoformat() if token.expires_at else None}


def revoke_token(*, token: ApiToken) -> ApiToken:
    """Stop the token working at once (kept, marked revoked, so lists show what it was)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        announce(action="revoke", object_type="pumpserver.apitoken", object_id=token.pk, before={"revoked_at": None},
                 after={"revoked_at": token.revoked_at.isoformat()})
    return token


def revoke_user_tokens(*, user, keep: ApiToken | None = None) -> int:
    """Revoke every active token of `user` (but `keep`); the count revoked."""
    with transaction.atomic():
        tokens = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
        if keep is not None:
            tokens = tokens.exclude(pk=keep.pk)
        now = timezone.now()
        for token_id in tokens.values_list("pk", flat=True):
            announce(action="revoke", object_type="pumpserver.apitoken", object_id=token_id,
                     before={"revoked_at": None}, after={"revoked_at": now.isoformat()})
        return tokens.update(revoked_at=now)


def token_for_key(*, key: str) -> ApiToken:
    """The token a presented key belongs to, with its user; TokenRefused (with the reason) when it may not be used.

    Notes the use in last_used_at (at most once a minute per token)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise TokenRefused("Invalid token.")
    token = ApiToken.objects.select_related("user").filter(key_hash=key_hash(key)).first()
    if token is None:
        raise TokenRefused("Invalid token.")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(f"Token {token.prefix}… was revoked on {_when(token.revoked_at)}.")
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRefused(f"Token {token.prefix}… expired on {_when(token.expires_at)}; create a new one.")
    if not token.user.is_active:
        raise TokenRefused("User inactive or deleted.")
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def _when(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def tokens_of(*, user=None):
    """Tokens newest first (every user's when `user` is None), with their users."""
    tokens = ApiToken.objects.select_related("user")
    return tokens.filter(user=user) if user is not None else tokens

