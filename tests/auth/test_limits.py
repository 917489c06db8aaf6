"""Request rate limits and storage quotas, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from registry.auth.ratelimit import RateLimiter
from tests.http._oci import Blob, error_code, push_blob, random_blob

from .conftest import AuthServed

pytestmark = pytest.mark.anyio


@pytest.fixture
def extra_settings() -> dict[str, object]:
    return {"rate_per_second": 0.5, "rate_burst": 20}


async def test_principal_rate_limit_answers_429_with_retry_after(authed: AuthServed) -> None:
    bob = authed.as_user("bob")
    statuses = [(await bob.get("/v2/")).status_code for _ in range(22)]
    assert statuses[:20] == [200] * 20
    assert statuses[-1] == 429
    limited = await bob.get("/v2/")
    assert error_code(limited) == "TOOMANYREQUESTS"
    assert int(limited.headers["retry-after"]) >= 1
    # Another principal has a bucket of its own.
    assert (await authed.as_user("alice").get("/v2/")).status_code == 200


async def test_tenant_rate_limit_spans_its_principals(authed: AuthServed) -> None:
    await authed.authority.store.set_tenant("acme", rate_per_second=0.01, burst=6, actor="test")
    alice, reader = authed.as_user("alice"), authed.as_user("reader")
    statuses = [(await c.get("/v2/")).status_code for c in (alice, reader) * 4]
    assert statuses[:6] == [200] * 6
    assert statuses[6:] == [429, 429]
    assert (await authed.as_user("bob").get("/v2/")).status_code == 200


async def test_buckets_are_shared_through_the_database(authed: AuthServed) -> None:
    """Two limiters (two processes) on one database spend from one bucket."""
    engine = authed.authority.store.engine
    first, second = RateLimiter(engine), RateLimiter(engine)
    now = 1_000_000.0
    results = [await (first if i % 2 else second).take("k", 1.0, 4, now) for i in range(5)]
    assert results[:4] == [None] * 4
    assert results[4] == 1.0
    assert await first.take("k", 1.0, 4, now + 1.0) is None


async def test_push_past_quota_is_denied_before_bytes_are_kept(authed: AuthServed) -> None:
    await authed.authority.store.set_tenant("acme", quota_bytes=1000, actor="test")
    alice = authed.as_user("alice")
    kept = random_blob(600)
    await push_blob(alice, "acme/app", kept)
    assert await authed.authority.store.usage("acme") == 600
    # The same blob again counts once: usage is on unique bytes.
    await push_blob(alice, "acme/other", kept)
    assert await authed.authority.store.usage("acme") == 600

    too_big = random_blob(500)
    response = await alice.post(
        "/v2/acme/app/blobs/uploads/",
        params={"digest": str(too_big.digest)},
        content=too_big.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["detail"]["reason"] == "quota"
    head = await alice.head(f"/v2/acme/app/blobs/{too_big.digest}")
    assert head.status_code == 404

    # Chunked: the PATCH that would cross the quota is refused.
    started = await alice.post("/v2/acme/app/blobs/uploads/")
    location = started.headers["location"]
    first = await alice.patch(location, content=b"x" * 300)
    assert first.status_code == 202
    second = await alice.patch(
        first.headers["location"], content=b"y" * 300, headers={"Content-Range": "300-599"}
    )
    assert second.status_code == 403
    assert await authed.authority.store.usage("acme") == 600

    usage = await alice.get("/api/v1/tenants/acme/usage")
    assert usage.json() == {"tenant": "acme", "usage_bytes": 600, "blob_bytes": 600,
                            "manifest_bytes": 0, "quota_bytes": 1000}  # fmt: skip
    # Other tenants are not bound by acme's quota.
    await push_blob(authed.as_user("bob"), "globex/app", Blob(b"z" * 2000))


async def test_usage_is_recomputable_from_the_event_log(authed: AuthServed) -> None:
    alice = authed.as_user("alice")
    await push_blob(alice, "acme/app", random_blob(123))
    await push_blob(authed.as_user("bob"), "globex/app", random_blob(77))
    before = await authed.authority.store.usage("acme")
    await authed.registry.meta.rebuild_views()
    assert await authed.authority.store.usage("acme") == before == 123
