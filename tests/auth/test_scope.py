"""What every route needs: method x path -> the action the middleware authorizes, and on what.

The table names every route the app serves (``test_the_table_covers_every_route``
fails when a route is added without a row), so a route's action cannot change
unnoticed: a manifest DELETE needs ``delete``, never just ``push``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import pytest
from starlette.routing import BaseRoute, Match

from oci.errors import NameInvalid
from registry.auth.scope import Target, classify
from registry.config import Settings
from registry.http.app import create_app

DIGEST = "sha256:" + "ab" * 32
A = "/api/v1/artifacts/acme/models"


def repo(action: str, name: str = "acme/app", unknown: str = "name") -> Target:
    return Target("repository", action, name, unknown)  # type: ignore[arg-type]


ADMIN = Target("admin", "admin")

# (method, path, query) -> what the request needs
ROUTES: list[tuple[str, str, dict[str, str], Target]] = [
    # Open, and the token endpoint (served by the middleware itself).
    ("GET", "/health", {}, Target("open")),
    ("GET", "/api/v1/openapi.json", {}, Target("open")),
    ("GET", "/token", {}, Target("token")),
    ("POST", "/token", {}, Target("token")),
    # The distribution API.
    ("GET", "/v2/", {}, Target("base")),
    ("GET", "/v2/_catalog", {}, Target("catalog")),
    ("GET", "/v2/acme/app/manifests/v1", {}, repo("pull", unknown="manifest")),
    ("PUT", "/v2/acme/app/manifests/v1", {}, repo("push", unknown="manifest")),
    ("DELETE", f"/v2/acme/app/manifests/{DIGEST}", {}, repo("delete", unknown="manifest")),
    ("GET", "/v2/acme/app/sub/manifests/v1", {}, repo("pull", "acme/app/sub", "manifest")),
    ("GET", f"/v2/acme/app/blobs/{DIGEST}", {}, repo("pull", unknown="blob")),
    ("DELETE", f"/v2/acme/app/blobs/{DIGEST}", {}, repo("delete", unknown="blob")),
    ("GET", "/v2/acme/app/tags/list", {}, repo("pull")),
    ("GET", f"/v2/acme/app/referrers/{DIGEST}", {}, repo("pull")),
    ("POST", "/v2/acme/app/blobs/uploads/", {}, repo("push", unknown="blob")),
    ("POST", "/v2/acme/app/blobs/uploads", {}, repo("push", unknown="blob")),
    ("GET", "/v2/acme/app/blobs/uploads/u1", {}, repo("push", unknown="blob")),
    ("PATCH", "/v2/acme/app/blobs/uploads/u1", {}, repo("push", unknown="blob")),
    ("PUT", "/v2/acme/app/blobs/uploads/u1", {}, repo("push", unknown="blob")),
    ("DELETE", "/v2/acme/app/blobs/uploads/u1", {}, repo("push", unknown="blob")),
    ("GET", "/v2/acme/app/nothing/here", {}, ADMIN),
    # The native API.
    ("POST", f"{A}/uploads", {}, repo("push", "acme/models")),
    ("GET", f"{A}/uploads/u1", {}, repo("push", "acme/models")),
    ("PATCH", f"{A}/uploads/u1", {}, repo("push", "acme/models")),
    ("PUT", f"{A}/uploads/u1", {}, repo("push", "acme/models")),
    ("DELETE", f"{A}/uploads/u1", {}, repo("push", "acme/models")),
    ("GET", f"{A}/versions", {}, repo("pull", "acme/models")),
    ("GET", f"{A}/versions/r1", {}, repo("pull", "acme/models")),
    ("PUT", f"{A}/versions/r1", {}, repo("push", "acme/models")),
    ("DELETE", f"{A}/versions/r1", {}, repo("delete", "acme/models")),
    ("GET", f"{A}/versions/r1/files/dir/w.bin", {}, repo("pull", "acme/models")),
    ("POST", f"{A}/versions/r1/retention", {}, repo("admin", "acme/models")),
    ("GET", f"{A}/history", {}, repo("pull", "acme/models")),
    ("GET", "/api/v1/artifacts/", {}, ADMIN),
    # Events: the whole stream is registry-wide; one repository's is a pull of it.
    ("GET", "/api/v1/events", {}, Target("events", "admin")),
    ("GET", "/api/v1/events", {"repository": "acme/app"}, Target("events", "pull", "acme/app")),
    # Legal holds: registry admins, or a repository's admins with ?repository=.
    ("POST", "/api/v1/holds", {}, ADMIN),
    ("GET", "/api/v1/holds", {}, ADMIN),
    ("GET", "/api/v1/holds/h1", {}, ADMIN),
    ("DELETE", "/api/v1/holds/h1", {}, ADMIN),
    ("POST", "/api/v1/holds", {"repository": "acme/app"}, repo("admin")),
    ("GET", "/api/v1/holds", {"repository": "acme/app"}, repo("admin")),
    ("GET", "/api/v1/holds/h1", {"repository": "acme/app"}, repo("admin")),
    ("DELETE", "/api/v1/holds/h1", {"repository": "acme/app"}, repo("admin")),
    # Retention plans are registry-wide, even for one repository.
    ("GET", "/api/v1/retention/plan", {}, ADMIN),
    ("GET", "/api/v1/retention/plan", {"repository": "acme/app"}, ADMIN),
    ("POST", "/api/v1/retention/apply", {}, ADMIN),
    # Tenant usage, and paths no route serves.
    ("GET", "/api/v1/tenants/acme/usage", {}, Target("usage", tenant="acme")),
    ("GET", "/api/v1/users", {}, ADMIN),
    ("GET", "/", {}, ADMIN),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "target"),
    ROUTES,
    ids=[f"{m} {p}{'?' if q else ''}{'&'.join(q)}" for m, p, q, _ in ROUTES],
)
def test_each_route_needs_its_action(
    method: str, path: str, query: dict[str, str], target: Target
) -> None:
    assert classify(method, path, path.encode(), query) == target
    if method == "GET":
        # A HEAD needs what its GET needs.
        assert classify("HEAD", path, path.encode(), query) == target


def _router_choice(
    routes: list[BaseRoute], method: str, path: str
) -> tuple[int, Mapping[str, Any]] | None:
    """The route the router picks for ``method path``, as it picks: the first full match."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for index, route in enumerate(routes):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return index, child
    return None  # the middleware answers it (/token, usage), or nobody does


