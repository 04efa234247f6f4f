"""Scopes arrive without taking anything away:

* every DRF authtoken key becomes an ApiToken (its SHA-256 hash only) with scope admin and no expiry, so existing
  clients keep working as they did; the authtoken table, which held the keys in clear, is then dropped;
* the groups viewer, operator and admin are created (pumpserver.scopes.GROUP_SCOPES), and every existing user who
  is not a superuser joins `admin`, keeping the powers every user had. Users created later join no group (they may
  read) until an admin adds them to one.
"""

import hashlib

from django.db import migrations

GROUPS = ("viewer", "operator", "admin")


def convert_authtoken_keys(apps, schema_editor):
    ApiToken = apps.get_model("pumpserver", "ApiToken")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('authtoken_token')")
        if cursor.fetchone()[0] is None:
            return  # a new installation: no DRF tokens
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
        for key, user_id, created in rows:
            ApiToken.objects.get_or_create(
                key_hash=hashlib.sha256(key.encode()).hexdigest(),
                defaults={"user_id": user_id, "name": "converted DRF token", "prefix": key[:8],
                          "scopes": ["admin"], "created_at": created, "expires_at": None},
            )
        cursor.execute("DROP TABLE authtoken_token CASCADE")
        cursor.execute("DELETE FROM django_migrations WHERE app = 'authtoken'")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("auth", "User")
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in GROUPS}
    for user in User.objects.filter(is_superuser=False):
        user.groups.add(groups["admin"])


class Migration(migrations.Migration):

    dependencies = [
        ("pumpserver", "0003_api_tokens"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(convert_authtoken_keys, migrations.RunPython.noop),
        migrations.RunPython(create_groups, migrations.RunPython.noop),
    ]
