"""The audit trail: a write through each door (page, REST, MCP, Django admin, management command) is recorded with its
door, user, object and the fields before and after; refused calls are recorded; GET /api/audit; retention."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts import tasks
from audit.context import Door, acting
from audit.models import AuditEntry
from audit.services import record_call, record_change
from modelregistry.models import ActiveModel
from pumpserver.account_services import ensure_admin_user, reset_admin_password
from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN, READ
from pumpserver.tokens import issue_api_token, revoke_token
from tests import parity
from tests.conftest import run_manage, test_database_url
from tests.test_mcp import Daphne, run_streamable
from tests.test_pages import make_model

MODEL_TYPE = "modelregistry.activemodel"


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def only_entry(**filters) -> AuditEntry:
    found = list(AuditEntry.objects.filter(**filters))
    assert len(found) == 1, [str(entry) for entry in AuditEntry.objects.all()]
    return found[0]


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user(username="ops-anna", password="a-long-test-password-1")
    set_role(user=user, scope=ADMIN)
    return user


def token_client(user, *scopes) -> tuple[APIClient, str]:
    key = issue_api_token(user=user, scopes=scopes or (ADMIN,)).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, key


# --- the doors ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_page_form_post_is_recorded_with_door_user_and_the_changed_fields(operator):
    model = make_model("demo", custom_name="Old name")
    client = Client()
    client.force_login(operator)

    assert client.post(f"/models/{model.pk}/rename/", {"custom_name": "Moon finder"}).status_code in (200, 302)
    entry = only_entry(object_type=MODEL_TYPE, object_id=str(model.pk))
    assert (entry.door, entry.user, entry.username, entry.action) == ("page", operator, "ops-anna", "update")
    assert entry.before == {"custom_name": "Old name"} and entry.after == {"custom_name": "Moon finder"}
    assert entry.target == f"POST /models/{model.pk}/rename/" and entry.token_hash == ""

    client.post("/settings/", {"training_service_url": "http://training.example:8000/api", "n8n_webhook_url": "",
                               "api_port": 8000, "streamlit_port": 8501})
    config = only_entry(object_type="config")
    assert config.door == "page" and config.after["training_service_url"] == "http://training.example:8000/api"
    assert config.before["training_service_url"] != config.after["training_service_url"]


@pytest.mark.django_db
def test_a_rest_write_is_recorded_with_the_token_hash(operator):
    model = make_model("demo", alert_threshold=0.7)
    client, key = token_client(operator, ADMIN)

    response = client.patch(f"/api/models/{model.pk}/alert-config", {"alert_threshold": 0.85}, format="json")
    assert response.status_code == 200, response.content
    entry = only_entry(object_type=MODEL_TYPE, object_id=str(model.pk))
    assert (entry.door, entry.username, entry.token_hash) == ("rest", "ops-anna", sha256(key))
    assert entry.before["alert_threshold"] == 0.7 and entry.after["alert_threshold"] == 0.85

    assert client.post("/api/config", {"n8n_webhook_url": "http://127.0.0.1:5678/hook"}, format="json").status_code == 200
    config = only_entry(object_type="config", door="rest")
    assert config.before == {"n8n_webhook_url": ""} and config.after == {"n8n_webhook_url": "http://127.0.0.1:5678/hook"}

    assert client.delete(f"/api/models/{model.pk}").status_code in (200, 204)
    deleted = only_entry(object_type=MODEL_TYPE, action="delete")
    assert deleted.before["custom_name"] == model.custom_name and deleted.after is None


@pytest.mark.django_db
def test_a_django_admin_change_form_is_recorded_with_door_admin(django_user_model):
    admin_user = django_user_model.objects.create_superuser(username="root", password="a-long-test-password-2")
    model = make_model("demo", alert_threshold=0.7)
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/modelregistry/activemodel/{model.pk}/change/"
    page = client.get(url)
    data = _form_data(page.context["adminform"].form)
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(name): value for name, value in _form_data(management).items()})
    data["alert_threshold"] = "0.9"

    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    entry = only_entry(object_type=MODEL_TYPE, object_id=str(model.pk))
    assert (entry.door, entry.user, entry.action) == ("admin", admin_user, "update")
    assert entry.before["alert_threshold"] == 0.7 and entry.after["alert_threshold"] == 0.9
    assert "updated_at" in entry.after and "features" not in entry.after  # only what changed is kept


@pytest.mark.django_db
def test_a_password_set_in_the_admin_is_recorded_masked(django_user_model):
    admin_user = django_user_model.objects.create_superuser(username="root", password="a-long-test-password-2")
    someone = django_user_model.objects.create_user(username="someone", password="a-long-test-password-3")
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/auth/user/{someone.pk}/password/"
    refused = client.post(url, {"password1": "short", "password2": "other", "usable_password": "true"})
    assert refused.status_code == 200 and not AuditEntry.objects.filter(object_type="auth.user").exists()

    new_password = "another-long-password-7"
    saved = client.post(url, {"password1": new_password, "password2": new_password, "usable_password": "true"})
    assert saved.status_code == 302
    entry = only_entry(object_type="auth.user", object_id=str(someone.pk))
    assert (entry.door, entry.user, entry.action) == ("admin", admin_user, "update")
    assert entry.before == {"password": "***"} and entry.after == {"password": "(changed)"}
    assert new_password not in json.dumps(entry.after)


def _form_data(form) -> dict:
    """What a browser would post for an unchanged form."""
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if getattr(field.widget, "input_type", None) == "checkbox":
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data


@pytest.mark.django_db(transaction=True)
def test_a_management_command_is_recorded_with_door_command(tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(parity.meta("xgb")))
    result = run_manage("register_model", str(parity.FIXTURES / "model_xgb.json"), "--meta", str(meta),
                        env_overrides={"DATABASE_URL": test_database_url()})
    assert result.returncode == 0, result.stderr
    model = ActiveModel.objects.get()
    entry = only_entry(object_type=MODEL_TYPE, object_id=str(model.pk))
    assert (entry.door, entry.action, entry.target, entry.user) == ("command", "create", "register_model", None)
    assert entry.before is None and entry.after["model_name"] == model.model_name
    assert entry.after["artifact_version"] == 1


@pytest.fixture(scope="module")
def mcp_server(django_db_setup, tmp_path_factory):
    daphne = Daphne(tmp_path_factory.mktemp("daphne-audit") / "daphne.log")
    try:
        daphne.wait_ready()
        yield daphne.base
    finally:
        daphne.stop()


@pytest.mark.django_db(transaction=True)
def test_an_mcp_tool_call_is_recorded_with_its_arguments_and_the_change(mcp_server, operator):
    model = make_model("demo", is_active=True)
    key = issue_api_token(user=operator, scopes=[ADMIN]).key

    async def work(agent):
        return await agent.ok("deactivate_model", {"active_model_id": model.pk})

    asyncio.run(run_streamable(mcp_server, key, work))
    call = only_entry(action="call")
    assert (call.door, call.target, call.username, call.token_hash) == ("mcp", "deactivate_model", "ops-anna",
                                                                         sha256(key))
    assert call.user_id == operator.pk and call.after["arguments"] == {"active_model_id": model.pk}
    change = only_entry(object_type=MODEL_TYPE, object_id=str(model.pk))
    assert (change.door, change.target, change.token_hash) == ("mcp", "deactivate_model", sha256(key))
    assert change.before == {"is_active": True} and change.after == {"is_active": False}

    # read-only tools leave no entry
    asyncio.run(run_streamable(mcp_server, key, lambda agent: agent.ok("list_active_models", {})))
    assert AuditEntry.objects.count() == 2

    # a refused MCP request: a key nobody issued
    stranger = "not-a-key-" + uuid.uuid4().hex
    response = requests.post(f"{mcp_server}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                             headers={"Authorization": f"Bearer {stranger}"}, timeout=10)
    assert response.status_code == 401
    refused = only_entry(allowed=False)
    assert (refused.door, refused.action, refused.token_hash, refused.target) == ("mcp", "refused", sha256(stranger),
                                                                                 "POST /mcp/")


@pytest.mark.django_db
def test_a_call_whose_arguments_hold_nul_characters_is_recorded(operator):
    # jsonb refuses U+0000; an MCP call's arguments may hold it anywhere (found by tests/test_mcp_fuzz.py)
    with acting(door=Door.MCP, user=operator):
        record_call(tool="delete_old_logs", arguments={"active_model_id": 1, "no\x00te": ["a\x00b"]}, error="x")
    call = only_entry(action="call")
    assert call.after["arguments"] == {"active_model_id": 1, "no\ufffdte": ["a\ufffdb"]}


# --- refusals, reading, retention ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_refused_rest_calls_are_recorded_once_each(operator, django_user_model):
    assert APIClient().get("/api/models").status_code == 401
    anonymous = only_entry(allowed=False)
    assert (anonymous.door, anonymous.action, anonymous.target, anonymous.user) == ("rest", "refused",
                                                                                   "GET /api/models", None)

    reader = django_user_model.objects.create_user(username="watcher", password="a-long-test-password-3")
    client, key = token_client(reader, READ)
    assert client.post("/api/config", {"n8n_webhook_url": ""}, format="json").status_code == 403
    scope = only_entry(allowed=False, username="watcher")  # the scope check's entry; the middleware adds none
    assert (scope.missing_scope, scope.token_hash, scope.target) == (ADMIN, sha256(key), "POST /api/config")


@pytest.mark.django_db
def test_get_api_audit_filters_pages_and_refuses_non_admins(operator, django_user_model):
    first, second = make_model("one"), make_model("two")
    with acting(door=Door.MCP, username="agent-x"):
        record_change(action="update", object_type=MODEL_TYPE, object_id=first.pk, before={"a": 1}, after={"a": 2})
    with acting(door=Door.COMMAND, username="root"):
        record_change(action="delete", object_type=MODEL_TYPE, object_id=second.pk, before={"a": 3})
        record_change(action="update", object_type="config", object_id="global", before={"x": 1}, after={"x": 2})
    AuditEntry.objects.filter(object_type="config").update(at=timezone.now() - timedelta(days=3))
    admin_client, _key = token_client(operator, ADMIN)

    everything = admin_client.get("/api/audit").json()
    assert everything["total"] == 3
    assert [entry["object_type"] for entry in everything["entries"]][-1] == "config"  # newest first
    newest = everything["entries"][0]
    assert {"at", "user", "door", "action", "object_type", "object_id", "before", "after"} <= set(newest)
    assert (newest["user"], newest["door"], newest["action"], newest["object_id"]) == ("root", "command", "delete",
                                                                                       str(second.pk))

    by_object = admin_client.get("/api/audit", {"object_type": MODEL_TYPE, "object_id": first.pk}).json()
    assert [(e["door"], e["before"], e["after"]) for e in by_object["entries"]] == [("mcp", {"a": 1}, {"a": 2})]
    assert admin_client.get("/api/audit", {"door": "command"}).json()["total"] == 2
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert admin_client.get("/api/audit", {"since": since}).json()["total"] == 2
    page = admin_client.get("/api/audit", {"limit": 1, "offset": 1}).json()
    assert (page["total"], len(page["entries"]), page["entries"][0]["object_id"]) == (3, 1, str(first.pk))

    bad = admin_client.get("/api/audit", {"door": "window"})
    assert bad.status_code == 400 and "door" in bad.json()

    reader = django_user_model.objects.create_user(username="watcher", password="a-long-test-password-3")
    reader_client, _ = token_client(reader, READ)
    assert reader_client.get("/api/audit").status_code == 403

    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    assert "/api/audit" in schema["paths"]


@pytest.mark.django_db
def test_the_audit_page_filters_for_staff_and_refuses_others(operator, django_user_model):
    model = make_model("demo")
    with acting(door=Door.REST, username="agent-x"):
        record_change(action="update", object_type=MODEL_TYPE, object_id=model.pk, before={"custom_name": "a"},
                      after={"custom_name": "b"})
        record_change(action="update", object_type="config", object_id="global")
    client = Client()
    client.force_login(operator)
    page = client.get("/audit/", {"object_type": "config"})
    assert page.status_code == 200
    assert page.context["total"] == 1 and page.context["entries"][0].object_type == "config"
    assert "Page 1 of 1" in page.content.decode() and "Older →" not in page.content.decode()
    with acting(door=Door.REST, username="agent-x"):
        for _ in range(50):
            record_change(action="update", object_type="config", object_id="global")
    first = client.get("/audit/", {"object_type": "config"}).content.decode()
    assert "Page 1 of 2" in first and 'href="?object_type=config&amp;page=2">Older →</a>' in first  # plain links
    assert 'href="/audit/"' in client.get("/").content.decode()  # in the nav

    viewer = django_user_model.objects.create_user(username="viewer-1", password="a-long-test-password-4")
    set_role(user=viewer, scope=READ)
    client.force_login(viewer)
    assert client.get("/audit/").status_code == 403
    assert 'href="/audit/"' not in client.get("/").content.decode()


@pytest.mark.django_db
def test_writes_without_a_door_are_not_recorded():
    """The listener's and the worker's own writes: no actor, no entry."""
    model = make_model("demo")
    assert record_change(action="update", object_type=MODEL_TYPE, object_id=model.pk) is None
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_housekeeping_deletes_entries_past_the_retention(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    with acting(door=Door.PAGE, username="someone"):
        for _ in range(3):
            record_change(action="update", object_type="config", object_id="global")
    old = list(AuditEntry.objects.values_list("id", flat=True)[:2])
    AuditEntry.objects.filter(id__in=old).update(at=timezone.now() - timedelta(days=31))

    assert tasks.housekeeping()["audit_entries_deleted"] == 2
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db
def test_a_deleted_user_keeps_their_name_in_the_trail(django_user_model):
    user = django_user_model.objects.create_user(username="leaver", password="a-long-test-password-5")
    with acting(door=Door.PAGE, user=user):
        record_change(action="update", object_type="config", object_id="global")
    get_user_model().objects.filter(pk=user.pk).delete()
    entry = AuditEntry.objects.get()
    assert entry.user is None and entry.username == "leaver"


@pytest.mark.django_db
def test_kernel_writes_tokens_and_admin_password_are_recorded(django_user_model, settings, tmp_path):
    """The kernel announces its writes (pumpserver.changes); the key, its hash and passwords never enter the trail."""
    settings.VAR_DIR = tmp_path
    owner = django_user_model.objects.create_user(username="agent-owner", password="a-long-test-password-6")
    with acting(door=Door.COMMAND, username="ops"):
        issued = issue_api_token(user=owner, scopes=[READ], name="observer")
        revoke_token(token=issued.token)
        reset_admin_password(username="boss")
    created = only_entry(object_type="pumpserver.apitoken", action="create")
    assert created.after["scopes"] == [READ] and created.after["user"] == "agent-owner"
    assert issued.key not in json.dumps(created.after) and issued.token.key_hash not in json.dumps(created.after)
    revoked = only_entry(object_type="pumpserver.apitoken", action="revoke")
    assert revoked.before == {"revoked_at": None} and revoked.after["revoked_at"]
    password = only_entry(object_type="auth.user")
    assert password.door == "command" and password.after["password"] == "(reset)"
    with acting(door=Door.COMMAND, username="ops"):
        ensure_admin_user(username="first-admin", password="given-long-password-8")
    first = only_entry(object_type="auth.user", object_id=str(django_user_model.objects.get(username="first-admin").pk))
    assert first.after["username"] == "first-admin" and first.after["password"] == "(set)"
