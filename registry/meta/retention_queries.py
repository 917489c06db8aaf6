"""The reads retention makes of the views (``registry.lifecycle.retention``).

``plan`` reads a repository's tags, manifests and index references without
the write lock; ``apply`` re-reads single rows inside its locked
transaction before each deletion.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.tables import manifest_references, manifests, repositories, tags

__all__ = [
    "RetainedManifest",
    "TagState",
    "index_parents",
    "index_references",
    "manifest_state",
    "manifest_states",
    "newer_tags",
    "repository_names",
    "tag_state",
    "tag_states",
    "tags_pointing_at",
]

_MANIFEST_COLUMNS = (
    manifests.c.digest,
    manifests.c.created_at,
    manifests.c.touched_at,
    manifests.c.pulled_at,
    manifests.c.subject,
    manifests.c.retention_class,
    manifests.c.retain_until,
)


@dataclass(frozen=True, slots=True)
class RetainedManifest:
    """What retention decides a manifest by."""

    digest: str
    created_at: dt.datetime
    touched_at: dt.datetime | None
    pulled_at: dt.datetime | None
    subject: str | None
    retention_class: str | None
    retain_until: dt.datetime | None

    @property
    def untagged_since(self) -> dt.datetime:
        return self.touched_at or self.created_at


class TagState(NamedTuple):
    tag: str
    digest: str
    updated_at: dt.datetime


async def repository_names(conn: AsyncConnection) -> list[str]:
    query = sa.select(repositories.c.name).order_by(repositories.c.name)
    return list((await conn.execute(query)).scalars())


async def tag_states(conn: AsyncConnection, repo: str) -> list[TagState]:
    query = sa.select(tags.c.tag, tags.c.digest, tags.c.updated_at).where(tags.c.repository == repo)
    return [TagState(*row) for row in (await conn.execute(query)).all()]


async def manifest_states(conn: AsyncConnection, repo: str) -> list[RetainedManifest]:
    query = sa.select(*_MANIFEST_COLUMNS).where(manifests.c.repository == repo)
    return [RetainedManifest(*row) for row in (await conn.execute(query)).all()]


async def index_references(conn: AsyncConnection, repo: str) -> list[tuple[str, str]]:
    """(index digest, child manifest digest) for every index in ``repo``."""
    query = sa.select(
        manifest_references.c.manifest_digest, manifest_references.c.referenced_digest
    ).where(
        manifest_references.c.repository == repo,
        manifest_references.c.kind == "manifest",
    )
    return [(row.manifest_digest, row.referenced_digest) for row in await conn.execute(query)]


async def tag_state(conn: AsyncConnection, repo: str, tag: str) -> TagState | None:
    query = sa.select(tags.c.digest, tags.c.updated_at).where(
        tags.c.repository == repo, tags.c.tag == tag
    )
    row = (await conn.execute(query)).first()
    return None if row is None else TagState(tag, row.digest, row.updated_at)


async def manifest_state(conn: AsyncConnection, repo: str, digest: str) -> RetainedManifest | None:
    query = sa.select(*_MANIFEST_COLUMNS).where(
        manifests.c.repository == repo, manifests.c.digest == digest
    )
    row = (await conn.execute(query)).first()
    return None if row is None else RetainedManifest(*row)


async def newer_tags(
    conn: AsyncConnection,
    repo: str,
    tag: str,
    pushed_at: dt.datetime,
    limit: int,
    offset: int,
) -> list[tuple[str, str | None]]:
    """(tag, its manifest's subject) of the tags pushed after ``tag`` (pushed at
    ``pushed_at``; ties go by name), newest first: a page of ``limit`` from ``offset``."""
    newer = sa.or_(
        tags.c.updated_at > pushed_at,
        sa.and_(tags.c.updated_at == pushed_at, tags.c.tag < tag),
    )
    query = (
        sa.select(tags.c.tag, manifests.c.subject)
        .join(
            manifests,
            sa.and_(
                manifests.c.repository == tags.c.repository, manifests.c.digest == tags.c.digest
            ),
        )
        .where(tags.c.repository == repo, newer)
        .order_by(tags.c.updated_at.desc(), tags.c.tag)
    )
    rows = (await conn.execute(query.limit(limit).offset(offset))).all()
    return [(row.tag, row.subject) for row in rows]


async def index_parents(conn: AsyncConnection, repo: str, digest: str) -> list[str]:
    """The indexes in ``repo`` that reference the manifest ``digest``."""
    query = sa.select(manifest_references.c.manifest_digest).where(
        manifest_references.c.repository == repo,
        manifest_references.c.kind == "manifest",
        manifest_references.c.referenced_digest == digest,
    )
    return list((await conn.execute(query)).scalars())


async def tags_pointing_at(conn: AsyncConnection, repo: str, digest: str) -> list[str]:
    """The tags in ``repo`` that point at ``digest``, in no particular order."""
    query = sa.select(tags.c.tag).where(tags.c.repository == repo, tags.c.digest == digest)
    return list((await conn.execute(query)).scalars())
