"""API tokens: only a hash is stored, the command, expiry, revocation, converted DRF keys, the tokens page and admin."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from pumpserver.models import ApiToken
from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN, OPERATE, READ
from pumpserver.tokens import issue_api_token, parse_expiry, revoke_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="a-long-test-password-1")


def create_api_token(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def api(key: str, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def test_only_the_hash_of_a_key_is_stored(user):
    issued = issue_api_token(user=user, scopes=[READ], name="agent")
    row = ApiToken.objects.get(pk=issued.token.pk)
    assert row.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
    assert row.prefix == issued.key[:8] and len(issued.key) >= 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM api_tokens t")
        stored = " ".join(text for (text,) in cursor.fetchall())
    assert issued.key not in stored
    assert api(issued.key).get("/api/models").status_code == 200
    assert api(issued.key, "Bearer").get("/api/models").status_code == 200


def test_command_creates_scoped_expiring_model_limited_tokens(user):
    key, note = create_api_token("ops", "--scope", "read", "--expires", "30d", "--model", "7", "--model", "3",
                                 "--name", "n8n agent")
    token = ApiToken.objects.get(key_hash=hashlib.sha256(key.encode()).hexdigest())
    assert token.scopes == [READ] and token.model_ids == [3, 7] and token.name == "n8n agent"
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert note == ""
    key, _ = create_api_token("ops", "--scope", "read", "--scope", "operate", "--expires", "never")
    token = ApiToken.objects.get(key_hash=hashlib.sha256(key.encode()).hexdigest())
    assert token.scopes == [READ, OPERATE] and token.expires_at is None and token.model_ids is None


def test_plain_command_keeps_old_scripts_working_with_an_admin_token(user, settings):
    settings.API_TOKEN_DEFAULT_DAYS = 12
    key, note = create_api_token("ops")
    token = ApiToken.objects.get(key_hash=hashlib.sha256(key.encode()).hexdigest())
    assert token.scopes == [ADMIN] and "admin" in note
    assert abs(token.expires_at - (timezone.now() + timedelta(days=12))) < timedelta(minutes=1)
    assert api(key).post("/api/config", {"n8n_webhook_url": ""}, format="json").status_code == 200
    second, _ = create_api_token("ops", "--rotate")
    assert second != key
    assert api(key).get("/api/models").status_code == 401  # --rotate revoked the first
    assert api(second).get("/api/models").status_code == 200
    newcomer, _ = create_api_token("newcomer", "--create", "--scope", "read")
    assert api(newcomer).get("/api/models").status_code == 200


@pytest.mark.parametrize("args, message", [
    (("nobody",), "no user named 'nobody'"),
    (("ops", "--expires", "soon"), "--expires: expiry 'soon' is not a period"),
    (("ops", "--model", "0"), "model ids must be positive"),
])
def test_command_refuses_bad_input_in_one_line(user, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        create_api_token(*args)


def test_parse_expiry():
    assert parse_expiry("30d") == timedelta(days=30)
    assert parse_expiry("12h") == timedelta(hours=12)
    assert parse_expiry("2w") == timedelta(weeks=2)
    assert parse_expiry("never") is None
    for bad in ("0d", "30", "3y", ""):
        with pytest.raises(ValueError):
            parse_expiry(bad)


def test_expired_and_revoked_tokens_answer_401_saying_why(user):
    expired = issue_api_token(user=user, scopes=[READ], expires_in=timedelta(hours=1))
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = api(expired.key).get("/api/models")
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    revoked = issue_api_token(user=user, scopes=[READ])
    revoke_token(token=revoked.token)
    answer = api(revoked.key).get("/api/models")
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert api("not-a-key").get("/api/models").json()["detail"] == "Invalid token."
    user.is_active = False
    user.save()
    assert api(issue_api_token(user=user).key).get("/api/models").status_code == 401


def test_use_is_noted_in_last_used_at(user):
    issued = issue_api_token(user=user, scopes=[READ])
    assert issued.token.last_used_at is None
    api(issued.key).get("/api/models")
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is not None


@pytest.mark.django_db(transaction=True)
def test_drf_keys_become_admin_tokens_without_expiry(django_user_model):
    """The data migration: an old authtoken key keeps working, as admin, and the table of clear keys is gone."""
    executor = MigrationExecutor(connection)
    executor.migrate([("pumpserver", "0003_api_tokens")])
    user = django_user_model.objects.create_user(username="old-client", password="a-long-test-password-1")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL, "
                       "user_id integer NOT NULL)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", ["a" * 40, user.pk])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    token = ApiToken.objects.get(user=user)
    assert token.scopes == [ADMIN] and token.expires_at is None and token.prefix == "a" * 8
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('authtoken_token')")
        assert cursor.fetchone()[0] is None
    assert set(user.groups.values_list("name", flat=True)) == {"admin"}  # existing users keep their powers
    assert Group.objects.filter(name__in=["viewer", "operator", "admin"]).count() == 3
    assert api("a" * 40).delete("/api/models/999999").status_code == 404  # admin: allowed, the model is missing


# --- the tokens page and the admin ---------------------------------------------------------------------------------


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_tokens_page_creates_a_token_shown_once_and_revokes_it(user):
    set_role(user=user, scope=OPERATE)
    client = logged_in(user)
    page = client.get("/tokens/").content.decode()
    assert 'value="read"' in page and 'value="operate"' in page and 'value="admin"' not in page
    answer = client.post("/tokens/", {"name": "agent", "scope": READ, "expires": "30d"}).content.decode()
    key = re.search(r'<pre id="new-token">([^<]+)</pre>', answer).group(1)
    token = ApiToken.objects.get(user=user)
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest() and token.scopes == [READ]
    assert key not in client.get("/tokens/").content.decode()  # shown once
    assert api(key).get("/api/models").status_code == 200
    client.post(f"/tokens/{token.pk}/revoke/")
    assert api(key).get("/api/models").status_code == 401


def test_tokens_page_refuses_a_scope_wider_than_the_users_own(user):
    client = logged_in(user)  # no group: read
    answer = client.post("/tokens/", {"scope": ADMIN, "expires": "30d"})
    assert answer.status_code == 400 and not ApiToken.objects.exists()


def test_a_user_cannot_revoke_someone_elses_token_but_an_admin_can(user, django_user_model):
    other = django_user_model.objects.create_user(username="other", password="a-long-test-password-1")
    theirs = issue_api_token(user=other, scopes=[READ])
    assert logged_in(user).post(f"/tokens/{theirs.token.pk}/revoke/").status_code == 404
    boss = django_user_model.objects.create_user(username="boss", password="a-long-test-password-1")
    set_role(user=boss, scope=ADMIN)
    assert "other" in logged_in(boss).get("/tokens/").content.decode()
    logged_in(boss).post(f"/tokens/{theirs.token.pk}/revoke/")
    assert ApiToken.objects.get(pk=theirs.token.pk).revoked_at is not None


def test_admin_lists_and_revokes_tokens_without_showing_a_key(django_user_model):
    superuser = django_user_model.objects.create_superuser(username="root", password="a-long-test-password-1")
    issued = issue_api_token(user=superuser, scopes=[READ], name="listed")
    client = logged_in(superuser)
    listing = client.get("/admin/pumpserver/apitoken/").content.decode()
    assert "listed" in listing and issued.token.prefix in listing
    assert issued.key not in listing and issued.token.key_hash not in listing
    detail = client.get(f"/admin/pumpserver/apitoken/{issued.token.pk}/change/").content.decode()
    assert issued.token.key_hash not in detail
    client.post("/admin/pumpserver/apitoken/", {"action": "revoke", "_selected_action": [issued.token.pk]})
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_at is not None
