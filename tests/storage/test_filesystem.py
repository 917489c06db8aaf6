"""The shared suite on the filesystem driver, and what only a filesystem can get wrong."""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import pytest

from oci.digest import Digest
from oci.errors import Corruption
from storage import _fs_writer, filesystem
from storage.base import BlobInfo, BlobStore, BlobWriter
from storage.errors import StorageUnavailable, UploadNotFound
from storage.filesystem import FsBlobStore
from storage.testing import BlobStoreSuite, put
from storage.verify import verify


class TestFsBlobStore(BlobStoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FsBlobStore:
        return FsBlobStore(tmp_path / "store")

    @pytest.fixture
    def peer(self, store: FsBlobStore) -> FsBlobStore:
        return FsBlobStore(store.root)

    async def corrupt(self, store: BlobStore, info: BlobInfo) -> None:
        assert isinstance(store, FsBlobStore)
        data = store.root / "blobs" / "sha256" / info.sha256.hex[:2] / info.sha256.hex / "data"
        with data.open("r+b") as file:
            first = file.read(1)
            file.seek(0)
            file.write(bytes([first[0] ^ 1]))


pytestmark = pytest.mark.anyio


MIB = b"m" * (1 << 20)


async def _write_mib(writer: BlobWriter, count: int) -> None:
    for _ in range(count):
        await writer.write(MIB)


async def _write_mib_then_commit(writer: BlobWriter, count: int) -> None:
    await _write_mib(writer, count)
    await writer.commit()


async def test_key_layout(tmp_path: Path) -> None:
    """The layout drawn in storage/filesystem.py is the one on disk."""
    store = FsBlobStore(tmp_path)
    data = b"laid out"
    info = await put(store, data, expected=Digest.compute(data, "sha512"))
    sha256, blake3, sha512 = info.sha256.hex, info.blake3.hex, Digest.compute(data, "sha512").hex
    blob = tmp_path / "blobs" / "sha256" / sha256[:2] / sha256
    assert (blob / "data").read_bytes() == data
    assert sorted((blob / "digests").read_text().split()) == [
        f"blake3:{blake3}",
        f"sha512:{sha512}",
    ]
    for algorithm, hex_ in (("blake3", blake3), ("sha512", sha512)):
        alias = tmp_path / "blobs" / algorithm / hex_[:2] / hex_
        assert alias.read_text() == f"sha256:{sha256}\n"
    assert list((tmp_path / "uploads").iterdir()) == []
    await store.delete(info.sha256)
    assert not blob.exists()
    assert not (tmp_path / "blobs" / "blake3" / blake3[:2] / blake3).exists()


def _blob_dir(root: Path, sha256: Digest) -> Path:
    return root / "blobs" / "sha256" / sha256.hex[:2] / sha256.hex


async def test_a_commit_repairs_the_debris_of_a_crashed_commit_of_the_same_bytes(
    tmp_path: Path,
) -> None:
    """A crash after ``digests`` was written leaves no aliases and no ``data``: invisible,
    and the next commit of those bytes writes the names the crash never did."""
    data = b"committed once, crashed; committed again"
    blake3 = Digest.compute(data, "blake3")
    debris = _blob_dir(tmp_path, Digest.compute(data, "sha256"))
    debris.mkdir(parents=True)
    (debris / "digests").write_text(f"{blake3}\n")
    store = FsBlobStore(tmp_path)
    assert [b async for b in store.list()] == []

    info = await put(store, data)
    assert await store.stat(blake3) == info
    assert (await verify(store)).corrupt == []


async def test_a_digests_file_naming_no_blake3_digest_is_corruption(tmp_path: Path) -> None:
    data = b"its blake3 line lost"
    sha512 = Digest.compute(data, "sha512")
    store = FsBlobStore(tmp_path)
    info = await put(store, data, expected=sha512)
    (_blob_dir(tmp_path, info.sha256) / "digests").write_text(f"{sha512}\n")
    with pytest.raises(Corruption, match="names no blake3 digest"):
        await store.stat(info.sha256)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names fds through /proc")
async def test_a_commit_syncs_in_the_order_its_docstring_promises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names are durable before ``data`` appears, and ``data`` is durable before the
    staged name is gone: every rename is followed by an fsync of its directory."""
    store = FsBlobStore(tmp_path)
    writer = await store.upload("u")
    data = b"synced in order"
    await writer.write(data)
    events: list[tuple[str, str]] = []

    def where(path: str | os.PathLike[str]) -> str:
        return re.sub(r"\.[0-9a-f]{12}\.tmp$", ".tmp", str(Path(path).relative_to(tmp_path)))

    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", where(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("rename", f"{where(src)} -> {where(dst)}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    info = await writer.commit()
    monkeypatch.undo()

    blob = str(_blob_dir(Path("."), info.sha256))
    fan = str(Path(blob).parent)
    alias_fan = f"blobs/blake3/{info.blake3.hex[:2]}"
    alias = f"{alias_fan}/{info.blake3.hex}"
    assert events == [
        ("fsync", "uploads/u"),  # the staged bytes
        ("fsync", "blobs/sha256"),  # mkdirs: each new directory, by its parent
        ("fsync", fan),
        ("fsync", f"{blob}/.digests.tmp"),
        ("rename", f"{blob}/.digests.tmp -> {blob}/digests"),
        ("fsync", blob),
        ("fsync", "blobs"),
        ("fsync", "blobs/blake3"),
        ("fsync", f"{alias_fan}/.{info.blake3.hex}.tmp"),
        ("rename", f"{alias_fan}/.{info.blake3.hex}.tmp -> {alias}"),
        ("fsync", alias_fan),
        ("rename", f"uploads/u -> {blob}/data"),  # the commit point
        ("fsync", blob),
        ("fsync", "uploads"),
    ]


async def test_os_errors_become_storage_unavailable(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "root")
    info = await put(store, b"soon unreachable")
    (tmp_path / "root" / "uploads").rmdir()
    (tmp_path / "root" / "uploads").write_bytes(b"not a directory")
    with pytest.raises(StorageUnavailable):
        await store.check()
    with pytest.raises(StorageUnavailable):
        await store.upload("blocked")
    with pytest.raises(StorageUnavailable):
        [u async for u in store.list_uploads()]
    assert await store.stat(info.sha256) == info  # reads still work


async def test_a_write_failing_in_flight_surfaces_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes are pipelined: a disk error on one piece surfaces at the next call."""

    def full(fd: int, data: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_fs_writer, "write_all", full)
    store = FsBlobStore(tmp_path)
    committing = await store.upload("committing")
    await committing.write(b"x" * _fs_writer._COALESCE)  # accepted; its write is in flight
    with pytest.raises(StorageUnavailable, match="No space left"):
        await committing.commit()
    with pytest.raises(UploadNotFound):
        await committing.write(b"z")  # a writer whose bytes and hashes disagree is done
    await committing.abort()

    writing = await store.upload("writing")
    await writing.write(b"x" * _fs_writer._COALESCE)
    with pytest.raises(StorageUnavailable, match="No space left"):
        await writing.write(b"y" * _fs_writer._COALESCE)
    await writing.abort()
    assert [u async for u in store.list_uploads()] == []
    assert [b async for b in store.list()] == []


def test_unusable_root_is_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageUnavailable):
        FsBlobStore(tmp_path / "file" / "store")


