"""Writes: every change to the metadata, each one transaction that asks the rules first.

Each method opens ``meta.transaction()`` (the write lock), checks what must
hold (the rules in ``registry.rules`` and the preconditions the views
answer), raising the spec error if anything fails, and only then appends
its event through ``Transaction.append_event`` (the log's theory of
operation is in ``registry/meta/log.py``). Every method appends events, so
every name here says what it records.
"""

from __future__ import annotations

import datetime as dt
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

from oci.digest import Digest
from oci.errors import BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, Denied, ManifestUnknown
from oci.manifest import Manifest
from registry.meta import MetadataStore, Transaction, queries
from registry.meta.events import (
    BlobCommitted,
    BlobMounted,
    BlobUnlinked,
    HoldPlaced,
    HoldReleased,
    ManifestDeleted,
    ManifestPulled,
    ManifestPut,
    RetentionExtended,
    TagDeleted,
    UploadEnded,
    UploadEndReason,
    UploadProgressed,
    UploadStarted,
)
from registry.meta.records import BlobRecord, HoldRecord, UploadRecord
from registry.rules import Rules, check_retention_extension, native_retention
from storage.base import BlobInfo

__all__ = ["Present", "Writes"]

# Are a blob's bytes still in the blob store? Asked under the write lock (ADR-0007).
Present = Callable[[], Awaitable[bool]]

_END_REASONS: frozenset[str] = frozenset({"completed", "cancelled", "expired"})


def _collected(blob: BlobInfo) -> BlobUploadInvalid:
    return BlobUploadInvalid(
        f"blob {blob.sha256} was garbage-collected while the upload finished; upload it again",
        detail={"digest": str(blob.sha256)},
    )


