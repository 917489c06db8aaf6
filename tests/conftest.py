"""Fixtures every test package shares."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop the server uses."""
    return "asyncio"


# One SeaweedFS per session for every test that needs S3 (see tests/_s3.py).
from tests._s3 import s3_store, s3_store_url, s3_url  # noqa: E402

__all__ = ["anyio_backend", "s3_store", "s3_store_url", "s3_url"]
