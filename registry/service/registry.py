"""The registry context: the metadata store, the blob store and the settings."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from registry.config import Settings
from registry.lifecycle.policy import policy_of
from registry.meta import MetadataStore
from storage.base import BlobStore
from storage.url import open_store

__all__ = ["Registry", "expire_uploads", "open_registry"]

log = logging.getLogger("artifact_store")


@dataclass(slots=True)
class Registry:
    meta: MetadataStore
    blobs: BlobStore
    settings: Settings


@contextlib.asynccontextmanager
async def open_registry(settings: Settings) -> AsyncIterator[Registry]:
    """Open both stores (migrating the database); close them on exit."""
    blobs = open_store(settings.resolved_storage_url)
    await blobs.check()
    meta = await MetadataStore.open(settings.resolved_database_url)
    meta.immutable_tags = policy_of(settings).immutable
    try:
        yield Registry(meta, blobs, settings)
    finally:
        with anyio.CancelScope(shield=True):
            await meta.close()


async def expire_uploads(registry: Registry) -> int:
    """End sessions idle past the configured time and remove their staged bytes."""
    idle = dt.timedelta(seconds=registry.settings.upload_idle_seconds)
    expired = await registry.meta.expired_uploads(idle)
    for upload in expired:
        await registry.blobs.discard_upload(upload.id)
        await registry.meta.end_upload(upload.id, "expired", actor="system")
    if expired:
        log.info("expired %d idle upload session(s)", len(expired))
    return len(expired)
