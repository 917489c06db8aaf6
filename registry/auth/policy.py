"""Who may do what: principals, roles, policies and the tenant wall.

Theory of operation. What a principal may do on a repository is the union of
(1) its roles, applied to its own tenant (or to every repository when the
principal is registry-wide), (2) policy rows naming it, its tenant, its role,
``authenticated`` or ``anonymous``; then (3) the tenant wall removes
everything in another tenant's namespace except what ``anonymous`` policies
grant (repositories marked public); finally (4) a bearer token we issued
narrows that to the actions its ``access`` claim lists. Nothing else is
allowed: with auth on, the default is deny.

Patterns are globs over names: ``*`` stays inside one path component,
``**`` crosses them, ``{tenant}`` stands for the principal's tenant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from registry.auth.scope import ACTIONS, tenant_of

__all__ = [
    "ROLES",
    "Policy",
    "Principal",
    "allowed",
    "anonymous",
    "pattern_matches",
]

ROLES: dict[str, frozenset[str]] = {
    "reader": frozenset({"pull"}),
    "writer": frozenset({"pull", "push"}),
    "maintainer": frozenset({"pull", "push", "delete"}),
    "admin": frozenset(ACTIONS),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``token_access`` is set when a bearer token narrows it."""

    name: str
    kind: str  # user | robot | oidc | anonymous
    tenant: str | None = None
    roles: frozenset[str] = frozenset()
    token_access: dict[str, frozenset[str]] | None = field(default=None, compare=False)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def is_global_admin(self) -> bool:
        return self.tenant is None and "admin" in self.roles and not self.is_anonymous


def anonymous() -> Principal:
    return Principal("anonymous", "anonymous")


@dataclass(frozen=True, slots=True)
class Policy:
    subject: str
    pattern: str
    actions: frozenset[str]


@lru_cache(maxsize=1024)
def _compile(pattern: str, tenant: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\*\*|\*|\{tenant\})", pattern):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        elif part == "{tenant}":
            out.append(re.escape(tenant) if tenant else "(?!)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def pattern_matches(pattern: str, repository: str, tenant: str | None = None) -> bool:
    return _compile(pattern, tenant or "").fullmatch(repository) is not None


def _subjects(principal: Principal) -> set[str]:
    subjects = {"anonymous"}
    if principal.is_anonymous:
        return subjects
    subjects.add("authenticated")
    subjects.add(f"user:{principal.name}")
    subjects.update(f"role:{role}" for role in principal.roles)
    if principal.tenant:
        subjects.add(f"tenant:{principal.tenant}")
    return subjects


def allowed(principal: Principal, repository: str, policies: Iterable[Policy]) -> frozenset[str]:
    """The actions ``principal`` may take on ``repository``."""
    repo_tenant = tenant_of(repository)
    own = principal.tenant is None or repo_tenant == principal.tenant
    granted: set[str] = set()
    public: set[str] = set()
    if not principal.is_anonymous and own:
        for role in principal.roles:
            granted |= ROLES.get(role, frozenset())
    subjects = _subjects(principal)
    for policy in policies:
        if policy.subject not in subjects:
            continue
        if not pattern_matches(policy.pattern, repository, principal.tenant):
            continue
        if policy.subject == "anonymous":
            # Public repositories are readable by anyone, never writable by anyone.
            public |= policy.actions & {"pull"}
        else:
            granted |= policy.actions
    result = (granted if own else set()) | public
    if principal.token_access is not None:
        result &= principal.token_access.get(repository, frozenset())
    return frozenset(result)
