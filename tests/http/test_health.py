"""/health answers for the process, the database and the blob store; /v2/ for the API."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from registry.config import Settings
from registry.http.app import create_app
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.events._proxy import TcpProxy
from tests.http.conftest import BASE_URL, Served
from tests.meta.conftest import UrlFactory

pytestmark = pytest.mark.anyio


async def test_healthy(served: Served) -> None:
    response = await served.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "storage": "ok"}


async def test_base_endpoint_and_version_header(served: Served) -> None:
    response = await served.client.get("/v2/")
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    # Every /v2/ answer carries it, errors included.
    missing = await served.client.get("/v2/team/app/manifests/latest")
    assert missing.status_code == 404
    assert missing.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_storage_gone_is_503(served: Served) -> None:
    shutil.rmtree(served.blob_root)
    served.blob_root.write_bytes(b"not a directory")
    response = await served.client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["storage"].startswith("error:")


@pytest.fixture
async def proxied_postgres(
    make_url: UrlFactory, tmp_path: Path
) -> AsyncIterator[tuple[TcpProxy, httpx.AsyncClient]]:
    """A registry whose PostgreSQL connection runs through a proxy the test can cut."""
    url = make_url()
    target = urlsplit(url)
    assert target.hostname is not None
    proxy = TcpProxy(target.hostname, target.port or 5432)
    await proxy.start()
    netloc = target.netloc.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
    settings = Settings(data_dir=str(tmp_path))
    meta = await MetadataStore.open(target._replace(netloc=netloc).geturl())
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), settings)
    transport = httpx.ASGITransport(app=create_app(settings, registry))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield proxy, client
    finally:
        await proxy.cut()
        await meta.close()


@pytest.mark.postgres
@pytest.mark.parametrize("make_url", ["postgresql"], indirect=True)
async def test_database_gone_is_503(proxied_postgres: tuple[TcpProxy, httpx.AsyncClient]) -> None:
    proxy, client = proxied_postgres
    assert (await client.get("/health")).status_code == 200
    await proxy.cut()
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"].startswith("error:")
    assert body["storage"] == "ok"
