"""The one test suite every BlobStore driver passes.

A driver's test module subclasses ``BlobStoreSuite`` and supplies the
fixtures and hooks below; it adds no tests of its own for behaviour the
contract (``storage.base``) defines::

    class TestMemoryBlobStore(BlobStoreSuite):
        @pytest.fixture
        def store(self) -> MemoryBlobStore:
            return MemoryBlobStore()

        @pytest.fixture
        def peer(self, store: MemoryBlobStore) -> MemoryBlobStore:
            return store.peer()

        async def corrupt(self, store: BlobStore, info: BlobInfo) -> None:
            ...  # change the stored bytes behind the driver's back

Fixtures and hooks:

- ``store``: an empty store, fresh for each test.
- ``peer``: a second handle on the same backend that shares no in-process
  state with ``store`` (another process, as far as the driver can tell).
- ``corrupt(store, info)``: flip bytes of a stored blob without going through
  the driver, for the verify tests.
- ``redirects``: whether the driver hands out direct URLs.

Every test must leave the store empty: the teardown fails a test that leaves
a blob or an upload session behind (after cleaning up, so the next test still
starts clean).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import ClassVar

import anyio
import httpx
import pytest

from oci.digest import Digest
from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound, DigestMismatch, UploadNotFound
from storage.testing.model import run_model
from storage.verify import verify

__all__ = ["BlobStoreSuite", "fetch", "put"]

MiB = 1024 * 1024


async def put(
    store: BlobStore, data: bytes, upload_id: str = "put", expected: Digest | None = None
) -> BlobInfo:
    """Store ``data`` through one writer, in chunks of at most 1 MiB."""
    writer = await store.upload(upload_id)
    for start in range(0, len(data), MiB):
        await writer.write(data[start : start + MiB])
    return await writer.commit(expected)


async def fetch(
    store: BlobStore, digest: Digest, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in await store.read(digest, offset, length)])


def names(data: bytes) -> tuple[Digest, Digest, Digest]:
    """sha256, blake3 and sha512 of ``data``, computed independently of the store."""
    return tuple(Digest.compute(data, a) for a in ("sha256", "blake3", "sha512"))  # type: ignore[return-value]


@pytest.mark.anyio
class BlobStoreSuite:
    redirects: ClassVar[bool] = False

    async def corrupt(self, store: BlobStore, info: BlobInfo) -> None:
        """Change the stored bytes of ``info`` behind the driver's back (driver hook)."""
        raise NotImplementedError(f"{type(self).__name__} must implement corrupt()")

    @pytest.fixture(autouse=True)
    async def _leaves_nothing_behind(self, store: BlobStore) -> AsyncIterator[None]:
        yield
        blobs = [info async for info in store.list()]
        uploads = [upload_id async for upload_id, _, _ in store.list_uploads()]
        for info in blobs:
            await store.delete(info.sha256)
        for upload_id in uploads:
            await store.discard_upload(upload_id)
        if blobs or uploads:
            pytest.fail(f"test left {len(blobs)} blob(s) and upload(s) {uploads} behind")

    # -- write, commit, stat, read ----------------------------------------------------

    async def test_commit_names_the_blob_by_both_digests(self, store: BlobStore) -> None:
        data = b"hello, registry"
        sha256, blake3, _ = names(data)
        info = await put(store, data)
        assert info == BlobInfo(sha256, blake3, len(data))
        assert await store.stat(sha256) == info
        assert await store.stat(blake3) == info
        assert await fetch(store, sha256) == data
        assert await fetch(store, blake3) == data
        await store.delete(sha256)

    @pytest.mark.parametrize("algorithm", ["sha256", "blake3", "sha512"])
    async def test_commit_verifies_expected_digest(self, store: BlobStore, algorithm: str) -> None:
        data = b"verified" * 1000
        expected = Digest.compute(data, algorithm)
        info = await put(store, data, expected=expected)
        assert info.sha256 == Digest.compute(data)
        assert await store.stat(expected) == info
        assert await fetch(store, expected, 8, 8) == b"verified"
        await store.delete(expected)
        with pytest.raises(BlobNotFound):
            await store.stat(expected)

    async def test_sha512_resolves_only_once_verified(self, store: BlobStore) -> None:
        data = b"sha512 is an alias recorded on request"
        sha256, _, sha512 = names(data)
        await put(store, data)
        with pytest.raises(BlobNotFound):
            await store.stat(sha512)
        info = await put(store, data, "again", expected=sha512)  # already stored: adds the alias
        assert await store.stat(sha512) == info
        await store.delete(sha256)
        await put(store, data)  # the alias went with the blob and does not come back with it
        with pytest.raises(BlobNotFound):
            await store.stat(sha512)
        await store.delete(sha256)

    @pytest.mark.parametrize("algorithm", ["sha256", "blake3", "sha512"])
    async def test_mismatch_keeps_nothing(self, store: BlobStore, algorithm: str) -> None:
        data = b"the bytes that arrived"
        wrong = Digest.compute(b"the bytes that were promised", algorithm)
        with pytest.raises(DigestMismatch):
            await put(store, data, "mismatch", expected=wrong)
        for digest in (*names(data), wrong):
            with pytest.raises(BlobNotFound):
                await store.stat(digest)
        assert [u async for u in store.list_uploads()] == []
        writer = await store.upload("mismatch")
        assert writer.offset == 0
        await writer.abort()

    async def test_staged_size_is_where_the_next_writer_starts(self, store: BlobStore) -> None:
        assert await store.staged_size("sized") == 0  # no session yet
        assert await store.staged_size("../not-an-id") == 0
        writer = await store.upload("sized")
        await writer.write(b"x" * 3000)
        await writer.close()
        assert await store.staged_size("sized") == 3000
        writer = await store.upload("sized")
        assert writer.offset == 3000
        await writer.write(b"y" * 5)
        await writer.close()
        assert await store.staged_size("sized") == 3005
        await (await store.upload("sized")).abort()
        assert await store.staged_size("sized") == 0

    async def test_committing_stored_content_keeps_one_copy(self, store: BlobStore) -> None:
        data = b"deduplicated"
        first = await put(store, data, "one")
        second = await put(store, data, "two", expected=first.blake3)
        assert first == second
        assert [info async for info in store.list()] == [first]
        assert [u async for u in store.list_uploads()] == []
        await store.delete(first.sha256)

    async def test_concurrent_commits_of_the_same_bytes(self, store: BlobStore) -> None:
        data = bytes(range(256)) * 4096
        results: list[BlobInfo] = []

        async def push(upload_id: str) -> None:
            results.append(await put(store, data, upload_id))

        async with anyio.create_task_group() as group:
            for i in range(4):
                group.start_soon(push, f"racer-{i}")
        assert len(set(results)) == 1
        assert [info async for info in store.list()] == results[:1]
        assert await fetch(store, results[0].blake3) == data
        await store.delete(results[0].sha256)

    async def test_empty_blob(self, store: BlobStore) -> None:
        writer = await store.upload("empty")
        info = await writer.commit(Digest.compute(b""))
        assert info.size == 0
        assert await fetch(store, info.blake3) == b""
        assert await fetch(store, info.sha256, 0, 10) == b""
        await store.delete(info.sha256)

    async def test_chunk_sizes_do_not_change_the_digest(self, store: BlobStore) -> None:
        data = hashlib.sha512(b"seed").digest() * (3 * MiB // 64 + 7)
        writer = await store.upload("mixed")
        pieces = [1, 100, 64 * 1024, 3 * MiB // 2, 17, 2 * MiB]
        position = 0
        for size in pieces * 3:
            await writer.write(data[position : position + size])
            position = min(position + size, len(data))
            assert writer.offset == position
        await writer.write(data[position:])
        info = await writer.commit(Digest.compute(data, "blake3"))
        assert info.size == len(data)
        assert await fetch(store, info.sha256) == data
        await store.delete(info.sha256)

    async def test_ranged_reads(self, store: BlobStore) -> None:
        data = bytes(i % 251 for i in range(3 * MiB + 5))
        info = await put(store, data)
        for offset, length in [(0, None), (1, 1), (MiB - 1, 2), (MiB, MiB + 3), (5, 0)]:
            expected = data[offset:] if length is None else data[offset : offset + length]
            assert await fetch(store, info.sha256, offset, length) == expected
        assert await fetch(store, info.sha256, len(data) - 2, 100) == data[-2:]  # cut at the end
        assert await fetch(store, info.sha256, len(data)) == b""
        for offset, length in [(-1, None), (len(data) + 1, None), (0, -1)]:
            with pytest.raises(ValueError, match="range"):
                await store.read(info.sha256, offset, length)
        await store.delete(info.sha256)

    async def test_read_stat_delete_of_missing_blob(self, store: BlobStore) -> None:
        for digest in names(b"never stored"):
            with pytest.raises(BlobNotFound):
                await store.read(digest)  # eager: before iteration
            with pytest.raises(BlobNotFound):
                await store.stat(digest)
            with pytest.raises(BlobNotFound):
                await store.delete(digest)
            with pytest.raises(BlobNotFound):
                await store.redirect_url(digest, 60)

    async def test_delete_removes_every_name(self, store: BlobStore) -> None:
        data = b"short-lived"
        sha256, blake3, sha512 = names(data)
        await put(store, data, expected=sha512)
        await store.delete(blake3)
        for digest in (sha256, blake3, sha512):
            with pytest.raises(BlobNotFound):
                await store.stat(digest)
            with pytest.raises(BlobNotFound):
                await store.delete(digest)
        info = await put(store, data)  # and it can come back
        assert await fetch(store, blake3) == data
        await store.delete(info.sha256)

    async def test_list(self, store: BlobStore) -> None:
        stored = {await put(store, f"blob {i}".encode() * i, f"u{i}") for i in range(12)}
        listed = [info async for info in store.list()]
        assert len(listed) == len(stored)
        assert set(listed) == stored
        for info in stored:
            await store.delete(info.sha256)
        assert [info async for info in store.list()] == []

    async def test_modified(self, store: BlobStore) -> None:
        before = time.time()
        info = await put(store, b"dated" * 100)
        after = time.time()
        # Object stores stamp whole seconds with their own clock: allow for both.
        assert before - 2 <= await store.modified(info.sha256) <= after + 2
        assert await store.modified(info.blake3) == await store.modified(info.sha256)
        await store.delete(info.sha256)
        with pytest.raises(BlobNotFound):
            await store.modified(info.sha256)

    async def test_redirect_url(self, store: BlobStore) -> None:
        data = b"served directly" * 100
        info = await put(store, data)
        url = await store.redirect_url(info.sha256, 60)
        assert (url is not None) == self.redirects
        if url is not None:
            async with httpx.AsyncClient() as client:
                response = await client.get(url)
            assert response.status_code == 200
            assert response.content == data
        await store.delete(info.sha256)

    async def test_check(self, store: BlobStore) -> None:
        await store.check()
        assert [u async for u in store.list_uploads()] == []  # the probe leaves nothing

    # -- upload sessions --------------------------------------------------------------

    async def test_close_keeps_staged_bytes_and_resume_continues(self, store: BlobStore) -> None:
        writer = await store.upload("resumable")
        await writer.write(b"first half, ")
        await writer.close()
        await writer.close()  # idempotent
        ((upload_id, size, mtime),) = [u async for u in store.list_uploads()]
        assert (upload_id, size) == ("resumable", 12)
        assert mtime > 0
        writer = await store.upload("resumable")
        assert writer.offset == 12
        await writer.write(b"second half")
        info = await writer.commit(Digest.compute(b"first half, second half"))
        assert await fetch(store, info.sha256) == b"first half, second half"
        assert [u async for u in store.list_uploads()] == []
        await store.delete(info.sha256)

    async def test_resume_in_another_process_rehashes(
        self, store: BlobStore, peer: BlobStore
    ) -> None:
        """Each handle's cached hash state is stale once the other one appended bytes."""
        parts = [b"A" * 1000, b"B" * (2 * MiB + 1), b"C" * 10, b"D"]
        for i, part in enumerate(parts):
            writer = await (store if i % 2 == 0 else peer).upload("shared")
            assert writer.offset == sum(len(p) for p in parts[:i])
            await writer.write(part)
            await writer.close()
        writer = await store.upload("shared")
        data = b"".join(parts)
        info = await writer.commit(Digest.compute(data, "blake3"))
        assert info.sha256 == Digest.compute(data)
        assert await peer.stat(info.sha256) == info
        await peer.delete(info.sha256)

    async def test_new_session_is_listed_before_its_first_byte(self, store: BlobStore) -> None:
        writer = await store.upload("fresh")
        await writer.close()
        assert [(u, s) async for u, s, _ in store.list_uploads()] == [("fresh", 0)]
        await store.discard_upload("fresh")
        assert [u async for u in store.list_uploads()] == []

    async def test_abort_discards(self, store: BlobStore) -> None:
        writer = await store.upload("doomed")
        await writer.write(b"x" * 5000)
        await writer.abort()
        await writer.abort()
        assert [u async for u in store.list_uploads()] == []
        assert [info async for info in store.list()] == []
        writer = await store.upload("doomed")
        assert writer.offset == 0
        await writer.abort()

    async def test_discard_upload(self, store: BlobStore) -> None:
        await store.discard_upload("never-opened")
        writer = await store.upload("idle")
        await writer.write(b"stale")
        await writer.close()
        await store.discard_upload("idle")
        assert [u async for u in store.list_uploads()] == []
        writer = await store.upload("idle")
        assert writer.offset == 0
        await writer.abort()

    async def test_truncate_upload_drops_the_tail_and_rehashes(self, store: BlobStore) -> None:
        await store.truncate_upload("never-opened", 0)
        data = os.urandom(3000)
        writer = await store.upload("cut")
        await writer.write(data[:1000])
        await writer.write(data[1000:])
        await writer.close()
        await store.truncate_upload("cut", 1000)
        await store.truncate_upload("cut", 2000)  # fewer are staged: nothing to do
        assert await store.staged_size("cut") == 1000
        writer = await store.upload("cut")
        assert writer.offset == 1000
        await writer.write(data[1000:1500])
        info = await writer.commit(Digest.compute(data[:1500]))
        assert info.size == 1500
        await store.delete(info.sha256)

    async def test_finished_writer_refuses_more(self, store: BlobStore) -> None:
        for finish in ("close", "abort", "commit"):
            writer = await store.upload(f"finished-{finish}")
            await writer.write(b"data")
            info = await writer.commit() if finish == "commit" else None
            if finish != "commit":
                await getattr(writer, finish)()
            with pytest.raises(UploadNotFound):
                await writer.write(b"more")
            with pytest.raises(UploadNotFound):
                await writer.commit()
            await writer.close()
            await writer.abort()
            if info is not None:
                await store.delete(info.sha256)
            await store.discard_upload(f"finished-{finish}")

    @pytest.mark.parametrize(
        "upload_id", ["", "../escape", "a/b", ".", "..", "x" * 129, "tab\t", "dot.dot", "é"]
    )
    async def test_invalid_upload_ids(self, store: BlobStore, upload_id: str) -> None:
        with pytest.raises(UploadNotFound):
            await store.upload(upload_id)
        await store.discard_upload(upload_id)
        assert [u async for u in store.list_uploads()] == []

    # -- verify -----------------------------------------------------------------------

    async def test_verify_finds_and_repairs_corruption(self, store: BlobStore) -> None:
        good = await put(store, b"intact" * 1000, "good")
        bad = await put(store, b"rotten" * 1000, "bad")
        report = await verify(store)
        assert (report.checked, report.bytes, report.corrupt) == (2, 12000, [])
        await self.corrupt(store, bad)
        report = await verify(store)
        assert report.corrupt == [bad]
        assert report.removed == []
        report = await verify(store, repair=True)
        assert report.removed == [bad]
        with pytest.raises(BlobNotFound):
            await store.stat(bad.sha256)
        assert (await verify(store)).ok
        await store.delete(good.sha256)

    # -- the model ----------------------------------------------------------------------

    async def test_behaves_like_a_dict(self, store: BlobStore, peer: BlobStore) -> None:
        """Random operation sequences agree with a dict model (storage.testing.model)."""
        await anyio.to_thread.run_sync(run_model, store, peer)
