"""The embedding surface: ``registry.open_embedded`` and the ``EmbeddedRegistry`` it yields."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oci.errors import BlobUnknown, DigestInvalid, ManifestUnknown, NameUnknown, RangeNotSatisfiable
from oci.mediatype import OCI_MANIFEST
from oci.native import NativeFile, NativeManifest
from registry import Digest, EmbeddedRegistry, open_embedded
from storage.errors import BlobNotFound
from storage.filesystem import FsBlobStore

pytestmark = pytest.mark.anyio

REPO = "team/app"
MIB = 1024 * 1024


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def pulled(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_blob_round_trip_streams_both_ways(embedded: EmbeddedRegistry) -> None:
    data = bytes(range(256)) * (12 * 1024)  # 3 MiB
    info = await embedded.push_blob(REPO, pieces(data, 64 * 1024))
    assert (str(info.sha256), info.size) == (sha256(data), len(data))
    chunks = await pulled(await embedded.pull_blob(REPO, info.sha256))
    assert b"".join(chunks) == data
    assert len(chunks) > 1  # streamed, not handed over in one piece
    part = await pulled(await embedded.pull_blob(REPO, str(info.blake3), offset=MIB, length=10))
    assert b"".join(part) == data[MIB : MIB + 10]
    with pytest.raises(RangeNotSatisfiable):
        await embedded.pull_blob(REPO, info.sha256, offset=len(data) + 1)


async def test_push_with_digest_is_verified(embedded: EmbeddedRegistry) -> None:
    data = b"named content"
    info = await embedded.push_blob(REPO, data, digest=sha256(data))
    assert str(info.sha256) == sha256(data)
    again = await embedded.push_blob(REPO, pieces(data, 3), digest=Digest.parse(sha256(data)))
    assert again == info
    assert b"".join(await pulled(await embedded.pull_blob(REPO, sha256(data)))) == data


async def test_wrong_digest_keeps_nothing(embedded: EmbeddedRegistry, tmp_path: Path) -> None:
    data, other = b"what was sent", b"what was meant"
    with pytest.raises(DigestInvalid):
        await embedded.push_blob(REPO, data, digest=sha256(other))
    with pytest.raises(BlobUnknown):
        await embedded.pull_blob(REPO, sha256(data))
    assert await embedded.events() == []
    store = FsBlobStore(tmp_path / "data" / "blobs")  # neither the blob nor its staging is left
    with pytest.raises(BlobNotFound):
        await store.stat(Digest.parse(sha256(data)))
    assert [upload async for upload in store.list_uploads()] == []


async def test_pull_from_another_repository_is_unknown(embedded: EmbeddedRegistry) -> None:
    info = await embedded.push_blob(REPO, b"mine")
    with pytest.raises(BlobUnknown):
        await embedded.pull_blob("team/other", info.sha256)


async def _image(embedded: EmbeddedRegistry, layer: bytes) -> bytes:
    config = b"{}"
    await embedded.push_blob(REPO, config)
    await embedded.push_blob(REPO, layer)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(layer),
                "size": len(layer),
            }
        ],
    }
    return json.dumps(document).encode()


async def test_manifest_by_tag_and_by_digest(embedded: EmbeddedRegistry) -> None:
    body = await _image(embedded, b"layer bytes")
    digest = await embedded.put_manifest(REPO, "v1", body, OCI_MANIFEST, tags=["latest"])
    assert str(digest) == sha256(body)
    by_tag = await embedded.get_manifest(REPO, "latest")
    by_digest = await embedded.get_manifest(REPO, str(digest))
    assert by_tag.body == by_digest.body == body
    assert (by_tag.digest, by_tag.media_type) == (digest, OCI_MANIFEST)
    assert await embedded.tags(REPO) == ["latest", "v1"]
    with pytest.raises(ManifestUnknown):
        await embedded.get_manifest(REPO, "v2")
    with pytest.raises(NameUnknown):
        await embedded.tags("team/none")


async def test_native_publish_get_and_read_file(embedded: EmbeddedRegistry) -> None:
    files = {"bin/tool": b"\x7fELF" + b"x" * 5000, "README": b"read me"}
    entries = []
    for path, data in files.items():
        info = await embedded.push_blob(REPO, data)
        entries.append(
            NativeFile(path, info.size, "application/octet-stream", info.sha256, info.blake3)
        )
    created = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    manifest = NativeManifest(
        REPO, "1.0.0", tuple(entries), created=created, labels={"channel": "stable"}
    )
    published = await embedded.publish(manifest)
    got = await embedded.get_artifact(REPO, "1.0.0")
    assert got.digest == published.digest
    assert {f.path: f.size for f in got.manifest.files} == {p: len(d) for p, d in files.items()}
    assert got.manifest.labels == {"channel": "stable"}
    for path, data in files.items():
        assert b"".join(await pulled(await embedded.read_file(REPO, "1.0.0", path))) == data
    with pytest.raises(ManifestUnknown):
        await embedded.read_file(REPO, "1.0.0", "missing")
    assert "1.0.0" in await embedded.tags(REPO)


async def test_events_after_a_seq_carry_the_actor(embedded: EmbeddedRegistry) -> None:
    await embedded.push_blob("team/before", b"earlier")
    seq = (await embedded.events())[-1].seq
    first = await embedded.push_blob(REPO, b"one")
    second = await embedded.push_blob(REPO, b"two")
    later = await embedded.events(after=seq)
    assert [(e.type, e.actor, e.repository) for e in later] == [
        ("blob.committed", "test-bot", REPO),
        ("blob.committed", "test-bot", REPO),
    ]
    assert [getattr(e.event, "sha256", None) for e in later] == [first.sha256, second.sha256]
    assert await embedded.events(repository="team/before") == (await embedded.events())[:1]
    assert len(await embedded.events(limit=2)) == 2


async def test_open_on_urls_and_reopen(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    storage = (tmp_path / "store").as_uri()
    async with open_embedded(database_url=database, storage_url=storage) as first:
        info = await first.push_blob(REPO, b"kept")
        assert (await first.events())[-1].actor == "embedded"
    assert not (tmp_path / "data").exists()  # nothing went to a default data directory
    async with open_embedded(database_url=database, storage_url=storage) as second:
        assert b"".join(await pulled(await second.pull_blob(REPO, info.sha256))) == b"kept"
    with pytest.raises(ValueError, match="data_dir"):
        async with open_embedded(database_url=database):
            pass
