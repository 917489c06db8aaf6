"""The shared driver suite, unchanged, on the S3 driver against a real S3 server."""

from __future__ import annotations

from typing import ClassVar

import pytest

from storage.base import BlobInfo, BlobStore
from storage.s3 import S3BlobStore
from storage.testing import BlobStoreSuite


class TestS3BlobStore(BlobStoreSuite):
    redirects: ClassVar[bool] = True

    @pytest.fixture
    def store(self, s3_store: S3BlobStore) -> S3BlobStore:
        return s3_store

    @pytest.fixture
    def peer(self, s3_store_url: str) -> S3BlobStore:
        # A second store on the same bucket and prefix: what another process sees.
        return S3BlobStore.from_url(s3_store_url)

    async def corrupt(self, store: BlobStore, info: BlobInfo) -> None:
        assert isinstance(store, S3BlobStore)
        data = bytearray()
        async for chunk in await store.read(info.sha256):
            data += chunk
        data[0] ^= 1
        key = store._key("blobs", "sha256", info.sha256.hex)
        await store._put(key, bytes(data), {"x-amz-meta-blake3": str(info.blake3)})
