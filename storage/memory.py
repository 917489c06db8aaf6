"""The memory driver: blobs in a dict, for tests and throw-away servers.

Key layout, in ``_Backend``::

    blobs       sha256 hex  -> _Blob(data, blake3, sha512 | None, written)
    aliases     blake3 / sha512 Digest -> sha256 hex
    staged      upload id   -> bytearray of the session's bytes
    touched     upload id   -> time of the session's last change

This driver necessarily holds whole blobs in memory; it is the one exception
to streaming and must not back a real registry. It still keeps every other
rule: hashing runs off the event loop, a reader never sees a partial blob, and
each ``MemoryBlobStore`` has its own hash cache, so ``peer()`` (a second
handle on the same bytes) behaves like a second process on a shared disk.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio.lowlevel

from oci.digest import Digest
from storage.base import BlobInfo, check_range, check_upload_id
from storage.errors import BlobNotFound, DigestMismatch, UploadNotFound
from storage.hashing import ContentHasher, hash_stream

__all__ = ["MemoryBlobStore"]

_READ_CHUNK = 1024 * 1024
# Written bytes are hashed once this many have gathered (one thread hop per
# piece, not per request-body piece of tens of KiB), and at close and commit.
_HASH_PIECE = 2 * 1024 * 1024


@dataclass(slots=True)
class _Blob:
    data: bytes
    blake3: Digest
    sha512: Digest | None = None
    written: float = field(default_factory=time.time)


@dataclass(slots=True)
class _Backend:
    blobs: dict[str, _Blob] = field(default_factory=dict)
    aliases: dict[Digest, str] = field(default_factory=dict)
    staged: dict[str, bytearray] = field(default_factory=dict)
    touched: dict[str, float] = field(default_factory=dict)


class MemoryBlobStore:
    """A BlobStore in this process's memory."""

    def __init__(self, _backend: _Backend | None = None) -> None:
        self._backend = _backend or _Backend()
        # Hash state of sessions a writer of *this handle* closed, keyed by upload id.
        self._hash_cache: dict[str, ContentHasher] = {}

    def peer(self) -> MemoryBlobStore:
        """Another handle on the same bytes with its own hash cache (a stand-in second process)."""
        return MemoryBlobStore(self._backend)

    def __repr__(self) -> str:
        return f"MemoryBlobStore({len(self._backend.blobs)} blobs)"

    def _resolve(self, digest: Digest) -> tuple[str, _Blob]:
        key = digest.hex if digest.algorithm == "sha256" else self._backend.aliases.get(digest)
        blob = self._backend.blobs.get(key) if key is not None else None
        if key is None or blob is None:
            raise BlobNotFound(f"blob {digest} not found", detail={"digest": str(digest)})
        return key, blob

    async def upload(self, upload_id: str) -> _MemoryWriter:
        check_upload_id(upload_id)
        staged = self._backend.staged.get(upload_id)
        if staged is None:
            staged = self._backend.staged[upload_id] = bytearray()
            self._backend.touched[upload_id] = time.time()
        hashes = self._hash_cache.pop(upload_id, None)
        if hashes is None or hashes.size != len(staged):
            hashes = ContentHasher()
            view = memoryview(bytes(staged))  # a snapshot; re-hashed in place, chunk by chunk
            for start in range(0, len(view), _READ_CHUNK):
                await hashes.update(view[start : start + _READ_CHUNK])
        return _MemoryWriter(self, upload_id, hashes)

    async def stat(self, digest: Digest) -> BlobInfo:
        await anyio.lowlevel.checkpoint()
        key, blob = self._resolve(digest)
        return BlobInfo(Digest("sha256", key), blob.blake3, len(blob.data))

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        _, blob = self._resolve(digest)
        count = check_range(len(blob.data), offset, length)
        return _chunks(blob.data, offset, offset + count)

    async def modified(self, digest: Digest) -> float:
        await anyio.lowlevel.checkpoint()
        return self._resolve(digest)[1].written

    async def delete(self, digest: Digest) -> None:
        await anyio.lowlevel.checkpoint()
        key, blob = self._resolve(digest)
        del self._backend.blobs[key]
        for alias in (blob.blake3, blob.sha512):
            if alias is not None:
                self._backend.aliases.pop(alias, None)

    async def list(self) -> AsyncIterator[BlobInfo]:
        for key, blob in list(self._backend.blobs.items()):
            await anyio.lowlevel.checkpoint()
            yield BlobInfo(Digest("sha256", key), blob.blake3, len(blob.data))

    async def discard_upload(self, upload_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._hash_cache.pop(upload_id, None)
        self._backend.staged.pop(upload_id, None)
        self._backend.touched.pop(upload_id, None)

    async def truncate_upload(self, upload_id: str, size: int) -> None:
        await anyio.lowlevel.checkpoint()
        self._hash_cache.pop(upload_id, None)
        staged = self._backend.staged.get(upload_id)
        if staged is not None and len(staged) > size:
            del staged[size:]

    async def staged_size(self, upload_id: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._backend.staged.get(upload_id, b""))

    async def list_uploads(self) -> AsyncIterator[tuple[str, int, float]]:
        for upload_id, staged in list(self._backend.staged.items()):
            await anyio.lowlevel.checkpoint()
            yield upload_id, len(staged), self._backend.touched.get(upload_id, 0.0)

    async def redirect_url(self, digest: Digest, expires_in: float) -> str | None:
        self._resolve(digest)
        return None

    async def check(self) -> None:
        await anyio.lowlevel.checkpoint()

    def _install(self, hashes: ContentHasher, data: bytes, sha512: Digest | None) -> BlobInfo:
        sha256, blake3 = hashes.sha256(), hashes.blake3()
        backend = self._backend
        blob = backend.blobs.get(sha256.hex)
        if blob is None:
            blob = backend.blobs[sha256.hex] = _Blob(data, blake3)
        backend.aliases[blake3] = sha256.hex
        if sha512 is not None:
            blob.sha512 = sha512
            backend.aliases[sha512] = sha256.hex
        return BlobInfo(sha256, blake3, len(blob.data))


async def _chunks(data: bytes, start: int, stop: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for position in range(start, stop, _READ_CHUNK):
        await anyio.lowlevel.checkpoint()
        yield bytes(view[position : min(position + _READ_CHUNK, stop)])


class _MemoryWriter:
    """Appends to the staged bytes as they come; hashes them in pieces of ``_HASH_PIECE``.

    The staged bytes from ``hashes.size`` on are not hashed yet; ``close``
    and ``commit`` catch up first.
    """

    def __init__(self, store: MemoryBlobStore, upload_id: str, hashes: ContentHasher) -> None:
        self.upload_id = upload_id
        self.offset = hashes.size
        self._store = store
        self._hashes: ContentHasher | None = hashes

    def _live(self) -> ContentHasher:
        staged = self._store._backend.staged.get(self.upload_id)
        if self._hashes is None or staged is None:
            raise UploadNotFound(
                f"upload {self.upload_id} is not open", detail={"upload": self.upload_id}
            )
        return self._hashes

    async def write(self, chunk: bytes) -> None:
        hashes = self._live()
        self._store._backend.staged[self.upload_id] += chunk
        self._store._backend.touched[self.upload_id] = time.time()
        self.offset += len(chunk)
        if self.offset - hashes.size >= _HASH_PIECE:
            await self._catch_up(hashes)

    async def _catch_up(self, hashes: ContentHasher) -> None:
        """Hash the staged bytes not hashed yet; the writer is unusable if that fails."""
        self._hashes = None
        await hashes.update_tail(self._store._backend.staged[self.upload_id], hashes.size)
        self._hashes = hashes

    async def close(self) -> None:
        hashes = self._hashes
        if hashes is not None and self.upload_id in self._store._backend.staged:
            await self._catch_up(hashes)
            self._store._hash_cache[self.upload_id] = hashes
        self._hashes = None

    async def abort(self) -> None:
        self._hashes = None
        await self._store.discard_upload(self.upload_id)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        hashes = self._live()
        await self._catch_up(hashes)
        self._hashes = None
        backend = self._store._backend
        data = bytes(backend.staged[self.upload_id])
        sha512 = None
        if expected is not None:
            if expected.algorithm == "sha512":
                sha512 = await hash_stream(_chunks(data, 0, len(data)), "sha512")
            actual = {"sha256": hashes.sha256(), "blake3": hashes.blake3(), "sha512": sha512}
            if actual[expected.algorithm] != expected:
                await self._store.discard_upload(self.upload_id)
                raise DigestMismatch(
                    f"content has digest {actual[expected.algorithm]}, not {expected}",
                    detail={"expected": str(expected), "actual": str(actual[expected.algorithm])},
                )
        info = self._store._install(hashes, data, sha512)
        await self._store.discard_upload(self.upload_id)
        return info
