"""The read queries of the views: one implementation of each.

Each takes an open connection, so a write can check its preconditions
inside its own locked transaction and a read can use a plain one.
``MetadataStore`` serves them to callers without a connection; on SQLite
the hottest also have an inline twin (``_sqlite_reads.py``), which
tests/meta/test_fast_reads.py holds to the same answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from oci.digest import Digest
from oci.errors import ManifestBlobUnknown, ManifestInvalid
from oci.manifest import Descriptor, Manifest
from registry.meta.events import ManifestReference, ReferenceKind
from registry.meta.records import BlobRecord, HoldRecord, ManifestRecord, UploadRecord
from registry.meta.tables import (
    blobs,
    holds,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)
from registry.meta.tables import (
    events as events_table,
)

_BLOB_COLUMNS = {"sha256": blobs.c.sha256, "blake3": blobs.c.blake3, "sha512": blobs.c.sha512}


async def linked_blob(conn: AsyncConnection, repo: str, digest: Digest) -> BlobRecord | None:
    """The blob named by any of its digests, if ``repo`` holds it."""
    query = (
        sa.select(blobs)
        .join(repository_blobs, repository_blobs.c.sha256 == blobs.c.sha256)
        .where(
            repository_blobs.c.repository == repo,
            _BLOB_COLUMNS[digest.algorithm] == str(digest),
        )
    )
    row = (await conn.execute(query)).first()
    return None if row is None else BlobRecord.from_row(row)


def referenced_descriptors(manifest: Manifest) -> list[tuple[ReferenceKind, Descriptor]]:
    """Every descriptor of ``Manifest.references()`` (config, layers, child manifests) with
    its role, in document order; not external layers (``Descriptor.external``), which the
    registry need not hold. The subject is not among them."""
    found: list[tuple[ReferenceKind, Descriptor]] = []
    if manifest.config is not None:
        found.append(("config", manifest.config))
    found.extend(("layer", d) for d in manifest.layers if not d.external)
    found.extend(("manifest", d) for d in manifest.manifests)
    return found


def manifest_references(manifest: Manifest) -> tuple[ManifestReference, ...]:
    """``referenced_descriptors(manifest)`` as the references a ``ManifestPut`` records,
    one per role and digest."""
    found: dict[tuple[str, str], ManifestReference] = {}
    for kind, descriptor in referenced_descriptors(manifest):
        found.setdefault((kind, str(descriptor.digest)), ManifestReference(kind, descriptor.digest))
    return tuple(found.values())


_IN_BATCH = 500  # values per IN (...): far below every backend's parameter limit


def _batches(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[start : start + _IN_BATCH] for start in range(0, len(values), _IN_BATCH)]


async def _manifests_present(
    conn: AsyncConnection, repo: str, digests: Sequence[Digest]
) -> dict[str, int]:
    """The size of each of ``digests`` ``repo`` holds as a manifest, by digest."""
    found: dict[str, int] = {}
    for batch in _batches([str(d) for d in digests]):
        query = sa.select(manifests.c.digest, manifests.c.size).where(
            manifests.c.repository == repo, manifests.c.digest.in_(batch)
        )
        found.update((row.digest, row.size) for row in (await conn.execute(query)).all())
    return found


async def _blobs_linked(
    conn: AsyncConnection, repo: str, digests: Sequence[Digest]
) -> dict[str, int]:
    """The size of each of ``digests`` that names a blob ``repo`` links (by sha256, blake3
    or sha512), by that digest."""
    by_algorithm: dict[str, list[str]] = {}
    for digest in digests:
        by_algorithm.setdefault(digest.algorithm, []).append(str(digest))
    found: dict[str, int] = {}
    for algorithm, values in by_algorithm.items():
        column = _BLOB_COLUMNS[algorithm]
        for batch in _batches(values):
            query = (
                sa.select(column, blobs.c.size)
                .join(repository_blobs, repository_blobs.c.sha256 == blobs.c.sha256)
                .where(repository_blobs.c.repository == repo, column.in_(batch))
            )
            found.update((row[0], row[1]) for row in (await conn.execute(query)).all())
    return found


async def linked_blobs(
    conn: AsyncConnection, repo: str, sha256s: Sequence[str]
) -> dict[str, BlobRecord]:
    """The blobs among ``sha256s`` that ``repo`` links, by sha256, in a few batched queries."""
    found: dict[str, BlobRecord] = {}
    for batch in _batches(sha256s):
        query = (
            sa.select(blobs)
            .join(repository_blobs, repository_blobs.c.sha256 == blobs.c.sha256)
            .where(repository_blobs.c.repository == repo, blobs.c.sha256.in_(batch))
        )
        for row in (await conn.execute(query)).all():
            found[row.sha256] = BlobRecord.from_row(row)
    return found


async def active_uploads(conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` name an active upload session."""
    found: set[str] = set()
    for batch in _batches(ids):
        query = sa.select(uploads.c.id).where(uploads.c.state == "active", uploads.c.id.in_(batch))
        found.update((await conn.execute(query)).scalars())
    return found


