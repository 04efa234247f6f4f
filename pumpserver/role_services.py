"""Writes of the users' roles: the Django groups viewer, operator and admin that give their members a scope
(pumpserver.scopes.GROUP_SCOPES). Admins usually set them in the Django admin; this is the same write for code."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction

from pumpserver.scopes import GROUP_OF_SCOPE, GROUP_SCOPES


def set_role(*, user, scope: str) -> Group:
    """Make `user` a member of the group that gives `scope` and of no other role group; the group."""
    if scope not in GROUP_OF_SCOPE:
        raise ValueError(f"unknown scope {scope!r}: use {', '.join(GROUP_OF_SCOPE)}")
    with transaction.atomic():
        group, _created = Group.objects.get_or_create(name=GROUP_OF_SCOPE[scope])
        user.groups.remove(*Group.objects.filter(name__in=GROUP_SCOPES).exclude(pk=group.pk))
        user.groups.add(group)
    user.__dict__.pop("_pump_access", None)  # the access cached on this user object is stale now
    return group
