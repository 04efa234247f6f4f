"""JSON answers for everything under /api/ that no endpoint answers itself.

`api_not_found` is the last /api/ route (web/urls.py), so no /api/ path ever falls through to an HTML page:

- a path that names an endpoint but with an id that is not a whole number (`/api/models/abc`) → 404 whose body
  names the path parameter (`detail`, and the parameter as key, as a 400 names a bad query parameter); 404 because
  no resource has such an id, and it is the status every id endpoint documents;
- a path that differs from an endpoint only by its trailing slash (`/api/models/`, `/api/docs`) → 307 to it (the
  method and body are kept, as the existing server's redirect did);
- anything else → 404 `{"detail": …}`.

The `handler*` functions are the root URLconf's error views (pumpserver/urls.py): JSON under /api/, Django's own
pages elsewhere (they apply when DEBUG is off; with DEBUG on Django shows its debug pages). Form data over
DATA_UPLOAD_MAX_MEMORY_SIZE (= API_MAX_BODY_BYTES) reaches handler400 and answers 413, as pumpserver.limits does
for a body whose Content-Length is too large.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from pumpserver import limits

FALLBACK_NAME = "api-not-found"
_PROBE_ID = 987_654_321_123  # stands in for a path segment to find out whether an id was meant there


def _endpoint(path: str):
    """The route that takes `path`, unless it is only this fallback."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return None if match.url_name == FALLBACK_NAME else match


def _id_parameter(path: str) -> tuple[str, str] | None:
    """(parameter, segment) when `path` is an endpoint's path with a non-number where that endpoint takes an id."""
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if not segment or segment.isdigit():
            continue
        match = _endpoint("/".join([*segments[:index], str(_PROBE_ID), *segments[index + 1:]]))
        if match is None:
            continue
        for name, value in match.kwargs.items():
            if value == _PROBE_ID:  # an int converter took the probe: this parameter is an id
                return name, segment
    return None


@csrf_exempt  # a POST to a wrong path gets this 404, not a CSRF failure page
def api_not_found(request, unmatched: str = ""):
    path = request.path_info
    parameter = _id_parameter(path)
    if parameter is not None:
        name, segment = parameter
        problem = f"A whole number is required, not {segment!r}."
        return JsonResponse({"detail": f"{name}: {problem}", name: [problem]}, status=404)
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if other.rstrip("/") and _endpoint(other) is not None:
        query = request.META.get("QUERY_STRING", "")
        redirect = HttpResponseRedirect(other + (f"?{query}" if query else ""))
        redirect.status_code = 307
        return redirect
    return JsonResponse(
        {"detail": f"No API endpoint at {path} (method {request.method}). The endpoints are listed at /api/docs/."},
        status=404,
    )


def _is_api(request) -> bool:
    return request.path_info.startswith("/api/") or request.path_info == "/api"


def handler400(request, exception=None):
    if _is_api(request):
        if isinstance(exception, RequestDataTooBig):  # form data or a body read past DATA_UPLOAD_MAX_MEMORY_SIZE
            return JsonResponse(limits.body_too_large(limits.default_body_limit()), status=413)
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error; the server log has the details."}, status=500)
    return defaults.server_error(request)
