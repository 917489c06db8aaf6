"""The security table: each row is an attempt that must be refused, and how.

Every row runs against a registry where the attempt's legitimate twin
succeeds (``test_controls``), so a row passes only because auth refused it.
The registry has policies that must stop at their limits: every signed-in
principal may pull everything (``authenticated`` on ``**``), which the tenant
wall confines to its own tenant, and anyone may pull, push and delete
``acme/public/tool`` (``anonymous``), of which only the pull is ever granted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.http._oci import Blob, Pushed, error_code, push_blob, push_image, random_blob

from . import _forge
from .conftest import AuthServed, basic, password

pytestmark = pytest.mark.anyio


@dataclass
class World:
    served: AuthServed
    acme: Pushed
    public: Pushed
    globex: Pushed
    globex_layer: Blob


@pytest.fixture
async def world(authed: AuthServed) -> World:
    store = authed.authority.store
    await store.add_policy("authenticated", "**", ["pull"], actor="test")
    await store.add_policy("anonymous", "acme/public/tool", ["pull", "push", "delete"], actor="t")
    alice, bob = authed.as_user("alice"), authed.as_user("bob")
    acme = await push_image(alice, "acme/app", "v1")
    await push_image(alice, "acme/other", "v1")
    public = await push_image(alice, "acme/public/tool", "v1")
    layer = random_blob(256)
    await push_blob(bob, "globex/app", layer)
    globex = await push_image(bob, "globex/app", "v1")
    return World(authed, acme, public, globex, layer)


async def _bearer(world: World, token: str, method: str, path: str, **kw: object) -> httpx.Response:
    return await world.served.bearer(token).request(method, path, **kw)  # type: ignore[arg-type]


def _now() -> int:
    return int(time.time())


async def missing(w: World) -> httpx.Response:
    return await w.served.client().get("/v2/acme/app/manifests/v1")


async def expired(w: World) -> httpx.Response:
    body = _forge.claims(iat=_now() - 900, nbf=_now() - 900, exp=_now() - 600)
    return await _bearer(
        w, await _forge.signed(w.served.authority, body), "GET", "/v2/acme/app/manifests/v1"
    )


async def not_yet_valid(w: World) -> httpx.Response:
    body = _forge.claims(nbf=_now() + 600, exp=_now() + 900)
    return await _bearer(
        w, await _forge.signed(w.served.authority, body), "GET", "/v2/acme/app/manifests/v1"
    )


async def forged_wrong_key(w: World) -> httpx.Response:
    token = await _forge.wrong_key(w.served.authority, _forge.claims())
    return await _bearer(w, token, "GET", "/v2/acme/app/manifests/v1")


async def forged_alg_none(w: World) -> httpx.Response:
    token = await _forge.unsigned(w.served.authority, _forge.claims())
    return await _bearer(w, token, "GET", "/v2/acme/app/manifests/v1")


async def forged_hs256_public_key(w: World) -> httpx.Response:
    token = await _forge.hs256_with_public_key(w.served.authority, _forge.claims())
    return await _bearer(w, token, "GET", "/v2/acme/app/manifests/v1")


async def wrong_audience(w: World) -> httpx.Response:
    token = await _forge.signed(w.served.authority, _forge.claims(aud="another-registry"))
    return await _bearer(w, token, "GET", "/v2/acme/app/manifests/v1")


async def wrong_issuer(w: World) -> httpx.Response:
    token = await _forge.signed(w.served.authority, _forge.claims(iss="someone-else"))
    return await _bearer(w, token, "GET", "/v2/acme/app/manifests/v1")


async def missing_claim(w: World) -> httpx.Response:
    token = await _forge.signed(w.served.authority, _forge.claims(jti=None))
    return await _bearer(w, token, "GET", "/v2/acme/app/manifests/v1")


async def token_for_wrong_service(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get(
        "/token", params={"service": "other-service", "scope": "repository:acme/app:pull"}
    )


async def token_for_repo_a_on_b(w: World) -> httpx.Response:
    token = await w.served.token("alice", "repository:acme/app:pull")
    return await _bearer(w, token, "GET", "/v2/acme/other/manifests/v1")


async def pull_token_pushes(w: World) -> httpx.Response:
    token = await w.served.token("alice", "repository:acme/app:pull")
    return await _bearer(
        w,
        token,
        "PUT",
        "/v2/acme/app/manifests/v2",
        content=w.acme.body,
        headers={"Content-Type": w.acme.media_type},
    )


async def pull_token_deletes(w: World) -> httpx.Response:
    token = await w.served.token("alice", "repository:acme/app:pull")
    return await _bearer(w, token, "DELETE", f"/v2/acme/app/manifests/{w.acme.digest}")


async def reader_pushes(w: World) -> httpx.Response:
    return await w.served.as_user("reader").post("/v2/acme/app/blobs/uploads/")


async def reader_deletes(w: World) -> httpx.Response:
    return await w.served.as_user("reader").delete(f"/v2/acme/app/manifests/{w.acme.digest}")


async def writer_deletes_manifest(w: World) -> httpx.Response:
    return await w.served.as_user("writer").delete(f"/v2/acme/app/manifests/{w.acme.digest}")


async def writer_deletes_blob(w: World) -> httpx.Response:
    config = Blob(b"{}").digest  # push_image's config, which acme/app holds
    return await w.served.as_user("writer").delete(f"/v2/acme/app/blobs/{config}")


async def writer_deletes_native_version(w: World) -> httpx.Response:
    return await w.served.as_user("writer").delete("/api/v1/artifacts/acme/app/versions/v1")


async def reader_heads_an_upload_session(w: World) -> httpx.Response:
    # An upload session is the pusher's: its status needs push, by GET or by HEAD.
    started = await w.served.as_user("alice").post("/v2/acme/app/blobs/uploads/")
    assert started.status_code == 202, started.text
    return await w.served.as_user("reader").head(started.headers["location"])


async def reader_token_escalates(w: World) -> httpx.Response:
    # The token endpoint grants only what policy allows: asking for push gets pull.
    token = await w.served.token("reader", "repository:acme/app:pull,push,delete")
    return await _bearer(w, token, "POST", "/v2/acme/app/blobs/uploads/")


async def encoded_slash_in_a_valid_name(w: World) -> httpx.Response:
    # Decoded, this is acme/app, which alice may pull: only the encoding is wrong.
    return await w.served.as_user("alice").get("/v2/acme%2Fapp/manifests/v1")


async def encoded_slash_in_a_valid_native_name(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/api/v1/artifacts/acme%2Fapp/versions")


async def encoded_dot_in_a_valid_tag(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/v2/acme/app/manifests/v1%2E0")


async def encoded_traversal(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/v2/acme/%2e%2e/globex/app/manifests/v1")


async def encoded_slash(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/v2/acme%2F..%2Fglobex%2Fapp/manifests/v1")


async def dot_segments(w: World) -> httpx.Response:
    request = w.served.as_user("alice").build_request("GET", "http://registry.test/")
    request.url = request.url.copy_with(raw_path=b"/v2/acme/../globex/app/manifests/v1")
    return await w.served.as_user("alice").send(request)


async def cross_tenant_manifest(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/v2/globex/app/manifests/v1")


async def cross_tenant_blob_head(w: World) -> httpx.Response:
    return await w.served.as_user("alice").head(f"/v2/globex/app/blobs/{w.globex_layer.digest}")


async def foreign_digest_in_own_repo(w: World) -> httpx.Response:
    return await w.served.as_user("alice").head(f"/v2/acme/app/blobs/{w.globex_layer.digest}")


async def cross_tenant_push(w: World) -> httpx.Response:
    return await w.served.as_user("alice").put(
        "/v2/globex/app/manifests/evil",
        content=w.acme.body,
        headers={"Content-Type": w.acme.media_type},
    )


async def cross_tenant_delete(w: World) -> httpx.Response:
    return await w.served.as_user("alice").delete(f"/v2/globex/app/manifests/{w.globex.digest}")


async def cross_tenant_tags(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/v2/globex/app/tags/list")


async def cross_tenant_referrers(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get(f"/v2/globex/app/referrers/{w.globex.digest}")


async def cross_tenant_native(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/api/v1/artifacts/globex/app/versions")


async def cross_tenant_events(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get(
        "/api/v1/events", params={"repository": "globex/app"}
    )


async def whole_event_stream(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/api/v1/events")


async def admin_repository_token_on_event_stream(w: World) -> httpx.Response:
    # A registry admin's token scoped to one repository is that scope, not the registry.
    token = await w.served.token("root", "repository:acme/app:pull")
    return await _bearer(w, token, "GET", "/api/v1/events")


async def admin_repository_token_on_retention_plan(w: World) -> httpx.Response:
    token = await w.served.token("root", "repository:acme/app:pull")
    return await _bearer(w, token, "GET", "/api/v1/retention/plan")


async def cross_tenant_usage(w: World) -> httpx.Response:
    return await w.served.as_user("alice").get("/api/v1/tenants/globex/usage")


async def anonymous_push_public(w: World) -> httpx.Response:
    return await w.served.client().post("/v2/acme/public/tool/blobs/uploads/")


async def anonymous_delete_public(w: World) -> httpx.Response:
    return await w.served.client().delete(f"/v2/acme/public/tool/manifests/{w.public.digest}")


async def other_tenant_pushes_public(w: World) -> httpx.Response:
    return await w.served.as_user("bob").post("/v2/acme/public/tool/blobs/uploads/")


async def anonymous_catalog(w: World) -> httpx.Response:
    return await w.served.client().get("/v2/_catalog")


async def refresh_token_as_access(w: World) -> httpx.Response:
    response = await w.served.client().post(
        "/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": "ecila-secret-pw",
            "service": "artifact-store",
            "scope": "repository:acme/app:pull",
            "access_type": "offline",
        },
    )
    assert response.status_code == 200, response.text
    return await _bearer(w, response.json()["refresh_token"], "GET", "/v2/acme/app/manifests/v1")


async def access_token_as_refresh(w: World) -> httpx.Response:
    token = await w.served.token("alice", "repository:acme/app:pull")
    return await w.served.client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "service": "artifact-store"},
    )


async def wrong_password(w: World) -> httpx.Response:
    return await w.served.client(basic("alice", "guess")).get("/v2/acme/app/manifests/v1")


async def huge_authorization(w: World) -> httpx.Response:
    return await w.served.client({"Authorization": "Bearer " + "a" * 65_000}).get("/v2/")


async def other_tenant_api_token(w: World) -> httpx.Response:
    token = await w.served.authority.store.create_token("bob", actor="test")
    return await w.served.client({"Authorization": f"Bearer {token}"}).get(
        "/v2/acme/app/manifests/v1"
    )


Attempt = Callable[[World], Awaitable[httpx.Response]]
# attempt -> (status, spec code)
TABLE: dict[Attempt, tuple[int, str]] = {
    missing: (401, "UNAUTHORIZED"),
    expired: (401, "UNAUTHORIZED"),
    not_yet_valid: (401, "UNAUTHORIZED"),
    forged_wrong_key: (401, "UNAUTHORIZED"),
    forged_alg_none: (401, "UNAUTHORIZED"),
    forged_hs256_public_key: (401, "UNAUTHORIZED"),
    wrong_audience: (401, "UNAUTHORIZED"),
    wrong_issuer: (401, "UNAUTHORIZED"),
    missing_claim: (401, "UNAUTHORIZED"),
    token_for_wrong_service: (403, "DENIED"),
    token_for_repo_a_on_b: (403, "DENIED"),
    pull_token_pushes: (403, "DENIED"),
    pull_token_deletes: (403, "DENIED"),
    reader_pushes: (403, "DENIED"),
    reader_deletes: (403, "DENIED"),
    writer_deletes_manifest: (403, "DENIED"),
    writer_deletes_blob: (403, "DENIED"),
    writer_deletes_native_version: (403, "DENIED"),
    reader_heads_an_upload_session: (403, ""),  # a HEAD answer has no body
    reader_token_escalates: (403, "DENIED"),
    encoded_slash_in_a_valid_name: (400, "NAME_INVALID"),
    encoded_slash_in_a_valid_native_name: (400, "NAME_INVALID"),
    encoded_dot_in_a_valid_tag: (400, "NAME_INVALID"),
    encoded_traversal: (400, "NAME_INVALID"),
    encoded_slash: (400, "NAME_INVALID"),
    # httpx resolves dot segments before sending, so the registry sees globex/app.
    dot_segments: (404, "NAME_UNKNOWN"),
    cross_tenant_manifest: (404, "NAME_UNKNOWN"),
    cross_tenant_blob_head: (404, ""),
    foreign_digest_in_own_repo: (404, ""),
    cross_tenant_push: (403, "DENIED"),
    cross_tenant_delete: (403, "DENIED"),
    cross_tenant_tags: (404, "NAME_UNKNOWN"),
    cross_tenant_referrers: (404, "NAME_UNKNOWN"),
    cross_tenant_native: (404, "NAME_UNKNOWN"),
    cross_tenant_events: (404, "NAME_UNKNOWN"),
    whole_event_stream: (403, "DENIED"),
    admin_repository_token_on_event_stream: (403, "DENIED"),
    admin_repository_token_on_retention_plan: (403, "DENIED"),
    cross_tenant_usage: (403, "DENIED"),
    anonymous_push_public: (401, "UNAUTHORIZED"),
    anonymous_delete_public: (401, "UNAUTHORIZED"),
    other_tenant_pushes_public: (403, "DENIED"),
    anonymous_catalog: (401, "UNAUTHORIZED"),
    refresh_token_as_access: (401, "UNAUTHORIZED"),
    access_token_as_refresh: (401, "UNAUTHORIZED"),
    wrong_password: (401, "UNAUTHORIZED"),
    huge_authorization: (401, "UNAUTHORIZED"),
    other_tenant_api_token: (404, "NAME_UNKNOWN"),
}


@pytest.mark.parametrize("attempt", list(TABLE), ids=[a.__name__ for a in TABLE])
async def test_denied(world: World, attempt: Attempt) -> None:
    status, code = TABLE[attempt]
    response = await attempt(world)
    assert response.status_code == status, response.text
    if code:
        assert error_code(response) == code
    if status == 401 and response.request.url.path != "/token":
        assert response.headers["www-authenticate"].startswith('Bearer realm="')
    if attempt in (token_for_repo_a_on_b, pull_token_pushes, pull_token_deletes):
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_controls(world: World) -> None:
    """The legitimate twins of the table's attempts succeed."""
    served = world.served
    token = await served.token("alice", "repository:acme/app:pull")
    assert (await _bearer(world, token, "GET", "/v2/acme/app/manifests/v1")).status_code == 200
    body = _forge.claims()
    good = await _forge.signed(served.authority, body)
    assert (await _bearer(world, good, "GET", "/v2/acme/app/manifests/v1")).status_code == 200
    bob = served.as_user("bob")
    assert (await bob.head(f"/v2/globex/app/blobs/{world.globex_layer.digest}")).status_code == 200
    assert (await bob.get("/v2/globex/app/tags/list")).status_code == 200
    assert (await served.client().get("/v2/acme/public/tool/manifests/v1")).status_code == 200
    assert (await served.as_user("reader").get("/v2/acme/app/manifests/v1")).status_code == 200
    root = served.as_user("root")
    assert (await root.get("/api/v1/events")).status_code == 200
    assert (await root.get("/api/v1/retention/plan")).status_code == 200
    writer = served.as_user("writer")
    pushed = await push_image(writer, "acme/app", "v2")
    assert (await writer.get(f"/v2/acme/app/manifests/{pushed.digest}")).status_code == 200
    assert (await bob.get("/v2/acme/public/tool/manifests/v1")).status_code == 200
    # The authenticated policy is in force: a principal without roles pulls its tenant's.
    await served.authority.store.add_user("guest", password("guest"), tenant="acme", actor="t")
    guest = served.as_user("guest")
    assert (await guest.get("/v2/acme/app/manifests/v1")).status_code == 200
    assert (await guest.get("/v2/globex/app/manifests/v1")).status_code == 404
    assert (await served.as_user("alice").get("/api/v1/tenants/acme/usage")).status_code == 200


