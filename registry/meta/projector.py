"""The projector: the only code that writes the materialised views.

``apply`` folds one event into the views, inside the transaction that
appended it (live) or inside ``rebuild_views`` (replay). Because both paths
run this same function over the same events, the views after a replay equal
the live views by construction; the property test in tests/meta checks it.

Rules that keep that true:

- an event carries every fact it projects, and ``ts`` (the event's own
  timestamp) is the only clock used here; the one fact taken from beside
  the event is its ``actor``, which the log records with it and which the
  ``uploads`` view keeps as the session's opener;
- ``apply`` never raises for an event a write accepted: preconditions
  (does the tag exist? is the blob in the repository?) and the rules are
  checked before the event is appended, so here every step is idempotent
  ("insert if absent", "delete if present");
- no reads of anything but the views themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.events import (
    BlobCommitted,
    BlobDeleted,
    BlobMounted,
    BlobUnlinked,
    Event,
    HoldPlaced,
    HoldReleased,
    ManifestDeleted,
    ManifestPulled,
    ManifestPut,
    RetentionExtended,
    TagDeleted,
    TagOverridden,
    UploadEnded,
    UploadProgressed,
    UploadStarted,
)
from registry.meta.tables import (
    blobs,
    holds,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

__all__ = ["apply"]


async def apply(conn: AsyncConnection, event: Event, ts: dt.datetime, actor: str) -> None:
    """Fold ``event`` (appended by ``actor``) into the views: the handler for its type."""
    if isinstance(event, UploadStarted):
        await _upload_started(conn, event, ts, actor)
        return
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        await handler(conn, event, ts)


async def _blob_committed(conn: AsyncConnection, event: BlobCommitted, ts: dt.datetime) -> None:
    await _ensure_repository(conn, event.repository, ts)
    await _ensure_blob(conn, event, ts)
    await _link(conn, event.repository, str(event.sha256), ts)


async def _blob_mounted(conn: AsyncConnection, event: BlobMounted, ts: dt.datetime) -> None:
    await _ensure_repository(conn, event.repository, ts)
    await _touch_blob(conn, str(event.sha256), ts)
    await _link(conn, event.repository, str(event.sha256), ts)


async def _blob_unlinked(conn: AsyncConnection, event: BlobUnlinked, ts: dt.datetime) -> None:
    await _touch_blob(conn, str(event.sha256), ts)
    await conn.execute(
        sa.delete(repository_blobs).where(
            repository_blobs.c.repository == event.repository,
            repository_blobs.c.sha256 == str(event.sha256),
        )
    )


async def _blob_deleted(conn: AsyncConnection, event: BlobDeleted, _ts: dt.datetime) -> None:
    await conn.execute(sa.delete(blobs).where(blobs.c.sha256 == str(event.sha256)))


async def _manifest_put(conn: AsyncConnection, event: ManifestPut, ts: dt.datetime) -> None:
    await _ensure_repository(conn, event.repository, ts)
    await _ensure_manifest(conn, event, ts)
    for tag in event.tags:
        await _point_tag(conn, event.repository, tag, str(event.digest), ts)


async def _manifest_deleted(conn: AsyncConnection, event: ManifestDeleted, ts: dt.datetime) -> None:
    await _delete_manifest(conn, event.repository, str(event.digest), ts)


async def _manifest_pulled(conn: AsyncConnection, event: ManifestPulled, ts: dt.datetime) -> None:
    await conn.execute(
        sa.update(manifests)
        .where(
            manifests.c.repository == event.repository,
            manifests.c.digest == str(event.digest),
        )
        .values(pulled_at=ts)
    )


async def _tag_deleted(conn: AsyncConnection, event: TagDeleted, ts: dt.datetime) -> None:
    await _untag(conn, event.repository, event.tag, ts)
    await conn.execute(
        sa.delete(tags).where(tags.c.repository == event.repository, tags.c.tag == event.tag)
    )


async def _hold_placed(conn: AsyncConnection, event: HoldPlaced, ts: dt.datetime) -> None:
    await conn.execute(
        sa.insert(holds).values(
            id=event.hold_id,
            repository=event.repository,
            digest=None if event.digest is None else str(event.digest),
            tag=event.tag,
            reason=event.reason,
            placed_by=event.placed_by,
            placed_at=ts,
        )
    )


async def _hold_released(conn: AsyncConnection, event: HoldReleased, _ts: dt.datetime) -> None:
    await conn.execute(sa.delete(holds).where(holds.c.id == event.hold_id))


async def _retention_extended(
    conn: AsyncConnection, event: RetentionExtended, _ts: dt.datetime
) -> None:
    await conn.execute(
        sa.update(manifests)
        .where(
            manifests.c.repository == event.repository,
            manifests.c.digest == str(event.digest),
        )
        .values(retain_until=dt.datetime.fromisoformat(event.until))
    )


async def _tag_overridden(_conn: AsyncConnection, _event: TagOverridden, _ts: dt.datetime) -> None:
    pass  # a record for auditors; the move or delete that follows changes the views


async def _upload_started(
    conn: AsyncConnection, event: UploadStarted, ts: dt.datetime, actor: str
) -> None:
    await conn.execute(
        sa.insert(uploads).values(
            id=event.upload_id,
            repository=event.repository,
            started_at=ts,
            updated_at=ts,
            offset=0,
            state="active",
            opened_by=actor,
        )
    )


async def _upload_progressed(
    conn: AsyncConnection, event: UploadProgressed, ts: dt.datetime
) -> None:
    await conn.execute(
        sa.update(uploads)
        .where(uploads.c.id == event.upload_id)
        .values(offset=event.offset, updated_at=ts)
    )


async def _upload_ended(conn: AsyncConnection, event: UploadEnded, ts: dt.datetime) -> None:
    await conn.execute(
        sa.update(uploads)
        .where(uploads.c.id == event.upload_id)
        .values(state=event.reason, updated_at=ts)
    )


# One handler per event type; each takes the event of its key's type.
_Handler = Callable[[AsyncConnection, Any, dt.datetime], Awaitable[None]]
_HANDLERS: dict[type, _Handler] = {
    BlobCommitted: _blob_committed,
    BlobMounted: _blob_mounted,
    BlobUnlinked: _blob_unlinked,
    BlobDeleted: _blob_deleted,
    ManifestPut: _manifest_put,
    ManifestDeleted: _manifest_deleted,
    ManifestPulled: _manifest_pulled,
    TagDeleted: _tag_deleted,
    HoldPlaced: _hold_placed,
    HoldReleased: _hold_released,
    RetentionExtended: _retention_extended,
    TagOverridden: _tag_overridden,
    UploadProgressed: _upload_progressed,
    UploadEnded: _upload_ended,
}


async def _exists(conn: AsyncConnection, query: sa.Select[int]) -> bool:
    return (await conn.execute(query.limit(1))).first() is not None


async def _ensure_repository(conn: AsyncConnection, name: str, ts: dt.datetime) -> None:
    # Writes are serialised (see _engine.py), so check-then-insert cannot race.
    if not await _exists(conn, sa.select(sa.literal(1)).where(repositories.c.name == name)):
        await conn.execute(sa.insert(repositories).values(name=name, created_at=ts))


async def _ensure_blob(conn: AsyncConnection, event: BlobCommitted, ts: dt.datetime) -> None:
    sha256 = str(event.sha256)
    row = (await conn.execute(sa.select(blobs.c.sha512).where(blobs.c.sha256 == sha256))).first()
    sha512 = None if event.sha512 is None else str(event.sha512)
    if row is None:
        await conn.execute(
            sa.insert(blobs).values(
                sha256=sha256,
                blake3=str(event.blake3),
                sha512=sha512,
                size=event.size,
                created_at=ts,
                touched_at=ts,
            )
        )
        return
    values: dict[str, object] = {"touched_at": ts}
    if row.sha512 is None and sha512 is not None:
        values["sha512"] = sha512  # a later upload named the blob by sha512: the alias
    await conn.execute(sa.update(blobs).where(blobs.c.sha256 == sha256).values(**values))


async def _touch_blob(conn: AsyncConnection, sha256: str, ts: dt.datetime) -> None:
    await conn.execute(sa.update(blobs).where(blobs.c.sha256 == sha256).values(touched_at=ts))


async def _link(conn: AsyncConnection, repository: str, sha256: str, ts: dt.datetime) -> None:
    """Link, or re-link: either way the link's grace window restarts at ``ts``."""
    where = (repository_blobs.c.repository == repository, repository_blobs.c.sha256 == sha256)
    if await _exists(conn, sa.select(sa.literal(1)).where(*where)):
        await conn.execute(sa.update(repository_blobs).where(*where).values(linked_at=ts))
    else:
        await conn.execute(
            sa.insert(repository_blobs).values(repository=repository, sha256=sha256, linked_at=ts)
        )


