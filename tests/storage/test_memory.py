"""The shared suite on the memory driver."""

from __future__ import annotations

import pytest

from oci.digest import Digest
from storage.base import BlobInfo, BlobStore
from storage.memory import MemoryBlobStore
from storage.testing import BlobStoreSuite


class TestMemoryBlobStore(BlobStoreSuite):
    @pytest.fixture
    def store(self) -> MemoryBlobStore:
        return MemoryBlobStore()

    @pytest.fixture
    def peer(self, store: MemoryBlobStore) -> MemoryBlobStore:
        return store.peer()

    async def corrupt(self, store: BlobStore, info: BlobInfo) -> None:
        assert isinstance(store, MemoryBlobStore)
        blob = store._backend.blobs[info.sha256.hex]
        blob.data = bytes([blob.data[0] ^ 1]) + blob.data[1:]


pytestmark = pytest.mark.anyio


async def test_small_writes_are_hashed_in_pieces(hashed_pieces: list[int]) -> None:
    """Request-body pieces are hashed 2 MiB at a time, and the rest at close and commit."""
    sizes = hashed_pieces
    store = MemoryBlobStore()
    piece = b"q" * (16 << 10)
    writer = await store.upload("pieces")
    for _ in range(160):  # 2.5 MiB
        await writer.write(piece)
    await writer.close()
    writer = await store.upload("pieces")  # resumed from the cached hash state
    await writer.write(piece)
    info = await writer.commit(Digest.compute(piece * 161, "sha256"))
    assert info.size == len(piece) * 161
    assert sizes == [2 << 20, len(piece) * 32, len(piece)]
