"""The registry context: the metadata store, the blob store, the settings, the rules
and the writes built from them."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator

import anyio

from registry.config import Settings
from registry.meta import MetadataStore
from registry.rules import Rules
from registry.rules.policy import policy_of
from registry.service.writes import Writes
from storage.base import BlobStore
from storage.url import open_store

__all__ = ["Registry", "expire_uploads", "open_registry", "rules_of"]

log = logging.getLogger("artifact_store")


def rules_of(settings: Settings) -> Rules:
    """The rules the settings configure (immutable tags from the lifecycle policy)."""
    return Rules(immutable_tags=policy_of(settings).immutable)


class Registry:
    """What a request or a command works with; every write goes through ``writes``."""

    __slots__ = ("blobs", "meta", "rules", "settings", "writes")

    def __init__(
        self,
        meta: MetadataStore,
        blobs: BlobStore,
        settings: Settings,
        rules: Rules | None = None,
    ) -> None:
        """``rules`` default to what ``settings`` configure (``rules_of``)."""
        self.meta = meta
        self.blobs = blobs
        self.settings = settings
        self.rules = rules_of(settings) if rules is None else rules
        self.writes = Writes(meta, self.rules)


@contextlib.asynccontextmanager
async def open_registry(settings: Settings) -> AsyncIterator[Registry]:
    """Open both stores (migrating the database); close them on exit."""
    blobs = open_store(
        settings.resolved_storage_url, cache_uploads=settings.storage.upload_cache == "keep"
    )
    await blobs.check()
    meta = await MetadataStore.open(settings.resolved_database_url)
    try:
        yield Registry(meta, blobs, settings, rules_of(settings))
    finally:
        with anyio.CancelScope(shield=True):
            await meta.close()


async def expire_uploads(registry: Registry) -> int:
    """End sessions idle past the configured time and remove their staged bytes."""
    idle = dt.timedelta(seconds=registry.settings.storage.upload_idle_seconds)
    expired = await registry.meta.expired_uploads(idle)
    for upload in expired:
        await registry.blobs.discard_upload(upload.id)
        await registry.writes.end_upload(upload.id, "expired", actor="system")
    if expired:
        log.info("expired %d idle upload session(s)", len(expired))
    strays = await _discard_strays(registry, idle)
    if strays:
        log.info("removed the staged bytes of %d upload(s) no session owns", strays)
    return len(expired)


async def _discard_strays(registry: Registry, idle: dt.timedelta) -> int:
    """Staged bytes idle past ``idle`` that no active session owns.

    A one-request upload stages without a session row, and a process that
    dies mid-request (or between ending a session and discarding its bytes)
    leaves its staging behind. Idle means no byte written for ``idle``: a
    request still running keeps writing, so it is never taken.
    """
    cutoff = time.time() - idle.total_seconds()
    stale = [
        upload_id async for upload_id, _, mtime in registry.blobs.list_uploads() if mtime < cutoff
    ]
    if not stale:
        return 0
    owned = await registry.meta.active_upload_ids(stale)
    strays = [upload_id for upload_id in stale if upload_id not in owned]
    for upload_id in strays:
        await registry.blobs.discard_upload(upload_id)
    return len(strays)
