"""The BlobStore contract (storage/base.py) held against the S3 driver.

Interim: these stand in until the shared suite in storage/testing/ lands;
then tests/s3/test_s3_driver.py plugs this driver into it and this file goes.
"""

from __future__ import annotations

import hashlib

import pytest

from oci.digest import Digest
from storage.base import BlobInfo
from storage.errors import BlobNotFound, DigestMismatch, UploadNotFound
from storage.s3 import S3BlobStore

pytestmark = pytest.mark.anyio


async def _commit(store: S3BlobStore, upload_id: str, data: bytes) -> BlobInfo:
    writer = await store.upload(upload_id)
    await writer.write(data)
    return await writer.commit()


async def _read(
    store: S3BlobStore, digest: Digest, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([c async for c in await store.read(digest, offset, length)])


async def test_commit_names_the_blob_by_sha256_and_blake3(s3_store: S3BlobStore) -> None:
    info = await _commit(s3_store, "a", b"hello")
    assert info == BlobInfo(Digest.compute(b"hello"), Digest.compute(b"hello", "blake3"), 5)
    assert await s3_store.stat(info.blake3) == info
    assert await _read(s3_store, info.blake3, 1, 3) == b"ell"
    assert await _read(s3_store, info.sha256, 2, 100) == b"llo"  # cut at the end
    assert await _read(s3_store, info.sha256, 5) == b""
    with pytest.raises(ValueError, match="outside"):
        await s3_store.read(info.sha256, 6)
    assert [b async for b in s3_store.list()] == [info]
    await s3_store.delete(info.blake3)
    assert [b async for b in s3_store.list()] == []


async def test_empty_blob(s3_store: S3BlobStore) -> None:
    info = await _commit(s3_store, "e", b"")
    assert (info.size, await _read(s3_store, info.sha256)) == (0, b"")
    await s3_store.delete(info.sha256)


async def test_mismatch_keeps_nothing(s3_store: S3BlobStore) -> None:
    writer = await s3_store.upload("m")
    await writer.write(b"actual")
    with pytest.raises(DigestMismatch):
        await writer.commit(Digest.compute(b"expected"))
    for digest in (Digest.compute(b"actual"), Digest.compute(b"actual", "blake3")):
        with pytest.raises(BlobNotFound):
            await s3_store.stat(digest)
    assert [u async for u in s3_store.list_uploads()] == []
    with pytest.raises(UploadNotFound):
        await writer.write(b"more")


async def test_sha512_mismatch_keeps_nothing(s3_store: S3BlobStore) -> None:
    writer = await s3_store.upload("m5")
    await writer.write(b"actual")
    with pytest.raises(DigestMismatch):
        await writer.commit(Digest("sha512", hashlib.sha512(b"other").hexdigest()))
    with pytest.raises(BlobNotFound):
        await s3_store.stat(Digest.compute(b"actual"))


async def test_committing_stored_content_keeps_one_copy(s3_store: S3BlobStore) -> None:
    first = await _commit(s3_store, "d1", b"same")
    second = await _commit(s3_store, "d2", b"same")
    assert first == second
    assert [b async for b in s3_store.list()] == [first]
    await s3_store.delete(first.sha256)
    with pytest.raises(BlobNotFound):
        await s3_store.delete(first.sha256)


async def test_sessions_are_listed_resumed_and_discarded(s3_store: S3BlobStore) -> None:
    writer = await s3_store.upload("s1")
    assert [(u, n) async for u, n, _ in s3_store.list_uploads()] == [("s1", 0)]
    await writer.write(b"12345")
    await writer.close()
    await writer.close()  # idempotent
    uploads = [u async for u in s3_store.list_uploads()]
    assert [(u, n) for u, n, _ in uploads] == [("s1", 5)]
    assert uploads[0][2] > 0
    writer = await s3_store.upload("s1")
    assert writer.offset == 5
    await writer.abort()
    assert [u async for u in s3_store.list_uploads()] == []
    assert (await s3_store.upload("s1")).offset == 0
    await s3_store.discard_upload("s1")
    await s3_store.discard_upload("s1")  # absent: no error
    await s3_store.discard_upload("../x")  # an id we never issued: simply absent


@pytest.mark.parametrize("upload_id", ["", "../etc", "a/b", "x" * 129, "a.b"])
async def test_invalid_upload_ids_are_unknown(s3_store: S3BlobStore, upload_id: str) -> None:
    with pytest.raises(UploadNotFound):
        await s3_store.upload(upload_id)
    assert [u async for u in s3_store.list_uploads()] == []


async def test_missing_blobs(s3_store: S3BlobStore) -> None:
    missing = Digest.compute(b"missing")
    for call in (s3_store.stat, s3_store.read, s3_store.delete):
        with pytest.raises(BlobNotFound):
            await call(missing)
    with pytest.raises(BlobNotFound):
        await s3_store.redirect_url(Digest.compute(b"missing", "blake3"), 60)
    await s3_store.check()
