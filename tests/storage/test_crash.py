"""A process killed with SIGKILL mid-upload or mid-commit leaves no partial blob.

The writer runs in a child process so the kill is real: no finally blocks, no
flushes, no atexit. Afterwards a fresh process (this one) must find either no
blob or a whole one, with every name resolving, and verify must pass.
"""

from __future__ import annotations

import hashlib
import inspect
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from oci.digest import Digest
from storage._fs_writer import _COALESCE
from storage.errors import BlobNotFound
from storage.filesystem import FsBlobStore
from storage.verify import verify

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MiB = 1024 * 1024
CHUNKS = 64  # of 1 MiB: a 64 MiB blob


def chunk(i: int) -> bytes:
    """Chunk ``i`` of the big blob; the child process runs this same function."""
    return hashlib.sha512(i.to_bytes(8, "big")).digest() * (1024 * 1024 // 64)


WRITER = """
import hashlib, sys, anyio
from storage.filesystem import FsBlobStore

async def main():
    writer = await FsBlobStore(sys.argv[1]).upload("crash")
    for i in range(64):
        await writer.write(chunk(i))
        if i == 40:
            print("ready", flush=True)
        if i >= 40:
            await anyio.sleep(0.05)  # still writing when the kill arrives
    await writer.commit()
    print("committed", flush=True)

anyio.run(main)
"""

COMMITTER = """
import sys, anyio
from storage.filesystem import FsBlobStore

async def main():
    store = FsBlobStore(sys.argv[1])
    i = 0
    while True:
        writer = await store.upload(f"u{i}")
        await writer.write(i.to_bytes(8, "big") * 32768)
        info = await writer.commit()
        print(info.sha256, flush=True)
        i += 1

anyio.run(main)
"""


def _chunks(start: int = 0) -> Iterator[bytes]:
    """The big blob from byte ``start`` on."""
    for i in range(start // MiB, CHUNKS):
        data = chunk(i)
        yield data[start - i * MiB :] if i == start // MiB else data


def _spawn(source: str, root: Path) -> subprocess.Popen[str]:
    package_parent = str(Path(storage.__file__).resolve().parent.parent)
    return subprocess.Popen(
        [sys.executable, "-c", inspect.getsource(chunk) + source, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=package_parent,
    )


def _kill(child: subprocess.Popen[str]) -> str:
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return rest


async def test_sigkill_mid_write_leaves_no_blob(tmp_path: Path) -> None:
    sha256 = hashlib.sha256()
    for piece in _chunks():
        sha256.update(piece)
    child = _spawn(WRITER, tmp_path)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    assert "committed" not in _kill(child)

    store = FsBlobStore(tmp_path)
    expected = Digest("sha256", sha256.hexdigest())
    with pytest.raises(BlobNotFound):
        await store.stat(expected)
    assert [info async for info in store.list()] == []
    assert (await verify(store)).checked == 0
    ((upload_id, staged, _),) = [u async for u in store.list_uploads()]
    assert upload_id == "crash"
    # Chunks 0-40 (41 MiB) were accepted; the driver may still have been gathering
    # one piece and writing the one before it.
    assert 41 * MiB - 2 * _COALESCE <= staged < CHUNKS * MiB

    writer = await store.upload("fresh")  # the same content again, from the start
    for piece in _chunks():
        await writer.write(piece)
    info = await writer.commit(expected)
    assert await store.stat(info.blake3) == info

    writer = await store.upload("crash")  # and the killed session resumes where it stopped
    assert writer.offset == staged
    for piece in _chunks(staged):
        await writer.write(piece)
    assert await writer.commit(expected) == info

    report = await verify(store)
    assert (report.checked, report.corrupt) == (1, [])
    assert [u async for u in store.list_uploads()] == []
    await store.delete(expected)


async def test_sigkill_mid_commit_leaves_whole_blobs_only(tmp_path: Path) -> None:
    child = _spawn(COMMITTER, tmp_path)
    assert child.stdout is not None
    committed = [child.stdout.readline().strip() for _ in range(30)]
    committed += _kill(child).split()

    store = FsBlobStore(tmp_path)
    listed = {str(info.sha256): info async for info in store.list()}
    assert set(committed) <= set(listed)  # what the child saw committed survived
    assert len(listed) - len(committed) <= 1  # at most the one it was committing
    for info in listed.values():
        assert await store.stat(info.blake3) == info  # every visible blob has all its names
    report = await verify(store)
    assert (report.checked, report.corrupt) == (len(listed), [])