async def require_references(conn: AsyncConnection, repo: str, manifest: Manifest) -> None:
    """Every descriptor of ``referenced_descriptors(manifest)`` names content ``repo``
    holds (else MANIFEST_BLOB_UNKNOWN), of the size it declares (else MANIFEST_INVALID:
    image-spec descriptor.md, the size "MUST" be that of the content; the spec's
    SIZE_INVALID is an upload's length)."""
    # A few batched queries, not one per reference: this runs under the write
    # lock, and a native artifact of a thousand files references a thousand blobs.
    described = referenced_descriptors(manifest)
    manifests_held = await _manifests_present(
        conn, repo, [d.digest for kind, d in described if kind == "manifest"]
    )
    blobs_held = await _blobs_linked(
        conn, repo, [d.digest for kind, d in described if kind != "manifest"]
    )
    for kind, descriptor in described:
        held = manifests_held if kind == "manifest" else blobs_held
        stored = held.get(str(descriptor.digest))
        noun = "manifest" if kind == "manifest" else "blob"
        if stored is None:
            raise ManifestBlobUnknown(
                f"manifest references {noun} {descriptor.digest}, "
                f"which is not in repository {repo}",
                detail={"digest": str(descriptor.digest)},
            )
        if stored != descriptor.size:
            raise ManifestInvalid(
                f"manifest declares size {descriptor.size} for {noun} {descriptor.digest}, "
                f"which is {stored} bytes",
                detail={
                    "digest": str(descriptor.digest),
                    "size": descriptor.size,
                    "stored": stored,
                },
            )


async def manifest_row(conn: AsyncConnection, repo: str, digest: str) -> ManifestRecord | None:
    query = sa.select(manifests).where(manifests.c.repository == repo, manifests.c.digest == digest)
    row = (await conn.execute(query)).first()
    return None if row is None else ManifestRecord.from_row(row)


