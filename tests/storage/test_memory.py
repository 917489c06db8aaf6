"""The shared suite on the memory driver."""

from __future__ import annotations

import pytest

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
