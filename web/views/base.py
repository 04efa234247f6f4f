"""What every page shares: login for pages (htmx aware), partial requests, verdict colours."""

from __future__ import annotations

from functools import wraps
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django_htmx.http import HttpResponseClientRedirect

VERDICT_COLORS = {"success": "#16a34a", "failed": "#dc2626", "expired": "#9ca3af", "pending": "#f59e0b"}


def page_login_required(view):
    """login_required for pages; an htmx request whose session ended is sent to the login page as a whole."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if getattr(request, "htmx", False):
            current = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?next={quote(current)}")
        return redirect_to_login(request.get_full_path())

    return wrapper


def partial_request(request) -> bool:
    """An htmx request that wants a fragment (not a history restore, which needs the whole page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request
