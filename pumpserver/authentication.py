"""API tokens: `Authorization: Token <key>` (DRF's form) and `Authorization: Bearer <key>` (what MCP clients send)."""

from rest_framework.authentication import TokenAuthentication, get_authorization_header


class TokenOrBearerAuthentication(TokenAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) == 2 and parts[0].lower() == b"bearer":
            return self.authenticate_credentials(parts[1].decode("latin-1"))
        return super().authenticate(request)
