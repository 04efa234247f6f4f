"""What a caller may do: the three scopes, held by an API token or, for a logged-in user, by their groups.

Scopes are ranked: `admin` includes `operate`, which includes `read`.

* read: every GET and every read-only MCP tool.
* operate: activate/pause models, thresholds, alert and webhook settings, backtests.
* admin: import, upload, delete, global configuration, debug tools.

A token may also be limited to some models (`model_ids`); None means every model. Logged-in users get the scope of
their Django groups (`viewer` → read, `operator` → operate, `admin` → admin; a superuser is admin; a user in no
group may only read). Every front door asks the same `Access` object.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = "read"
OPERATE = "operate"
ADMIN = "admin"
SCOPES = (READ, OPERATE, ADMIN)
RANK = {READ: 1, OPERATE: 2, ADMIN: 3}
SCOPE_HELP = {
    READ: "read everything (every GET, every read-only MCP tool)",
    OPERATE: "read, and activate/pause models, change thresholds, alert and webhook settings, run backtests",
    ADMIN: "everything: also import, upload and delete models, global configuration, debug tools",
}

# Django groups (created by pumpserver/migrations/0003) and the scope each gives its members.
GROUP_SCOPES = {"viewer": READ, "operator": OPERATE, "admin": ADMIN}
GROUP_OF_SCOPE = {scope: group for group, scope in GROUP_SCOPES.items()}


def highest(scopes) -> str | None:
    """The widest of `scopes` (admin > operate > read); None for none."""
    known = [scope for scope in scopes if scope in RANK]
    return max(known, key=RANK.__getitem__) if known else None


def check_scopes(scopes) -> list[str]:
    """The scopes as stored (known, de-duplicated, in rank order); ValueError naming an unknown one or none."""
    scopes = list(scopes)
    unknown = [scope for scope in scopes if scope not in RANK]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError(f"at least one scope is needed: {', '.join(SCOPES)}")
    return sorted(set(scopes), key=RANK.__getitem__)


@dataclass(frozen=True)
class Access:
    """The scopes a caller holds and the models it may touch (None: every model)."""

    scopes: frozenset[str]
    model_ids: frozenset[int] | None = None
    via: str = "token"  # "token" or "session": only for messages

    def allows(self, scope: str) -> bool:
        return any(RANK[held] >= RANK[scope] for held in self.scopes if held in RANK)

    def allows_model(self, model_id) -> bool:
        if self.model_ids is None:
            return True
        try:
            return int(model_id) in self.model_ids
        except (TypeError, ValueError):
            return False

    def visible_model_ids(self, model_ids):
        """`model_ids` without the models this caller may not touch."""
        return [model_id for model_id in model_ids if self.allows_model(model_id)]

    @property
    def can_operate(self) -> bool:
        return self.allows(OPERATE)

    @property
    def can_admin(self) -> bool:
        return self.allows(ADMIN)

    @property
    def scope(self) -> str | None:
        return highest(self.scopes)

    def missing_scope_message(self, scope: str, *, action: str) -> str:
        return f"{action} needs the '{scope}' scope; {self.holder} has '{self.scope or 'no scope'}'."

    @property
    def holder(self) -> str:
        return "this token" if self.via == "token" else "your account"

    def model_list(self) -> str:
        return ", ".join(str(model_id) for model_id in sorted(self.model_ids or ())) or "none"

    def model_message(self, model_id) -> str:
        return f"model {model_id} is not among the models {self.holder} may use ({self.model_list()})."

    def server_wide_message(self, *, action: str) -> str:
        """Why a model-limited caller may not see figures or logs that cover every model."""
        return f"{action} covers every model; {self.holder} is limited to models {self.model_list()}."


NO_ACCESS = Access(scopes=frozenset(), via="session")
FULL_ACCESS = Access(scopes=frozenset({ADMIN}), via="session")


def access_of_token(token) -> Access:
    model_ids = frozenset(token.model_ids) if token.model_ids is not None else None
    return Access(scopes=frozenset(token.scopes), model_ids=model_ids, via="token")


def access_of_user(user) -> Access:
    """A logged-in user's access: superuser → admin, else the widest of their groups' scopes, else read."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return NO_ACCESS
    if user.is_superuser:
        return FULL_ACCESS
    cached = getattr(user, "_pump_access", None)
    if cached is None:
        groups = user.groups.filter(name__in=GROUP_SCOPES).values_list("name", flat=True)
        scope = highest(GROUP_SCOPES[name] for name in groups) or READ
        cached = Access(scopes=frozenset({scope}), via="session")
        user._pump_access = cached  # per request: the user object lives as long as the request
    return cached


def access_of_request(request) -> Access:
    """What the caller of a request may do: its API token's scopes, else its logged-in user's groups."""
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "scopes"):
        return access_of_token(token)
    return access_of_user(getattr(request, "user", None))


def access_context(request) -> dict:
    """Template context processor: `access` (e.g. `{% if access.can_operate %}` around a button)."""
    return {"access": access_of_request(request)}