def test_the_table_covers_every_route() -> None:
    routes = create_app(Settings()).router.routes
    covered: set[tuple[int, str]] = set()
    for method, path, _, target in ROUTES:
        chosen = _router_choice(routes, method, path)
        if chosen is None:
            continue
        index, child = chosen
        covered.add((index, method))
        # The middleware authorizes the repository the route acts on.
        name = child.get("path_params", {}).get("name")
        if name is not None:
            assert target.repository == name, (method, path)
    served = {
        (index, method)
        for index, route in enumerate(routes)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"  # a HEAD is classified as its GET (above)
    }
    missing = [(routes[i].path, m) for i, m in served - covered]  # type: ignore[attr-defined]
    assert missing == []


@pytest.mark.parametrize(
    "raw",
    [
        b"/v2/acme%2Fapp/manifests/v1",
        b"/v2/acme%2fapp/manifests/v1",
        b"/v2/acme/my%2Eapp/manifests/v1",
        b"/v2/acme/app/manifests/v1%2e0",
        b"/v2/acme/app%5Cx/manifests/v1",
        b"/api/v1/artifacts/acme%2Fmodels/versions",
    ],
)
def test_encoded_slash_dot_and_backslash_are_refused_before_decoding(raw: bytes) -> None:
    path = unquote(raw.decode())
    with pytest.raises(NameInvalid):
        classify("GET", path, raw, {})
