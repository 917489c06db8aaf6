"""Two replicas on one database and one bucket behave as one registry.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-a-blob-in-chunks
A client may send each request of a session to a different replica (a load
balancer without affinity does exactly that), so every request here names the
replica it goes to.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from oci.digest import Digest
from storage.s3 import S3BlobStore
from tests.clients._layout import Layout, build_image, run
from tests.http._oci import Blob, image, push_blob, push_manifest, random_blob
from tests.scaleout._cluster import Server, started

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

MiB = 1024 * 1024
SKOPEO = ("skopeo", "--insecure-policy")


def _path(location: str) -> str:
    """The path and query of an upload URL, to send to whichever replica we choose."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _patch(client: httpx.AsyncClient, location: str, start: int, data: bytes) -> str:
    response = await client.patch(
        location,
        content=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(data) - 1}",
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{start + len(data) - 1}"
    return _path(response.headers["Location"])


async def test_chunked_upload_alternates_between_replicas(
    pair: tuple[Server, Server], repo: str
) -> None:
    a, b = pair
    # Chunk sizes straddle the S3 driver's 8 MiB parts: a short tail written by one
    # replica must be picked up and grown by the other.
    chunks = [os.urandom(n) for n in (3 * MiB, 7 * MiB, 9 * MiB, 1 * MiB, 5 * MiB)]
    whole = b"".join(chunks)
    digest = Digest.compute(whole)
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as on_b,
    ):
        started_at = await on_a.post(f"/v2/{repo}/blobs/uploads/")
        assert started_at.status_code == 202
        location, offset = _path(started_at.headers["Location"]), 0
        for number, chunk in enumerate(chunks):
            location = await _patch((on_a, on_b)[number % 2], location, offset, chunk)
            offset += len(chunk)
        status = await on_a.get(location)
        assert status.headers["Range"] == f"0-{len(whole) - 1}"
        done = await on_b.put(location, params={"digest": str(digest)})
        assert done.status_code == 201, done.text
        assert done.headers["Docker-Content-Digest"] == str(digest)
        for client in (on_a, on_b):
            pulled = hashlib.sha256()
            async with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
                assert response.status_code == 200
                async for piece in response.aiter_bytes():
                    pulled.update(piece)
            assert f"sha256:{pulled.hexdigest()}" == str(digest)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    path = tmp_path_factory.mktemp("layout") / "oci"
    return build_image(path, "v1", {"/data.bin": os.urandom(3 * MiB), "/etc/motd": b"scale-out\n"})


def test_skopeo_pushes_through_one_replica_and_pulls_through_the_other(
    pair: tuple[Server, Server], repo: str, layout: Layout, tmp_path: Path
) -> None:
    a, b = pair
    run(*SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1", a.ref(repo, "v1"))
    out = Layout(tmp_path / "out")
    run(*SKOPEO, "copy", "--src-tls-verify=false", b.ref(repo, "v1"), f"oci:{out.path}:v1")
    assert out.descriptor("v1")["digest"] == layout.descriptor("v1")["digest"]
    assert out.layer_digests("v1") == layout.layer_digests("v1")
    for digest in layout.layer_digests("v1"):
        assert out.blob(digest) == layout.blob(digest)


async def _digest_of(client: httpx.AsyncClient, repo: str, tag: str) -> str | None:
    response = await client.get(
        f"/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.headers["Docker-Content-Digest"]


async def test_tag_moves_on_one_replica_are_seen_by_the_other_at_once(
    pair: tuple[Server, Server], repo: str
) -> None:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        config = Blob(b"{}")
        await push_blob(on_a, repo, config)
        targets = []
        for _ in range(3):
            layer = random_blob()
            await push_blob(on_a, repo, layer)
            targets.append(await push_manifest(on_a, repo, None, image(config, [layer])))
        for _round in range(3):
            for target in targets:
                await push_manifest(on_b, repo, "latest", json.loads(target.body))
                # No wait, no retry: the very next request to A must see the move.
                assert await _digest_of(on_a, repo, "latest") == str(target.digest)
        deleted = await on_b.delete(f"/v2/{repo}/manifests/latest")
        assert deleted.status_code == 202
        assert await _digest_of(on_a, repo, "latest") is None


async def test_concurrent_pushes_of_one_blob_and_manifest_through_both_replicas(
    pair: tuple[Server, Server], repo: str, bucket_url: str
) -> None:
    store = S3BlobStore.from_url(bucket_url)
    config, layer = Blob(b"{}"), random_blob(9 * MiB)  # more than one S3 part
    document = image(config, [layer])
    body = json.dumps(document, separators=(",", ":")).encode()
    clients = [httpx.AsyncClient(base_url=s.url, timeout=120) for s in pair]
    try:
        for round_ in range(2):
            statuses = await asyncio.gather(
                *(
                    clients[i % 2].post(
                        f"/v2/{repo}/blobs/uploads/", params={"digest": str(b.digest)},
                        content=b.data,
                    )
                    for i in range(6)
                    for b in (config, layer)
                )
            )  # fmt: skip
            assert [r.status_code for r in statuses] == [201] * 12, [r.text for r in statuses]
            tags = [f"r{round_}", "shared"]
            puts = await asyncio.gather(
                *(
                    clients[i % 2].put(
                        f"/v2/{repo}/manifests/{tags[i % 2]}", content=body,
                        headers={"Content-Type": document["mediaType"]},
                    )
                    for i in range(8)
                )
            )  # fmt: skip
            assert [r.status_code for r in puts] == [201] * 8, [r.text for r in puts]
        listed = [(await c.get(f"/v2/{repo}/tags/list")).json()["tags"] for c in clients]
        assert sorted(listed[0]) == sorted(listed[1]) == ["r0", "r1", "shared"]
        digests = {await _digest_of(c, repo, t) for c in clients for t in listed[0]}
        assert digests == {str(Digest.compute(body))}
    finally:
        for client in clients:
            await client.aclose()
    stored = [info async for info in store.list() if info.sha256 == layer.digest]
    assert len(stored) == 1
    assert stored[0].size == layer.size
    assert [u async for u in store.list_uploads()] == [], "a racing push left staged bytes"


async def test_upload_survives_sigkill_of_the_replica_that_started_it(
    tmp_path: Path, database_url: str, bucket_url: str, pair: tuple[Server, Server], repo: str
) -> None:
    _, b = pair
    first = [os.urandom(n) for n in (8 * MiB, 2 * MiB)]
    rest = os.urandom(6 * MiB)
    digest = Digest.compute(b"".join([*first, rest]))
    with started(tmp_path, database_url, bucket_url, ()) as (doomed,):
        async with httpx.AsyncClient(base_url=doomed.url, timeout=60) as on_doomed:
            response = await on_doomed.post(f"/v2/{repo}/blobs/uploads/")
            location, offset = _path(response.headers["Location"]), 0
            for chunk in first:
                location = await _patch(on_doomed, location, offset, chunk)
                offset += len(chunk)
            doomed.kill()
    async with httpx.AsyncClient(base_url=b.url, timeout=60) as on_b:
        status = await on_b.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
        await _patch(on_b, location, offset, rest)
        done = await on_b.put(location, params={"digest": str(digest)})
        assert done.status_code == 201, done.text
        head = await on_b.head(f"/v2/{repo}/blobs/{digest}")
        assert head.headers["Content-Length"] == str(offset + len(rest))
