"""The filesystem driver's writer: an upload session's staged file, hashed as it grows.

Bytes are gathered into pieces of ``_COALESCE``; each piece is hashed
(``storage.hashing``) and appended to ``uploads/<id>`` in worker threads
while the caller receives the next one. As staged bytes accumulate, the
kernel is asked to start writing them out (``_start_writeback``), an
fdatasync runs in the background (``FsWriter._start_sync``) and, with
``FsBlobStore(cache_uploads=False)``, written runs leave the page cache
(``_drop_behind``), so the fsync at close or commit waits only for the tail.
The store (``storage.filesystem``) owns the key layout and the commit
order; the writer calls its ``_install`` once the content is verified.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from oci.digest import Digest
from storage._fs_io import in_thread, read_file, unavailable, write_all
from storage._tasks import finish_quietly
from storage.base import BlobInfo
from storage.errors import DigestMismatch, UploadNotFound
from storage.hashing import ContentHasher, hash_stream

if TYPE_CHECKING:
    from storage.filesystem import FsBlobStore

__all__ = ["FsWriter"]

# Request bodies arrive in pieces of tens of KiB: they are gathered (one
# memcpy) into pieces of this size, each hashed and written in one thread hop.
# 1 and 4 MiB pushed at the same rate (docs/PERFORMANCE.md); a writer holds two
# pieces (one gathering, one in flight), so 2 MiB keeps it at 4 MiB a session.
_COALESCE = 2 * 1024 * 1024
# Sessions whose hash state this process remembers; past it the oldest is
# forgotten and, if it is ever resumed, re-hashed.
_HASH_CACHE_MAX = 4096


# Staged bytes are handed to the disk in runs of this size as they arrive, so
# the fsync at commit (and after each PATCH) waits only for the tail (see
# ``_start_writeback``). 4 MiB runs pushed 64 MiB PATCHes at 181-203 MiB/s
# where 16 MiB runs gave 153-156 (docs/PERFORMANCE.md); 2 MiB, as 4.
_WRITEBACK_RUN = 4 * 1024 * 1024
# Every this many staged bytes, an fdatasync starts in the background,
# so the fsync at close (and after each PATCH) waits for at most this much
# more (see ``FsWriter._start_sync``).
_SYNC_RUN = 16 * 1024 * 1024


def _load_sync_file_range() -> Callable[..., int] | None:
    """Linux's ``sync_file_range`` from libc (the os module does not offer it), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WAIT_BEFORE = 1
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WAIT_AFTER = 4