async def test_foreign_answers_do_not_depend_on_existence(world: World) -> None:
    alice = world.served.as_user("alice")
    real = await alice.get("/v2/globex/app/manifests/v1")
    ghost = await alice.get("/v2/globex/ghost/manifests/v1")
    assert real.status_code == ghost.status_code == 404
    assert real.text.replace("globex/app", "X") == ghost.text.replace("globex/ghost", "X")


async def test_cross_tenant_mount_is_a_fresh_upload(world: World) -> None:
    alice = world.served.as_user("alice")
    digest = world.globex_layer.digest
    response = await alice.post(
        "/v2/acme/app/blobs/uploads/", params={"mount": str(digest), "from": "globex/app"}
    )
    assert response.status_code == 202, response.text
    assert (await alice.head(f"/v2/acme/app/blobs/{digest}")).status_code == 404
    # Within the tenant the same mount is a mount.
    mine = await alice.post(
        "/v2/acme/other/blobs/uploads/",
        params={"mount": str(world.acme.digest and digest), "from": "globex/app"},
    )
    assert mine.status_code == 202
    config = Blob(b"{}").digest
    own = await alice.post(
        "/v2/acme/other/blobs/uploads/", params={"mount": str(config), "from": "acme/app"}
    )
    assert own.status_code == 201, own.text


