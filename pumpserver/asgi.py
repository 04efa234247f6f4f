"""ASGI entry point for daphne: pages, API, admin and MCP in one application.

Routing (Channels): `/mcp…` paths go to the MCP transports (web.mcp.transport: the SSE stream is a Channels
consumer, Streamable HTTP the SDK's session manager); everything else goes to Django, with static files served
in-process for a one-command setup. The lifespan scope (sent by servers such as uvicorn, not by daphne) starts and
stops the MCP session manager.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")

# Django is set up first: the MCP modules import models and settings.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from web.mcp import transport  # noqa: E402

application = ProtocolTypeRouter({
    "http": URLRouter([
        *transport.mcp_routes(),
        re_path(r"", ASGIStaticFilesHandler(django_application)),
    ]),
    "lifespan": transport.lifespan,
})
