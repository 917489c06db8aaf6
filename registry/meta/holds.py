"""What legal holds and immutable tags protect, read from the views.

A hold on a manifest protects it, everything it references (child
manifests, config and layer blobs, transitively) and everything that refers
to it (referrers: signatures, SBOMs, attestations), transitively too. A hold
on a repository protects everything in it. These reads run inside the
writer's transaction, under the write lock, so a check and the change it
guards cannot be separated by another writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.tables import blobs as blob_rows
from registry.meta.tables import holds, manifest_references, manifests, tags

__all__ = ["Content", "Protected", "content_of", "protected", "tag_digests", "tags_of"]


@dataclass(frozen=True, slots=True)
class Protected:
    """The held closure of one repository."""

    whole_repository: bool
    manifests: frozenset[str]  # digests of held manifests (held, referenced or referring)
    # Blobs those manifests reference: as they name them, and by sha256 (the blob's key).
    blobs: frozenset[str]
    tags: frozenset[str]  # tags named by a hold on an artifact version or tag
    hold_ids: tuple[str, ...]

    def covers_manifest(self, digest: str) -> bool:
        return self.whole_repository or digest in self.manifests

    def covers_blob(self, digest: str) -> bool:
        return self.whole_repository or digest in self.blobs

    def covers_tag(self, tag: str) -> bool:
        return self.whole_repository or tag in self.tags


async def protected(conn: AsyncConnection, repository: str) -> Protected:
    rows = (
        await conn.execute(
            sa.select(holds.c.id, holds.c.digest, holds.c.tag).where(
                holds.c.repository == repository
            )
        )
    ).all()
    whole = any(row.digest is None for row in rows)
    held_tags = frozenset(row.tag for row in rows if row.tag is not None)
    frontier = {row.digest for row in rows if row.digest is not None}
    kept: set[str] = set()
    blobs: set[str] = set()
    while frontier and not whole:
        kept |= frontier
        batch = list(frontier)
        refs = (
            await conn.execute(
                sa.select(
                    manifest_references.c.kind, manifest_references.c.referenced_digest
                ).where(
                    manifest_references.c.repository == repository,
                    manifest_references.c.manifest_digest.in_(batch),
                )
            )
        ).all()
        children = {r.referenced_digest for r in refs if r.kind == "manifest"}
        blobs |= {r.referenced_digest for r in refs if r.kind != "manifest"}
        referrers = (
            await conn.execute(
                sa.select(manifests.c.digest).where(
                    manifests.c.repository == repository, manifests.c.subject.in_(batch)
                )
            )
        ).scalars()
        frontier = (children | set(referrers)) - kept
    return Protected(
        whole_repository=whole,
        manifests=frozenset(kept),
        blobs=frozenset(blobs | await _sha256_of(conn, blobs)),
        tags=held_tags,
        hold_ids=tuple(row.id for row in rows),
    )


async def _sha256_of(conn: AsyncConnection, digests: set[str]) -> set[str]:
    """The sha256 keys of blobs a manifest names by blake3 or sha512 (callers compare keys)."""
    aliases = [d for d in digests if not d.startswith("sha256:")]
    if not aliases:
        return set()
    query = sa.select(blob_rows.c.sha256).where(
        sa.or_(blob_rows.c.blake3.in_(aliases), blob_rows.c.sha512.in_(aliases))
    )
    return set((await conn.execute(query)).scalars())


@dataclass(frozen=True, slots=True)
class Content:
    """What some manifests are made of: they, their child manifests (transitively) and
    the blobs all of those reference, as named and by sha256. Unlike a hold's closure,
    referrers are not part of it: a signature is about an image, not in it."""

    manifests: frozenset[str]
    blobs: frozenset[str]


async def content_of(conn: AsyncConnection, repository: str, roots: set[str]) -> Content:
    frontier = set(roots)
    kept: set[str] = set()
    blobs: set[str] = set()
    while frontier:
        kept |= frontier
        refs = (
            await conn.execute(
                sa.select(
                    manifest_references.c.kind, manifest_references.c.referenced_digest
                ).where(
                    manifest_references.c.repository == repository,
                    manifest_references.c.manifest_digest.in_(list(frontier)),
                )
            )
        ).all()
        blobs |= {r.referenced_digest for r in refs if r.kind != "manifest"}
        frontier = {r.referenced_digest for r in refs if r.kind == "manifest"} - kept
    return Content(frozenset(kept), frozenset(blobs | await _sha256_of(conn, blobs)))


async def tag_digests(conn: AsyncConnection, repository: str) -> list[tuple[str, str]]:
    """(tag, digest) of every tag of ``repository``, by tag."""
    query = sa.select(tags.c.tag, tags.c.digest).where(tags.c.repository == repository)
    return [(r.tag, r.digest) for r in await conn.execute(query.order_by(tags.c.tag))]


async def tags_of(conn: AsyncConnection, repository: str, digest: str) -> list[str]:
    query = sa.select(tags.c.tag).where(tags.c.repository == repository, tags.c.digest == digest)
    return list((await conn.execute(query.order_by(tags.c.tag))).scalars())
