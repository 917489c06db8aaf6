"""MetadataStore: the event log and its views behind one async API.

Theory of operation. A write method (1) opens a write transaction, which
takes the database-wide write lock first (``_engine.write_transaction``),
(2) checks its preconditions against the views, raising the spec error if
they fail, (3) appends exactly one event with ``seq = max(seq) + 1`` and
(4) hands that event to the projector, all in the one transaction.

Why a lock rather than an identity column: consumers tail the log with
``events(after=N)``. With a sequence, transaction A could draw seq 10,
transaction B seq 11, and B commit first; a consumer reading "after 10"
at that moment would see 11, move on, and never see 10. Holding one lock
from before seq is drawn until commit makes commit order equal seq order,
so the log has no gaps at any instant a reader can observe. The cost is
that metadata writes are serial; each is a handful of small statements,
and blob bytes (the heavy part of a push) never pass through here.

Timestamps come from this process's clock but never run backwards in the
log: an event's ts is at least its predecessor's, so "the log up to time t"
is always a prefix, which is what ``tag_at`` relies on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import typing
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oci.digest import Digest
from oci.errors import BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, ManifestUnknown
from oci.manifest import Descriptor, Manifest
from registry.meta import _engine, _queries, projector
from registry.meta.events import (
    BlobCommitted,
    BlobMounted,
    BlobUnlinked,
    Event,
    ManifestDeleted,
    ManifestPut,
    TagDeleted,
    UploadEnded,
    UploadEndReason,
    UploadProgressed,
    UploadStarted,
    encode_payload,
)
from registry.meta.records import BlobRecord, EventRecord, ManifestRecord, UploadRecord
from registry.meta.tables import VIEWS, events, uploads
from storage.base import BlobInfo

__all__ = ["MetadataStore"]

_REPLAY_BATCH = 500
_END_REASONS: frozenset[str] = frozenset({"completed", "cancelled", "expired"})


class MetadataStore:
    def __init__(self, engine: AsyncEngine, url: sa.URL) -> None:
        self._engine = engine
        self._url = url

    @classmethod
    async def open(cls, url: str) -> MetadataStore:
        """Connect and migrate to head; an unreachable database is BackendUnavailable."""
        parsed = _engine.normalize_url(url)
        engine = _engine.connect_engine(parsed)
        try:
            with _engine.translate_errors(parsed):
                await _engine.migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, parsed)

    async def close(self) -> None:
        await self._engine.dispose()

    async def check(self) -> None:
        with self._translate():
            async with self._engine.connect() as conn:
                await conn.execute(sa.select(sa.literal(1)))

    def _translate(self) -> contextlib.AbstractContextManager[None]:
        return _engine.translate_errors(self._url)

    # -- writes: each appends exactly one event -------------------------------

    async def _append(self, conn: AsyncConnection, event: Event, actor: str) -> int:
        last = (
            await conn.execute(
                sa.select(events.c.seq, events.c.ts).order_by(events.c.seq.desc()).limit(1)
            )
        ).first()
        seq = 1 if last is None else last.seq + 1
        ts = dt.datetime.now(dt.UTC)
        if last is not None and last.ts > ts:
            ts = last.ts  # the clock stepped back; keep the log ordered in time
        await conn.execute(
            sa.insert(events).values(
                seq=seq,
                ts=ts,
                actor=actor,
                repository=event.repository,
                type=event.TYPE,
                payload=encode_payload(event),
            )
        )
        await projector.apply(conn, event, ts)
        return seq

    async def commit_blob(
        self, repo: str, blob: BlobInfo, *, actor: str, sha512: Digest | None = None
    ) -> None:
        """Record a stored blob and link it into ``repo``; ``sha512`` records an alias."""
        event = BlobCommitted(repo, blob.sha256, blob.blake3, blob.size, sha512)
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                await self._append(conn, event, actor)

    async def mount_blob(
        self, repo: str, digest: Digest, from_repo: str, *, actor: str
    ) -> BlobRecord | None:
        """Link a blob ``from_repo`` holds into ``repo``; None (and no event) if it holds none.

        https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#mounting-a-blob-from-another-repository
        """
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                blob = await _queries.linked_blob(conn, from_repo, digest)
                if blob is None:
                    return None
                await self._append(conn, BlobMounted(repo, blob.sha256, from_repo), actor)
                return blob

    async def unlink_blob(self, repo: str, digest: Digest, *, actor: str) -> None:
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                blob = await _queries.linked_blob(conn, repo, digest)
                if blob is None:
                    raise BlobUnknown(
                        f"blob {digest} is not in repository {repo}", detail={"digest": str(digest)}
                    )
                await self._append(conn, BlobUnlinked(repo, blob.sha256), actor)

    async def put_manifest(
        self,
        repo: str,
        digest: Digest,
        manifest: Manifest,
        body: bytes,
        media_type: str,
        tags: Sequence[str],
        *,
        actor: str,
    ) -> None:
        """Store a manifest and point ``tags`` at it.

        Everything it references except its subject must already be in
        ``repo`` ("the registry MUST NOT accept a manifest that references
        blobs or manifests it does not have", MANIFEST_BLOB_UNKNOWN;
        https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests).
        The subject may be absent: referrers can be pushed before their subject.
        """
        references = _queries.manifest_references(manifest)
        event = ManifestPut(
            repository=repo,
            digest=digest,
            media_type=media_type,
            body=bytes(body),
            tags=tuple(dict.fromkeys(tags)),
            artifact_type=manifest.artifact_type,
            subject=None if manifest.subject is None else manifest.subject.digest,
            annotations=dict(manifest.annotations or {}),
            references=references,
        )
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                await _queries.require_references(conn, repo, references)
                await self._append(conn, event, actor)

    async def delete_manifest(self, repo: str, digest: Digest, *, actor: str) -> None:
        """Delete a manifest; its tags go with it, its referrers stay."""
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                if await _queries.manifest_row(conn, repo, str(digest)) is None:
                    raise ManifestUnknown(
                        f"manifest {digest} is not in repository {repo}",
                        detail={"digest": str(digest)},
                    )
                await self._append(conn, ManifestDeleted(repo, digest), actor)

    async def delete_tag(self, repo: str, tag: str, *, actor: str) -> None:
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                if await _queries.tag_digest(conn, repo, tag) is None:
                    raise ManifestUnknown(
                        f"tag {tag} is not in repository {repo}", detail={"tag": tag}
                    )
                await self._append(conn, TagDeleted(repo, tag), actor)

    async def start_upload(self, repo: str, upload_id: str, *, actor: str) -> None:
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                if await _queries.upload_row(conn, upload_id) is not None:
                    raise BlobUploadInvalid(f"upload {upload_id} already exists")
                await self._append(conn, UploadStarted(repo, upload_id), actor)

    async def progress_upload(self, upload_id: str, offset: int, *, actor: str) -> None:
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                upload = await self._active_upload(conn, upload_id)
                await self._append(
                    conn, UploadProgressed(upload.repository, upload_id, offset), actor
                )

    async def end_upload(self, upload_id: str, reason: str, *, actor: str) -> None:
        """Close an upload session: ``reason`` is completed, cancelled or expired."""
        if reason not in _END_REASONS:
            raise ValueError(f"upload end reason must be one of {sorted(_END_REASONS)}")
        checked = typing.cast(UploadEndReason, reason)
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                upload = await self._active_upload(conn, upload_id)
                await self._append(conn, UploadEnded(upload.repository, upload_id, checked), actor)

    async def _active_upload(self, conn: AsyncConnection, upload_id: str) -> UploadRecord:
        upload = await _queries.upload_row(conn, upload_id)
        if upload is None or upload.state != "active":
            raise BlobUploadUnknown(f"upload {upload_id} is unknown or has ended")
        return upload

    # -- reads: from the views, except tag_at and events ----------------------

    async def get_upload(self, repo: str, upload_id: str) -> UploadRecord | None:
        """The upload if it is active and belongs to ``repo``; ended uploads read as None."""
        with self._translate():
            async with self._engine.connect() as conn:
                upload = await _queries.upload_row(conn, upload_id)
        if upload is None or upload.repository != repo or upload.state != "active":
            return None
        return upload

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """By digest (``algorithm:hex``) or by tag."""
        with self._translate():
            async with self._engine.connect() as conn:
                digest = (
                    reference
                    if ":" in reference
                    else await _queries.tag_digest(conn, repo, reference)
                )
                if digest is None:
                    return None
                return await _queries.manifest_row(conn, repo, digest)

    async def get_blob(self, repo: str, digest: Digest) -> BlobRecord | None:
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.linked_blob(conn, repo, digest)

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.list_tags(conn, repo, n, last)

    async def repository_exists(self, repo: str) -> bool:
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.repository_exists(conn, repo)

    async def catalog(self, n: int | None, last: str | None) -> list[str]:
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.catalog(conn, n, last)

    async def referrers(
        self, repo: str, subject: Digest, artifact_type: str | None
    ) -> list[Descriptor]:
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.referrers(conn, repo, subject, artifact_type)

    async def tag_at(self, repo: str, tag: str, at: dt.datetime) -> Digest | None:
        """What ``repo:tag`` pointed to at ``at`` (naive means UTC), read from the log."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.tag_at(conn, repo, tag, at)

    async def events(
        self,
        after: int,
        limit: int,
        repo: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[EventRecord]:
        """Events with seq > ``after`` in seq order; safe for tailing (no gaps ever appear)."""
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.events(conn, after, limit, repo, types)

    async def expired_uploads(self, idle: dt.timedelta) -> list[UploadRecord]:
        """Active uploads untouched for longer than ``idle``, oldest first."""
        cutoff = dt.datetime.now(dt.UTC) - idle
        query = (
            sa.select(uploads)
            .where(uploads.c.state == "active", uploads.c.updated_at < cutoff)
            .order_by(uploads.c.updated_at, uploads.c.id)
        )
        with self._translate():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [UploadRecord.from_row(row) for row in rows]

    async def rebuild_views(self) -> int:
        """Empty every view and replay the whole log; returns the events replayed.

        Runs in one transaction under the write lock: writers wait, readers
        keep seeing the old views until it commits.
        """
        replayed = 0
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                for table in VIEWS:
                    await conn.execute(sa.delete(table))
                after = 0
                while batch := await _queries.events(conn, after, _REPLAY_BATCH, None, None):
                    for record in batch:
                        await projector.apply(conn, record.event, record.ts)
                    after = batch[-1].seq
                    replayed += len(batch)
        return replayed
