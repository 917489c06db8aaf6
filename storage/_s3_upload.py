"""The S3 driver's upload writer: the part schedule, the parts, and the compose at commit.

An upload session's bytes are plain objects under ``uploads/<id>/``, one per
part, named by their start offset, cut to the fixed schedule ``part_span``
(the store, ``storage.s3``, draws the key layout and tells why).

Commit verifies the hashes first, then composes the parts server-side
(UploadPartCopy per part, eight at a time, then CompleteMultipartUpload) straight into
``blobs/sha256/<hex>``: S3 makes the object visible only when the multipart
upload completes, so a reader never sees partial content, and a failed compose
is aborted and leaves nothing. Each copy carries ``x-amz-copy-source-if-match``
with the ETag we hashed, so parts replaced behind our back fail the compose.
Aliases are written before the blob (and removed again if the compose fails),
so a visible blob always resolves by each of its names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import anyio
from minio.commonconfig import ComposeSource
from minio.datatypes import Part
from minio.helpers import DictType

from oci.digest import Digest
from oci.errors import SizeInvalid
from storage._tasks import finish_quietly
from storage.base import BlobInfo
from storage.errors import DigestMismatch, UploadNotFound
from storage.hashing import ContentHasher, hash_stream

if TYPE_CHECKING:
    from storage.s3 import S3BlobStore

__all__ = ["MAX_BLOB_SIZE", "MiB", "S3Writer", "StagedPart", "StagedParts", "part_span"]

MiB = 1024 * 1024
_BASE_PART = 8 * MiB  # >= S3's 5 MiB minimum for every part but the last
_PARTS_PER_TIER = 1000
_TIERS = 5  # 8, 16, 32, 64, 128 MiB
_MAX_PARTS = 10_000  # S3 multipart limit
# Part copies a commit keeps in flight (see ``_copy_parts``).
_COPIES = 8
_CACHE_MAX = 4096  # hash states kept for closed sessions (a few KiB each)


def part_span(offset: int) -> tuple[int, int]:
    """(start, size) of the part that holds byte ``offset``: the fixed part schedule."""
    start = 0
    for tier in range(_TIERS):
        size = _BASE_PART << tier
        end = start + _PARTS_PER_TIER * size
        if offset < end or tier == _TIERS - 1:
            return start + (offset - start) // size * size, size
        start = end
    raise AssertionError("unreachable")


def _max_blob_size() -> int:
    tiers = sum(_PARTS_PER_TIER * (_BASE_PART << t) for t in range(_TIERS - 1))
    return tiers + (_MAX_PARTS - _PARTS_PER_TIER * (_TIERS - 1)) * (_BASE_PART << (_TIERS - 1))


MAX_BLOB_SIZE = _max_blob_size()


@dataclass(slots=True)
class StagedPart:
    offset: int
    size: int
    etag: str


StagedParts = list[StagedPart]  # the class body's ``list`` method shadows the builtin there


class S3Writer:
    """One open session: full parts already in the bucket, one filling in memory, one being PUT.

    The part in memory is hashed as a whole when it is stored, one thread hop
    per part rather than one per request-body piece; the bytes reloaded into
    it by ``upload`` (a short tail part) are hashed already. Its PUT runs
    while the next part arrives (one deep: the next flush, close and commit
    wait for it, and its error surfaces there), so the request body keeps
    flowing while the object store works. (A task, not a task group: a
    writer outlives any one call. The server runs on asyncio.)
    """

    def __init__(
        self,
        store: S3BlobStore,
        upload_id: str,
        parts: list[StagedPart],
        hashes: ContentHasher,
        buffer: bytearray,
    ) -> None:
        self.upload_id = upload_id
        self._store = store
        self._parts = parts
        self._hashes: ContentHasher | None = hashes  # None once ended, or broken by a failure
        self._etag = parts[-1].etag if parts else None  # last part the hashes cover
        self._buffer = buffer
        self._hashed = len(buffer)  # the buffer's bytes before this are in the hashes
        self._start = sum(p.size for p in parts)  # offset of the buffer's first byte
        self._storing: asyncio.Future[None] | None = None  # the part being PUT, if any
        self.offset = hashes.size

    def _take(self) -> ContentHasher:
        """The hash state, for one operation: a failure midway leaves the writer unusable."""
        if self._hashes is None:
            raise UploadNotFound(
                f"upload {self.upload_id} is not open", detail={"upload": self.upload_id}
            )
        hashes, self._hashes = self._hashes, None
        return hashes

    def _key(self, offset: int) -> str:
        return self._store._upload_key(self.upload_id, f"{offset:020d}")

    async def write(self, chunk: bytes) -> None:
        if self.offset + len(chunk) > MAX_BLOB_SIZE:
            raise SizeInvalid(f"blob exceeds the S3 driver's limit of {MAX_BLOB_SIZE} bytes")
        hashes = self._take()
        view = memoryview(chunk)
        while view:
            room = part_span(self._start)[1] - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == part_span(self._start)[1]:
                await self._flush(hashes)
        self._hashes = hashes
        self.offset += len(chunk)

    async def _flush(self, hashes: ContentHasher) -> None:
        """Hash the buffer and store it as the part at ``_start``.

        A full part moves ``_start`` on; a short one is the tail written by close or
        commit, overwriting the short part of the same start that ``upload`` reloaded.
        """
        if not self._buffer:
            return
        await hashes.update_tail(self._buffer, self._hashed)
        data, self._buffer, self._hashed = bytes(self._buffer), bytearray(), 0
        await self._settle()  # one part in flight at a time, so parts land in order
        self._storing = asyncio.ensure_future(self._store_part(self._start, data))
        self._start += len(data)

    async def _store_part(self, start: int, data: bytes) -> None:
        etag = await self._store._put(self._key(start), data)
        self._parts.append(StagedPart(start, len(data), etag))
        self._etag = etag

    async def _settle(self) -> None:
        """Wait until the part in flight is stored; its error is raised here."""
        task, self._storing = self._storing, None
        if task is not None:
            await task

    async def _store_rest(self, hashes: ContentHasher) -> None:
        """Store the part in memory and wait until every part is in the bucket."""
        try:
            await self._flush(hashes)
            await self._settle()
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """Wait for the part in flight whatever happens to us; its error is dropped."""
        task, self._storing = self._storing, None
        await finish_quietly(task)

    async def close(self) -> None:
        if self._hashes is None:
            await self._drain()
            return  # ended, or broken: what reached the bucket stays, to be re-hashed
        hashes = self._take()
        await self._store_rest(hashes)
        cache = self._store._hash_cache
        cache[self.upload_id] = (hashes, self._etag)
        if len(cache) > _CACHE_MAX:  # sessions resumed elsewhere or expired: forget the oldest
            del cache[next(iter(cache))]

    async def abort(self) -> None:
        self._hashes = None
        await self._drain()  # or the part in flight could land after the discard
        await self._store.discard_upload(self.upload_id)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        hashes = self._take()
        store = self._store
        await self._store_rest(hashes)
        sha256, blake3 = hashes.sha256(), hashes.blake3()
        aliases = {"blake3": blake3}
        if expected is not None:
            if expected.algorithm == "sha512":  # a second pass, only when a client asks
                aliases["sha512"] = await hash_stream(self._staged_bytes(), "sha512")
            actual = {"sha256": sha256, **aliases}[expected.algorithm]
            if actual != expected:
                await store.discard_upload(self.upload_id)
                raise DigestMismatch(
                    f"content has digest {actual}, not {expected}",
                    detail={"expected": str(expected), "actual": str(actual)},
                )
        # Aliases first: a visible blob must resolve by each of its names.
        written = {store._key("blobs", a, d.hex): str(sha256) for a, d in aliases.items()}
        if "sha512" in aliases:
            written[store._key("blobs", "sha512-of", sha256.hex)] = str(aliases["sha512"])
        for key, body in written.items():
            await store._put(key, body.encode())
        if await store._head(sha256.hex) is None:
            try:
                await self._compose(sha256, blake3)
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    if await store._head(sha256.hex) is None:  # no racing commit made it
                        await store._delete(list(written))
                raise
        await store.discard_upload(self.upload_id)
        return BlobInfo(sha256, blake3, hashes.size)

    async def _copy_parts(self, key: str, upload: str, what: str) -> list[Part]:
        """UploadPartCopy of every staged part into ``upload``, ``_COPIES`` at a time.

        Each copy is one request the object store serves on its own, so one
        at a time leaves it idle between them. The first failure stops the
        workers and is raised (unwrapped, as a StorageUnavailable).
        """
        store, client, bucket = self._store, self._store._client, self._store._bucket
        etags: list[str] = [""] * len(self._parts)
        todo = iter(enumerate(self._parts))
        errors: list[Exception] = []

        async def worker() -> None:
            for index, part in todo:  # shared: each part is taken by one worker
                if errors:
                    return
                source = ComposeSource(
                    bucket,
                    self._key(part.offset),
                    match_etag=part.etag,  # the bytes we hashed, or the copy fails
                )
                headers: DictType = dict(source.gen_copy_headers())
                copy = partial(client._upload_part_copy, bucket, key, upload, index + 1, headers)
                try:
                    etags[index], _ = await store._call(copy, what)
                except Exception as exc:  # re-raised below, unwrapped
                    errors.append(exc)
                    return

        async with anyio.create_task_group() as group:
            for _ in range(min(_COPIES, len(self._parts))):
                group.start_soon(worker)
        if errors:
            raise errors[0]
        return [Part(number, etag) for number, etag in enumerate(etags, start=1)]

    async def _staged_bytes(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            async for chunk in await self._store._stream(self._key(part.offset), 0, part.size):
                yield chunk

    async def _compose(self, sha256: Digest, blake3: Digest) -> None:
        """Server-side copy of the parts into the blob's key; visible only once complete.

        The SDK's compose_object re-stats every source and retries only as a whole, so
        one throttled request among 10,000 part copies would start it over: we drive
        the same four S3 calls ourselves, each retried on its own.
        """
        store, client, bucket = self._store, self._store._client, self._store._bucket
        key = store._key("blobs", "sha256", sha256.hex)
        metadata = {"x-amz-meta-blake3": str(blake3)}
        if not self._parts:
            await store._put(key, b"", metadata)
            return
        what = f"compose {key}"
        upload = await store._call(
            lambda: client._create_multipart_upload(bucket, key, dict(metadata)), what
        )
        try:
            done = await self._copy_parts(key, upload, what)
            await store._call(
                lambda: client._complete_multipart_upload(bucket, key, upload, done), what
            )
        except BaseException:
            with anyio.CancelScope(shield=True):  # never leave an incomplete upload behind
                with contextlib.suppress(Exception):
                    await store._call(
                        lambda: client._abort_multipart_upload(bucket, key, upload), what
                    )
            raise
