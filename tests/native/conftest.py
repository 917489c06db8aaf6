"""An in-process app over a real metadata store (SQLite and PostgreSQL) and a real fs blob store."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

from bench.servers import artifact_store, artifact_store_command
from oci import native
from registry.config import ServerSettings, Settings
from registry.http.app import create_app
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["api", "file_entry", "make_url", "registry", "run_cli", "served", "tree", "upload_blob"]


@pytest.fixture
async def registry(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[Registry]:
    meta = await MetadataStore.open(make_url())
    try:
        yield Registry(
            meta,
            FsBlobStore(tmp_path / "blobs"),
            Settings(server=ServerSettings(max_manifest_bytes=65536)),
        )
    finally:
        await meta.close()


@pytest.fixture
async def api(registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(registry.settings, registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def digests(data: bytes) -> tuple[str, str]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), "blake3:" + blake3.blake3(data).hexdigest()


def file_entry(
    path: str, data: bytes, media_type: str = "application/octet-stream"
) -> dict[str, Any]:
    sha, b3 = digests(data)
    return {"path": path, "size": len(data), "type": media_type, "sha256": sha, "blake3": b3}


async def upload_blob(api: httpx.AsyncClient, name: str, data: bytes, chunk: int = 7) -> None:
    """Through a native session, in chunks with Content-Range, committed under both digests."""
    opened = await api.post(f"/api/v1/artifacts/{name}/uploads")
    assert opened.status_code == 201, opened.text
    location = opened.headers["location"]
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        r = await api.patch(
            location,
            content=piece,
            headers={"Content-Range": f"{start}-{start + len(piece) - 1}"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["offset"] == start + len(piece)
    sha, b3 = digests(data)
    done = await api.put(location, params={"sha256": sha, "blake3": b3})
    assert done.status_code == 201, done.text


def manifest_json(
    name: str, version: str, files: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {"v": 1, "name": name, "version": version, "files": files,
            "created": "2024-05-01T12:34:56Z", **extra}  # fmt: skip


def cbor_of(document: dict[str, Any]) -> bytes:
    return native.encode_cbor(native.from_json(document))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``artifact-store serve`` as a real process (SQLite + fs): what the CLI and oras talk to."""
    with artifact_store(tmp_path_factory.mktemp("served") / "data") as server:
        yield server.url


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [*artifact_store_command(), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
