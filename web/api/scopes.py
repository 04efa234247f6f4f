"""The scope every REST endpoint needs (pumpserver.scopes), checked before the view runs.

Each view declares `required_scopes`, the scope per HTTP method (HEAD as GET; OPTIONS, DRF's description of the
endpoint, needs `read`). `HasDeclaredScope` is the API's default permission class (settings.REST_FRAMEWORK): a
method that declares no scope is refused, so a new endpoint cannot be open by omission (tests/test_token_scopes.py
lists every /api/ route and fails on one without a declaration).

A token limited to some models may only touch those: a model id in the path or the query string (`active_model_id`,
`active_model_ids`, or the comma-separated list a view names in `model_list_parameter`) outside its list is refused
with 403 naming the model; a view that lists every model's rows (`lists_every_model`) needs such a token to name
its models; views with model ids elsewhere (a body, an alert, a backtest run) call `check_model` themselves.
"""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from audit.services import record_refusal
from pumpserver.scopes import READ, access_of_request

MODEL_QUERY_PARAMETERS = ("active_model_id",)


def declared_scope(view, method: str) -> str | None:
    """The scope `view` (class or instance) declares for `method`; None when it declares none."""
    method = method.upper()
    if method == "OPTIONS":
        return READ
    declared = getattr(view, "required_scopes", None) or {}
    return declared.get("GET" if method == "HEAD" else method)


def refuse(request, *, message: str, missing: str) -> None:
    """The one place a REST call is refused for its scope or a model: recorded in the audit trail, then 403."""
    token = getattr(request, "auth", None)
    user = getattr(request, "user", None)
    record_refusal(door="rest", user=user if getattr(user, "is_authenticated", False) else None,
                   token_hash=getattr(token, "key_hash", ""), target=f"{request.method} {request.path}",
                   missing_scope=missing)
    raise PermissionDenied(message)


def check_model(request, model_id) -> None:
    """403 naming the model when the caller's token is limited to other models."""
    access = access_of_request(request)
    if not access.allows_model(model_id):
        refuse(request, message=access.model_message(model_id), missing=f"model {model_id}")


def allows_model(request, model_id) -> bool:
    """Whether the caller may see this model (lists leave out the others)."""
    return access_of_request(request).allows_model(model_id)


def allowed_model_ids(request) -> list[int] | None:
    """The models a model-limited token may use; None (every model) for any other caller."""
    model_ids = access_of_request(request).model_ids
    return sorted(model_ids) if model_ids is not None else None


class HasDeclaredScope(BasePermission):
    """Authenticated, holding the scope the view declares for the method, and (for a model-limited token) asking
    about one of its models."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 (or 403 for a session) as before
        scope = declared_scope(view, request.method)
        if scope is None:
            refuse(request, message=f"{request.method} {request.path} declares no scope; it is refused until it does.",
                   missing="undeclared")
        access = access_of_request(request)
        if not access.allows(scope):
            refuse(request, message=access.missing_scope_message(scope, action=f"{request.method} {request.path}"),
                   missing=scope)
        named = _named_models(request, view)
        for model_id in named:
            check_model(request, model_id)
        if access.model_ids is not None and getattr(view, "server_wide", False):
            refuse(request, missing="model",
                   message=access.server_wide_message(action=f"{request.method} {request.path}"))
        if access.model_ids is not None and not named and getattr(view, "lists_every_model", False):
            refuse(request, missing="model",
                   message=f"this token is limited to models {access.model_list()}: name one with active_model_id.")
        return True


def _named_models(request, view) -> list:
    named = []
    path_id = (getattr(view, "kwargs", None) or {}).get("active_model_id")
    if path_id is not None:
        named.append(path_id)
    for name in MODEL_QUERY_PARAMETERS:
        value = request.query_params.get(name)
        if value not in (None, "") and str(value).isdigit():
            named.append(int(value))
    values = request.query_params.getlist("active_model_ids")
    list_parameter = getattr(view, "model_list_parameter", None)
    if list_parameter:
        values += request.query_params.get(list_parameter, "").split(",")
    named += [int(value) for value in values if value.strip().isdigit()]
    return named
