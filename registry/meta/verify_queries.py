"""The reads the scrub makes of the views (``registry.lifecycle.verify``): blob rows in
batches, references, anti-joins.

Each takes an open connection, so the repair can run them inside its own
locked transaction and the scan on a plain read connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from oci.digest import Digest
from oci.errors import DigestInvalid
from registry.meta.tables import blobs, manifest_references, manifests, repository_blobs

__all__ = [
    "BlobRow",
    "Dangling",
    "blob_page",
    "blob_rows",
    "dangling",
    "linking_repositories",
    "referencing",
    "totals",
]

_IN_LIMIT = 500  # digests per IN (...) list: well under every driver's parameter limit
_BLOB_COLUMNS = (blobs.c.sha256, blobs.c.blake3, blobs.c.sha512, blobs.c.size)


@dataclass(frozen=True, slots=True)
class BlobRow:
    sha256: str
    blake3: str
    size: int
    sha512: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.sha256, self.blake3, self.sha512) if n is not None)


@dataclass(frozen=True, slots=True)
class Dangling:
    digest: str
    repository: str
    manifest: str  # "" for a blob link
    detail: str


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + _IN_LIMIT] for i in range(0, len(items), _IN_LIMIT)]


def _row(row: Any) -> BlobRow:  # a Row of _BLOB_COLUMNS
    return BlobRow(row.sha256, row.blake3, int(row.size), row.sha512)


async def totals(conn: AsyncConnection) -> tuple[int, int]:
    """How many blobs the metadata records, and their bytes."""
    count, size = (
        await conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(blobs.c.size), 0))
        )
    ).one()
    return int(count), int(size)


async def blob_rows(conn: AsyncConnection, sha256s: Sequence[str]) -> dict[str, BlobRow]:
    found: dict[str, BlobRow] = {}
    for chunk in _chunks(sha256s):
        query = sa.select(*_BLOB_COLUMNS).where(blobs.c.sha256.in_(chunk))
        for row in await conn.execute(query):
            found[row.sha256] = _row(row)
    return found


async def blob_page(conn: AsyncConnection, after: str, limit: int) -> list[BlobRow]:
    """The next ``limit`` rows by sha256 after ``after`` (keyset pagination)."""
    query = (
        sa.select(*_BLOB_COLUMNS)
        .where(blobs.c.sha256 > after)
        .order_by(blobs.c.sha256)
        .limit(limit)
    )
    return [_row(row) for row in await conn.execute(query)]


async def referencing(conn: AsyncConnection, rows: Sequence[BlobRow]) -> dict[str, list[str]]:
    """sha256 -> ``repository@manifest`` of every manifest naming the blob by any of its digests."""
    by_name = {name: row.sha256 for row in rows for name in row.names}
    found: dict[str, list[str]] = {}
    for chunk in _chunks(list(by_name)):
        query = (
            sa.select(
                manifest_references.c.repository,
                manifest_references.c.manifest_digest,
                manifest_references.c.referenced_digest,
            )
            .where(
                manifest_references.c.referenced_digest.in_(chunk),
                manifest_references.c.kind != "manifest",
            )
            .order_by(manifest_references.c.repository, manifest_references.c.manifest_digest)
        )
        for row in await conn.execute(query):
            found.setdefault(by_name[row.referenced_digest], []).append(
                f"{row.repository}@{row.manifest_digest}"
            )
    return found


async def _resolve(conn: AsyncConnection, digest: str) -> str | None:
    """The sha256 of the blob ``digest`` names (sha256, blake3 or sha512), if there is one."""
    try:
        parsed = Digest.parse(digest)
    except DigestInvalid:
        return None
    column = {"sha256": blobs.c.sha256, "blake3": blobs.c.blake3, "sha512": blobs.c.sha512}
    query = sa.select(blobs.c.sha256).where(column[parsed.algorithm] == digest)
    sha256: str | None = (await conn.execute(query)).scalar_one_or_none()
    return sha256


async def _linked(conn: AsyncConnection, repository: str, sha256: str) -> bool:
    query = sa.select(sa.literal(1)).where(
        repository_blobs.c.repository == repository, repository_blobs.c.sha256 == sha256
    )
    return (await conn.execute(query)).first() is not None


async def dangling(conn: AsyncConnection) -> list[Dangling]:
    """Links and references that point at nothing a pull could fetch.

    - a blob link whose blob has no row (the foreign key forbids it; a
      database edited by hand or restored in part can still hold one);
    - a config or layer reference to a blob the manifest's repository does
      not hold: unknown to the registry, or unlinked from that repository;
    - an index's child manifest that is not in the repository.
    """
    found: list[Dangling] = []
    links = (
        sa.select(repository_blobs.c.repository, repository_blobs.c.sha256)
        .select_from(repository_blobs.outerjoin(blobs, blobs.c.sha256 == repository_blobs.c.sha256))
        .where(blobs.c.sha256.is_(None))
        .order_by(repository_blobs.c.repository, repository_blobs.c.sha256)
    )
    for link in await conn.execute(links):
        found.append(
            Dangling(link.sha256, link.repository, "", "the repository links a blob with no row")
        )
    mr = manifest_references
    unlinked = (
        sa.select(mr.c.repository, mr.c.manifest_digest, mr.c.referenced_digest)
        .select_from(
            mr.outerjoin(
                repository_blobs,
                sa.and_(
                    repository_blobs.c.repository == mr.c.repository,
                    repository_blobs.c.sha256 == mr.c.referenced_digest,
                ),
            )
        )
        .where(mr.c.kind != "manifest", repository_blobs.c.sha256.is_(None))
        .order_by(mr.c.repository, mr.c.manifest_digest, mr.c.referenced_digest)
    )
    for row in (await conn.execute(unlinked)).all():
        # Named by sha256 almost always; a blake3 or sha512 name is resolved here.
        sha256 = await _resolve(conn, row.referenced_digest)
        if (
            sha256 is not None
            and sha256 != row.referenced_digest
            and await _linked(conn, row.repository, sha256)
        ):
            continue
        detail = (
            "the manifest references a blob the registry does not have"
            if sha256 is None
            else "the manifest references a blob its repository no longer holds"
        )
        found.append(Dangling(row.referenced_digest, row.repository, row.manifest_digest, detail))
    children = (
        sa.select(mr.c.repository, mr.c.manifest_digest, mr.c.referenced_digest)
        .select_from(
            mr.outerjoin(
                manifests,
                sa.and_(
                    manifests.c.repository == mr.c.repository,
                    manifests.c.digest == mr.c.referenced_digest,
                ),
            )
        )
        .where(mr.c.kind == "manifest", manifests.c.digest.is_(None))
        .order_by(mr.c.repository, mr.c.manifest_digest, mr.c.referenced_digest)
    )
    for child in await conn.execute(children):
        found.append(
            Dangling(
                child.referenced_digest,
                child.repository,
                child.manifest_digest,
                "the index references a manifest that is not in its repository",
            )
        )
    return found


async def linking_repositories(conn: AsyncConnection, sha256: str) -> list[str]:
    """The repositories that link the blob ``sha256``, by name."""
    query = (
        sa.select(repository_blobs.c.repository)
        .where(repository_blobs.c.sha256 == sha256)
        .order_by(repository_blobs.c.repository)
    )
    return list((await conn.execute(query)).scalars())
