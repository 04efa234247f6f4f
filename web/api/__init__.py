from web.api import auth_schema  # noqa: F401  (registers the token scheme with drf-spectacular)
