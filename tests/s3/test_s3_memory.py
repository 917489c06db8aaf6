"""A large blob streams through the S3 driver in bounded memory (no whole blob in RAM)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import blake3
import psutil
import pytest

from oci.digest import Digest
from storage.s3 import S3BlobStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MiB = 1024 * 1024
SIZE = 512 * MiB
LIMIT = 100 * MiB


def _chunks() -> Iterator[bytes]:
    """512 MiB of distinct 1 MiB chunks, generated as they are consumed."""
    block = hashlib.sha512(b"seed").digest() * (MiB // 64)
    for i in range(SIZE // MiB):
        yield i.to_bytes(8, "big") + block[8:]


async def test_512_mib_write_and_read_stay_under_100_mib_rss(s3_store: S3BlobStore) -> None:
    process = psutil.Process()
    warm = await s3_store.upload("warm-up")  # threads, pools and hashers exist before the baseline
    await warm.write(b"w" * MiB)
    await warm.abort()
    baseline = peak = process.memory_info().rss
    sha256, b3 = hashlib.sha256(), blake3.blake3()
    writer = await s3_store.upload("big")
    for chunk in _chunks():
        sha256.update(chunk)
        b3.update(chunk)
        await writer.write(chunk)
        peak = max(peak, process.memory_info().rss)
    info = await writer.commit(Digest("sha256", sha256.hexdigest()))
    assert info.size == SIZE
    assert info.blake3 == Digest("blake3", b3.hexdigest())
    peak = max(peak, process.memory_info().rss)
    assert peak - baseline < LIMIT, f"write grew RSS by {(peak - baseline) / MiB:.0f} MiB"

    read_back, size = hashlib.sha256(), 0
    async for chunk in await s3_store.read(info.sha256):
        read_back.update(chunk)
        size += len(chunk)
        peak = max(peak, process.memory_info().rss)
    assert (size, read_back.hexdigest()) == (SIZE, info.sha256.hex)
    assert peak - baseline < LIMIT, f"read grew RSS by {(peak - baseline) / MiB:.0f} MiB"
    await s3_store.delete(info.sha256)
