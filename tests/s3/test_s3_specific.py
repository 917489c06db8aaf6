"""What only the S3 driver has: its part schedule, sessions kept in the bucket, URLs.

Behaviour every driver shares is tested in storage/testing/, not here.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.request

import anyio
import pytest

from oci.digest import Digest
from storage._s3_upload import _MAX_PARTS, MAX_BLOB_SIZE, part_span
from storage.errors import BlobNotFound, StorageUnavailable
from storage.s3 import S3BlobStore

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def test_part_schedule_is_contiguous_and_fits_s3_limits() -> None:
    offset, parts, sizes = 0, 0, set()
    while offset < MAX_BLOB_SIZE:
        start, size = part_span(offset)
        assert start == offset
        assert 5 * MiB <= size <= 5 * 1024 * MiB  # UploadPartCopy bounds
        assert part_span(offset + size - 1) == (start, size)
        sizes.add(size)
        offset += size
        parts += 1
    assert offset == MAX_BLOB_SIZE
    assert parts == _MAX_PARTS
    assert MAX_BLOB_SIZE > 800 * 1024**3  # blobs far past 10 GiB fit 10,000 parts
    assert max(sizes) == 128 * MiB  # ... while a writer buffers at most 128 MiB


def test_from_url_reads_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACT_STORE_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("ARTIFACT_STORE_S3_SECRET_KEY", "s")
    store = S3BlobStore.from_url("s3://bkt/a/b/?endpoint=http://127.0.0.1:1&region=eu-west-1")
    assert repr(store) == "S3BlobStore(s3://bkt/a/b/)"
    with pytest.raises(ValueError, match="s3://"):
        S3BlobStore.from_url("file:///tmp/x")
    with pytest.raises(ValueError, match="endpoint"):
        S3BlobStore.from_url("s3://bkt?endpoint=127.0.0.1:9000")


async def test_unreachable_endpoint_is_storage_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARTIFACT_STORE_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("ARTIFACT_STORE_S3_SECRET_KEY", "s")
    store = S3BlobStore.from_url("s3://bkt?endpoint=http://127.0.0.1:1")  # nothing listens on 1
    with pytest.raises(StorageUnavailable):
        await store.check()


async def test_missing_bucket_fails_check(s3_url: str) -> None:
    store = S3BlobStore.from_url(s3_url.replace("s3://", "s3://no-such-bucket-", 1))
    with pytest.raises(StorageUnavailable, match="does not exist"):
        await store.check()


async def _put(store: S3BlobStore, upload_id: str, data: bytes) -> None:
    writer = await store.upload(upload_id)
    await writer.write(data)
    await writer.close()


async def test_session_resumes_in_another_process_across_part_boundaries(
    s3_store: S3BlobStore, s3_store_url: str
) -> None:
    # A second store object holds no hash state: it stands for another replica.
    other = S3BlobStore.from_url(s3_store_url)
    data = os.urandom(21 * MiB + 12345)
    await _put(s3_store, "u1", data[: 3 * MiB])  # a short tail part
    await _put(other, "u1", data[3 * MiB : 11 * MiB])  # reloads the tail, fills part 0
    writer = await s3_store.upload("u1")  # its cache is stale: must re-hash
    assert writer.offset == 11 * MiB
    await writer.write(data[11 * MiB :])
    info = await writer.commit(Digest.compute(data))
    assert info.blake3 == Digest.compute(data, "blake3")
    assert info.size == len(data)
    assert (
        b"".join([c async for c in await other.read(info.blake3, 8 * MiB - 7, 10)])
        == (data[8 * MiB - 7 : 8 * MiB + 3])
    )
    assert [u async for u in s3_store.list_uploads()] == []
    await s3_store.delete(info.sha256)


async def test_cached_hash_state_is_not_trusted_after_another_writer(
    s3_store: S3BlobStore, s3_store_url: str
) -> None:
    other = S3BlobStore.from_url(s3_store_url)
    await _put(s3_store, "u2", b"a" * 1000)  # s3_store caches hash state for 1000 bytes
    await other.discard_upload("u2")
    await _put(other, "u2", b"b" * 1000)  # same size, other bytes
    writer = await s3_store.upload("u2")
    info = await writer.commit()
    assert info.sha256 == Digest.compute(b"b" * 1000)
    await s3_store.delete(info.sha256)


async def test_commit_fails_and_publishes_nothing_when_parts_change_underneath(
    s3_store: S3BlobStore, s3_store_url: str
) -> None:
    other = S3BlobStore.from_url(s3_store_url)
    mine = b"m" * (17 * MiB)
    writer = await s3_store.upload("u3")
    # part 0 (8 MiB) is stored, hashed by this writer: storing part 1 waited for it
    await writer.write(mine)
    await other.discard_upload("u3")
    await _put(other, "u3", b"x" * (9 * MiB))
    with pytest.raises(StorageUnavailable):
        await writer.commit()
    with pytest.raises(BlobNotFound):
        await s3_store.stat(Digest.compute(mine))
    await other.discard_upload("u3")


async def test_sha512_alias_resolves_and_is_deleted_with_the_blob(s3_store: S3BlobStore) -> None:
    data = b"sha512 please"
    sha512 = Digest("sha512", hashlib.sha512(data).hexdigest())
    writer = await s3_store.upload("u4")
    await writer.write(data)
    info = await writer.commit(sha512)
    assert (await s3_store.stat(sha512)).sha256 == info.sha256
    await s3_store.delete(sha512)
    for digest in (sha512, info.sha256, info.blake3):
        with pytest.raises(BlobNotFound):
            await s3_store.stat(digest)


async def test_redirect_url_is_a_working_presigned_get(s3_store: S3BlobStore) -> None:
    writer = await s3_store.upload("u5")
    await writer.write(b"redirect me")
    info = await writer.commit()
    url = await s3_store.redirect_url(info.blake3, 60)
    assert url is not None
    body = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(url).read())
    assert body == b"redirect me"
    await s3_store.delete(info.sha256)


async def test_a_part_is_hashed_in_one_piece(
    s3_store: S3BlobStore, hashed_pieces: list[int]
) -> None:
    """Small request-body pieces are hashed per part, not one thread hop each."""
    sizes = hashed_pieces
    first = part_span(0)[1]
    piece = os.urandom(64 << 10)
    count = first // len(piece) + 8  # one full part and 512 KiB of the next
    writer = await s3_store.upload("pieces")
    for _ in range(count):
        await writer.write(piece)
    await writer.close()
    writer = await s3_store.upload("pieces")  # the short tail is reloaded, already hashed
    await writer.write(piece)
    info = await writer.commit(Digest.compute(piece * (count + 1), "sha256"))
    assert info.size == len(piece) * (count + 1)
    assert sizes == [first, 8 * len(piece), len(piece)]
    await s3_store.delete(info.sha256)


async def test_the_next_part_arrives_while_a_part_is_stored(
    s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part's PUT runs while the writer takes the next bytes; close waits for it."""
    put, landed = s3_store._put, anyio.Event()
    release = anyio.Event()

    async def slow_put(key: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        if len(data) == part_span(0)[1]:
            await release.wait()
        etag = await put(key, data, metadata)
        if len(data) == part_span(0)[1]:
            landed.set()
        return etag

    monkeypatch.setattr(s3_store, "_put", slow_put)
    data = os.urandom(10 * MiB)
    writer = await s3_store.upload("overlap")
    with anyio.fail_after(10):
        await writer.write(data[: 8 * MiB])  # part 0 full: its PUT starts, and is held
        await writer.write(data[8 * MiB :])  # taken while part 0 is still on its way
    assert not landed.is_set()
    release.set()
    info = await writer.commit(Digest.compute(data))
    assert landed.is_set()
    assert info.size == len(data)
    await s3_store.delete(info.sha256)


async def test_a_commit_copies_parts_several_at_a_time(
    s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_store._client
    copy, running, most, lock = client._upload_part_copy, 0, 0, threading.Lock()

    def counting(*args: object, **kwargs: object) -> object:  # in worker threads
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)  # long enough for the others to start
            return copy(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(client, "_upload_part_copy", counting)
    data = os.urandom(33 * MiB)  # four full parts and a tail
    writer = await s3_store.upload("copies")
    await writer.write(data)
    info = await writer.commit(Digest.compute(data))
    assert most >= 4
    content = b"".join([chunk async for chunk in await s3_store.read(info.sha256)])
    assert content == data
    await s3_store.delete(info.sha256)
