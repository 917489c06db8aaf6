"""The registry's ASGI app mounted under a path prefix inside another Starlette application.

Starlette runs neither a mounted app's lifespan nor rewrites the URLs it
answers with: the parent's lifespan runs the registry's (as
docs/embedding.md shows), and every ``Location`` and ``Link`` must carry
the mount's prefix (``root_path``) so a client that follows them stays
inside the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator

import blake3
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from oci import native
from oci.mediatype import OCI_MANIFEST
from registry import EmbeddedRegistry
from tests.native.conftest import cbor_of, file_entry, manifest_json

pytestmark = pytest.mark.anyio

REPO = "team/app"
PREFIX = "/registry"


def _parent(embedded: EmbeddedRegistry) -> Starlette:
    registry_app = embedded.asgi_app()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with registry_app.router.lifespan_context(registry_app):
            yield

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the parent")

    return Starlette(routes=[Route("/", home), Mount(PREFIX, app=registry_app)], lifespan=lifespan)


@pytest.fixture
async def client(embedded: EmbeddedRegistry) -> AsyncIterator[httpx.AsyncClient]:
    parent = _parent(embedded)
    async with parent.router.lifespan_context(parent):  # what the server does at start-up
        transport = httpx.ASGITransport(app=parent)
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as c:
            yield c


async def test_chunked_upload_follows_location_under_the_prefix(
    client: httpx.AsyncClient, embedded: EmbeddedRegistry
) -> None:
    assert (await client.get("/")).text == "the parent"
    data = b"0123456789" * 1000
    opened = await client.post(f"{PREFIX}/v2/{REPO}/blobs/uploads/")
    assert opened.status_code == 202
    location = opened.headers["location"]
    assert location.startswith(f"http://host.test{PREFIX}/v2/{REPO}/blobs/uploads/")
    for start in range(0, len(data), 4000):
        piece = data[start : start + 4000]
        answer = await client.patch(
            location,
            content=piece,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(piece) - 1}",
            },
        )
        assert answer.status_code == 202, answer.text
        location = answer.headers["location"]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = await client.put(location, params={"digest": digest})
    assert done.status_code == 201, done.text
    assert done.headers["location"] == f"http://host.test{PREFIX}/v2/{REPO}/blobs/{digest}"
    assert (await client.get(done.headers["location"])).content == data
    # The same blob, through the same open registry, without HTTP.
    assert b"".join([c async for c in await embedded.pull_blob(REPO, digest)]) == data


async def test_manifest_location_and_tag_list_link_carry_the_prefix(
    client: httpx.AsyncClient, embedded: EmbeddedRegistry
) -> None:
    config = await embedded.push_blob(REPO, b"{}")
    config_descriptor = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": str(config.sha256),
        "size": config.size,
    }
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor}
    body = json.dumps({**document, "layers": []}).encode()
    for tag in ("a", "b"):
        put = await client.put(
            f"{PREFIX}/v2/{REPO}/manifests/{tag}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
    assert (await client.get(put.headers["location"])).content == body
    first = await client.get(f"{PREFIX}/v2/{REPO}/tags/list", params={"n": 1})
    assert first.json()["tags"] == ["a"]
    link = first.headers["link"].split(";")[0].strip("<>")
    assert link.startswith(f"{PREFIX}/v2/{REPO}/tags/list?")
    assert (await client.get(link)).json()["tags"] == ["b"]


async def test_native_api_under_the_prefix(client: httpx.AsyncClient) -> None:
    data = b"native file bytes"
    opened = await client.post(f"{PREFIX}/api/v1/artifacts/{REPO}/uploads")
    assert opened.status_code == 201
    location = opened.headers["location"]
    assert location.startswith(f"{PREFIX}/api/v1/artifacts/{REPO}/uploads/")
    patched = await client.patch(location, content=data, headers={"Content-Range": "0-16"})
    assert patched.status_code == 200, patched.text
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    b3 = "blake3:" + blake3.blake3(data).hexdigest()
    committed = await client.put(patched.headers["location"], params={"sha256": sha})
    assert committed.status_code == 201, committed.text
    assert committed.json()["blake3"] == b3
    for version in ("1.0.0", "1.1.0"):
        document = manifest_json(REPO, version, [file_entry("data.bin", data)])
        published = await client.put(
            f"{PREFIX}/api/v1/artifacts/{REPO}/versions/{version}",
            content=cbor_of(document),
            headers={"Content-Type": native.NATIVE_MANIFEST_CBOR},
        )
        assert published.status_code == 201, published.text
    shown = await client.get(published.headers["location"])
    assert shown.status_code == 200
    assert (await client.get(f"{published.headers['location']}/files/data.bin")).content == data
    listed = await client.get(f"{PREFIX}/api/v1/artifacts/{REPO}/versions", params={"n": 1})
    link = listed.headers["link"].split(";")[0].strip("<>")
    assert link.startswith(f"{PREFIX}/api/v1/artifacts/{REPO}/versions?")
    assert [v["version"] for v in (await client.get(link)).json()["versions"]] == ["1.1.0"]
    held = await client.post(f"{PREFIX}/api/v1/holds", json={"repository": REPO, "reason": "audit"})
    assert held.status_code == 201, held.text
    assert held.headers["location"].startswith(f"{PREFIX}/api/v1/holds/")
    assert (await client.get(held.headers["location"])).json()["reason"] == "audit"
