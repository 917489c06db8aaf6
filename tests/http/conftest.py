"""An in-process registry per test, on SQLite and on PostgreSQL metadata.

The app is driven through ``httpx.ASGITransport``: the real routes, service
layer, ``MetadataStore`` and ``FsBlobStore``, with no sockets in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from registry.config import Settings
from registry.http.app import create_app
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["BASE_URL", "Served", "make_url", "registry_app", "served"]

BASE_URL = "http://registry.test"


@dataclass
class Served:
    """What a test needs to poke at: the client, the app and the stores behind it."""

    client: httpx.AsyncClient
    app: Starlette
    registry: Registry
    blob_root: Path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"))


@pytest.fixture
async def registry_app(
    make_url: UrlFactory, tmp_path: Path, settings: Settings
) -> AsyncIterator[tuple[Starlette, Registry]]:
    blob_root = tmp_path / "blobs"
    meta = await MetadataStore.open(make_url())
    registry = Registry(meta, FsBlobStore(blob_root), settings)
    try:
        yield create_app(settings, registry), registry
    finally:
        await meta.close()


@pytest.fixture
async def served(registry_app: tuple[Starlette, Registry], tmp_path: Path) -> AsyncIterator[Served]:
    app, registry = registry_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield Served(client, app, registry, tmp_path / "blobs")