async def manifest_by_reference(
    conn: AsyncConnection, repo: str, reference: str
) -> ManifestRecord | None:
    """By digest (``algorithm:hex``) or by tag, in one statement (a tag joins its manifest)."""
    if ":" in reference:
        return await manifest_row(conn, repo, reference)
    query = (
        sa.select(manifests)
        .join(
            tags,
            sa.and_(
                tags.c.repository == manifests.c.repository, tags.c.digest == manifests.c.digest
            ),
        )
        .where(tags.c.repository == repo, tags.c.tag == reference)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else ManifestRecord.from_row(row)


async def tag_digest(conn: AsyncConnection, repo: str, tag: str) -> str | None:
    query = sa.select(tags.c.digest).where(tags.c.repository == repo, tags.c.tag == tag)
    digest: str | None = (await conn.execute(query)).scalar_one_or_none()
    return digest


async def upload_row(conn: AsyncConnection, upload_id: str) -> UploadRecord | None:
    row = (await conn.execute(sa.select(uploads).where(uploads.c.id == upload_id))).first()
    return None if row is None else UploadRecord.from_row(row)


def _page(
    query: sa.Select[str], column: sa.ColumnElement[str], n: int | None, last: str | None
) -> sa.Select[str]:
    # Lexical order and "last" exclusive, as the pagination sections of the
    # spec describe for tags and the catalog:
    # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
    if last is not None:
        query = query.where(column > last)
    query = query.order_by(column)
    return query if n is None else query.limit(n)


async def list_tags(conn: AsyncConnection, repo: str, n: int | None, last: str | None) -> list[str]:
    query = sa.select(tags.c.tag).where(tags.c.repository == repo)
    return list((await conn.execute(_page(query, tags.c.tag, n, last))).scalars())


async def repository_seq(conn: AsyncConnection, repo: str) -> int:
    """The seq of ``repo``'s newest event, 0 if none: any change to its views moves it."""
    query = sa.select(sa.func.max(events_table.c.seq)).where(events_table.c.repository == repo)
    seq: int | None = (await conn.execute(query)).scalar_one_or_none()
    return seq or 0


async def catalog(conn: AsyncConnection, n: int | None, last: str | None) -> list[str]:
    query = sa.select(repositories.c.name)
    return list((await conn.execute(_page(query, repositories.c.name, n, last))).scalars())


async def repository_exists(conn: AsyncConnection, repo: str) -> bool:
    query = sa.select(sa.literal(1)).where(repositories.c.name == repo)
    return (await conn.execute(query)).first() is not None


async def referrers(
    conn: AsyncConnection, repo: str, subject: Digest, artifact_type: str | None
) -> list[Descriptor]:
    """Manifests whose subject is ``subject``, as descriptors for the referrers index.

    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
    """
    query = sa.select(manifests).where(
        manifests.c.repository == repo, manifests.c.subject == str(subject)
    )
    if artifact_type is not None:
        query = query.where(manifests.c.artifact_type == artifact_type)
    rows = (await conn.execute(query.order_by(manifests.c.digest))).all()
    return [
        Descriptor(
            media_type=row.media_type,
            digest=Digest.parse(row.digest),
            size=row.size,
            annotations=dict(row.annotations),
            artifact_type=row.artifact_type,
        )
        for row in rows
    ]


async def known_blobs(conn: AsyncConnection, sha256s: Sequence[str]) -> set[str]:
    """Which of ``sha256s`` have a blob row (in any repository)."""
    query = sa.select(blobs.c.sha256).where(blobs.c.sha256.in_(sorted(set(sha256s))))
    return set((await conn.execute(query)).scalars())


async def retain_until(
    conn: AsyncConnection, repo: str, digest: str
) -> tuple[bool, dt.datetime | None]:
    """(is ``repo@digest`` there, the date it is kept until if any)."""
    query = sa.select(manifests.c.retain_until).where(
        manifests.c.repository == repo, manifests.c.digest == digest
    )
    row = (await conn.execute(query)).first()
    return (False, None) if row is None else (True, row.retain_until)


async def hold_row(conn: AsyncConnection, hold_id: str) -> HoldRecord | None:
    row = (await conn.execute(sa.select(holds).where(holds.c.id == hold_id))).first()
    return None if row is None else HoldRecord(**row._mapping)


async def list_holds(conn: AsyncConnection, repo: str | None) -> list[HoldRecord]:
    query = sa.select(holds).order_by(holds.c.placed_at, holds.c.id)
    if repo is not None:
        query = query.where(holds.c.repository == repo)
    return [HoldRecord(**row._mapping) for row in (await conn.execute(query)).all()]


async def expired_uploads(conn: AsyncConnection, cutoff: dt.datetime) -> list[UploadRecord]:
    """Active uploads last touched before ``cutoff``, oldest first."""
    query = (
        sa.select(uploads)
        .where(uploads.c.state == "active", uploads.c.updated_at < cutoff)
        .order_by(uploads.c.updated_at, uploads.c.id)
    )
    return [UploadRecord.from_row(row) for row in (await conn.execute(query)).all()]
