"""Files browsers ask for at fixed paths: `/favicon.ico` (the pages also link static/favicon.svg)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

FAVICON = (Path(settings.BASE_DIR) / "static" / "favicon.ico").read_bytes()  # 4 KB, read once


@require_safe
@cache_control(public=True, max_age=86_400)
def favicon(request):
    """The 32×32 icon, open to everyone (browsers ask for it before anyone logs in)."""
    return HttpResponse(FAVICON, content_type="image/x-icon")
