"""Pages follow the user's permissions (pumpserver.scopes: the groups viewer, operator, admin; a superuser is
admin): a POST the user may not make answers 403 here, and the templates hide its button (`access.can_operate`,
`access.can_admin` from the context processor)."""

from __future__ import annotations

from functools import wraps

from django.http import HttpResponseForbidden

from audit.services import record_refusal
from pumpserver.scopes import GROUP_OF_SCOPE, access_of_user


def refused_page(request, *, scope: str) -> HttpResponseForbidden:
    """The one place a page refuses a user for their scope: recorded in the audit trail, then 403 saying why."""
    access = access_of_user(request.user)
    record_refusal(door="page", user=request.user, target=f"{request.method} {request.path}", missing_scope=scope)
    message = access.missing_scope_message(scope, action="This action")
    return HttpResponseForbidden(f"{message} An admin can add you to the '{GROUP_OF_SCOPE[scope]}' group.",
                                 content_type="text/plain; charset=utf-8")


def post_needs(scope: str):
    """Decorator for a page view: its POSTs need `scope` (GETs stay open to every logged-in user)."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST" and not access_of_user(request.user).allows(scope):
                return refused_page(request, scope=scope)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
