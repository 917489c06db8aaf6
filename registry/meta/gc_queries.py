"""The reads garbage collection makes of the views (``registry.lifecycle.gc``).

Scans page by keyset without the write lock; the re-checks run the same
conditions inside the sweep's locked transaction. ADR-0007 explains why
each condition is enough.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.tables import blobs, holds, manifest_references, repository_blobs

__all__ = [
    "LinkRow",
    "UnlinkedBlob",
    "any_holds",
    "count_links",
    "count_unlinked",
    "held_repositories_naming",
    "link_page",
    "repositories_with_holds",
    "unlinked_page",
    "unlinked_sizes",
    "unreferenced_links",
]


class LinkRow(NamedTuple):
    repository: str
    sha256: str
    referenced: bool


class UnlinkedBlob(NamedTuple):
    sha256: str
    blake3: str
    sha512: str | None
    size: int


def _referenced() -> sa.Exists:
    """A config or layer reference to the link's blob by any of its three names.

    Manifests name blobs as their clients did (sha256, sha512 or blake3);
    links and blob rows are keyed by sha256, so all three are matched. The
    index on (repository, referenced_digest) serves each equality.
    """
    return (
        sa.select(sa.literal(1))
        .where(
            manifest_references.c.repository == repository_blobs.c.repository,
            manifest_references.c.kind.in_(("config", "layer")),
            sa.or_(
                manifest_references.c.referenced_digest == blobs.c.sha256,
                manifest_references.c.referenced_digest == blobs.c.blake3,
                manifest_references.c.referenced_digest == blobs.c.sha512,
            ),
        )
        .exists()
    )


def _links_with_blobs() -> sa.Join:
    return repository_blobs.join(blobs, blobs.c.sha256 == repository_blobs.c.sha256)


async def count_links(conn: AsyncConnection, cutoff: dt.datetime) -> int:
    """Links made before ``cutoff``."""
    query = sa.select(sa.func.count()).where(repository_blobs.c.linked_at < cutoff)
    return int((await conn.execute(query)).scalar_one())


async def link_page(
    conn: AsyncConnection, cutoff: dt.datetime, after: tuple[str, str] | None, limit: int
) -> list[LinkRow]:
    """Links made before ``cutoff`` after ``after`` in (repository, sha256) order, each
    with whether a manifest of its repository references its blob."""
    query = (
        sa.select(
            repository_blobs.c.repository,
            repository_blobs.c.sha256,
            _referenced().label("referenced"),
        )
        .select_from(_links_with_blobs())
        .where(repository_blobs.c.linked_at < cutoff)
        .order_by(repository_blobs.c.repository, repository_blobs.c.sha256)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            sa.tuple_(repository_blobs.c.repository, repository_blobs.c.sha256)
            > sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
        )
    rows = (await conn.execute(query)).all()
    return [LinkRow(r.repository, r.sha256, bool(r.referenced)) for r in rows]


async def repositories_with_holds(conn: AsyncConnection, names: Sequence[str]) -> set[str]:
    """Which of the repositories ``names`` have a legal hold."""
    query = sa.select(holds.c.repository).where(holds.c.repository.in_(names)).distinct()
    return set((await conn.execute(query)).scalars())


async def unreferenced_links(
    conn: AsyncConnection,
    cutoff: dt.datetime,
    *,
    repository: str | None = None,
    sha256s: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(repository, sha256) of the links older than ``cutoff`` that no manifest of
    their repository references; only ``repository``'s links to ``sha256s`` if given."""
    query = (
        sa.select(repository_blobs.c.repository, repository_blobs.c.sha256)
        .select_from(_links_with_blobs())
        .where(repository_blobs.c.linked_at < cutoff, ~_referenced())
    )
    if repository is not None:
        query = query.where(repository_blobs.c.repository == repository)
    if sha256s is not None:
        query = query.where(repository_blobs.c.sha256.in_(sha256s))
    return [(row.repository, row.sha256) for row in (await conn.execute(query)).all()]


def _unlinked(cutoff: dt.datetime) -> sa.ColumnElement[bool]:
    """No link, no manifest anywhere naming it, untouched since ``cutoff``.

    A manifest can outlive its repository's link to a blob (an explicit
    DELETE of the blob): its bytes stay while any manifest references them,
    so the manifest can be repaired by pushing the blob again, and ``verify``
    never finds a live manifest whose bytes GC took. The index on
    ``referenced_digest`` serves each of the three equalities.
    """
    linked = sa.select(sa.literal(1)).where(repository_blobs.c.sha256 == blobs.c.sha256).exists()
    named = (
        sa.select(sa.literal(1))
        .where(
            manifest_references.c.kind.in_(("config", "layer")),
            sa.or_(
                manifest_references.c.referenced_digest == blobs.c.sha256,
                manifest_references.c.referenced_digest == blobs.c.blake3,
                manifest_references.c.referenced_digest == blobs.c.sha512,
            ),
        )
        .exists()
    )
    touched = sa.func.coalesce(blobs.c.touched_at, blobs.c.created_at)
    return sa.and_(~linked, ~named, touched < cutoff)


async def count_unlinked(conn: AsyncConnection, cutoff: dt.datetime) -> int:
    """Blobs no repository links, untouched since before ``cutoff``."""
    query = sa.select(sa.func.count()).select_from(blobs).where(_unlinked(cutoff))
    return int((await conn.execute(query)).scalar_one())


async def unlinked_page(
    conn: AsyncConnection, cutoff: dt.datetime, after: str | None, limit: int
) -> list[UnlinkedBlob]:
    """``count_unlinked``'s blobs after ``after`` in sha256 order."""
    query = (
        sa.select(blobs.c.sha256, blobs.c.blake3, blobs.c.sha512, blobs.c.size)
        .where(_unlinked(cutoff))
        .order_by(blobs.c.sha256)
        .limit(limit)
    )
    if after is not None:
        query = query.where(blobs.c.sha256 > after)
    rows = (await conn.execute(query)).all()
    return [UnlinkedBlob(r.sha256, r.blake3, r.sha512, int(r.size)) for r in rows]


async def unlinked_sizes(
    conn: AsyncConnection, sha256s: Sequence[str], cutoff: dt.datetime
) -> dict[str, int]:
    """sha256 -> size of those of ``sha256s`` that are still unlinked and untouched."""
    query = (
        sa.select(blobs.c.sha256, blobs.c.size)
        .where(blobs.c.sha256.in_(sha256s))
        .where(_unlinked(cutoff))
    )
    return {row.sha256: int(row.size) for row in await conn.execute(query)}


async def any_holds(conn: AsyncConnection) -> bool:
    return (await conn.execute(sa.select(holds.c.id).limit(1))).first() is not None


async def held_repositories_naming(conn: AsyncConnection, names: Sequence[str]) -> list[str]:
    """Repositories with a legal hold whose manifests name a blob by one of ``names``."""
    query = (
        sa.select(manifest_references.c.repository)
        .where(
            manifest_references.c.repository.in_(sa.select(holds.c.repository)),
            manifest_references.c.kind.in_(("config", "layer")),
            manifest_references.c.referenced_digest.in_(names),
        )
        .distinct()
    )
    return list((await conn.execute(query)).scalars().all())
