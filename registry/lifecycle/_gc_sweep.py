"""The three sweeps of garbage collection, each a scan and a locked re-check.

Every sweep reads candidates in keyset-paged batches without the write lock
(so pushes and pulls go on), then re-checks each batch under the write lock
(``MetadataStore.transaction``) before changing anything.
What the scan saw may be stale by then; only what is still garbage under the
lock is removed. ADR-0007 explains why each check is enough.

The statements are ``registry.meta.gc_queries``; here are the decisions.
Memory stays bounded by one page: no sweep holds the set of all blobs,
links or stored keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from itertools import groupby

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection

from oci.digest import Digest
from registry.meta import MetadataStore, gc_queries, queries
from registry.meta.events import BlobDeleted, BlobUnlinked
from registry.meta.holds import Protected, protected
from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound

__all__ = [
    "ACTOR",
    "BlobCandidate",
    "LinkCandidate",
    "count_links",
    "count_unlinked",
    "delete_orphan",
    "held",
    "remove_links",
    "scan_blobs",
    "scan_links",
    "scan_orphans",
    "sweep_blob",
]

ACTOR = "gc"
PAGE = 1000  # rows per scan query
ORPHAN_PAGE = 500  # stored blobs looked up per query
_PARALLEL_DELETES = 8  # byte deletions in flight within one locked batch


@dataclass(frozen=True, slots=True)
class LinkCandidate:
    repository: str
    sha256: str


@dataclass(frozen=True, slots=True)
class BlobCandidate:
    sha256: str
    blake3: str
    sha512: str | None
    size: int


# -- phase 1: links ---------------------------------------------------------------


async def count_links(meta: MetadataStore, cutoff: dt.datetime) -> int:
    """Links old enough to be looked at (the progress total of the link sweep)."""
    async with meta.reading() as conn:
        return await gc_queries.count_links(conn, cutoff)


async def scan_links(
    meta: MetadataStore, cutoff: dt.datetime
) -> AsyncIterator[tuple[int, list[LinkCandidate]]]:
    """Pages of (links scanned, unreferenced unheld links older than ``cutoff``)."""
    after: tuple[str, str] | None = None
    while True:
        async with meta.reading() as conn:
            rows = await gc_queries.link_page(conn, cutoff, after, PAGE)
            candidates = [LinkCandidate(r.repository, r.sha256) for r in rows if not r.referenced]
            candidates = await _unheld(conn, candidates)
        if not rows:
            return
        yield len(rows), candidates
        if len(rows) < PAGE:
            return
        after = (rows[-1].repository, rows[-1].sha256)


async def _unheld(conn: AsyncConnection, links: list[LinkCandidate]) -> list[LinkCandidate]:
    """``links`` minus those a legal hold covers (holds are few: look only where there are)."""
    if not links:
        return links
    names = sorted({link.repository for link in links})
    held_repositories = await gc_queries.repositories_with_holds(conn, names)
    closures: dict[str, Protected] = {}
    kept = []
    for link in links:
        if link.repository in held_repositories:
            if link.repository not in closures:
                closures[link.repository] = await protected(conn, link.repository)
            if closures[link.repository].covers_blob(link.sha256):
                continue
        kept.append(link)
    return kept


async def remove_links(
    meta: MetadataStore, candidates: Iterable[LinkCandidate], cutoff: dt.datetime
) -> int:
    """Unlink those of ``candidates`` that are still garbage, re-checked under the write lock.

    A manifest pushed since the scan now references its blob, a re-upload
    or mount restarted ``linked_at``, a hold was placed: any of those keeps
    the link. Returns the links removed (one ``blob.unlinked`` event each).
    """
    removed = 0
    ordered = sorted(candidates, key=lambda c: (c.repository, c.sha256))
    async with meta.transaction() as tx:
        for repository, group in groupby(ordered, key=lambda c: c.repository):
            wanted = [c.sha256 for c in group]
            still = await gc_queries.unreferenced_links(
                tx.conn, cutoff, repository=repository, sha256s=wanted
            )
            if not still:
                continue
            held = await protected(tx.conn, repository)
            for _, sha256 in still:
                if held.covers_blob(sha256):
                    continue
                await tx.append_event(BlobUnlinked(repository, Digest.parse(sha256)), ACTOR)
                removed += 1
    return removed


# -- phase 2: blobs ---------------------------------------------------------------


async def count_unlinked(meta: MetadataStore, cutoff: dt.datetime) -> int:
    async with meta.reading() as conn:
        return await gc_queries.count_unlinked(conn, cutoff)


async def scan_blobs(meta: MetadataStore, cutoff: dt.datetime) -> AsyncIterator[BlobCandidate]:
    """Blobs no repository links, untouched since before ``cutoff``, in sha256 order."""
    after: str | None = None
    while True:
        async with meta.reading() as conn:
            rows = await gc_queries.unlinked_page(conn, cutoff, after, PAGE)
        for row in rows:
            yield BlobCandidate(row.sha256, row.blake3, row.sha512, row.size)
        if len(rows) < PAGE:
            return
        after = rows[-1].sha256


async def sweep_blob(
    meta: MetadataStore, store: BlobStore, candidate: BlobCandidate, cutoff: dt.datetime
) -> int | None:
    """``sweep_blobs`` of one blob: bytes freed, or None if it is no longer garbage."""
    return (await sweep_blobs(meta, store, [candidate], cutoff))[0]


async def sweep_blobs(
    meta: MetadataStore, store: BlobStore, candidates: list[BlobCandidate], cutoff: dt.datetime
) -> list[int | None]:
    """Delete each blob's bytes and row under the write lock; None where it is no longer garbage.

    Per blob: no link, untouched since ``cutoff``, no legal hold (a held
    manifest may still name a blob whose link an explicit DELETE removed
    before the hold was placed, and a hold keeps what it names); then the
    bytes are deleted and ``blob.deleted`` is appended before the lock is
    released (ADR-0007). All checks read in the locked transaction itself;
    a batch shares one transaction so the lock is taken once per batch.
    """
    async with meta.transaction() as tx:
        still = await gc_queries.unlinked_sizes(tx.conn, [c.sha256 for c in candidates], cutoff)
        any_holds = await gc_queries.any_holds(tx.conn)
        doomed = [
            c
            for c in candidates
            if c.sha256 in still and not (any_holds and await _held_anywhere(tx.conn, c))
        ]

        async def delete_bytes(candidate: BlobCandidate) -> None:
            async with limiter:
                # Bytes already gone (a run that crashed after deleting them): the row goes too.
                with contextlib.suppress(BlobNotFound):
                    await store.delete(Digest.parse(candidate.sha256))

        # Deletes of different blobs are independent: overlap their round trips
        # (a directory fsync, an S3 DELETE) so the lock is held for less time.
        limiter = anyio.CapacityLimiter(_PARALLEL_DELETES)
        try:
            async with anyio.create_task_group() as group:
                for candidate in doomed:
                    group.start_soon(delete_bytes, candidate)
        except BaseExceptionGroup as failed:  # the storage error itself, as callers expect
            raise failed.exceptions[0] from None
        for candidate in doomed:
            await tx.append_event(
                BlobDeleted(Digest.parse(candidate.sha256), still[candidate.sha256]), ACTOR
            )
    gone = {c.sha256 for c in doomed}
    return [still[c.sha256] if c.sha256 in gone else None for c in candidates]


async def held(meta: MetadataStore, blob: BlobCandidate) -> bool:
    """``_held_anywhere`` outside the lock, for a dry run's count."""
    async with meta.reading() as conn:
        return await _held_anywhere(conn, blob)


