"""API tokens: `Authorization: Token <key>` (DRF's form) and `Authorization: Bearer <key>` (what MCP clients send).

`request.auth` is the ApiToken, whose scopes the permission classes read (pumpserver.scopes.access_of_request).
"""

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from pumpserver.tokens import TokenRefused, token_for_key

KEYWORDS = (b"token", b"bearer")


class TokenOrBearerAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: send 'Authorization: Token <key>' or 'Bearer <key>'.")
        try:
            token = token_for_key(key=parts[1].decode("latin-1"))
        except TokenRefused as exc:
            raise AuthenticationFailed(str(exc)) from None
        return token.user, token

    def authenticate_header(self, request):
        return "Token"  # makes a refused key a 401 (with WWW-Authenticate) rather than a 403
