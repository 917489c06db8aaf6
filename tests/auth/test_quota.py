"""Quotas count mounts, manifests and native publishes too, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from oci import native
from oci.digest import Digest
from oci.mediatype import OCI_MANIFEST
from tests.http._oci import Blob, error_code, image, push_blob, push_manifest, random_blob

from .conftest import AuthServed

pytestmark = pytest.mark.anyio


def _denied_for_quota(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    detail = response.json()["errors"][0]["detail"]
    assert detail["reason"] == "quota"
    assert detail["tenant"] == "acme"


async def test_a_mount_past_the_quota_is_denied_and_links_nothing(authed: AuthServed) -> None:
    store = authed.authority.store
    # A public repository outside the tenant: anyone may pull, so alice may mount from it.
    await store.add_policy("anonymous", "shared/**", ["pull"], actor="test")
    root, alice = authed.as_user("root"), authed.as_user("alice")
    big, small = random_blob(700), random_blob(200)
    await push_blob(root, "shared/base", big)
    await push_blob(root, "shared/base", small)
    await store.set_tenant("acme", quota_bytes=1000, actor="test")
    await push_blob(alice, "acme/app", random_blob(400))

    def mount(blob: Blob) -> dict[str, str]:
        return {"mount": str(blob.digest), "from": "shared/base"}

    refused = await alice.post("/v2/acme/app/blobs/uploads/", params=mount(big))
    _denied_for_quota(refused)
    assert refused.json()["errors"][0]["detail"]["incoming"] == 700
    assert (await alice.head(f"/v2/acme/app/blobs/{big.digest}")).status_code == 404
    events = await authed.registry.meta.events(0, 100, repo="acme/app", types=["blob.mounted"])
    assert events == []
    assert await store.usage("acme") == 400

    fits = await alice.post("/v2/acme/app/blobs/uploads/", params=mount(small))
    assert fits.status_code == 201, fits.text
    assert await store.usage("acme") == 600
    # Mounting what the tenant already holds adds nothing, even at the quota.
    await store.set_tenant("acme", quota_bytes=600, actor="test")
    again = await alice.post("/v2/acme/other/blobs/uploads/", params=mount(small))
    assert again.status_code == 201, again.text
    assert await store.usage("acme") == 600


async def test_manifest_bytes_count_and_a_manifest_past_the_quota_is_refused(
    authed: AuthServed,
) -> None:
    store = authed.authority.store
    alice = authed.as_user("alice")
    config, layer = Blob(b"{}"), random_blob(300)
    await push_blob(alice, "acme/app", config)
    await push_blob(alice, "acme/app", layer)
    document = image(config, [layer])
    body = json.dumps(document, separators=(",", ":")).encode()
    await store.set_tenant("acme", quota_bytes=302 + len(body) - 1, actor="test")

    refused = await alice.put(
        "/v2/acme/app/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    _denied_for_quota(refused)
    assert refused.json()["errors"][0]["detail"]["incoming"] == len(body)
    assert (await alice.get("/v2/acme/app/manifests/v1")).status_code == 404
    assert (await alice.get("/v2/acme/app/tags/list")).json()["tags"] in ([], None)

    await store.set_tenant("acme", quota_bytes=302 + len(body), actor="test")
    pushed = await push_manifest(alice, "acme/app", "v1", document)
    assert await store.usage_parts("acme") == (302, len(body))
    # At the quota exactly: another tag, or another repository, for the same
    # manifest stores nothing new; a different manifest does.
    await push_blob(alice, "acme/copy", config)
    await push_blob(alice, "acme/copy", layer)
    await push_manifest(alice, "acme/app", "v2", document)
    await push_manifest(alice, "acme/copy", str(pushed.digest), document)
    assert await store.usage("acme") == 302 + len(body)
    other = dict(document, annotations={"x": "y"})
    refused = await alice.put(
        "/v2/acme/app/manifests/v3",
        content=json.dumps(other).encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    _denied_for_quota(refused)

    usage = (await alice.get("/api/v1/tenants/acme/usage")).json()
    assert usage == {"tenant": "acme", "usage_bytes": 302 + len(body), "blob_bytes": 302,
                     "manifest_bytes": len(body), "quota_bytes": 302 + len(body)}  # fmt: skip


async def test_a_native_publish_counts_its_config_and_manifest(authed: AuthServed) -> None:
    store = authed.authority.store
    alice = authed.as_user("alice")
    data = b"model weights"
    sha = Digest.compute(data)
    upload = await alice.post(
        "/api/v1/artifacts/acme/models/uploads", params={"sha256": str(sha)}, content=data
    )
    assert upload.status_code == 201, upload.text
    entry = {"path": "w.bin", "size": len(data), "type": "application/octet-stream",
             "sha256": str(sha), "blake3": str(Digest.compute(data, "blake3"))}  # fmt: skip
    document = {"v": 1, "name": "acme/models", "version": "r1",
                "created": "2024-05-01T00:00:00Z", "files": [entry]}  # fmt: skip
    cbor = native.encode_cbor(native.from_json(document))
    oci_body = native.to_oci_manifest(native.from_json(document), Digest.compute(cbor), len(cbor))
    needed = len(data) + len(cbor) + len(oci_body)
    await store.set_tenant("acme", quota_bytes=needed - 1, actor="test")
    url = "/api/v1/artifacts/acme/models/versions/r1"
    headers = {"Content-Type": native.NATIVE_MANIFEST_CBOR}
    refused = await alice.put(url, content=cbor, headers=headers)
    _denied_for_quota(refused)
    assert refused.json()["errors"][0]["detail"]["incoming"] == len(cbor) + len(oci_body)
    assert (await alice.get(url)).status_code == 404
    assert await store.usage("acme") == len(data)  # the config blob was not kept either

    await store.set_tenant("acme", quota_bytes=needed, actor="test")
    published = await alice.put(url, content=cbor, headers=headers)
    assert published.status_code == 201, published.text
    assert await store.usage_parts("acme") == (len(data) + len(cbor), len(oci_body))
    # Publishing the same manifest again (a retry) is free.
    assert (await alice.put(url, content=cbor, headers=headers)).status_code == 201


async def test_usage_with_manifests_is_recomputable_from_the_event_log(
    authed: AuthServed,
) -> None:
    alice = authed.as_user("alice")
    config, layer = Blob(b"{}"), random_blob(123)
    await push_blob(alice, "acme/app", config)
    await push_blob(alice, "acme/app", layer)
    await push_manifest(alice, "acme/app", "v1", image(config, [layer]))
    before = await authed.authority.store.usage_parts("acme")
    assert before[1] > 0
    await authed.registry.meta.rebuild_views()
    assert await authed.authority.store.usage_parts("acme") == before


async def test_a_body_streamed_without_a_length_counts_the_bytes_already_staged(
    authed: AuthServed,
) -> None:
    store = authed.authority.store
    alice = authed.as_user("alice")
    await store.set_tenant("acme", quota_bytes=1000, actor="test")
    started = await alice.post("/v2/acme/app/blobs/uploads/")
    assert started.status_code == 202, started.text
    staged = await alice.patch(started.headers["location"], content=b"x" * 600)
    assert staged.status_code == 202, staged.text
    location = staged.headers["location"]

    async def chunks(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 100):
            yield b"y" * 100

    fits = await alice.patch(location, content=chunks(200))
    assert "content-length" not in fits.request.headers
    assert fits.status_code == 202, fits.text
    assert fits.headers["range"] == "0-799"
    # 800 staged + 300 streamed passes the quota, though 300 alone would not:
    # the body is cut off where it reaches the quota.
    refused = await alice.patch(location, content=chunks(300))
    assert "content-length" not in refused.request.headers
    _denied_for_quota(refused)
    status = await alice.get(location)
    assert status.status_code == 204, status.text
    assert int(status.headers["range"].partition("-")[2]) < 1000