async def test_catalog_lists_only_what_the_caller_may_see(world: World) -> None:
    async def names(client: httpx.AsyncClient) -> list[str]:
        response = await client.get("/v2/_catalog")
        assert response.status_code == 200, response.text
        found = response.json()["repositories"]
        assert isinstance(found, list)
        return found

    served = world.served
    assert await names(served.as_user("alice")) == ["acme/app", "acme/other", "acme/public/tool"]
    assert await names(served.as_user("bob")) == ["acme/public/tool", "globex/app"]
    assert await names(served.as_user("root")) == [
        "acme/app",
        "acme/other",
        "acme/public/tool",
        "globex/app",
    ]
    page = await served.as_user("bob").get("/v2/_catalog", params={"n": 1})
    assert page.json()["repositories"] == ["acme/public/tool"]
    token = await served.token("bob", "registry:catalog:*")
    assert await names(served.bearer(token)) == ["acme/public/tool", "globex/app"]


async def test_password_guessing_is_rate_limited(world: World) -> None:
    served = world.served
    statuses = []
    for attempt in range(8):
        guess = served.client(basic("reader", f"guess-{attempt}"))
        statuses.append((await guess.get("/v2/")).status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    # Even the right password waits now: the account, not the guess, is limited.
    blocked = await served.as_user("reader").get("/v2/")
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert error_code(blocked) == "TOOMANYREQUESTS"
