"""`/audit`: the audit trail for staff and admin users, filtered and paged (the same selector as GET /api/audit)."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit import selectors
from pumpserver.scopes import ADMIN, access_of_user
from web.forms.audit import AuditFilterForm
from web.views.base import Pager, page_login_required, partial_request
from web.views.permissions import refused_page

ENTRIES_PER_PAGE = 50
FILTERS = ("object_type", "object_id", "door", "user", "since")


def may_read_audit(user) -> bool:
    return user.is_staff or access_of_user(user).allows(ADMIN)


@page_login_required
@require_GET
def audit_list(request):
    """Who changed what, from which door, with the fields before and after; refused calls too."""
    if not may_read_audit(request.user):
        return refused_page(request, scope=ADMIN)
    form = AuditFilterForm(request.GET or None)
    filters, page = {}, 1
    if form.is_bound and form.is_valid():
        filters = {name: form.cleaned_data.get(name) or None for name in FILTERS}
        page = form.cleaned_data.get("page") or 1
    pager = Pager(page, ENTRIES_PER_PAGE)
    found = selectors.entries(**filters)
    total = found.count()
    context = {"form": form, "entries": list(found[pager.offset:pager.offset + pager.limit]), "total": total,
               "object_types": selectors.object_types(), **pager.context(total, query=request.GET)}
    template = "audit/list.html"
    return render(request, f"{template}#entries" if partial_request(request) else template, context)