async def _held_anywhere(conn: AsyncConnection, blob: BlobCandidate) -> bool:
    """Whether a legal hold covers the blob in some repository whose manifests name it."""
    names = [n for n in (blob.sha256, blob.blake3, blob.sha512) if n is not None]
    for repository in await gc_queries.held_repositories_naming(conn, names):
        if (await protected(conn, repository)).covers_blob(blob.sha256):
            return True
    return False


# -- phase 3: orphans -------------------------------------------------------------


async def scan_orphans(
    meta: MetadataStore, store: BlobStore, cutoff: dt.datetime
) -> AsyncIterator[tuple[int, list[BlobInfo]]]:
    """Pages of (stored blobs scanned, stored blobs with no row written before ``cutoff``)."""
    batch: list[BlobInfo] = []
    async for info in store.list():
        batch.append(info)
        if len(batch) == ORPHAN_PAGE:
            yield len(batch), await _old_orphans(meta, store, batch, cutoff)
            batch = []
    if batch:
        yield len(batch), await _old_orphans(meta, store, batch, cutoff)


async def _old_orphans(
    meta: MetadataStore, store: BlobStore, batch: list[BlobInfo], cutoff: dt.datetime
) -> list[BlobInfo]:
    names = [str(info.sha256) for info in batch]
    async with meta.reading() as conn:
        known = await queries.known_blobs(conn, names)
    found = []
    for info in batch:
        if str(info.sha256) in known:
            continue
        try:
            written = await store.modified(info.sha256)
        except BlobNotFound:
            continue  # deleted since the listing
        if written < cutoff.timestamp():
            found.append(info)
    return found


async def delete_orphan(meta: MetadataStore, store: BlobStore, info: BlobInfo) -> bool:
    """Delete bytes that still have no row, under the write lock; False if a row appeared.

    Under the lock because ``commit_blob`` checks, under the same lock, that
    the bytes of a blob it is about to record are there: an upload whose
    storage commit found these bytes in place either records its row first
    (and they stay) or finds them gone (and is told to upload again).
    No event: the log never knew these bytes.
    """
    async with meta.transaction() as tx:
        if await queries.known_blobs(tx.conn, [str(info.sha256)]):
            return False
        try:
            await store.delete(info.sha256)
        except BlobNotFound:
            return False
    return True