async def _ensure_manifest(conn: AsyncConnection, event: ManifestPut, ts: dt.datetime) -> None:
    digest = str(event.digest)
    present = sa.select(sa.literal(1)).where(
        manifests.c.repository == event.repository, manifests.c.digest == digest
    )
    if await _exists(conn, present):
        # Same digest, same bytes: a re-push only (re)tags it, and restarts its grace.
        await conn.execute(
            sa.update(manifests)
            .where(manifests.c.repository == event.repository, manifests.c.digest == digest)
            .values(touched_at=ts)
        )
        return
    await conn.execute(
        sa.insert(manifests).values(
            repository=event.repository,
            digest=digest,
            media_type=event.media_type,
            size=len(event.body),
            body=event.body,
            artifact_type=event.artifact_type,
            subject=None if event.subject is None else str(event.subject),
            annotations=event.annotations,
            created_at=ts,
            touched_at=ts,
            retention_class=event.retention_class,
            retain_until=(
                None
                if event.retain_until is None
                else dt.datetime.fromisoformat(event.retain_until)
            ),
        )
    )
    rows = {(ref.kind, str(ref.digest)) for ref in event.references}
    if rows:
        await conn.execute(
            sa.insert(manifest_references),
            [
                {
                    "repository": event.repository,
                    "manifest_digest": digest,
                    "kind": kind,
                    "referenced_digest": referenced,
                }
                for kind, referenced in sorted(rows)
            ],
        )


