"""What every page shares: login for pages (htmx aware), partial requests, paging, verdict colours and chart."""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django_htmx.http import HttpResponseClientRedirect

from web import charts

VERDICT_COLORS = {"success": "#16a34a", "failed": "#dc2626", "expired": "#9ca3af", "pending": "#f59e0b"}


def expired_alerts(statistics: dict) -> int:
    """Alerts of alert_statistics() whose horizon passed without a price (judged not_applicable)."""
    return statistics["expired"]


def verdict_chart(statistics: dict, *, height: int, empty_message: str):
    """One bar per verdict (success, failed, expired, pending) of alert_statistics(), in the verdict colours."""
    return charts.category_bars(
        [("success", statistics["alerts_success"], VERDICT_COLORS["success"]),
         ("failed", statistics["alerts_failed"], VERDICT_COLORS["failed"]),
         ("expired", expired_alerts(statistics), VERDICT_COLORS["expired"]),
         ("pending", statistics["alerts_pending"], VERDICT_COLORS["pending"])],
        title="Alert verdicts", y_unit="alerts", height=height, empty_message=empty_message,
    )


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


def wants_partial(request, name: str) -> bool:
    """An htmx request for the page's fragment `name` (`?partial=name`)."""
    return partial_request(request) and request.GET.get("partial") == name


@dataclass(frozen=True)
class Pager:
    """Page `page` (1-based) of a list shown `per_page` rows at a time: the selector's limit/offset and the links."""

    page: int
    per_page: int

    @property
    def limit(self) -> int:
        return self.per_page

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def context(self, total: int, *, query=None, drop: tuple[str, ...] = ("page",)) -> dict:
        """Template values for the page links; with `query` (request.GET) also `query`: it without `drop` keys."""
        pages = max(1, -(-total // self.per_page))
        context = {"page": self.page, "pages": pages, "has_previous": self.page > 1, "has_next": self.page < pages}
        if query is not None:
            query = query.copy()
            for key in drop:
                query.pop(key, None)
            context["query"] = query.urlencode()
        return context
