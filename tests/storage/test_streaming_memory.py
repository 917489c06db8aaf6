"""A 256 MiB blob goes through the filesystem driver holding only a few MiB of it.

The memory driver holds blobs by design, so this is the filesystem driver's
test. tracemalloc counts every Python allocation, including the chunks the
generator makes, the driver's coalescing buffer and the chunks read back.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci.digest import Digest
from storage.filesystem import FsBlobStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MiB = 1024 * 1024
SIZE = 256 * MiB
LIMIT = 8 * MiB


def _chunks(size: int) -> Iterator[bytes]:
    """SIZE bytes in chunks of ``size``, two distinct chunks alternating.

    They are made before tracing starts, so the peak measures the driver alone.
    """
    pair = [hashlib.sha512(bytes([i])).digest() * (size // 64) for i in range(2)]
    return (pair[i % 2] for i in range(SIZE // size))


@pytest.mark.parametrize("chunk", [64 * 1024, 4 * MiB], ids=["coalesced", "passed-through"])
async def test_256_mib_round_trip_peaks_under_8_mib(tmp_path: Path, chunk: int) -> None:
    store = FsBlobStore(tmp_path)
    expected = hashlib.sha256()
    for piece in _chunks(chunk):
        expected.update(piece)
    chunks = _chunks(chunk)
    tracemalloc.start()
    try:
        writer = await store.upload("big")
        for piece in chunks:
            await writer.write(piece)
        info = await writer.commit(Digest("sha256", expected.hexdigest()))
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read_back, size = hashlib.sha256(), 0
        async for piece in await store.read(info.blake3):
            read_back.update(piece)
            size += len(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == size == SIZE
    assert read_back.hexdigest() == expected.hexdigest()
    assert write_peak < LIMIT, f"write peaked at {write_peak / MiB:.1f} MiB"
    assert read_peak < LIMIT, f"read peaked at {read_peak / MiB:.1f} MiB"
    await store.delete(info.sha256)
