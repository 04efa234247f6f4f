"""How the OpenAPI schema describes our token authentication (pumpserver.authentication): one `apiToken` scheme,
an `Authorization` header carrying `Token <key>` or `Bearer <key>`. Imported by web/api/__init__.py so that every
schema generation sees it."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    target_class = "pumpserver.authentication.TokenOrBearerAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` or `Bearer <key>` (python manage.py create_api_token USER --scope read)",
        }
