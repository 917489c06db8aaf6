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

import base64
import contextlib
import datetime as dt
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oci import native
from oci.digest import Digest
from oci.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Denied,
    ManifestUnknown,
)
from oci.manifest import Descriptor, Manifest
from registry.meta import _engine, _holds, _queries, projector
from registry.meta._sqlite_reads import SqliteReads, TransientRead
from registry.meta.events import (
    BlobCommitted,
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
    UploadEndReason,
    UploadProgressed,
    UploadStarted,
    encode_payload,
)
from registry.meta.records import BlobRecord, EventRecord, ManifestRecord, UploadRecord
from registry.meta.tables import VIEWS, blobs, events, holds, manifests, uploads
from storage.base import BlobInfo

__all__ = ["HoldRecord", "MetadataStore", "Transaction"]

# (repository, tag) -> is the tag immutable? Configured per repository pattern.
ImmutableTags = Callable[[str, str], bool]


def _never(_repository: str, _tag: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class HoldRecord:
    id: str
    repository: str
    digest: str | None
    tag: str | None
    reason: str
    placed_by: str
    placed_at: dt.datetime


class Transaction:
    """One write transaction under the write lock, for lifecycle code in this package.

    ``append`` records an event and projects it; preconditions are the
    caller's to check through ``conn`` first, as MetadataStore's own methods do.
    """

    def __init__(self, store: MetadataStore, conn: AsyncConnection) -> None:
        self._store = store
        self.conn = conn

    async def append(self, event: Event, actor: str) -> int:
        return await self._store._append(self.conn, event, actor)


_REPLAY_BATCH = 500
_END_REASONS: frozenset[str] = frozenset({"completed", "cancelled", "expired"})


def _native_retention(annotations: typing.Mapping[str, str]) -> dict[str, str | None]:
    """A native artifact's retention, read from the manifest it embeds (else nothing)."""
    embedded = annotations.get(native.ANNOTATION_MANIFEST)
    if embedded is None:
        return {}
    try:
        retention = native.decode_cbor(base64.b64decode(embedded, validate=True)).retention
    except Exception:  # not a native manifest after all: an OCI client's annotation
        return {}
    if retention is None:
        return {}
    until = None if retention.until is None else retention.until.isoformat()
    return {"retention_class": retention.class_, "retain_until": until}


def _held(repo: str, held: _holds.Protected, what: str) -> Denied:
    return Denied(
        f"{what} in {repo} is under legal hold",
        detail={"reason": "legal-hold", "holds": list(held.hold_ids)},
    )


class MetadataStore:
    def __init__(self, engine: AsyncEngine, url: sa.URL) -> None:
        self._engine = engine
        self._url = url
        # The hot reads on SQLite skip the async engine (_sqlite_reads.py).
        self._fast = SqliteReads(str(url.database)) if url.get_backend_name() == "sqlite" else None
        # Set by the registry from its configuration (registry/lifecycle).
        self.immutable_tags: ImmutableTags = _never

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction for lifecycle code (retention, GC): check, then append."""
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                yield Transaction(self, conn)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection to the views, for lifecycle code's scans."""
        with self._translate():
            async with self._engine.connect() as conn:
                yield conn

    @classmethod
    async def open(cls, url: str) -> MetadataStore:
        """Connect and migrate to head; an unreachable database is BackendUnavailable."""
        parsed = _engine.normalize_url(url)
        engine = _engine.connect_engine(parsed)
        try:
            with _engine.translate_errors(parsed):
                await _engine.migrate(engine)
        except BaseException:
            await _engine.dispose(engine)
            raise
        return cls(engine, parsed)

    async def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        await _engine.dispose(self._engine)

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
        self,
        repo: str,
        blob: BlobInfo,
        *,
        actor: str,
        sha512: Digest | None = None,
        present: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """Record a stored blob and link it into ``repo``; ``sha512`` records an alias.

        ``present`` closes the race with garbage collection (ADR-0007): when
        the blob has no row, GC may have deleted the bytes this upload's
        storage commit found already in place, so the bytes are checked
        under the write lock, where GC deletes them, before the blob is
        recorded. Gone means the client must upload again (nothing is kept).
        """
        event = BlobCommitted(repo, blob.sha256, blob.blake3, blob.size, sha512)
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                known = (
                    await conn.execute(
                        sa.select(blobs.c.sha256).where(blobs.c.sha256 == str(blob.sha256))
                    )
                ).first()
                if known is None and present is not None and not await present():
                    raise BlobUploadInvalid(
                        f"blob {blob.sha256} was garbage-collected while the upload "
                        "finished; upload it again",
                        detail={"digest": str(blob.sha256)},
                    )
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
                held = await _holds.protected(conn, repo)
                if held.covers_blob(str(blob.sha256)):
                    raise _held(repo, held, f"blob {blob.sha256}")
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
        override: str | None = None,
    ) -> None:
        """Store a manifest and point ``tags`` at it.

        A tag that is immutable and points elsewhere is not moved (DENIED)
        unless ``override`` gives an admin's reason, which is recorded as a
        ``tag.overridden`` event in the same transaction. A tag a legal hold
        covers is not moved at all (no override lifts a hold).

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
            **_native_retention(manifest.annotations or {}),
        )
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                await _queries.require_references(conn, repo, references)
                held: _holds.Protected | None = None
                for tag in event.tags:
                    current = await _queries.tag_digest(conn, repo, tag)
                    if current is None or current == str(digest):
                        continue
                    held = held or await _holds.protected(conn, repo)
                    if held.covers_tag(tag):
                        raise _held(repo, held, f"tag {tag}")
                    if self.immutable_tags(repo, tag):
                        if override is None:
                            raise Denied(
                                f"tag {tag} in {repo} is immutable; it cannot be moved",
                                detail={"tag": tag, "reason": "immutable"},
                            )
                        await self._append(conn, TagOverridden(repo, tag, "move", override), actor)
                await self._append(conn, event, actor)

    async def delete_manifest(
        self, repo: str, digest: Digest, *, actor: str, override: str | None = None
    ) -> None:
        """Delete a manifest; its tags go with it, its referrers stay.

        Refused (DENIED) when a legal hold covers it, and when an immutable
        tag points at it unless ``override`` gives an admin's reason.
        """
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                await self.check_manifest_deletable(conn, repo, str(digest), actor, override)
                await self._append(conn, ManifestDeleted(repo, digest), actor)

    async def check_manifest_deletable(
        self,
        conn: AsyncConnection,
        repo: str,
        digest: str,
        actor: str,
        override: str | None = None,
    ) -> None:
        """Raise unless ``repo@digest`` may be deleted now; record overrides used."""
        if await _queries.manifest_row(conn, repo, digest) is None:
            raise ManifestUnknown(
                f"manifest {digest} is not in repository {repo}", detail={"digest": digest}
            )
        held = await _holds.protected(conn, repo)
        if held.covers_manifest(digest):
            raise _held(repo, held, f"manifest {digest}")
        for tag in await _holds.tags_of(conn, repo, digest):
            if held.covers_tag(tag):
                raise _held(repo, held, f"tag {tag}")
            if self.immutable_tags(repo, tag):
                if override is None:
                    raise Denied(
                        f"tag {tag} in {repo} is immutable; manifest {digest} cannot be deleted",
                        detail={"tag": tag, "reason": "immutable"},
                    )
                await self._append(conn, TagOverridden(repo, tag, "delete", override), actor)

    async def delete_tag(
        self, repo: str, tag: str, *, actor: str, override: str | None = None
    ) -> None:
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                await self.check_tag_deletable(conn, repo, tag, actor, override)
                await self._append(conn, TagDeleted(repo, tag), actor)

    async def check_tag_deletable(
        self, conn: AsyncConnection, repo: str, tag: str, actor: str, override: str | None = None
    ) -> None:
        """Raise unless ``repo:tag`` may be deleted now; record an override used."""
        if await _queries.tag_digest(conn, repo, tag) is None:
            raise ManifestUnknown(f"tag {tag} is not in repository {repo}", detail={"tag": tag})
        held = await _holds.protected(conn, repo)
        if held.covers_tag(tag):
            raise _held(repo, held, f"tag {tag}")
        if self.immutable_tags(repo, tag):
            if override is None:
                raise Denied(
                    f"tag {tag} in {repo} is immutable; it cannot be deleted",
                    detail={"tag": tag, "reason": "immutable"},
                )
            await self._append(conn, TagOverridden(repo, tag, "delete", override), actor)

    # -- lifecycle: holds, retention, pulls, garbage collection ---------------

    async def place_hold(
        self, repo: str, reference: str | None, reason: str, *, actor: str
    ) -> HoldRecord:
        """Hold ``repo`` (reference None), or the manifest a digest or tag names."""
        if not reason.strip():
            raise Denied("a legal hold needs a reason", detail={"reason": "hold"})
        hold_id = uuid.uuid4().hex
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                digest: str | None = None
                tag: str | None = None
                if reference is None:
                    if not await _queries.repository_exists(conn, repo):
                        raise ManifestUnknown(f"repository {repo} is unknown")
                else:
                    if ":" in reference:
                        digest = reference
                    else:
                        tag, digest = reference, await _queries.tag_digest(conn, repo, reference)
                    if digest is None or await _queries.manifest_row(conn, repo, digest) is None:
                        raise ManifestUnknown(
                            f"manifest {reference} is not in repository {repo}",
                            detail={"reference": reference},
                        )
                event = HoldPlaced(
                    repository=repo,
                    hold_id=hold_id,
                    digest=None if digest is None else Digest.parse(digest),
                    tag=tag,
                    reason=reason,
                    placed_by=actor,
                )
                await self._append(conn, event, actor)
                row = (await conn.execute(sa.select(holds).where(holds.c.id == hold_id))).one()
        return HoldRecord(**row._mapping)

    async def release_hold(self, hold_id: str, reason: str, *, actor: str) -> HoldRecord:
        if not reason.strip():
            raise Denied("releasing a legal hold needs a reason", detail={"reason": "hold"})
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                row = (await conn.execute(sa.select(holds).where(holds.c.id == hold_id))).first()
                if row is None:
                    raise ManifestUnknown(f"no active hold {hold_id}", detail={"hold": hold_id})
                await self._append(conn, HoldReleased(row.repository, hold_id, reason), actor)
        return HoldRecord(**row._mapping)

    async def list_holds(self, repo: str | None = None) -> list[HoldRecord]:
        query = sa.select(holds).order_by(holds.c.placed_at, holds.c.id)
        if repo is not None:
            query = query.where(holds.c.repository == repo)
        with self._translate():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [HoldRecord(**row._mapping) for row in rows]

    async def extend_retention(
        self, repo: str, digest: Digest, until: dt.datetime, *, actor: str
    ) -> dt.datetime:
        """Keep ``repo@digest`` until ``until``: refused (DENIED) unless later than now and
        than the date already recorded, so retention is never shortened."""
        if until.tzinfo is None:
            raise ValueError("naive datetime")
        until = until.astimezone(dt.UTC)
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                row = (
                    await conn.execute(
                        sa.select(manifests.c.retain_until).where(
                            manifests.c.repository == repo, manifests.c.digest == str(digest)
                        )
                    )
                ).first()
                if row is None:
                    raise ManifestUnknown(
                        f"manifest {digest} is not in repository {repo}",
                        detail={"digest": str(digest)},
                    )
                current = row.retain_until
                if current is not None and until <= current:
                    raise Denied(
                        f"retention can only be extended: {repo}@{digest} is kept until "
                        f"{current.isoformat()}",
                        detail={"reason": "retention", "until": current.isoformat()},
                    )
                if until <= dt.datetime.now(dt.UTC):
                    raise Denied(
                        "retention can only be extended into the future, "
                        f"not to {until.isoformat()}",
                        detail={
                            "reason": "retention",
                            "until": None if current is None else current.isoformat(),
                        },
                    )
                event = RetentionExtended(repo, digest, until.isoformat())
                await self._append(conn, event, actor)
        return until

    async def record_pulls(self, pulled: Iterable[tuple[str, str]], *, actor: str) -> int:
        """Append one manifest.pulled per (repository, digest) still present."""
        count = 0
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                for repo, digest in dict.fromkeys(pulled):
                    if await _queries.manifest_row(conn, repo, digest) is None:
                        continue
                    await self._append(conn, ManifestPulled(repo, Digest.parse(digest)), actor)
                    count += 1
        return count

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

    # The reads a pull makes most try SQLite's inline path first (see
    # _sqlite_reads.py); each is one statement either way.

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """By digest (``algorithm:hex``) or by tag."""
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.manifest(repo, reference)
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.manifest_by_reference(conn, repo, reference)

    async def get_blob(self, repo: str, digest: Digest) -> BlobRecord | None:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.blob(repo, digest)
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.linked_blob(conn, repo, digest)

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.tags(repo, n, last)
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.list_tags(conn, repo, n, last)

    async def repository_seq(self, repo: str) -> int:
        """The seq of ``repo``'s newest event (0: none); it moves with every change to ``repo``."""
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.repository_seq(repo)
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.repository_seq(conn, repo)

    async def repository_exists(self, repo: str) -> bool:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.repository_exists(repo)
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.repository_exists(conn, repo)

    async def catalog(self, n: int | None, last: str | None) -> list[str]:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.catalog(n, last)
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

    async def active_upload_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` name an active upload session."""
        with self._translate():
            async with self._engine.connect() as conn:
                return await _queries.active_uploads(conn, ids)

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

    async def commit_blobs(
        self,
        items: Sequence[tuple[str, BlobInfo, str, Callable[[], Awaitable[bool]] | None]],
    ) -> list[BlobUploadInvalid | None]:
        """Several ``commit_blob`` calls (repo, blob, actor, present) in one transaction.

        Group commit for many small uploads at once: one write lock, one
        commit, still one ``blob.committed`` event per blob. Each item gets
        ``commit_blob``'s check of its bytes (the GC race, ADR-0007); an item
        that fails it is answered with its error and the others are recorded.
        """
        results: list[BlobUploadInvalid | None] = []
        with self._translate():
            async with _engine.write_transaction(self._engine) as conn:
                wanted = sorted({str(blob.sha256) for _, blob, _, _ in items})
                query = sa.select(blobs.c.sha256).where(blobs.c.sha256.in_(wanted))
                known = set((await conn.execute(query)).scalars())
                for repo, blob, actor, present in items:
                    if (
                        str(blob.sha256) not in known
                        and present is not None
                        and not await present()
                    ):
                        results.append(
                            BlobUploadInvalid(
                                f"blob {blob.sha256} was garbage-collected while the upload "
                                "finished; upload it again",
                                detail={"digest": str(blob.sha256)},
                            )
                        )
                        continue
                    event = BlobCommitted(repo, blob.sha256, blob.blake3, blob.size, None)
                    await self._append(conn, event, actor)
                    known.add(str(blob.sha256))
                    results.append(None)
        return results
