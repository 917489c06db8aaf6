"""A registry opened with ``open_embedded`` per test, on SQLite and on PostgreSQL metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry import EmbeddedRegistry, open_embedded
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["embedded", "make_url"]


@pytest.fixture
async def embedded(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[EmbeddedRegistry]:
    """Blobs under the test's data directory, metadata in a fresh database of the backend."""
    async with open_embedded(
        str(tmp_path / "data"), database_url=make_url(), actor="test-bot"
    ) as opened:
        yield opened
