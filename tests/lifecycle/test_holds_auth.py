"""Who may place and release holds and extend retention when auth is on.

Registry-wide admins may do it anywhere; a repository's admins (here a
tenant admin) may do it for their repository when they scope the request
with ``?repository=``; nobody else may. Decided before routing, so the
mapping of paths to repositories must be the router's own: checked here
route by route.
"""

from __future__ import annotations

import pytest
from starlette.routing import Match

from registry.auth.scope import classify
from registry.config import Settings
from registry.http.app import create_app
from tests.auth.conftest import AuthServed, authed, extra_settings, make_url, password
from tests.http._oci import error_code, push_image

__all__ = ["authed", "extra_settings", "make_url"]

pytestmark = pytest.mark.anyio


async def test_holds_need_a_registry_admin_or_a_scoped_repository_admin(
    authed: AuthServed,
) -> None:
    await authed.authority.store.add_user(
        "erin", password("erin"), tenant="acme", roles=["admin"], actor="test"
    )
    alice, erin, root = authed.as_user("alice"), authed.as_user("erin"), authed.as_user("root")
    await push_image(alice, "acme/app", "v1")
    await push_image(authed.as_user("bob"), "globex/app", "v1")
    body = {"repository": "acme/app", "reference": "v1", "reason": "case"}
    scoped = {"repository": "acme/app"}

    anonymous = await authed.client().post("/api/v1/holds", json=body, params=scoped)
    assert anonymous.status_code == 401
    for who, params in ((alice, scoped), (erin, {})):
        refused = await who.post("/api/v1/holds", json=body, params=params)
        assert (refused.status_code, error_code(refused)) == (403, "DENIED")
    foreign = await erin.post(
        "/api/v1/holds",
        json={**body, "repository": "globex/app"},
        params={"repository": "globex/app"},
    )
    assert foreign.status_code == 403

    placed = await erin.post("/api/v1/holds", json=body, params=scoped)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert hold["placed_by"] == "erin"
    assert (await erin.get("/api/v1/holds", params=scoped)).json()["holds"] == [hold]
    assert (await erin.get("/api/v1/holds")).status_code == 403
    assert (await alice.get("/api/v1/holds", params=scoped)).status_code == 403
    assert (await root.get("/api/v1/holds")).json()["holds"] == [hold]

    # Held: even the maintainer who pushed it cannot delete it.
    denied = await alice.delete("/v2/acme/app/manifests/v1")
    assert denied.status_code == 403
    assert denied.json()["errors"][0]["detail"]["reason"] == "legal-hold"

    url = f"/api/v1/holds/{hold['id']}"
    assert (await alice.delete(url, params={**scoped, "reason": "x"})).status_code == 403
    assert (await erin.delete(url, params={"reason": "x"})).status_code == 403
    released = await erin.delete(url, params={**scoped, "reason": "closed"})
    assert released.status_code == 200
    assert released.json()["released"] == {"reason": "closed", "by": "erin"}
    assert (await alice.delete("/v2/acme/app/manifests/v1")).status_code == 202

    root_hold = await root.post("/api/v1/holds", json={"repository": "globex/app", "reason": "r"})
    assert root_hold.status_code == 201
    events = await authed.registry.meta.events(0, 1000, types=["hold.placed", "hold.released"])
    assert [(e.type, e.actor) for e in events] == [
        ("hold.placed", "erin"),
        ("hold.released", "erin"),
        ("hold.placed", "root"),
    ]


async def test_retention_extension_needs_admin_on_the_repository(authed: AuthServed) -> None:
    await authed.authority.store.add_user(
        "erin", password("erin"), tenant="acme", roles=["admin"], actor="test"
    )
    alice, erin = authed.as_user("alice"), authed.as_user("erin")
    await push_image(alice, "acme/app", "v1")
    url = "/api/v1/artifacts/acme/app/versions/v1/retention"
    body = {"until": "2099-01-01T00:00:00Z"}
    refused = await alice.post(url, json=body)
    assert (refused.status_code, error_code(refused)) == (403, "DENIED")
    assert refused.json()["errors"][0]["detail"] == {"name": "acme/app", "action": "admin"}
    extended = await erin.post(url, json=body)
    assert extended.status_code == 200, extended.text
    assert extended.json()["until"] == "2099-01-01T00:00:00Z"


# Paths where a lazy repository name could be read two ways: a file whose
# path looks like another endpoint. The middleware must authorize the
# repository the router will act on, for every method.
AMBIGUOUS = [
    "/api/v1/artifacts/acme/app/versions/v1/retention",
    "/api/v1/artifacts/acme/app/versions/v1/files/x/versions/y/retention",
    "/api/v1/artifacts/acme/app/versions/v1/files/uploads",
    "/api/v1/artifacts/acme/app/versions/v1/files/a/uploads/b",
    "/api/v1/artifacts/acme/app/versions/v1/files/versions/v2",
    "/api/v1/artifacts/acme/app/versions/v1/files/history",
    "/api/v1/artifacts/acme/app/versions/v1/files/versions",
]


@pytest.mark.parametrize("path", AMBIGUOUS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def test_the_middleware_authorizes_the_repository_the_router_acts_on(
    method: str, path: str
) -> None:
    app = create_app(Settings())
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    chosen = None
    for route in app.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            chosen = child
            break
        if match is Match.PARTIAL and chosen is None:
            chosen = child
    assert chosen is not None, "no route knows this path"
    target = classify(method, path, path.encode(), {})
    assert target.repository == chosen["path_params"]["name"]
