"""Held content survives retention and garbage collection; released, it is collected.

Holds are placed and released through the API; retention rules that
expire everything are applied by garbage collection runs (``collect``,
the same function the ``gc`` command and the server's schedule call), with
a clock moved days ahead instead of sleeping. Afterwards every held
manifest must pull completely, each blob's bytes verified against its digest.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oci.digest import Digest
from registry.config import LifecycleSettings, Settings
from registry.events import running_events
from registry.http.app import create_app
from registry.http.state import state_of
from registry.lifecycle.gc import collect
from registry.lifecycle.retention import plan
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.http._oci import Blob, Pushed, image, index, push_blob, push_manifest, random_blob
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["make_url"]

pytestmark = pytest.mark.anyio

HELD = "team/app"
WHOLE = "team/vault"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
# Every tag expires an hour after its push; untagged manifests an hour after losing their tags.
POLICY = LifecycleSettings(
    policy={"retention": {"rules": [{"name": "expire-all", "repository": "**",
                                     "expire_after": "1h", "untagged_grace": "1h"}]}}
)  # fmt: skip


@dataclass
class Env:
    client: httpx.AsyncClient
    registry: Registry


@pytest.fixture
async def env(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    settings = Settings(data_dir=str(tmp_path), lifecycle=POLICY)
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), settings)
    app = create_app(settings, registry)
    try:
        async with (
            running_events(meta, None, settings.events.nats_subject) as events,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://registry.test"
            ) as client,
        ):
            state_of(app).events = events
            yield Env(client, registry)
    finally:
        await meta.close()


async def _image(client: httpx.AsyncClient, repo: str, tag: str | None) -> Pushed:
    config, layer = Blob(json.dumps({"tag": tag}).encode()), random_blob(2048)
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    return await push_manifest(client, repo, tag, image(config, [layer]))


async def _pulls_completely(client: httpx.AsyncClient, repo: str, reference: str) -> set[str]:
    """GET the manifest and, recursively, every manifest and blob it names; verify each digest."""
    response = await client.get(
        f"/v2/{repo}/manifests/{reference}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                 "application/vnd.oci.image.manifest.v1+json"},
    )  # fmt: skip
    assert response.status_code == 200, (repo, reference, response.text)
    seen = {str(Digest.compute(response.content))}
    document = json.loads(response.content)
    for child in document.get("manifests", []):
        seen |= await _pulls_completely(client, repo, child["digest"])
    for descriptor in [document.get("config"), *document.get("layers", [])]:
        if descriptor is None:
            continue
        blob = await client.get(f"/v2/{repo}/blobs/{descriptor['digest']}")
        assert blob.status_code == 200, (repo, descriptor["digest"])
        assert str(Digest.compute(blob.content)) == descriptor["digest"]
        seen.add(descriptor["digest"])
    return seen


async def _stored(registry: Registry, digest: str) -> bool:
    return any([info.sha256 == Digest.parse(digest) async for info in registry.blobs.list()])


async def _place(client: httpx.AsyncClient, repo: str, reference: str | None) -> str:
    body = {"repository": repo, "reference": reference, "reason": "case 99"}
    response = await client.post("/api/v1/holds", json=body)
    assert response.status_code == 201, response.text
    hold_id: str = response.json()["id"]
    return hold_id


async def _gc(registry: Registry, days: int) -> None:
    # Twice: what one run releases (a deleted manifest's links) its grace
    # window keeps until the next.
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    for hours in (0, 2):
        await collect(registry, grace=dt.timedelta(hours=1), now=now + dt.timedelta(hours=hours))


async def test_held_content_is_never_planned_nor_collected_until_released(env: Env) -> None:
    client, registry = env.client, env.registry
    amd64, arm64 = await _image(client, HELD, None), await _image(client, HELD, None)
    fat = await push_manifest(client, HELD, "v1", index([amd64, arm64]))
    payload = random_blob(96)
    await push_blob(client, HELD, payload)
    signature = await push_manifest(
        client, HELD, None, image(payload, [], subject=fat, artifact_type=SIGNATURE_TYPE)
    )
    doomed = await _image(client, HELD, "v2")
    doomed_layer = json.loads(doomed.body)["layers"][0]["digest"]
    await _image(client, WHOLE, "v1")
    loose = random_blob(64)
    await push_blob(client, WHOLE, loose)

    by_tag = await _place(client, HELD, "v1")
    by_repository = await _place(client, WHOLE, None)

    found = await plan(registry, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3))
    planned = {item.digest for item in found.deletions}
    assert planned == {str(doomed.digest)}  # its tag, then the manifest
    protected = {(k.repository, k.digest): k.protected_by for k in found.kept}
    assert protected[(HELD, str(fat.digest))] == f"legal hold {by_tag}"
    assert {p for (repo, _), p in protected.items() if repo == WHOLE} == {
        f"legal hold {by_repository}"
    }

    await _gc(registry, days=3)
    held_digests = await _pulls_completely(client, HELD, "v1")
    assert {str(amd64.digest), str(arm64.digest)} <= held_digests
    assert await _pulls_completely(client, HELD, str(signature.digest))
    assert await _pulls_completely(client, WHOLE, "v1")
    assert (await client.get(f"/v2/{WHOLE}/blobs/{loose.digest}")).content == loose.data
    assert await _stored(registry, str(loose.digest))
    # What no hold covered went: the manifest, its link and then its bytes.
    assert (await client.get(f"/v2/{HELD}/manifests/{doomed.digest}")).status_code == 404
    assert not await _stored(registry, doomed_layer)

    for hold_id in (by_tag, by_repository):
        released = await client.delete(f"/api/v1/holds/{hold_id}", params={"reason": "done"})
        assert released.status_code == 200
    await _gc(registry, days=6)
    for repo, reference in ((HELD, "v1"), (HELD, str(signature.digest)), (WHOLE, "v1")):
        assert (await client.get(f"/v2/{repo}/manifests/{reference}")).status_code == 404
    for digest in held_digests | {str(loose.digest)}:
        assert not await _stored(registry, digest), digest


async def test_a_layer_named_by_blake3_is_held_by_its_sha256_key_too(env: Env) -> None:
    client, registry = env.client, env.registry
    config, layer = Blob(b'{"os":"linux"}'), random_blob(1024)
    await push_blob(client, HELD, config)
    await push_blob(client, HELD, layer)
    blake3 = str(Digest.compute(layer.data, "blake3"))
    document = image(config, [layer])
    document["layers"][0]["digest"] = blake3  # a manifest may name a layer by its blake3
    pushed = await push_manifest(client, HELD, "v1", document)
    # The link goes before the hold (an explicit DELETE was allowed then) ...
    assert (await client.delete(f"/v2/{HELD}/blobs/{layer.digest}")).status_code == 202
    await _place(client, HELD, str(pushed.digest))
    # ... and the held manifest still keeps the bytes from garbage collection.
    await _gc(registry, days=3)
    assert await _stored(registry, str(layer.digest))
    held_config = await client.delete(f"/v2/{HELD}/blobs/{config.digest}")
    assert held_config.status_code == 403
