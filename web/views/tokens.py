"""`/tokens/`: a user's API tokens (every user's for admins): list, create (the key shown once), revoke."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from predictions import selectors as prediction_selectors
from pumpserver import tokens
from pumpserver.scopes import access_of_user
from web.forms.tokens import TokenForm
from web.views.base import page_login_required, partial_request

TEMPLATE = "pumpserver/tokens.html"


def _form(request, data=None) -> TokenForm:
    models = prediction_selectors.list_models(include_inactive=True)
    return TokenForm(data, access=access_of_user(request.user), models=models)


def _context(request, *, form: TokenForm, new_key: str | None = None, new_token=None) -> dict:
    access = access_of_user(request.user)
    every_user = access.can_admin
    listed = tokens.tokens_of(user=None if every_user else request.user)
    return {"form": form, "tokens": listed, "every_user": every_user, "new_key": new_key, "new_token": new_token}


@page_login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """GET lists the tokens; POST creates one for the logged-in user, with at most the user's own scope."""
    if request.method == "GET":
        return render(request, TEMPLATE, _context(request, form=_form(request)))
    form = _form(request, request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, _context(request, form=form), status=400)
    issued = tokens.issue_api_token(
        user=request.user, scopes=[form.cleaned_data["scope"]], name=form.cleaned_data["name"],
        expires_in=form.cleaned_data["expires"], model_ids=form.cleaned_data["model_ids"],
    )
    context = _context(request, form=_form(request), new_key=issued.key, new_token=issued.token)
    return render(request, f"{TEMPLATE}#tokens" if partial_request(request) else TEMPLATE, context)


@page_login_required
@require_POST
def token_revoke(request, token_id: int):
    """Revoke one of the user's tokens (an admin: anyone's)."""
    owner = None if access_of_user(request.user).can_admin else request.user
    token = tokens.tokens_of(user=owner).filter(pk=token_id).first()
    if token is None:
        raise Http404(f"no token {token_id} of yours")
    tokens.revoke_token(token=token)
    context = _context(request, form=_form(request))
    return render(request, f"{TEMPLATE}#tokens" if partial_request(request) else TEMPLATE, context)
