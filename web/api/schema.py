"""What the OpenAPI schema says beyond each view's own declarations: how to authenticate (our token scheme) and the
answers the request limits give on every operation (pumpserver.limits): 429 with Retry-After, 413 for a body over
its limit. DEFAULT_SCHEMA_CLASS names LimitedAutoSchema, so every schema generation imports this module and
registers the token scheme with it."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

BODY_METHODS = ("POST", "PUT", "PATCH")

RATE_LIMITED = {
    "description": "rate limit exceeded (API_RATE_LIMIT requests per minute per token); retry after the header's "
                   "seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds until the next window"}},
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"detail": {"type": "string"}, "limit": {"type": "integer"},
                       "window_seconds": {"type": "integer"}, "retry_after": {"type": "integer"}},
        "required": ["detail"],
    }}},
}
BODY_TOO_LARGE = {
    "description": "request body over its limit (API_MAX_BODY_BYTES; model uploads MODEL_UPLOAD_MAX_BYTES)",
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"detail": {"type": "string"}, "limit_bytes": {"type": "integer"},
                       "setting": {"type": "string"}},
        "required": ["detail"],
    }}},
}


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


class LimitedAutoSchema(AutoSchema):
    """Every operation documents the limits' answers, as the middleware gives them (views opt out of the rate limit
    with `rate_limited = False`)."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        if getattr(self.view, "rate_limited", True):
            responses.setdefault("429", RATE_LIMITED)
        if self.method in BODY_METHODS:
            responses.setdefault("413", BODY_TOO_LARGE)
        return operation
