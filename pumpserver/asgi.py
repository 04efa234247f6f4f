"""ASGI entry point for daphne: pages, API and admin (static files served in-process for a one-command setup)."""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")

application = ASGIStaticFilesHandler(get_asgi_application())
