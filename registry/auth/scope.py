"""What a request asks for: a resource and an action, decided before any route runs.

Theory of operation. The middleware must authorize exactly the repository the
route will act on, so the patterns below mirror the routes' own patterns and
their order: ``/v2/`` routes capture the name greedily (Starlette's ``path``
convertor), the native API lazily (its ``repository`` convertor). A path no
pattern knows needs the registry-wide ``admin`` action, so a new endpoint is
closed until someone maps it here.

Names are matched on the decoded path, as the router sees them; an encoded
slash or dot in the raw path is refused outright, so ``a%2F..%2Fb`` can never
be read one way here and another way by a proxy in front.

Token scopes are the distribution token spec's
``repository:NAME:ACTION[,ACTION]`` and ``registry:catalog:*``:
https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/scope.md
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from oci.errors import NameInvalid
from oci.reference import validate_repository

__all__ = [
    "ACTIONS",
    "Scope",
    "Target",
    "challenge",
    "classify",
    "parse_scopes",
    "tenant_of",
]

ACTIONS: tuple[str, ...] = ("pull", "push", "delete", "admin")

Kind = Literal["open", "base", "catalog", "repository", "events", "usage", "admin", "token"]
# What a denied read of another tenant's repository is answered as (see middleware).
Unknown = Literal["manifest", "blob", "name"]

_V2: tuple[tuple[re.Pattern[str], dict[str, str], Unknown], ...] = (
    (re.compile(r"^/v2/(?P<name>.*)/tags/list$"), {"GET": "pull"}, "name"),
    (
        re.compile(r"^/v2/(?P<name>.*)/manifests/[^/]+$"),
        {"GET": "pull", "PUT": "push", "DELETE": "delete"},
        "manifest",
    ),
    (re.compile(r"^/v2/(?P<name>.*)/referrers/[^/]+$"), {"GET": "pull"}, "name"),
    (re.compile(r"^/v2/(?P<name>.*)/blobs/uploads/?$"), {"POST": "push"}, "blob"),
    (
        re.compile(r"^/v2/(?P<name>.*)/blobs/uploads/[^/]+$"),
        {"GET": "push", "PATCH": "push", "PUT": "push", "DELETE": "push"},
        "blob",
    ),
    (
        re.compile(r"^/v2/(?P<name>.*)/blobs/[^/]+$"),
        {"GET": "pull", "DELETE": "delete"},
        "blob",
    ),
)

_LAZY = r"[a-z0-9]+(?:[._-][a-z0-9]+|__[a-z0-9]+)*?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*?"
_NATIVE_PREFIX = "/api/v1/artifacts/"
_NATIVE = (
    (r"/uploads", {"POST": "push"}),
    (r"/uploads/[^/]+", {"GET": "push", "PATCH": "push", "PUT": "push", "DELETE": "push"}),
    (r"/versions", {"GET": "pull"}),
    (r"/versions/[^/]+", {"GET": "pull", "PUT": "push", "DELETE": "delete"}),
    (r"/versions/[^/]+/files/.*", {"GET": "pull"}),
    (r"/versions/[^/]+/retention", {"POST": "admin"}),
    (r"/history", {"GET": "pull"}),
)
_NATIVE_PATTERNS = tuple(
    (re.compile(rf"^{_NATIVE_PREFIX}(?P<name>{_LAZY}){tail}$"), methods)
    for tail, methods in _NATIVE
)
# Legal holds: a repository's admins scope a request with ?repository=; else registry admins.
_HOLDS = re.compile(r"^/api/v1/holds(?:/[^/]+)?$")
_USAGE = re.compile(r"^/api/v1/tenants/(?P<tenant>[a-z0-9][a-z0-9._-]*)/usage$")
_OPEN = frozenset({"/health", "/api/v1/openapi.json"})
# Encoded "/", "\" and "." never appear in a name, tag, digest or upload id.
_ENCODED = re.compile(rb"%(?:2[fFeE]|5[cC])")


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    action: str = "pull"
    repository: str | None = None
    unknown: Unknown = "name"
    tenant: str | None = None


def tenant_of(repository: str) -> str | None:
    """Tenants are top-level namespaces: ``acme/app`` belongs to ``acme``; ``app`` to none."""
    head, sep, _ = repository.partition("/")
    return head if sep else None


def _repository(name: str) -> str:
    return validate_repository(name)


def classify(method: str, path: str, raw_path: bytes, query: Mapping[str, str]) -> Target:
    """Map a request to what it needs; raises NameInvalid for names no route could accept."""
    if _ENCODED.search(raw_path):
        raise NameInvalid("encoded '/', '\\' or '.' is not allowed in a request path")
    if path in _OPEN:
        return Target("open")
    if path == "/token":
        return Target("token")
    if path == "/v2/" or path == "/v2":
        return Target("base")
    if path == "/v2/_catalog":
        return Target("catalog")
    # The router serves a HEAD with the GET route: it needs what the GET needs.
    verb = "GET" if method == "HEAD" else method
    if path.startswith("/v2/"):
        for pattern, methods, unknown in _V2:
            found = pattern.match(path)
            if found:
                action = methods.get(verb, "pull")
                return Target("repository", action, _repository(found["name"]), unknown)
        return Target("admin", "admin")
    if path.startswith(_NATIVE_PREFIX):
        # As the router picks: the first pattern matching path and method wins (a file
        # path may end in "/uploads" or "/retention"); else the first matching path (405).
        first: re.Match[str] | None = None
        for native, methods in _NATIVE_PATTERNS:
            found = native.match(path)
            if found and verb in methods:
                return Target("repository", methods[verb], _repository(found["name"]), "name")
            first = first or found
        if first:
            return Target("repository", "pull", _repository(first["name"]), "name")
        return Target("admin", "admin")
    if path == "/api/v1/events":
        repository = query.get("repository")
        if repository is None:
            return Target("events", "admin")
        return Target("events", "pull", _repository(repository))
    if _HOLDS.match(path):
        held = query.get("repository")
        if held is None:
            return Target("admin", "admin")
        return Target("repository", "admin", _repository(held))
    usage = _USAGE.match(path)
    if usage:
        return Target("usage", "pull", tenant=usage["tenant"])
    return Target("admin", "admin")


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse ``type:name:actions`` scopes; malformed ones are ignored, as distribution does."""
    scopes: list[Scope] = []
    for value in values:
        for item in value.split():
            kind, sep, rest = item.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not name:
                continue
            if kind == "repository":
                try:
                    validate_repository(name)
                except NameInvalid:
                    continue
            elif kind != "registry":
                continue
            wanted = frozenset(a for a in actions.split(",") if a)
            if "*" in wanted:
                wanted = frozenset(ACTIONS)
            scopes.append(Scope(kind, name, wanted & frozenset(ACTIONS)))
    return scopes


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def challenge(realm: str, service: str, scope: str | None, error: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of the token spec's 401.

    https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/token.md#how-to-authenticate
    """
    parts = [f'realm="{_quote(realm)}"', f'service="{_quote(service)}"']
    if scope:
        parts.append(f'scope="{_quote(scope)}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def scope_for(target: Target) -> str | None:
    """The scope a client should ask the token endpoint for to pass ``target``."""
    if target.kind == "catalog":
        return "registry:catalog:*"
    if target.repository is None:
        return None
    actions = "pull,push" if target.action == "push" else target.action
    return f"repository:{target.repository}:{actions}"
