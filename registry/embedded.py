"""The registry as a library: one open registry, driven by a Python program without HTTP.

``open_embedded`` opens the metadata database and the blob store (on a data
directory, or on the URLs given) and yields an ``EmbeddedRegistry``; leaving
the ``async with`` closes them. Its methods are the operations the HTTP
routes call (``registry.service``, ``registry.native``), so a blob pushed
here is the blob ``/v2/`` serves, every write is one event in the log under
the registry's ``actor``, and every error is one of ``oci.errors``. Blobs
stream both ways: nothing holds a whole blob in memory unless the caller
hands one over as ``bytes``. ``asgi_app`` serves the same open registry
over HTTP, to mount inside another ASGI application (docs/embedding.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from starlette.applications import Starlette

from oci.digest import Digest
from oci.errors import NameUnknown, RangeNotSatisfiable
from oci.native import NativeManifest
from registry.config import DatabaseSettings, Settings
from registry.http.app import create_app
from registry.meta.records import EventRecord, ManifestRecord
from registry.native import artifacts
from registry.service import blobs, manifests
from registry.service.registry import Registry, open_registry
from storage.base import BlobInfo

__all__ = ["EmbeddedRegistry", "open_embedded"]


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class EmbeddedRegistry:
    """An open registry's operations, each recorded under ``actor``; made by ``open_embedded``."""

    def __init__(self, registry: Registry, *, actor: str = "embedded") -> None:
        self._registry = registry
        self.actor = actor

    @property
    def settings(self) -> Settings:
        return self._registry.settings

    # -- blobs -----------------------------------------------------------------

    async def push_blob(
        self,
        repo: str,
        data: bytes | AsyncIterable[bytes],
        *,
        digest: str | Digest | None = None,
    ) -> BlobInfo:
        """Store ``data`` as a blob of ``repo``; with ``digest``, only if the bytes have it.

        A wrong ``digest`` raises DigestInvalid and keeps nothing. Pushing a
        blob the store already holds succeeds and keeps one copy.
        """
        expected = Digest.parse(digest) if isinstance(digest, str) else digest
        body = _one(data) if isinstance(data, bytes) else data
        return await blobs.store_blob(self._registry, repo, body, expected, actor=self.actor)

    async def pull_blob(
        self, repo: str, digest: str | Digest, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset`` (``length`` of them, or to the end), streamed.

        Errors come from this call, before any byte: BlobUnknown if ``repo``
        does not hold the blob, RangeNotSatisfiable for a range outside it.
        """
        wanted = Digest.parse(digest) if isinstance(digest, str) else digest
        blob = await blobs.require_blob(self._registry, repo, wanted)
        if offset < 0 or offset > blob.size or (length is not None and length < 0):
            raise RangeNotSatisfiable(
                f"offset={offset} length={length} lies outside the blob ({blob.size} bytes)",
                detail={"offset": offset, "length": length, "size": blob.size},
                size=blob.size,
            )
        return await self._registry.blobs.read(blob.sha256, offset, length)

    # -- manifests -------------------------------------------------------------

    async def put_manifest(
        self,
        repo: str,
        reference: str,
        body: bytes,
        media_type: str,
        *,
        tags: Sequence[str] = (),
    ) -> Digest:
        """Store a manifest under a tag or its digest (plus ``tags``); returns its digest.

        Validated as a /v2/ push is: the blobs it names must be in ``repo``.
        """
        stored = await manifests.put_manifest(
            self._registry, repo, reference, body, media_type, list(tags), actor=self.actor
        )
        return stored.digest

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord:
        """The manifest a tag or digest names: ManifestUnknown (NameUnknown) if none."""
        return await manifests.get_manifest(self._registry, repo, reference)

    async def tags(self, repo: str) -> list[str]:
        """Every tag of ``repo``, in order; NameUnknown if the repository is not known."""
        found = await self._registry.meta.list_tags(repo, None, None)
        if not found and not await self._registry.meta.repository_exists(repo):
            raise NameUnknown(f"repository {repo} is not known", detail={"name": repo})
        return found

    # -- native artifacts ------------------------------------------------------

    async def publish(self, manifest: NativeManifest) -> artifacts.Artifact:
        """Publish ``manifest`` as ``name:version``; its files must be pushed to ``name`` first."""
        return await artifacts.publish(
            self._registry, manifest.name, manifest.version, manifest, actor=self.actor
        )

    async def get_artifact(self, name: str, version: str) -> artifacts.Artifact:
        return await artifacts.get_artifact(self._registry, name, version)

    async def read_file(self, name: str, version: str, path: str) -> AsyncIterator[bytes]:
        """One file of an artifact, streamed; ManifestUnknown if the version has no ``path``."""
        layer = await artifacts.find_file(self._registry, name, version, path)
        blob = await blobs.require_blob(self._registry, name, layer.digest)
        return await self._registry.blobs.read(blob.sha256)

    # -- the event log ---------------------------------------------------------

    async def events(
        self, after: int = 0, limit: int = 100, repository: str | None = None
    ) -> list[EventRecord]:
        """Up to ``limit`` events after seq ``after``, oldest first; of ``repository`` if given."""
        return await self._registry.meta.events(after, limit, repository)

    # -- HTTP ------------------------------------------------------------------

    def asgi_app(self) -> Starlette:
        """The registry's HTTP application over this open registry, to mount or serve.

        The registry stays this object's: the app's lifespan does not open or
        close it, but it does run the app's background work (event fan-out,
        upload expiry, pull recording), so it must run: see docs/embedding.md.
        """
        return create_app(self._registry.settings, registry=self._registry)


def _settings(
    data_dir: str | None,
    database_url: str | None,
    storage_url: str | None,
    settings: Settings | None,
) -> Settings:
    if settings is None:
        if data_dir is None and (database_url is None or storage_url is None):
            raise ValueError("open_embedded needs data_dir, or database_url and storage_url")
        settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    elif data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=data_dir)
    if database_url is not None:
        settings = dataclasses.replace(settings, database=DatabaseSettings(url=database_url))
    if storage_url is not None:
        storage = dataclasses.replace(settings.storage, url=storage_url)
        settings = dataclasses.replace(settings, storage=storage)
    return settings


@contextlib.asynccontextmanager
async def open_embedded(
    data_dir: str | None = None,
    *,
    database_url: str | None = None,
    storage_url: str | None = None,
    settings: Settings | None = None,
    actor: str = "embedded",
) -> AsyncIterator[EmbeddedRegistry]:
    """Open a registry: on ``data_dir`` (``meta.db`` and ``blobs/`` in it) or on the URLs.

    ``database_url`` is ``sqlite:///PATH`` or ``postgresql://...``;
    ``storage_url`` a directory, ``file://``, ``memory://`` or ``s3://`` URL.
    Either replaces what ``data_dir`` or ``settings`` would give. The
    database is migrated on open; both stores are closed on exit. Writes
    are recorded in the event log under ``actor``.
    """
    async with open_registry(_settings(data_dir, database_url, storage_url, settings)) as opened:
        yield EmbeddedRegistry(opened, actor=actor)