async def test_staged_bytes_are_handed_to_the_disk_as_they_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writeback starts every run (16 MiB here), in contiguous runs, across a resumed session too.

    Without it the whole blob would wait in memory for the commit's fsync.
    """
    if sys.platform.startswith("linux"):
        assert _fs_writer._sync_file_range is not None  # the libc call was found
    real = _fs_writer._sync_file_range
    started: list[tuple[int, int]] = []

    def record(fd: int, offset: int, count: int, flags: int) -> int:
        started.append((offset, count))
        return 0 if real is None else real(fd, offset, count, flags)

    monkeypatch.setattr(_fs_writer, "_sync_file_range", record)
    monkeypatch.setattr(_fs_writer, "_WRITEBACK_RUN", 16 << 20)
    store = FsBlobStore(tmp_path)
    writer = await store.upload("resumed")
    await _write_mib(writer, 20)
    await writer.close()
    assert started == [(0, 16 << 20)]  # the last 4 MiB wait for the commit's fsync

    writer = await store.upload("resumed")
    await _write_mib(writer, 32)
    info = await writer.commit(Digest.compute(MIB * 52, "sha256"))
    assert info.size == 52 << 20
    assert started == [(0, 16 << 20), (20 << 20, 16 << 20), (36 << 20, 16 << 20)]


async def test_staged_bytes_are_flushed_in_the_background_as_they_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fdatasync starts every 16 MiB while the upload goes on, so the fsync at close
    has only the tail left to flush; the close waits for it first."""
    calls: list[tuple[str, int]] = []
    real_fdatasync, real_fsync = filesystem.os.fdatasync, filesystem.os.fsync

    def fdatasync(fd: int) -> None:
        calls.append(("background", filesystem.os.fstat(fd).st_size))
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        calls.append(("close", filesystem.os.fstat(fd).st_size))
        real_fsync(fd)

    monkeypatch.setattr(filesystem.os, "fdatasync", fdatasync)
    monkeypatch.setattr(filesystem.os, "fsync", fsync)
    store = FsBlobStore(tmp_path)
    writer = await store.upload("flushed")
    await _write_mib(writer, 40)
    await writer.close()
    background = [size for kind, size in calls if kind == "background"]
    assert background
    assert background[0] >= _fs_writer._SYNC_RUN
    assert all(size < 40 << 20 for size in background)  # before the upload's end
    assert calls[-1] == ("close", 40 << 20)