async def _point_tag(
    conn: AsyncConnection, repository: str, tag: str, digest: str, ts: dt.datetime
) -> None:
    where = (tags.c.repository == repository, tags.c.tag == tag)
    if await _exists(conn, sa.select(sa.literal(1)).where(*where)):
        await _untag(conn, repository, tag, ts)
        await conn.execute(sa.update(tags).where(*where).values(digest=digest, updated_at=ts))
    else:
        await conn.execute(
            sa.insert(tags).values(repository=repository, tag=tag, digest=digest, updated_at=ts)
        )


async def _untag(conn: AsyncConnection, repository: str, tag: str, ts: dt.datetime) -> None:
    """The manifest ``tag`` points at is losing it: its untagged grace starts now."""
    current = (
        sa.select(tags.c.digest)
        .where(tags.c.repository == repository, tags.c.tag == tag)
        .scalar_subquery()
    )
    await conn.execute(
        sa.update(manifests)
        .where(manifests.c.repository == repository, manifests.c.digest == current)
        .values(touched_at=ts)
    )


async def _delete_manifest(
    conn: AsyncConnection, repository: str, digest: str, ts: dt.datetime
) -> None:
    # What the manifest referenced is released now: the blob links and child
    # manifests it kept alive get a fresh grace window before GC may take them.
    referenced = sa.select(manifest_references.c.referenced_digest).where(
        manifest_references.c.repository == repository,
        manifest_references.c.manifest_digest == digest,
    )
    # A manifest may name a blob by sha256, blake3 or sha512; links are keyed by sha256.
    released = sa.select(blobs.c.sha256).where(
        sa.or_(
            blobs.c.sha256.in_(referenced),
            blobs.c.blake3.in_(referenced),
            blobs.c.sha512.in_(referenced),
        )
    )
    await conn.execute(
        sa.update(repository_blobs)
        .where(repository_blobs.c.repository == repository, repository_blobs.c.sha256.in_(released))
        .values(linked_at=ts)
    )
    await conn.execute(
        sa.update(manifests)
        .where(manifests.c.repository == repository, manifests.c.digest.in_(referenced))
        .values(touched_at=ts)
    )
    await conn.execute(
        sa.delete(tags).where(tags.c.repository == repository, tags.c.digest == digest)
    )
    await conn.execute(
        sa.delete(manifest_references).where(
            manifest_references.c.repository == repository,
            manifest_references.c.manifest_digest == digest,
        )
    )
    await conn.execute(
        sa.delete(manifests).where(
            manifests.c.repository == repository, manifests.c.digest == digest
        )
    )
