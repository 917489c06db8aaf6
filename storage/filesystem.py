"""The filesystem driver: blobs as files under one root directory.

Key layout under ``root``::

    <root>/
    ├── blobs/
    │   ├── sha256/
    │   │   └── ab/                     fan-out: first two hex digits
    │   │       └── ab34…ef/            one directory per blob, named by its sha256
    │   │           ├── data            the bytes; present <=> the blob is visible
    │   │           └── digests         "blake3:<hex>\\n" [+ "sha512:<hex>\\n"]
    │   ├── blake3/
    │   │   └── cd/
    │   │       └── cd56…01             "sha256:<hex>\\n": resolves a blake3 name
    │   └── sha512/
    │       └── 9f/
    │           └── 9f…                 "sha256:<hex>\\n": a verified sha512 name
    └── uploads/
        └── <upload_id>                 the staged bytes of one session

Theory of operation. A session's bytes are appended to ``uploads/<id>``;
hashes are updated as they pass (``storage.hashing``), and every 4 MiB the
kernel is asked to start writing them out (``_start_writeback``); with
``cache_uploads=False`` they also leave the page cache once on disk
(``_drop_behind``). Commit fsyncs the
staged file, then writes ``digests`` and the alias files (each: temp file,
fsync, rename), and only then renames the staged file onto ``data`` and fsyncs
its directory: ``data`` appearing is the commit point, so a crash at any step
leaves either no visible blob or a complete one whose names all resolve. Debris
of a crash (a ``digests`` without ``data``, an alias to a missing blob, a
``.tmp`` file) is invisible and overwritten by the next commit of those bytes.
Delete runs in the opposite order: ``data`` goes first.

All blocking calls run in worker threads through ``_io`` (the write path
through ``ContentHasher.update``); both turn an escaping ``OSError`` into
``StorageUnavailable`` (``_unavailable``). A missing file that means "no such
blob/upload" is turned into BlobNotFound / UploadNotFound inside the call that
expected it. An alias a crash left behind still names the right bytes, so it
is harmless if those bytes are committed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from oci.digest import Digest
from oci.errors import Corruption, DigestInvalid
from storage._tasks import finish_quietly
from storage.base import UPLOAD_ID, BlobInfo, check_range, check_upload_id
from storage.errors import BlobNotFound, DigestMismatch, StorageUnavailable, UploadNotFound
from storage.hashing import ContentHasher, hash_stream

__all__ = ["FsBlobStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_READ_CHUNK = 1024 * 1024
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
# more (see ``_FsWriter._start_sync``).
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
    is the background flush's part (``_FsWriter._start_sync``). Advisory
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


def _unavailable(exc: OSError) -> StorageUnavailable:
    return StorageUnavailable(f"filesystem: {exc.strerror or exc} ({exc.filename})")


async def _io(call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run a blocking call in a worker thread; an OSError escaping it -> StorageUnavailable.

    A missing file that means "no such blob/upload" is converted inside ``call``.
    """
    try:
        return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))
    except OSError as exc:
        raise _unavailable(exc) from exc


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdirs(path: Path) -> None:
    """``mkdir -p`` that makes each new directory durable by syncing its parent."""
    if path.is_dir():
        return
    _mkdirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _put_small(path: Path, content: str) -> None:
    """Atomically replace ``path`` with ``content``, durable on return."""
    _mkdirs(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _parse_digests(path: Path) -> dict[str, Digest]:
    """The ``digests`` file of a blob by algorithm; FileNotFoundError if it has none."""
    text = path.read_text()
    try:
        digests = [Digest.parse(line) for line in text.split()]
    except DigestInvalid as exc:
        raise Corruption(f"filesystem: {path} is garbled") from exc
    return {d.algorithm: d for d in digests}


class FsBlobStore:
    """A BlobStore in a local directory; several processes may share one root."""

    def __init__(self, root: str | os.PathLike[str], *, cache_uploads: bool = True) -> None:
        """``cache_uploads=False``: uploads are dropped from the page cache once on disk
        (``_drop_behind``), trading the first read of a large blob for faster pushes."""
        self.root = Path(root).absolute()
        self.cache_uploads = cache_uploads
        self._uploads = self.root / "uploads"
        self._blobs = self.root / "blobs"
        try:
            self._uploads.mkdir(parents=True, exist_ok=True)
            (self._blobs / "sha256").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"filesystem: cannot create {self.root}: {exc}") from exc
        # Hash state of sessions this process closed: (size, mtime_ns, inode) of the
        # staged file it belongs to, so a file another process grew is re-hashed.
        self._hash_cache: dict[str, tuple[tuple[int, int, int], ContentHasher]] = {}

    def __repr__(self) -> str:
        extra = "" if self.cache_uploads else ", cache_uploads=False"
        return f"FsBlobStore({str(self.root)!r}{extra})"

    # -- paths ------------------------------------------------------------------------

    def _blob_dir(self, sha256_hex: str) -> Path:
        return self._blobs / "sha256" / sha256_hex[:2] / sha256_hex

    def _alias(self, digest: Digest) -> Path:
        return self._blobs / digest.algorithm / digest.hex[:2] / digest.hex

    def _staged(self, upload_id: str) -> Path:
        return self._uploads / upload_id

    # -- blobs ------------------------------------------------------------------------

    def _stat_sync(self, digest: Digest) -> tuple[BlobInfo, dict[str, Digest]]:
        """The blob's info and all its recorded names; BlobNotFound if it is not visible."""
        try:
            if digest.algorithm == "sha256":
                sha256 = digest
            else:
                sha256 = Digest.parse(self._alias(digest).read_text().strip())
            directory = self._blob_dir(sha256.hex)
            size = (directory / "data").stat().st_size
            names = _parse_digests(directory / "digests")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found", detail={"digest": str(digest)}) from None
        except DigestInvalid as exc:
            raise Corruption(f"filesystem: alias of {digest} is garbled") from exc
        if "blake3" not in names:
            raise Corruption(f"filesystem: {directory}/digests names no blake3 digest")
        return BlobInfo(sha256, names["blake3"], size), names

    async def stat(self, digest: Digest) -> BlobInfo:
        info, _ = await _io(self._stat_sync, digest)
        return info

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        def open_data() -> BinaryIO:
            sha256 = digest if digest.algorithm == "sha256" else self._stat_sync(digest)[0].sha256
            try:
                return open(self._blob_dir(sha256.hex) / "data", "rb", buffering=0)
            except FileNotFoundError:
                raise BlobNotFound(
                    f"blob {digest} not found", detail={"digest": str(digest)}
                ) from None

        file = await _io(open_data)
        try:
            count = check_range(os.fstat(file.fileno()).st_size, offset, length)
        except BaseException:
            file.close()
            raise
        return _read_file(file, offset, count)

    async def modified(self, digest: Digest) -> float:
        def mtime() -> float:
            sha256 = digest if digest.algorithm == "sha256" else self._stat_sync(digest)[0].sha256
            try:
                return (self._blob_dir(sha256.hex) / "data").stat().st_mtime
            except FileNotFoundError:
                raise BlobNotFound(
                    f"blob {digest} not found", detail={"digest": str(digest)}
                ) from None

        return await _io(mtime)

    async def delete(self, digest: Digest) -> None:
        def delete() -> None:
            info, names = self._stat_sync(digest)
            directory = self._blob_dir(info.sha256.hex)
            try:
                (directory / "data").unlink()  # the blob is invisible from here on
            except FileNotFoundError:
                raise BlobNotFound(
                    f"blob {digest} not found", detail={"digest": str(digest)}
                ) from None
            _fsync_dir(directory)
            for alias in names.values():
                self._alias(alias).unlink(missing_ok=True)
            for leftover in directory.iterdir():
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # a commit of the same bytes is racing us
                directory.rmdir()

        await _io(delete)

    async def list(self) -> AsyncIterator[BlobInfo]:
        def scan(path: Path) -> list[str]:
            try:
                return sorted(entry.name for entry in os.scandir(path))
            except FileNotFoundError:
                return []

        def infos(fan: str) -> list[BlobInfo]:
            found = []
            for name in scan(self._blobs / "sha256" / fan):
                try:
                    found.append(self._stat_sync(Digest("sha256", name))[0])
                except (BlobNotFound, DigestInvalid):  # half committed or deleted; a temp file
                    continue
            return found

        for fan in await _io(scan, self._blobs / "sha256"):
            for info in await _io(infos, fan):
                yield info

    async def redirect_url(self, digest: Digest, expires_in: float) -> str | None:
        await self.stat(digest)
        return None

    async def check(self) -> None:
        def probe() -> None:
            path = self._uploads / f".health-{secrets.token_hex(6)}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _write_all(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
                path.unlink()

        await _io(probe)

    # -- uploads ----------------------------------------------------------------------

    async def upload(self, upload_id: str) -> _FsWriter:
        check_upload_id(upload_id)
        path = self._staged(upload_id)

        def open_staged() -> tuple[int, tuple[int, int, int]]:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            st = os.fstat(fd)
            return fd, (st.st_size, st.st_mtime_ns, st.st_ino)

        fd, identity = await _io(open_staged)
        try:
            cached = self._hash_cache.pop(upload_id, None)
            if cached is not None and cached[0] == identity:
                hashes = cached[1]
            else:  # another process wrote these bytes (or this one forgot): hash them again
                hashes = ContentHasher()
                staged = await _io(open, path, "rb", buffering=0)
                async for chunk in _read_file(staged, 0, identity[0]):
                    await hashes.update(chunk)
        except BaseException:
            os.close(fd)
            raise
        return _FsWriter(self, upload_id, fd, hashes)

    async def discard_upload(self, upload_id: str) -> None:
        self._hash_cache.pop(upload_id, None)
        if UPLOAD_ID.fullmatch(upload_id):
            await _io(self._staged(upload_id).unlink, missing_ok=True)

    async def staged_size(self, upload_id: str) -> int:
        if not UPLOAD_ID.fullmatch(upload_id):
            return 0

        def size() -> int:
            try:
                return self._staged(upload_id).stat().st_size
            except FileNotFoundError:
                return 0

        return await _io(size)

    async def list_uploads(self) -> AsyncIterator[tuple[str, int, float]]:
        def scan() -> list[tuple[str, int, float]]:
            found = []
            with os.scandir(self._uploads) as entries:
                for entry in entries:
                    if not UPLOAD_ID.fullmatch(entry.name):
                        continue  # temp files
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    found.append((entry.name, st.st_size, st.st_mtime))
            return found

        for item in await _io(scan):
            yield item

    def _install(self, staged: Path, info: BlobInfo, sha512: Digest | None) -> None:
        """Move verified staged bytes to their address (see the module docstring for the order)."""
        directory = self._blob_dir(info.sha256.hex)
        data = directory / "data"
        try:
            known = _parse_digests(directory / "digests")
        except FileNotFoundError:
            known = {}
        visible = data.exists()
        names = {**known, "blake3": info.blake3}
        if sha512 is not None:
            names["sha512"] = sha512
        new = [d for a, d in names.items() if not visible or known.get(a) != d]
        if new:
            _put_small(directory / "digests", "".join(f"{names[a]}\n" for a in sorted(names)))
        for alias in new:
            _put_small(self._alias(alias), f"{info.sha256}\n")
        if not staged.exists():
            raise UploadNotFound(
                f"upload {staged.name} lost its staged bytes", detail={"upload": staged.name}
            )
        if visible:
            staged.unlink()  # already stored: keep one copy
            return
        os.replace(staged, data)  # the commit point
        _fsync_dir(directory)
        _fsync_dir(self._uploads)