async def test_an_upload_fails_when_a_background_flush_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flush consumes the file's write error (the fsync at close would not see it
    again), so its error fails the upload, and the writer takes no more bytes."""

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(filesystem.os, "fdatasync", failing)
    store = FsBlobStore(tmp_path)
    writer = await store.upload("lost")
    with pytest.raises(StorageUnavailable, match="Input/output error"):
        await _write_mib_then_commit(writer, 20)
    with pytest.raises(UploadNotFound):
        await writer.write(b"more")
    await writer.abort()
    assert [b async for b in store.list()] == []


async def test_small_writes_are_hashed_and_written_in_pieces_of_megabytes(
    tmp_path: Path, hashed_pieces: list[int]
) -> None:
    """Request bodies come in pieces of tens of KiB: one thread hop each would cost more
    than the work, so the writer gathers them (and callers need not)."""
    sizes = hashed_pieces
    store = FsBlobStore(tmp_path)
    writer = await store.upload("pieces")
    piece = b"p" * (16 << 10)
    for _ in range(640):  # 10 MiB
        await writer.write(piece)
    assert writer.offset == 10 << 20
    info = await writer.commit(Digest.compute(piece * 640, "sha256"))
    assert info.size == 10 << 20
    assert sizes == [2 << 20] * 5


def _resident(path: Path, start: int, end: int) -> float:
    """The fraction of ``path``'s pages in [start, end) that are in the page cache (mincore)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    with path.open("rb") as file, mmap.mmap(file.fileno(), end, access=mmap.ACCESS_COPY) as mapped:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped)) + start
        pages = (end - start) // page
        vector = (ctypes.c_ubyte * pages)()
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(end - start), vector) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(byte & 1 for byte in vector) / pages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-cache control is Linux's")
@pytest.mark.parametrize("cache_uploads", [True, False])
async def test_uncached_uploads_leave_the_page_cache_as_they_reach_the_disk(
    tmp_path: Path, cache_uploads: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cache_uploads=False``: an upload leaves memory run by run once on disk, and its
    last runs when it closes; by default the kernel keeps what was written."""
    monkeypatch.setattr(_fs_writer, "_WRITEBACK_RUN", 16 << 20)
    store = FsBlobStore(tmp_path, cache_uploads=cache_uploads)
    piece = bytes(range(256)) * 4096  # 1 MiB
    writer = await store.upload("dropped")
    for _ in range(64):
        await writer.write(piece)
    info = await writer.commit(Digest.compute(piece * 64, "sha256"))
    data = tmp_path / "blobs" / "sha256" / info.sha256.hex[:2] / info.sha256.hex / "data"
    head, tail = _resident(data, 0, 32 << 20), _resident(data, 32 << 20, 64 << 20)
    if cache_uploads:
        assert head > 0.9
        assert tail > 0.9
    else:
        assert head < 0.1
        assert tail < 0.1
    async for chunk in await store.read(info.sha256, 0, 1 << 20):  # still readable from disk
        assert chunk == piece


async def test_uncached_uploads_wait_for_each_run_before_dropping_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run is dropped only after the one after it was handed to the disk, and only
    after waiting for its own writeback: dirty pages cannot be dropped."""
    calls: list[tuple[int, int, int]] = []
    dropped: list[tuple[int, int]] = []

    def record(fd: int, offset: int, count: int, flags: int) -> int:
        calls.append((offset >> 20, count >> 20, flags))
        return 0

    def fadvise(fd: int, offset: int, count: int, advice: int) -> None:
        assert advice == filesystem.os.POSIX_FADV_DONTNEED
        dropped.append((offset >> 20, count >> 20))

    monkeypatch.setattr(_fs_writer, "_sync_file_range", record)
    monkeypatch.setattr(_fs_writer, "_WRITEBACK_RUN", 16 << 20)
    monkeypatch.setattr(filesystem.os, "posix_fadvise", fadvise, raising=False)
    store = FsBlobStore(tmp_path, cache_uploads=False)
    writer = await store.upload("runs")
    mib = b"r" * (1 << 20)
    for _ in range(40):
        await writer.write(mib)
    await writer.close()  # resumed: the next run starts at 40 MiB
    writer = await store.upload("runs")
    for _ in range(56):
        await writer.write(mib)
    await writer.commit()
    wait = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER
    assert calls == [
        (0, 16, 2),
        (16, 16, 2),
        (40, 16, 2),  # the resumed writer starts afresh: nothing it did not write is dropped
        (56, 16, 2),
        (72, 16, 2),
        (40, 16, wait),
    ]
    # each writer's fsync at close leaves everything clean: the rest goes then (0: to the end)
    assert dropped == [(0, 0), (40, 16), (56, 0)]


async def test_an_uncached_upload_fails_when_the_disk_lost_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting for a run consumes the file's write error: the commit's fsync would not
    report it again, so the wait's error must fail the upload itself."""
    import ctypes

    def failing(fd: int, offset: int, count: int, flags: int) -> int:
        if flags & 4:
            ctypes.set_errno(errno.EIO)
            return -1
        return 0

    monkeypatch.setattr(_fs_writer, "_sync_file_range", failing)
    store = FsBlobStore(tmp_path, cache_uploads=False)
    writer = await store.upload("lost")
    with pytest.raises(StorageUnavailable, match="Input/output error"):
        await _write_mib_then_commit(writer, 64)
    await writer.abort()
    assert [b async for b in store.list()] == []
