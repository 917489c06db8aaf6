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

Theory of operation. A session's bytes are appended to ``uploads/<id>``
by its writer (``storage._fs_writer``); hashes are updated as they pass
(``storage.hashing``), and every 4 MiB the kernel is asked to start writing
them out (``_start_writeback``); with ``cache_uploads=False`` they also leave
the page cache once on disk (``_drop_behind``). Commit fsyncs the staged
file, then writes ``digests`` and the alias files (each: temp file, fsync,
rename), and only then renames the staged file onto ``data`` and fsyncs
its directory: ``data`` appearing is the commit point, so a crash at any step
leaves either no visible blob or a complete one whose names all resolve. Debris
of a crash (a ``digests`` without ``data``, an alias to a missing blob, a
``.tmp`` file) is invisible and overwritten by the next commit of those bytes.
Delete runs in the opposite order: ``data`` goes first.

All blocking calls run in worker threads through ``in_thread`` (the write path
through ``ContentHasher.update``); both turn an escaping ``OSError`` into
``StorageUnavailable`` (``unavailable``; both in ``storage._fs_io``). A
missing file that means "no such blob/upload" is turned into BlobNotFound /
UploadNotFound inside the call that expected it. An alias a crash left behind
still names the right bytes, so it is harmless if those bytes are committed
again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from oci.digest import Digest
from oci.errors import Corruption, DigestInvalid
from storage._fs_io import fsync_dir, in_thread, put_small, read_file, write_all
from storage._fs_writer import FsWriter
from storage.base import UPLOAD_ID, BlobInfo, check_range, check_upload_id
from storage.errors import BlobNotFound, StorageUnavailable, UploadNotFound
from storage.hashing import ContentHasher

__all__ = ["FsBlobStore"]


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
        info, _ = await in_thread(self._stat_sync, digest)
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

        file = await in_thread(open_data)
        try:
            count = check_range(os.fstat(file.fileno()).st_size, offset, length)
        except BaseException:
            file.close()
            raise
        return read_file(file, offset, count)

    async def modified(self, digest: Digest) -> float:
        def mtime() -> float:
            sha256 = digest if digest.algorithm == "sha256" else self._stat_sync(digest)[0].sha256
            try:
                return (self._blob_dir(sha256.hex) / "data").stat().st_mtime
            except FileNotFoundError:
                raise BlobNotFound(
                    f"blob {digest} not found", detail={"digest": str(digest)}
                ) from None

        return await in_thread(mtime)

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
            fsync_dir(directory)
            for alias in names.values():
                self._alias(alias).unlink(missing_ok=True)
            for leftover in directory.iterdir():
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # a commit of the same bytes is racing us
                directory.rmdir()

        await in_thread(delete)

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

        for fan in await in_thread(scan, self._blobs / "sha256"):
            for info in await in_thread(infos, fan):
                yield info

    async def redirect_url(self, digest: Digest, expires_in: float) -> str | None:
        await self.stat(digest)
        return None

    async def check(self) -> None:
        def probe() -> None:
            path = self._uploads / f".health-{secrets.token_hex(6)}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                write_all(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
                path.unlink()

        await in_thread(probe)

    # -- uploads ----------------------------------------------------------------------

    async def upload(self, upload_id: str) -> FsWriter:
        check_upload_id(upload_id)
        path = self._staged(upload_id)

        def open_staged() -> tuple[int, tuple[int, int, int]]:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            st = os.fstat(fd)
            return fd, (st.st_size, st.st_mtime_ns, st.st_ino)

        fd, identity = await in_thread(open_staged)
        try:
            cached = self._hash_cache.pop(upload_id, None)
            if cached is not None and cached[0] == identity:
                hashes = cached[1]
            else:  # another process wrote these bytes (or this one forgot): hash them again
                hashes = ContentHasher()
                staged = await in_thread(open, path, "rb", buffering=0)
                async for chunk in read_file(staged, 0, identity[0]):
                    await hashes.update(chunk)
        except BaseException:
            os.close(fd)
            raise
        return FsWriter(self, upload_id, fd, hashes)

    async def discard_upload(self, upload_id: str) -> None:
        self._hash_cache.pop(upload_id, None)
        if UPLOAD_ID.fullmatch(upload_id):
            await in_thread(self._staged(upload_id).unlink, missing_ok=True)

    async def truncate_upload(self, upload_id: str, size: int) -> None:
        self._hash_cache.pop(upload_id, None)
        if not UPLOAD_ID.fullmatch(upload_id):
            return

        def cut() -> None:
            try:
                fd = os.open(self._staged(upload_id), os.O_WRONLY)
            except FileNotFoundError:
                return
            try:
                if os.fstat(fd).st_size > size:
                    os.ftruncate(fd, size)
                    os.fsync(fd)  # durable before the caller answers the client
            finally:
                os.close(fd)

        await in_thread(cut)

    async def staged_size(self, upload_id: str) -> int:
        if not UPLOAD_ID.fullmatch(upload_id):
            return 0

        def size() -> int:
            try:
                return self._staged(upload_id).stat().st_size
            except FileNotFoundError:
                return 0

        return await in_thread(size)

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

        for item in await in_thread(scan):
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
            put_small(directory / "digests", "".join(f"{names[a]}\n" for a in sorted(names)))
        for alias in new:
            put_small(self._alias(alias), f"{info.sha256}\n")
        if not staged.exists():
            raise UploadNotFound(
                f"upload {staged.name} lost its staged bytes", detail={"upload": staged.name}
            )
        if visible:
            staged.unlink()  # already stored: keep one copy
            return
        os.replace(staged, data)  # the commit point
        fsync_dir(directory)
        fsync_dir(self._uploads)