async def _read_file(file: BinaryIO, offset: int, count: int) -> AsyncIterator[bytes]:
    """Stream ``count`` bytes of ``file`` from ``offset``; owns and closes ``file``.

    An unbuffered file object rather than a bare fd: if the caller drops the
    iterator unstarted, garbage collection still closes it.
    """
    try:
        while count > 0:
            chunk = await _io(os.pread, file.fileno(), min(_READ_CHUNK, count), offset)
            if not chunk:
                raise StorageUnavailable(f"filesystem: {file.name} shrank while being read")
            offset += len(chunk)
            count -= len(chunk)
            yield chunk
    finally:
        file.close()


class _FsWriter:
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
            _write_all(fd, data)
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
                raise _unavailable(exc) from exc
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
        self._syncing = asyncio.ensure_future(_io(os.fdatasync, fd))

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
            await _io(_fsync, fd, self._cached_from if uncached else None)
        finally:
            await self._drain()
            self._fd = None
            os.close(fd)
        return None if self._broken else self._hashes

    async def close(self) -> None:
        hashes = await self._release()
        if hashes is not None:
            st = await _io(os.stat, self._store._staged(self.upload_id))
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
                file = await _io(open, staged, "rb", buffering=0)
                sha512 = await hash_stream(_read_file(file, 0, info.size), "sha512")
            actual = {"sha256": info.sha256, "blake3": info.blake3, "sha512": sha512}[
                expected.algorithm
            ]
            if actual != expected:
                await store.discard_upload(self.upload_id)
                raise DigestMismatch(
                    f"content has digest {actual}, not {expected}",
                    detail={"expected": str(expected), "actual": str(actual)},
                )
        await _io(store._install, staged, info, sha512)
        store._hash_cache.pop(self.upload_id, None)
        return info
