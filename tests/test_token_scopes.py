"""What each scope may do, through every door: every /api/ route declares its scope, read/operate/admin tokens are
allowed exactly their routes and MCP tools (over SSE and Streamable HTTP, with the official client), a token
limited to some models touches only those, and pages follow the user's groups."""

from __future__ import annotations

import re

import anyio
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN, OPERATE, RANK, READ
from pumpserver.tokens import issue_api_token
from tests.test_mcp import register, run_sse, run_streamable, server  # noqa: F401  (server: the daphne fixture)
from web.api.scopes import HasDeclaredScope, declared_scope
from web.mcp.server import TOOLS  # importing the server registers every tool

pytestmark = pytest.mark.django_db(transaction=True)

METHODS = ("get", "post", "put", "patch", "delete")
PUBLIC_VIEWS = {"SpectacularAPIView", "SpectacularSwaggerView", "HealthView", "RootHealthView", "ReadinessView"}
MISSING = "987654"  # an id no row has: a refused call is 403 before the view looks it up, an allowed one 404


def api_routes() -> list[tuple[str, type]]:
    """(path with ids filled in, view class) of every DRF view under /api/."""
    routes = []

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "cls", None)
                path = prefix + str(pattern.pattern)
                if view is not None and path.startswith("api/"):
                    routes.append((re.sub(r"<(?:int:|str:)?\w+>", MISSING, "/" + path), view))

    walk(get_resolver().url_patterns, "")
    return routes


def implemented(view) -> list[str]:
    return [method.upper() for method in METHODS if hasattr(view, method)]


def test_every_api_route_declares_a_scope_for_every_method():
    routes = api_routes()
    assert len(routes) > 40
    undeclared = [f"{method} {path}" for path, view in routes if view.__name__ not in PUBLIC_VIEWS
                  for method in implemented(view) if declared_scope(view, method) is None]
    assert undeclared == []
    unchecked = [path for path, view in routes if view.__name__ not in PUBLIC_VIEWS
                 and view.__name__ != "MetricsView" and HasDeclaredScope not in view.permission_classes]
    assert unchecked == []


def token_client(scope: str, django_user_model, **options) -> APIClient:
    user = django_user_model.objects.create_user(username=f"{scope}-{len(options)}-{id(options)}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user=user, scopes=[scope], **options).key}")
    return client


@pytest.mark.parametrize("scope", [READ, OPERATE, ADMIN])
def test_each_scope_is_allowed_exactly_the_routes_it_covers(scope, django_user_model):
    """A method declared above the token's scope answers 403 naming the scope; every other one is not refused."""
    client = token_client(scope, django_user_model)
    wrong = []
    for path, view in api_routes():
        if view.__name__ in PUBLIC_VIEWS:
            continue
        for method in implemented(view):
            needed = declared_scope(view, method)
            answer = getattr(client, method.lower())(path, {}, format="json")
            refused = answer.status_code == 403
            if refused != (RANK[needed] > RANK[scope]):
                wrong.append(f"{method} {path}: {answer.status_code}")
            elif refused and f"needs the '{needed}' scope" not in answer.json()["detail"]:
                wrong.append(f"{method} {path}: {answer.json()}")
    assert wrong == []


def test_scopes_of_named_routes(django_user_model):
    read, operate = token_client(READ, django_user_model), token_client(OPERATE, django_user_model)
    refused = read.post(f"/api/models/{MISSING}/activate")
    assert refused.status_code == 403
    assert refused.json()["detail"] == (f"POST /api/models/{MISSING}/activate needs the 'operate' scope; this token "
                                        "has 'read'.")
    assert operate.post(f"/api/models/{MISSING}/activate").status_code == 404
    assert operate.delete(f"/api/models/{MISSING}").status_code == 403  # delete is admin
    assert operate.post("/api/config", {}, format="json").status_code == 403  # global configuration is admin
    assert read.get("/api/config").status_code == 200


def test_a_model_limited_token_touches_only_its_models(django_user_model):
    mine = register("xgb", filename="model_xgb.json")
    other = register("xgb", filename="model_xgb.json", meta_overrides={"id": 902, "name": "other"})
    client = token_client(READ, django_user_model, model_ids=[mine.pk])
    assert [model["id"] for model in client.get("/api/models?include_inactive=true").json()["models"]] == [mine.pk]
    assert client.get(f"/api/models/{mine.pk}/statistics").status_code == 200
    refused = client.get(f"/api/models/{other.pk}/statistics")
    assert refused.status_code == 403 and f"model {other.pk} is not among" in refused.json()["detail"]
    assert client.get("/api/alerts").status_code == 403  # every model's rows: it must name its model
    assert client.get(f"/api/alerts?active_model_id={mine.pk}").status_code == 200
    assert client.get(f"/api/alerts?active_model_id={other.pk}").status_code == 403
    assert client.get(f"/api/models/compare?ids={mine.pk},{other.pk}").status_code == 403
    for path in ("/api/stats", "/api/logs"):  # figures and log lines of every model
        refused = client.get(path)
        assert refused.status_code == 403
        assert refused.json()["detail"] == f"GET {path} covers every model; this token is limited to models {mine.pk}."


# --- MCP over both transports -----------------------------------------------------------------------------------------

ARGUMENTS = {"active_model_id": int(MISSING), "model_id": int(MISSING), "alert_id": int(MISSING),
             "run_id": int(MISSING), "coin_id": "none", "new_name": "x", "start": "2026-01-01T00:00:00Z",
             "end": "2026-01-02T00:00:00Z", "ids": [int(MISSING), int(MISSING) + 1], "config": {"api_port": 8000}}


