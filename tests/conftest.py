"""Fixtures every test package shares."""

from __future__ import annotations

import pytest

from storage.hashing import ContentHasher


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop the server uses."""
    return "asyncio"


@pytest.fixture
def hashed_pieces(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every piece handed to ``ContentHasher.update`` while the test runs.

    Counts thread hops: a driver that hashed each small request-body piece
    on its own would show here as thousands of tiny pieces.
    """
    sizes: list[int] = []
    update = ContentHasher.update

    async def counted(self: ContentHasher, data: bytes, then: object = None) -> None:
        sizes.append(len(data))
        await update(self, data, then)  # type: ignore[arg-type]

    monkeypatch.setattr(ContentHasher, "update", counted)
    return sizes


# One SeaweedFS per session for every test that needs S3 (see tests/_s3.py).
from tests._s3 import s3_store, s3_store_url, s3_url  # noqa: E402

__all__ = ["anyio_backend", "hashed_pieces", "s3_store", "s3_store_url", "s3_url"]