class Writes:
    """The write operations of the registry, over ``meta`` and under ``rules``."""

    def __init__(self, meta: MetadataStore, rules: Rules) -> None:
        self.meta = meta
        self.rules = rules

    # -- blobs -----------------------------------------------------------------

    async def commit_blob(
        self,
        repo: str,
        blob: BlobInfo,
        *,
        actor: str,
        sha512: Digest | None = None,
        present: Present | None = None,
    ) -> None:
        """Record a stored blob and link it into ``repo``; ``sha512`` records an alias.

        ``present`` closes the race with garbage collection (ADR-0007): when
        the blob has no row, GC may have deleted the bytes this upload's
        storage commit found already in place, so the bytes are checked
        under the write lock, where GC deletes them, before the blob is
        recorded. Gone means the client must upload again (nothing is kept).
        """
        event = BlobCommitted(repo, blob.sha256, blob.blake3, blob.size, sha512)
        async with self.meta.transaction() as tx:
            known = await queries.known_blobs(tx.conn, [str(blob.sha256)])
            if not known and present is not None and not await present():
                raise _collected(blob)
            await tx.append_event(event, actor)

    async def commit_blobs(
        self, items: Sequence[tuple[str, BlobInfo, str, Present | None]]
    ) -> list[BlobUploadInvalid | None]:
        """Several ``commit_blob`` calls (repo, blob, actor, present) in one transaction.

        Group commit for many small uploads at once: one write lock, one
        commit, still one ``blob.committed`` event per blob. Each item gets
        ``commit_blob``'s check of its bytes (the GC race, ADR-0007); an item
        that fails it is answered with its error and the others are recorded.
        """
        results: list[BlobUploadInvalid | None] = []
        async with self.meta.transaction() as tx:
            wanted = [str(blob.sha256) for _, blob, _, _ in items]
            known = await queries.known_blobs(tx.conn, wanted)
            for repo, blob, actor, present in items:
                if str(blob.sha256) not in known and present is not None and not await present():
                    results.append(_collected(blob))
                    continue
                event = BlobCommitted(repo, blob.sha256, blob.blake3, blob.size, None)
                await tx.append_event(event, actor)
                known.add(str(blob.sha256))
                results.append(None)
        return results

    async def mount_blob(
        self, repo: str, digest: Digest, from_repo: str, *, actor: str
    ) -> BlobRecord | None:
        """Link a blob ``from_repo`` holds into ``repo``; None (and no event) if it holds none.

        https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#mounting-a-blob-from-another-repository
        """
        async with self.meta.transaction() as tx:
            blob = await queries.linked_blob(tx.conn, from_repo, digest)
            if blob is None:
                return None
            await tx.append_event(BlobMounted(repo, blob.sha256, from_repo), actor)
            return blob

    async def unlink_blob(self, repo: str, digest: Digest, *, actor: str) -> None:
        """Remove ``repo``'s link to a blob (BLOB_UNKNOWN if it has none).

        Refused (DENIED) when a legal hold covers the blob, and when a
        manifest an immutable tag of ``repo`` points at references it,
        directly or through an index: no override lifts that.
        """
        async with self.meta.transaction() as tx:
            blob = await queries.linked_blob(tx.conn, repo, digest)
            if blob is None:
                raise BlobUnknown(
                    f"blob {digest} is not in repository {repo}", detail={"digest": str(digest)}
                )
            await self.rules.check_blob_unlink(tx.conn, repo, str(blob.sha256), str(digest))
            await tx.append_event(BlobUnlinked(repo, blob.sha256), actor)

    # -- manifests and tags ------------------------------------------------------

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
        Each reference's declared ``size`` must be that of the stored content
        (MANIFEST_INVALID otherwise; image-spec descriptor.md).
        """
        references = queries.manifest_references(manifest)
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
            **native_retention(manifest.annotations or {}),
        )
        async with self.meta.transaction() as tx:
            await queries.require_references(tx.conn, repo, manifest)
            for used in await self.rules.decide_tag_moves(
                tx.conn, repo, str(digest), event.tags, override
            ):
                await tx.append_event(used, actor)
            await tx.append_event(event, actor)

    async def delete_manifest(
        self, repo: str, digest: Digest, *, actor: str, override: str | None = None
    ) -> None:
        """Delete a manifest; its tags go with it, its referrers stay.

        Refused (DENIED) when a legal hold covers it, and when an immutable
        tag points at it unless ``override`` gives an admin's reason.
        """
        async with self.meta.transaction() as tx:
            decided = await self.rules.decide_manifest_delete(tx.conn, repo, str(digest), override)
            for used in decided:
                await tx.append_event(used, actor)
            await tx.append_event(ManifestDeleted(repo, digest), actor)

    async def delete_tag(
        self, repo: str, tag: str, *, actor: str, override: str | None = None
    ) -> None:
        async with self.meta.transaction() as tx:
            for used in await self.rules.decide_tag_delete(tx.conn, repo, tag, override):
                await tx.append_event(used, actor)
            await tx.append_event(TagDeleted(repo, tag), actor)

    async def record_pulls(self, pulled: Iterable[tuple[str, str]], *, actor: str) -> int:
        """Append one manifest.pulled per (repository, digest) still present."""
        count = 0
        async with self.meta.transaction() as tx:
            for repo, digest in dict.fromkeys(pulled):
                if await queries.manifest_row(tx.conn, repo, digest) is None:
                    continue
                await tx.append_event(ManifestPulled(repo, Digest.parse(digest)), actor)
                count += 1
        return count

    # -- holds and retention -----------------------------------------------------

    async def place_hold(
        self, repo: str, reference: str | None, reason: str, *, actor: str
    ) -> HoldRecord:
        """Hold ``repo`` (reference None), or the manifest a digest or tag names."""
        if not reason.strip():
            raise Denied("a legal hold needs a reason", detail={"reason": "hold"})
        hold_id = uuid.uuid4().hex
        async with self.meta.transaction() as tx:
            digest: str | None = None
            tag: str | None = None
            if reference is None:
                if not await queries.repository_exists(tx.conn, repo):
                    raise ManifestUnknown(f"repository {repo} is unknown")
            else:
                if ":" in reference:
                    digest = reference
                else:
                    tag, digest = reference, await queries.tag_digest(tx.conn, repo, reference)
                if digest is None or await queries.manifest_row(tx.conn, repo, digest) is None:
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
            await tx.append_event(event, actor)
            placed = await queries.hold_row(tx.conn, hold_id)
        assert placed is not None  # projected in this transaction
        return placed

    async def release_hold(self, hold_id: str, reason: str, *, actor: str) -> HoldRecord:
        if not reason.strip():
            raise Denied("releasing a legal hold needs a reason", detail={"reason": "hold"})
        async with self.meta.transaction() as tx:
            hold = await queries.hold_row(tx.conn, hold_id)
            if hold is None:
                raise ManifestUnknown(f"no active hold {hold_id}", detail={"hold": hold_id})
            await tx.append_event(HoldReleased(hold.repository, hold_id, reason), actor)
        return hold

    async def extend_retention(
        self, repo: str, digest: Digest, until: dt.datetime, *, actor: str
    ) -> dt.datetime:
        """Keep ``repo@digest`` until ``until``: refused (DENIED) unless later than now and
        than the date already recorded, so retention is never shortened."""
        if until.tzinfo is None:
            raise ValueError("naive datetime")
        until = until.astimezone(dt.UTC)
        async with self.meta.transaction() as tx:
            found, current = await queries.retain_until(tx.conn, repo, str(digest))
            if not found:
                raise ManifestUnknown(
                    f"manifest {digest} is not in repository {repo}",
                    detail={"digest": str(digest)},
                )
            check_retention_extension(repo, str(digest), current, until)
            await tx.append_event(RetentionExtended(repo, digest, until.isoformat()), actor)
        return until

    # -- upload sessions -----------------------------------------------------------

    async def start_upload(self, repo: str, upload_id: str, *, actor: str) -> None:
        async with self.meta.transaction() as tx:
            if await queries.upload_row(tx.conn, upload_id) is not None:
                raise BlobUploadInvalid(f"upload {upload_id} already exists")
            await tx.append_event(UploadStarted(repo, upload_id), actor)

    async def progress_upload(self, upload_id: str, offset: int, *, actor: str) -> None:
        async with self.meta.transaction() as tx:
            upload = await _active_upload(tx, upload_id)
            await tx.append_event(UploadProgressed(upload.repository, upload_id, offset), actor)

    async def end_upload(self, upload_id: str, reason: str, *, actor: str) -> None:
        """Close an upload session: ``reason`` is completed, cancelled or expired."""
        if reason not in _END_REASONS:
            raise ValueError(f"upload end reason must be one of {sorted(_END_REASONS)}")
        checked = typing.cast(UploadEndReason, reason)
        async with self.meta.transaction() as tx:
            upload = await _active_upload(tx, upload_id)
            await tx.append_event(UploadEnded(upload.repository, upload_id, checked), actor)


async def _active_upload(tx: Transaction, upload_id: str) -> UploadRecord:
    upload = await queries.upload_row(tx.conn, upload_id)
    if upload is None or upload.state != "active":
        raise BlobUploadUnknown(f"upload {upload_id} is unknown or has ended")
    return upload