def arguments_for(name: str) -> dict:
    schema = TOOLS[name].input_schema
    return {key: ARGUMENTS[key] for key in schema["required"] if key in ARGUMENTS}


def tools_of(scope: str) -> set[str]:
    return {name for name, spec in TOOLS.items() if RANK[spec.scope] <= RANK[scope]}


def test_debug_tools_need_admin_and_every_read_only_tool_else_read():
    assert TOOLS["debug_coin_metrics"].scope == ADMIN and TOOLS["debug_active_models"].scope == ADMIN
    assert all(spec.scope == READ for name, spec in TOOLS.items() if spec.read_only and not name.startswith("debug_"))
    assert all(spec.scope in (OPERATE, ADMIN) for spec in TOOLS.values() if not spec.read_only)


@pytest.mark.parametrize("scope", [READ, OPERATE])
def test_mcp_lists_and_runs_only_what_the_token_may_call(server, scope, django_user_model):  # noqa: F811
    user = django_user_model.objects.create_user(username=f"mcp-{scope}")
    key = issue_api_token(user=user, scopes=[scope]).key
    allowed = tools_of(scope)

    async def work(agent):
        listed = {tool.name for tool in (await agent.session.list_tools()).tools}
        refusals, unexpected = {}, []
        for name in sorted(TOOLS):
            if name in allowed and not TOOLS[name].read_only:
                continue  # allowed writes are not run here (the other tests change things on purpose)
            is_error, data = await agent.call(name, arguments_for(name))
            if name in allowed:
                if is_error and "scope" in data["error"]:
                    unexpected.append((name, data["error"]))
            else:
                refusals[name] = data["error"]
        return listed, refusals, unexpected

    for run in (lambda: anyio.run(run_sse, server["base"], key, work),
                lambda: anyio.run(run_streamable, server["base"], key, work)):
        listed, refusals, unexpected = run()
        assert listed == allowed
        assert unexpected == []
        assert set(refusals) == set(TOOLS) - allowed
        for name, error in refusals.items():
            assert error == f"{name} needs the '{TOOLS[name].scope}' scope; this token has '{scope}'."


def test_mcp_model_limited_token(server, django_user_model):  # noqa: F811
    mine = register("xgb", filename="model_xgb.json")
    other = register("xgb", filename="model_xgb.json", meta_overrides={"id": 902, "name": "other"})
    user = django_user_model.objects.create_user(username="mcp-limited")
    key = issue_api_token(user=user, scopes=[OPERATE], model_ids=[mine.pk]).key

    async def work(agent):
        listed = await agent.ok("list_active_models", {"include_inactive": True})
        refused = await agent.error("deactivate_model", {"active_model_id": other.pk})
        allowed = await agent.ok("get_model_statistics", {"active_model_id": mine.pk})
        tools = {tool.name for tool in (await agent.session.list_tools()).tools}
        server_wide = await agent.error("get_stats", {})
        return listed, refused, allowed, tools, server_wide

    listed, refused, allowed, tools, server_wide = anyio.run(run_streamable, server["base"], key, work)
    assert [model["id"] for model in listed["models"]] == [mine.pk]
    assert refused == f"model {other.pk} is not among the models this token may use ({mine.pk})."
    assert allowed["active_model_id"] == mine.pk
    assert "get_model_statistics" in tools and not tools & {"get_stats", "get_logs"}
    assert server_wide == f"get_stats covers every model; this token is limited to models {mine.pk}."


# --- pages follow the user's groups ----------------------------------------------------------------------------------


def page_client(django_user_model, scope: str | None) -> Client:
    user = django_user_model.objects.create_user(username=f"page-{scope}", password="a-long-test-password-1")
    if scope is not None:
        set_role(user=user, scope=scope)
    client = Client()
    client.force_login(user)
    return client


def test_pages_follow_the_groups(django_user_model):
    model = register("xgb", filename="model_xgb.json")
    viewer = page_client(django_user_model, None)  # no group: may read
    listing = viewer.get("/models/").content.decode()
    assert "Deactivate" not in listing and "Delete" not in listing and "Import or upload" not in listing
    refused = viewer.post(f"/models/{model.pk}/deactivate/")
    assert refused.status_code == 403 and "needs the 'operate' scope" in refused.content.decode()
    assert viewer.get(f"/models/{model.pk}/").status_code == 200

    operator = page_client(django_user_model, OPERATE)
    listing = operator.get("/models/").content.decode()
    assert "Deactivate" in listing and "btn-danger\">Delete" not in listing
    assert operator.post(f"/models/{model.pk}/deactivate/").status_code == 200
    assert operator.post(f"/models/{model.pk}/delete/").status_code == 403
    assert operator.post("/settings/", {"training_service_url": ""}).status_code == 403

    admin = page_client(django_user_model, ADMIN)
    assert "Import or upload" in admin.get("/models/").content.decode()
    assert admin.post(f"/models/{model.pk}/delete/").status_code == 302  # deleted, back to the list
    assert not type(model).objects.filter(pk=model.pk).exists()


def test_session_rest_calls_follow_the_groups(django_user_model):
    model = register("xgb", filename="model_xgb.json")
    viewer = page_client(django_user_model, READ)
    assert viewer.get("/api/models").status_code == 200
    assert viewer.post(f"/api/models/{model.pk}/deactivate").status_code == 403
    operator = page_client(django_user_model, OPERATE)
    assert operator.post(f"/api/models/{model.pk}/deactivate").status_code == 200