def _start_writeback(fd: int, offset: int, count: int) -> None:
    """Ask the kernel to start writing ``count`` bytes at ``offset`` to disk, without waiting.

    Left alone, the kernel keeps a whole pushed blob dirty in memory
    (background writeback starts at 10% of RAM) and the fsync at commit
    writes all of it while the client waits (1.25-1.40 s of a 1 GiB push on
    the benchmark machine, docs/PERFORMANCE.md).
    Started as the bytes arrive, the disk works alongside the network. This
    only submits the writes: a disk with a volatile write cache (a virtual
    disk whose host caches it, too) still holds them until a flush, which
    is the background flush's part (``FsWriter._start_sync``). Advisory
    only, so its result is ignored: durability rests on the fsyncs.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, count, _SYNC_FILE_RANGE_WRITE)


def _drop_behind(fd: int, offset: int, count: int) -> None:
    """Wait until ``count`` staged bytes at ``offset`` are on disk, then drop them from memory.

    A large upload otherwise fills the page cache with pages it never reads
    again, and every page of it is a page the kernel has not handed out
    before: on the benchmark machine, a virtual machine whose host backs
    guest memory on first touch, writing into such pages ran at 324-389
    MiB/s, and writing into pages just given back this way at 1,415-1,652
    MiB/s (docs/PERFORMANCE.md). The run before the one just started is
    still on its way; the one before that is waited for and dropped. The
    last two or three runs stay cached until the writer's fsync at close
    (``_fsync``) drops them. The price: the first read of the blob comes
    from disk (``FsBlobStore(cache_uploads=False)``; off by default).

    The wait reports a write error once per open file, and the commit's
    fsync on this file would not see it again: it is raised here, so the
    upload fails instead of committing bytes the disk lost.
    """
    if _sync_file_range is None or count <= 0:
        return  # without the wait, dropping would discard nothing (dirty pages stay)
    flags = _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER
    if _sync_file_range(fd, offset, count, flags) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    os.posix_fadvise(fd, offset, count, os.POSIX_FADV_DONTNEED)


def _fsync(fd: int, drop_from: int | None) -> None:
    """fsync ``fd``; then, if ``drop_from`` is given, drop the file from there on from memory.

    Once synced every page is clean, so nothing needs waiting for: an
    uncached upload's last runs leave memory when its writer closes, and a
    push in PATCHes keeps no more cached than a monolithic one.
    """
    os.fsync(fd)
    if drop_from is not None:
        os.posix_fadvise(fd, drop_from, 0, os.POSIX_FADV_DONTNEED)


class FsWriter:
    """An open staged file, the hashes of what it holds, and up to two pieces not yet written.

    Writing is pipelined one deep: a gathered piece is hashed and written
    in worker threads while the caller goes on receiving the next one, so
    the network, the hashes and the disk overlap instead of taking turns.
    Before the next piece starts, before any fsync and before the file is
    closed, the one in flight is waited for; its error, if any, surfaces
    there. (A task, not a task group: a writer outlives any one call. The
    server runs on asyncio.)
    """

    def __init__(self, store: FsBlobStore, upload_id: str, fd: int, hashes: ContentHasher) -> None:
        self.upload_id = upload_id
        self.offset = hashes.size
        self._store = store
        self._fd: int | None = fd
        self._hashes = hashes
        self._broken = False  # a write failed midway: hash state and file may disagree
        self._pending = bytearray()  # accepted, not yet hashed nor written
        self._inflight: asyncio.Task[None] | None = None
        self._syncing: asyncio.Task[None] | None = None  # the background fdatasync
        self._synced_to = hashes.size  # where the last background fdatasync was started
        self._writeback_from = hashes.size  # staged bytes not yet handed to the disk start here
        self._last_run = hashes.size  # where the run last handed to the disk starts
        self._cached_from = hashes.size  # staged bytes this writer may still hold in memory

    def _live(self) -> tuple[int, ContentHasher]:
        if self._fd is None or self._broken:
            raise UploadNotFound(
                f"upload {self.upload_id} is not open here", detail={"upload": self.upload_id}
            )
        return self._fd, self._hashes

    async def write(self, chunk: bytes) -> None:
        if self._broken:
            await self._settle()  # the failed feed's own error, if it is still unseen
        self._live()
        if not self._pending and len(chunk) >= _COALESCE:
            await self._feed(bytes(chunk))  # a copy only if the caller could reuse its buffer
        else:
            self._pending += chunk  # grown in place (realloc of a large block is mremap)
            if len(self._pending) >= _COALESCE:
                await self._flush()
        self.offset += len(chunk)

    async def _feed(self, data: bytes | bytearray) -> None:
        """Start hashing ``data`` and appending it to the file, once the last feed is done."""
        await self._settle()
        fd, hashes = self._live()
        self._inflight = asyncio.ensure_future(self._apply(fd, hashes, data))

    async def _apply(self, fd: int, hashes: ContentHasher, data: bytes | bytearray) -> None:
        end = hashes.size + len(data)

        def write() -> None:  # in a worker thread; feeds never overlap
            write_all(fd, data)
            start = self._writeback_from
            if end - start >= _WRITEBACK_RUN:
                _start_writeback(fd, start, end - start)
                if not self._store.cache_uploads:
                    _drop_behind(fd, self._cached_from, self._last_run - self._cached_from)
                    self._cached_from, self._last_run = self._last_run, start
                self._writeback_from = end

        try:
            await hashes.update(data, write)
        except BaseException as exc:  # cancellation too: the hash state is unknown
            self._broken = True
            if isinstance(exc, OSError):
                raise unavailable(exc) from exc
            raise
        if end - self._synced_to >= _SYNC_RUN:
            await self._start_sync(fd, end)

    async def _start_sync(self, fd: int, end: int) -> None:
        """Flush what is staged up to ``end`` in the background, unless a flush is still going.

        ``_start_writeback`` only submits the writes; a disk with a volatile
        write cache takes them in as fast as they come and makes the next
        flush pay for all of them. On the benchmark machine (a virtual disk)
        the fsync closing a 1 GiB push took 0.9-1.5 s, and the one closing
        each 64 MiB PATCH 75-100 ms, with writeback started every 4 MiB; a
        flush every 16 MiB in another thread, while the next bytes arrive,
        left 0-40 ms for the last one (docs/PERFORMANCE.md). The same bytes
        reach the disk either way; the client waits for fewer of them.
        """
        if self._syncing is not None:
            if not self._syncing.done():
                return
            await self._synced()  # a failed flush fails the upload here
        self._synced_to = end
        self._syncing = asyncio.ensure_future(in_thread(os.fdatasync, fd))

    async def _synced(self) -> None:
        """Wait for the background flush. Its error breaks the writer and is raised here:
        the file's write error is reported once, so the fsync at close would not see it."""
        task, self._syncing = self._syncing, None
        if task is not None:
            try:
                await task
            except BaseException:
                self._broken = True
                raise

    async def _settle(self) -> None:
        """Wait for the feed in flight; its error is raised here."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _drain(self) -> None:
        """Wait for the feed and the fdatasync in flight whatever happens: they use our fd."""
        task, self._inflight = self._inflight, None
        await finish_quietly(task)
        task, self._syncing = self._syncing, None
        await finish_quietly(task)

    async def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, bytearray()
            await self._feed(pending)

    async def _release(self) -> ContentHasher | None:
        """Flush, fsync and close the file; the hashes if they match it."""
        fd = self._fd
        if fd is None:
            return None
        try:
            if not self._broken:
                await self._flush()
            await self._settle()
            await self._synced()
            uncached = not self._store.cache_uploads and _sync_file_range is not None
            await in_thread(_fsync, fd, self._cached_from if uncached else None)
        finally:
            await self._drain()
            self._fd = None
            os.close(fd)
        return None if self._broken else self._hashes

    async def close(self) -> None:
        hashes = await self._release()
        if hashes is not None:
            st = await in_thread(os.stat, self._store._staged(self.upload_id))
            cache = self._store._hash_cache
            cache[self.upload_id] = ((st.st_size, st.st_mtime_ns, st.st_ino), hashes)
            if len(cache) > _HASH_CACHE_MAX:  # sessions another replica expired stay here
                del cache[next(iter(cache))]

    async def abort(self) -> None:
        await self._drain()
        fd, self._fd, self._broken = self._fd, None, True
        if fd is not None:
            os.close(fd)
        await self._store.discard_upload(self.upload_id)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        self._live()
        hashes = await self._release()
        if hashes is None:
            raise UploadNotFound(
                f"upload {self.upload_id} failed", detail={"upload": self.upload_id}
            )
        store, staged = self._store, self._store._staged(self.upload_id)
        info = BlobInfo(hashes.sha256(), hashes.blake3(), hashes.size)
        sha512 = None
        if expected is not None:
            if expected.algorithm == "sha512":  # rare: one extra read of the staged bytes
                file = await in_thread(open, staged, "rb", buffering=0)
                sha512 = await hash_stream(read_file(file, 0, info.size), "sha512")
            actual = {"sha256": info.sha256, "blake3": info.blake3, "sha512": sha512}[
                expected.algorithm
            ]
            if actual != expected:
                await store.discard_upload(self.upload_id)
                raise DigestMismatch(
                    f"content has digest {actual}, not {expected}",
                    detail={"expected": str(expected), "actual": str(actual)},
                )
        await in_thread(store._install, staged, info, sha512)
        store._hash_cache.pop(self.upload_id, None)
        return info
