"""The in-process registry the GC tests drive, and a store that lets GC strike mid-upload.

The real routes, services and ``MetadataStore`` over ``httpx.ASGITransport``,
on SQLite and PostgreSQL metadata (``make_url``), with the filesystem driver
or the S3 driver against SeaweedFS. Time is moved by handing ``collect`` a
later ``now`` rather than by sleeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa

from oci.digest import Digest
from registry.config import Settings
from registry.http.app import create_app
from registry.lifecycle.gc import GcReport, collect
from registry.meta import MetadataStore
from registry.meta.tables import blobs as blob_rows
from registry.meta.tables import events
from registry.service.registry import Registry
from storage.base import BlobInfo, BlobStore, BlobWriter
from storage.errors import BlobNotFound
from storage.filesystem import FsBlobStore
from storage.s3 import S3BlobStore
from tests.http._oci import (
    Blob,
    Pushed,
    image,
    push_blob,
    push_manifest,
)
from tests.meta._clock import ManualClock
from tests.meta.conftest import UrlFactory

__all__ = [
    "HOUR",
    "Env",
    "HookedStore",
    "clock",
    "clocked_env",
    "env",
    "open_env",
    "push_image",
    "s3_env",
    "settings",
    "store_orphan",
]

HOUR = dt.timedelta(hours=1)


class HookedStore:
    """A real store whose writers run ``after_commit`` between the storage commit
    and the metadata commit of an upload: where GC can strike mid-upload."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.after_commit: Callable[[], Awaitable[object]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upload(self, upload_id: str) -> BlobWriter:
        return cast(BlobWriter, _HookedWriter(await self.inner.upload(upload_id), self))


class _HookedWriter:
    def __init__(self, inner: BlobWriter, store: HookedStore) -> None:
        self._inner, self._store = inner, store
        self.upload_id = inner.upload_id

    @property
    def offset(self) -> int:
        return self._inner.offset

    async def write(self, chunk: bytes) -> None:
        await self._inner.write(chunk)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        info = await self._inner.commit(expected)
        if self._store.after_commit is not None:
            await self._store.after_commit()
        return info

    async def close(self) -> None:
        await self._inner.close()

    async def abort(self) -> None:
        await self._inner.abort()


@dataclass
class Env:
    client: httpx.AsyncClient
    registry: Registry
    store: HookedStore

    @property
    def meta(self) -> MetadataStore:
        return self.registry.meta

    async def gc(self, *, hours: float = 0, grace: dt.timedelta = HOUR, **kw: Any) -> GcReport:
        """A run as if ``hours`` had passed."""
        now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        return await collect(self.registry, grace=grace, now=now, **kw)

    async def has_row(self, blob: Blob) -> bool:
        async with self.meta.reading() as conn:
            query = sa.select(blob_rows.c.sha256).where(blob_rows.c.sha256 == str(blob.digest))
            return (await conn.execute(query)).first() is not None

    async def stored(self, blob: Blob) -> bool:
        try:
            await self.store.inner.stat(blob.digest)
        except BlobNotFound:
            return False
        return True

    async def event_count(self) -> int:
        async with self.meta.reading() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one()
            )

    async def pulls(self, repo: str, reference: str) -> None:
        """The manifest and every blob it names (children too) download and verify."""
        accept = ",".join(
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
            ]
        )
        response = await self.client.get(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
        )
        assert response.status_code == 200, response.text
        document = response.json()
        for child in document.get("manifests", []):
            await self.pulls(repo, child["digest"])
        for desc in [document.get("config"), *document.get("layers", [])]:
            if desc is None:
                continue
            blob = await self.client.get(f"/v2/{repo}/blobs/{desc['digest']}")
            assert blob.status_code == 200, blob.text
            assert str(Digest.compute(blob.content)) == desc["digest"]


async def open_env(meta: MetadataStore, store: BlobStore, settings: Settings) -> AsyncIterator[Env]:
    hooked = HookedStore(store)
    registry = Registry(meta, cast(BlobStore, hooked), settings)
    app = create_app(settings, registry)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
            yield Env(c, registry, hooked)
    finally:
        await meta.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path))


@pytest.fixture
async def env(make_url: UrlFactory, tmp_path: Path, settings: Settings) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    async for value in open_env(meta, FsBlobStore(tmp_path / "blobs"), settings):
        yield value


@pytest.fixture
def clock() -> ManualClock:
    """The time ``clocked_env``'s metadata stamps its events with; tests move it."""
    return ManualClock()


@pytest.fixture
async def clocked_env(
    make_url: UrlFactory, tmp_path: Path, settings: Settings, clock: ManualClock
) -> AsyncIterator[Env]:
    """``env`` whose events (and so links' and blobs' grace clocks) carry ``clock``'s time."""
    meta = await MetadataStore.open(make_url(), clock=clock)
    async for value in open_env(meta, FsBlobStore(tmp_path / "blobs"), settings):
        yield value


async def push_image(env: Env, repo: str, tag: str | None, *layers: Blob, **kw: Any) -> Pushed:
    config = Blob(b'{"architecture":"amd64","os":"linux"}')
    for blob in (config, *layers):
        await push_blob(env.client, repo, blob)
    return await push_manifest(env.client, repo, tag, image(config, list(layers), **kw))


@pytest.fixture
async def s3_env(
    make_url: UrlFactory, s3_store: S3BlobStore, settings: Settings
) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    async for value in open_env(meta, s3_store, settings):
        yield value


async def store_orphan(store: BlobStore, data: bytes, upload_id: str = "orphan") -> BlobInfo:
    """Bytes committed to storage whose metadata commit never came."""
    writer = await store.upload(upload_id)
    await writer.write(data)
    return await writer.commit()
